// sfctl: command-line client of the sfd daemon.
//   sfctl submit JOB.yaml [--follow] [--request_id=ID] [--validate_only]
//   sfctl list [--state=QUEUED,RUNNING] [--limit=N]
//   sfctl get JOB_ID
//   sfctl cancel JOB_ID [--checkpoint=true|false]
//   sfctl events JOB_ID [--follow] [--after=SEQ]
//   sfctl logs JOB_ID [--follow]
//   sfctl checkpoints JOB_ID
//   sfctl info
// Human output by default, --json for scripts (one JSON object per line). Exit status: 0 ok,
// 1 the server refused (its message is printed) or a followed job did not succeed, 2 usage.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/sfctl/connection.h"
#include "client/sfctl/format.h"

ABSL_FLAG(std::string, socket, "", "sfd Unix socket (default $SFD_SOCKET or ./sfd-state/sfd.sock)");
ABSL_FLAG(std::string, address, "", "sfd TCP address host:port (default $SFD_ADDRESS)");
ABSL_FLAG(std::string, token_file, "", "file with the bearer token (default $SFD_TOKEN_FILE; or $SFD_TOKEN)");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA certificate: use TLS on TCP");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate (mutual TLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM client key (mutual TLS)");
ABSL_FLAG(std::string, tls_server_name, "", "expected server name in its certificate");
ABSL_FLAG(bool, json, false, "JSON output");
ABSL_FLAG(bool, follow, false, "submit/events/logs: follow the job live until it ends");
ABSL_FLAG(std::string, request_id, "", "submit: idempotency key");
ABSL_FLAG(bool, validate_only, false, "submit: resolve and validate, create nothing");
ABSL_FLAG(std::string, state, "", "list: comma-separated states");
ABSL_FLAG(int32_t, limit, 100, "list: maximum jobs");
ABSL_FLAG(int64_t, after, 0, "events: start after this seq");
ABSL_FLAG(std::string, checkpoint, "", "cancel: true/false = write a final checkpoint (default: the job's checkpoint.on_cancel)");
ABSL_FLAG(int32_t, timeout, 30, "seconds per call");

namespace sfd {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

int Fail(const grpc::Status& st) {
  std::fprintf(stderr, "sfctl: %s: %s\n",
               absl::StatusCodeToString(static_cast<absl::StatusCode>(st.error_code())).c_str(),
               st.error_message().c_str());
  return 1;
}

int Usage(const std::string& msg) {
  std::fprintf(stderr, "sfctl: %s\nrun 'sfctl --help' for usage\n", msg.c_str());
  return 2;
}

bool Json() { return absl::GetFlag(FLAGS_json); }

enum class FollowMode { kProgress, kEvents, kLogs };

// Streams events from after_seq; reconnects (with the last seq seen) while the server is
// unavailable, for up to 10 minutes. Returns the exit code (0 = job SUCCEEDED or not followed
// to the end).
int StreamEvents(Connection& conn, const std::string& job_id, int64_t after, bool follow,
                 FollowMode mode) {
  ProgressBar bar(::isatty(1) && !Json());
  v1::JobState last_state = v1::JOB_STATE_UNSPECIFIED;
  int64_t last = after;
  auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(10);
  bool reconnecting = false;
  while (true) {
    auto ctx = conn.Context(/*unary=*/false);
    v1::StreamJobEventsRequest req;
    req.set_job_id(job_id);
    req.set_after_seq(last);
    req.set_no_follow(!follow);
    auto reader = conn.stub()->StreamJobEvents(ctx.get(), req);
    v1::JobEvent ev;
    while (reader->Read(&ev)) {
      if (reconnecting) {
        reconnecting = false;
        if (!Json()) bar.Line("(reconnected)");
      }
      last = ev.seq();
      if (ev.has_state()) last_state = ev.state().state();
      if (Json()) {
        if (mode != FollowMode::kLogs || ev.has_log() || ev.has_error())
          std::printf("%s\n", ToJson(ev).c_str());
        std::fflush(stdout);
        continue;
      }
      switch (mode) {
        case FollowMode::kProgress:
          if (ev.has_step()) {
            bar.Step(ev.step());
            break;
          }
          if (ev.has_eval()) bar.Eval(ev.eval().eval_loss());
          bar.Line(EventLine(ev));
          break;
        case FollowMode::kEvents:
          bar.Line(EventLine(ev));
          break;
        case FollowMode::kLogs:
          if (ev.has_log()) bar.Line(absl::StrCat("[", ev.log().source(), "] ", ev.log().message()));
          if (ev.has_error()) bar.Line(absl::StrCat("error ", ev.error().code(), ": ", ev.error().message()));
          break;
      }
    }
    grpc::Status st = reader->Finish();
    if (st.ok()) break;
    if (follow && st.error_code() == grpc::StatusCode::UNAVAILABLE &&
        std::chrono::steady_clock::now() < give_up) {
      if (!reconnecting && !Json()) bar.Line(absl::StrCat("(connection lost: ", st.error_message(), "; reconnecting)"));
      reconnecting = true;
      std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    bar.Finish();
    return Fail(st);
  }
  bar.Finish();
  if (!follow) return 0;
  if (mode == FollowMode::kProgress && !Json()) {
    auto ctx = conn.Context();
    v1::GetJobRequest req;
    req.set_job_id(job_id);
    v1::Job job;
    if (conn.stub()->GetJob(ctx.get(), req, &job).ok()) {
      std::printf("job %s %s", job.id().c_str(), StateName(job.state()).c_str());
      if (!job.final_model_dir().empty()) std::printf("; trained model: %s", job.final_model_dir().c_str());
      if (!job.error_message().empty()) std::printf(": %s: %s", job.error_code().c_str(), job.error_message().c_str());
      std::printf("\n");
    }
  }
  return last_state == v1::SUCCEEDED ? 0 : 1;
}

int Submit(Connection& conn, const std::vector<std::string>& args) {
  if (args.size() != 1) return Usage("submit needs exactly one JOB.yaml");
  std::string text;
  if (args[0] == "-") {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    text = ss.str();
  } else {
    std::ifstream f(args[0]);
    if (!f) return Usage(absl::StrCat("cannot read ", args[0]));
    std::stringstream ss;
    ss << f.rdbuf();
    text = ss.str();
  }
  v1::CreateJobRequest req;
  req.set_job_yaml(text);
  req.set_request_id(absl::GetFlag(FLAGS_request_id));
  req.set_validate_only(absl::GetFlag(FLAGS_validate_only));
  v1::CreateJobResponse resp;
  auto ctx = conn.Context();
  grpc::Status st = conn.stub()->CreateJob(ctx.get(), req, &resp);
  if (!st.ok()) return Fail(st);
  if (Json()) {
    std::printf("%s\n", ToJson(resp).c_str());
  } else if (req.validate_only()) {
    std::printf("valid; resolved spec:\n%s", resp.job().spec_yaml().c_str());
  } else {
    std::printf("%s\n", resp.job().id().c_str());
  }
  std::fflush(stdout);
  if (!absl::GetFlag(FLAGS_follow) || req.validate_only()) return 0;
  return StreamEvents(conn, resp.job().id(), 0, true, FollowMode::kProgress);
}

int List(Connection& conn) {
  v1::ListJobsRequest req;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_state), ',', absl::SkipEmpty())) {
    v1::JobState state;
    if (!v1::JobState_Parse(absl::AsciiStrToUpper(s), &state) || state == v1::JOB_STATE_UNSPECIFIED)
      return Usage(absl::StrCat("unknown state '", s, "'"));
    req.add_states(state);
  }
  const int limit = absl::GetFlag(FLAGS_limit);
  std::vector<v1::Job> jobs;
  do {
    req.set_page_size(std::min(limit - static_cast<int>(jobs.size()), 500));
    v1::ListJobsResponse resp;
    auto ctx = conn.Context();
    grpc::Status st = conn.stub()->ListJobs(ctx.get(), req, &resp);
    if (!st.ok()) return Fail(st);
    for (auto& j : resp.jobs()) jobs.push_back(j);
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty() && static_cast<int>(jobs.size()) < limit);
  if (Json()) {
    for (const auto& j : jobs) std::printf("%s\n", ToJson(j).c_str());
  } else {
    std::printf("%s", JobTable(jobs).c_str());
  }
  return 0;
}

int Run(const std::vector<std::string>& pos) {
  if (pos.empty()) return Usage("missing command (submit, list, get, cancel, events, logs, checkpoints, info)");
  ConnectionOptions o;
  o.socket = absl::GetFlag(FLAGS_socket);
  if (o.socket.empty()) o.socket = Env("SFD_SOCKET");
  if (o.socket.empty()) o.socket = "sfd-state/sfd.sock";
  o.address = absl::GetFlag(FLAGS_address);
  if (o.address.empty()) o.address = Env("SFD_ADDRESS");
  std::string token_file = absl::GetFlag(FLAGS_token_file);
  if (token_file.empty()) token_file = Env("SFD_TOKEN_FILE");
  if (!token_file.empty()) {
    std::ifstream f(token_file);
    if (!f) return Usage(absl::StrCat("cannot read token file ", token_file));
    std::stringstream ss;
    ss << f.rdbuf();
    o.token = std::string(absl::StripAsciiWhitespace(ss.str()));
  } else {
    o.token = Env("SFD_TOKEN");
  }
  o.tls_ca = absl::GetFlag(FLAGS_tls_ca);
  o.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  o.tls_key = absl::GetFlag(FLAGS_tls_key);
  o.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  o.timeout_seconds = absl::GetFlag(FLAGS_timeout);
  auto conn = Connection::Open(o);
  if (!conn.ok()) return Usage(std::string(conn.status().message()));
  Connection& c = **conn;

  const std::string& cmd = pos[0];
  const std::vector<std::string> args(pos.begin() + 1, pos.end());
  auto need_id = [&]() -> bool { return args.size() == 1 && !args[0].empty(); };
  if (cmd == "submit") return Submit(c, args);
  if (cmd == "list") return List(c);
  if (cmd == "info") {
    v1::ServerInfo info;
    auto ctx = c.Context();
    grpc::Status st = c.stub()->GetServerInfo(ctx.get(), v1::GetServerInfoRequest(), &info);
    if (!st.ok()) return Fail(st);
    std::printf("%s", Json() ? (ToJson(info) + "\n").c_str() : ServerInfoText(info).c_str());
    return 0;
  }
  if (!need_id()) return Usage(absl::StrCat(cmd, " needs exactly one JOB_ID"));
  const std::string& id = args[0];
  if (cmd == "get") {
    v1::GetJobRequest req;
    req.set_job_id(id);
    v1::Job job;
    auto ctx = c.Context();
    grpc::Status st = c.stub()->GetJob(ctx.get(), req, &job);
    if (!st.ok()) return Fail(st);
    std::printf("%s", Json() ? (ToJson(job) + "\n").c_str() : JobSummary(job).c_str());
    return 0;
  }
  if (cmd == "cancel") {
    v1::CancelJobRequest req;
    req.set_job_id(id);
    const std::string ck = absl::GetFlag(FLAGS_checkpoint);
    if (ck == "true") req.set_final_checkpoint(true);
    else if (ck == "false") req.set_final_checkpoint(false);
    else if (!ck.empty()) return Usage("--checkpoint must be true or false");
    v1::Job job;
    auto ctx = c.Context();
    grpc::Status st = c.stub()->CancelJob(ctx.get(), req, &job);
    if (!st.ok()) return Fail(st);
    if (Json()) {
      std::printf("%s\n", ToJson(job).c_str());
    } else {
      std::printf("%s %s\n", job.id().c_str(),
                  job.state() == v1::RUNNING ? "cancelling (stops at the next step boundary)"
                                             : StateName(job.state()).c_str());
    }
    return 0;
  }
  if (cmd == "events")
    return StreamEvents(c, id, absl::GetFlag(FLAGS_after), absl::GetFlag(FLAGS_follow),
                        FollowMode::kEvents);
  if (cmd == "logs")
    return StreamEvents(c, id, 0, absl::GetFlag(FLAGS_follow), FollowMode::kLogs);
  if (cmd == "checkpoints") {
    v1::ListCheckpointsRequest req;
    req.set_job_id(id);
    v1::ListCheckpointsResponse resp;
    auto ctx = c.Context();
    grpc::Status st = c.stub()->ListCheckpoints(ctx.get(), req, &resp);
    if (!st.ok()) return Fail(st);
    for (const auto& ck : resp.checkpoints()) {
      if (Json()) std::printf("%s\n", ToJson(ck).c_str());
      else std::printf("step %-8lld %-6s %s\n", static_cast<long long>(ck.step()),
                       ck.final() ? "final" : "", ck.path().c_str());
    }
    return 0;
  }
  return Usage(absl::StrCat("unknown command '", cmd, "'"));
}

}  // namespace
}  // namespace sfd

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "sfctl <command> [args] [flags]\n"
      "  submit JOB.yaml [--follow] [--request_id=ID] [--validate_only]\n"
      "  list [--state=QUEUED,RUNNING] [--limit=N]\n"
      "  get JOB_ID | cancel JOB_ID [--checkpoint=true|false]\n"
      "  events JOB_ID [--follow] [--after=SEQ] | logs JOB_ID [--follow]\n"
      "  checkpoints JOB_ID | info\n"
      "global: --socket=PATH | --address=HOST:PORT [--token_file=F] [--tls_ca=F] [--json]");
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  std::vector<std::string> pos(rest.begin() + 1, rest.end());
  return sfd::Run(pos);
}
