#include "server/job_manager.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "engine/common/status.h"
#include "server/job_yaml.h"
#include "server/plan_check.h"
#include "server/status_mapping.h"
#include "spdlog/spdlog.h"

namespace sfd {
namespace {

constexpr absl::Duration kPlanCheckTimeout = absl::Seconds(60);

std::string NewJobId() {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard<std::mutex> lock(mu);
  const uint64_t r = rng();
  char buf[32];
  std::snprintf(buf, sizeof(buf), "j-%012llx", static_cast<unsigned long long>(r & 0xffffffffffffULL));
  return buf;
}

absl::Status CheckRequestId(const std::string& id) {
  if (id.size() > 128) return absl::InvalidArgumentError("request_id: at most 128 characters");
  for (char c : id)
    if (c < 0x21 || c > 0x7e) return absl::InvalidArgumentError("request_id: printable ASCII only");
  return absl::OkStatus();
}

}  // namespace

bool IsTerminal(v1::JobState s) {
  return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED;
}

JobManager::JobManager(const ServerConfig& config, JobStore* store, const PathPolicy* policy,
                       MetricsSink* metrics)
    : config_(config), store_(store), policy_(policy), metrics_(metrics) {}

JobManager::~JobManager() {
  std::unique_ptr<Running> running;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    if (running_ && running_->worker) running_->worker->Kill();
  }
  cv_.notify_all();
  if (scheduler_.joinable()) scheduler_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    running = std::move(running_);
  }
  running.reset();  // joins the reader thread outside the lock
}

absl::Status JobManager::Start() {
  std::unique_lock<std::mutex> lock(mu_);
  std::vector<v1::Job> resumed, queued;
  int64_t key = 0;
  do {
    SFD_ASSIGN_OR_RETURN(std::vector<v1::Job> jobs,
                         store_->ListJobs({v1::QUEUED, v1::RUNNING}, key, 500, &key));
    for (auto& j : jobs) (j.state() == v1::RUNNING ? resumed : queued).push_back(std::move(j));
  } while (key != 0);
  for (v1::Job& job : resumed) {
    if (job.cancel_requested()) {
      job.set_end_time_ms(NowMs());
      SetStateLocked(job, v1::CANCELLED, "daemon restarted while the job was being cancelled");
      continue;
    }
    if (job.attempts() >= config_.max_attempts) {
      job.set_error_code("ABORTED");
      job.set_error_message(absl::StrCat("daemon stopped during attempt ", job.attempts(), " of ",
                                         config_.max_attempts, "; no attempts left"));
      job.set_end_time_ms(NowMs());
      SetStateLocked(job, v1::FAILED, job.error_message());
      continue;
    }
    active_[job.id()] = job;
    queue_.push_back(job.id());
    SetStateLocked(active_[job.id()], v1::QUEUED,
                   "daemon restarted; the job will resume from its latest checkpoint");
  }
  for (v1::Job& job : queued) {
    queue_.push_back(job.id());
    active_[job.id()] = std::move(job);
  }
  metrics_->OnQueueDepth(static_cast<int>(queue_.size()));
  if (!resumed.empty() || !queued.empty())
    spdlog::info("recovered {} interrupted and {} queued jobs", resumed.size(), queued.size());
  scheduler_ = std::thread([this] { SchedulerLoop(); });
  return absl::OkStatus();
}

absl::StatusOr<v1::CreateJobResponse> JobManager::CreateJob(const v1::CreateJobRequest& req) {
  if (draining()) return absl::UnavailableError("server is shutting down; not accepting jobs");
  SFD_RETURN_IF_ERROR(CheckRequestId(req.request_id()));
  std::string text;
  if (!req.job_yaml().empty()) {
    text = req.job_yaml();
  } else if (req.has_spec()) {
    text = JobSpecToYaml(req.spec());
  } else {
    return absl::InvalidArgumentError("job_yaml: must be set (or spec)");
  }
  SFD_ASSIGN_OR_RETURN(v1::JobSpec spec, ParseJobYaml(text));
  const std::string id = NewJobId();
  SFD_RETURN_IF_ERROR(ResolveJobPaths(*policy_, id, &spec));
  // Refuse now a job whose memory plan cannot fit (sfd-worker --plan-only, bounded). Its log
  // is kept only for a job that is queued.
  if (absl::Status plan = CheckJobPlan(config_.worker_binary, spec, WorkerLogPath(id),
                                       kPlanCheckTimeout);
      !plan.ok() || req.validate_only()) {
    std::error_code ec;
    std::filesystem::remove(WorkerLogPath(id), ec);
    SFD_RETURN_IF_ERROR(plan);
  }

  v1::Job job;
  job.set_id(id);
  job.set_name(spec.name());
  job.set_state(v1::QUEUED);
  job.set_request_id(req.request_id());
  job.set_create_time_ms(NowMs());
  job.set_spec_yaml(JobSpecToYaml(spec));
  *job.mutable_spec() = std::move(spec);
  v1::CreateJobResponse resp;
  if (req.validate_only()) {
    job.clear_id();
    job.set_state(v1::JOB_STATE_UNSPECIFIED);
    *resp.mutable_job() = std::move(job);
    return resp;
  }

  std::lock_guard<std::mutex> lock(mu_);
  if (draining_) return absl::UnavailableError("server is shutting down; not accepting jobs");
  if (!req.request_id().empty()) {
    SFD_ASSIGN_OR_RETURN(auto existing, store_->FindByRequestId(req.request_id()));
    if (existing.has_value()) {
      if (existing->second != text)
        return absl::AlreadyExistsError(
            absl::StrCat("request_id '", req.request_id(), "' was already used for job ",
                         existing->first.id(), " with a different spec"));
      auto it = active_.find(existing->first.id());
      *resp.mutable_job() = it != active_.end() ? it->second : existing->first;
      FillQueuePositionLocked(resp.mutable_job());
      resp.set_existing(true);
      return resp;
    }
  }
  if (static_cast<int>(queue_.size()) >= config_.queue_limit)
    return absl::ResourceExhaustedError(absl::StrCat("queue is full: ", queue_.size(), " of ",
                                                     config_.queue_limit, " jobs queued"));
  SFD_RETURN_IF_ERROR(store_->InsertJob(job, text));
  active_[id] = job;
  queue_.push_back(id);
  SetStateLocked(active_[id], v1::QUEUED, "submitted");
  metrics_->OnQueueDepth(static_cast<int>(queue_.size()));
  *resp.mutable_job() = active_[id];
  FillQueuePositionLocked(resp.mutable_job());
  cv_.notify_all();
  spdlog::info("job {} ({}) queued", id, job.name());
  return resp;
}

absl::StatusOr<v1::Job> JobManager::GetJob(const std::string& job_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = active_.find(job_id);
    if (it != active_.end()) {
      v1::Job job = it->second;
      FillQueuePositionLocked(&job);
      return job;
    }
  }
  return store_->GetJob(job_id);
}

absl::StatusOr<v1::ListJobsResponse> JobManager::ListJobs(const v1::ListJobsRequest& req) {
  int limit = req.page_size() <= 0 ? 50 : std::min(req.page_size(), 500);
  int64_t after = 0;
  if (!req.page_token().empty() && !absl::SimpleAtoi(req.page_token(), &after))
    return absl::InvalidArgumentError("page_token: not a token returned by ListJobs");
  std::vector<v1::JobState> states;
  for (int s : req.states()) states.push_back(static_cast<v1::JobState>(s));
  for (auto s : states)
    if (s == v1::JOB_STATE_UNSPECIFIED) return absl::InvalidArgumentError("states: UNSPECIFIED");
  int64_t next = 0;
  SFD_ASSIGN_OR_RETURN(std::vector<v1::Job> jobs, store_->ListJobs(states, after, limit, &next));
  v1::ListJobsResponse resp;
  std::lock_guard<std::mutex> lock(mu_);
  for (v1::Job& j : jobs) {
    auto it = active_.find(j.id());
    v1::Job* out = resp.add_jobs();
    *out = it != active_.end() ? it->second : std::move(j);
    FillQueuePositionLocked(out);
  }
  if (next != 0) resp.set_next_page_token(absl::StrCat(next));
  return resp;
}

absl::StatusOr<v1::Job> JobManager::CancelJob(const v1::CancelJobRequest& req) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = active_.find(req.job_id());
  if (it == active_.end()) {
    lock.unlock();
    SFD_ASSIGN_OR_RETURN(v1::Job job, store_->GetJob(req.job_id()));
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job.id(), " is already ", v1::JobState_Name(job.state()), "; nothing to cancel"));
  }
  v1::Job& job = it->second;
  if (job.state() == v1::QUEUED) {
    queue_.erase(std::remove(queue_.begin(), queue_.end(), job.id()), queue_.end());
    job.set_cancel_requested(true);
    job.set_end_time_ms(NowMs());
    SetStateLocked(job, v1::CANCELLED, "cancelled while queued");
    v1::Job out = job;
    active_.erase(it);
    metrics_->OnQueueDepth(static_cast<int>(queue_.size()));
    return out;
  }
  // RUNNING.
  if (!running_ || running_->job_id != job.id())
    return absl::InternalError("job is RUNNING but has no worker");
  if (!job.cancel_requested()) {
    const bool ckpt = req.has_final_checkpoint() ? req.final_checkpoint()
                                                 : job.spec().checkpoint().on_cancel();
    job.set_cancel_requested(true);
    running_->cancel_requested = true;
    worker::v1::WorkerControl ctl;
    ctl.mutable_cancel()->set_final_checkpoint(ckpt);
    absl::Status sent = running_->worker->Send(ctl);
    running_->kill_deadline =
        std::chrono::steady_clock::now() +
        std::chrono::seconds(ckpt ? config_.checkpoint_grace_seconds : config_.cancel_grace_seconds);
    if (!sent.ok()) running_->worker->Kill();
    LogLocked(job, absl::StrCat("cancel requested", ckpt ? " (with a final checkpoint)" : "",
                                "; stopping at the next step boundary"));
    cv_.notify_all();
  }
  return job;
}

absl::StatusOr<v1::ListCheckpointsResponse> JobManager::ListCheckpoints(const std::string& job_id) {
  SFD_RETURN_IF_ERROR(GetJob(job_id).status());
  SFD_ASSIGN_OR_RETURN(std::vector<v1::Checkpoint> all, store_->Checkpoints(job_id));
  v1::ListCheckpointsResponse resp;
  for (v1::Checkpoint& c : all) {
    // Old checkpoints are deleted by the engine (keep_last): list what still exists.
    std::error_code ec;
    if (std::filesystem::exists(c.path(), ec)) *resp.add_checkpoints() = std::move(c);
  }
  return resp;
}

void JobManager::Drain() {
  std::unique_lock<std::mutex> lock(mu_);
  draining_ = true;
  if (running_ && !running_->exited && !running_->drain_stop) {
    running_->drain_stop = true;
    worker::v1::WorkerControl ctl;
    ctl.mutable_cancel()->set_final_checkpoint(true);
    if (!running_->worker->Send(ctl).ok()) running_->worker->Kill();
    running_->kill_deadline = std::chrono::steady_clock::now() +
                              std::chrono::seconds(config_.checkpoint_grace_seconds);
    auto it = active_.find(running_->job_id);
    if (it != active_.end())
      LogLocked(it->second, "daemon shutting down: final checkpoint, then the job is re-queued");
  }
  cv_.notify_all();
  cv_.wait(lock, [&] { return running_ == nullptr || stop_; });
}

bool JobManager::draining() const {
  std::lock_guard<std::mutex> lock(mu_);
  return draining_;
}

int JobManager::queue_length() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size());
}

std::string JobManager::running_job_id() const {
  std::lock_guard<std::mutex> lock(mu_);
  return running_ ? running_->job_id : std::string();
}

void JobManager::FillQueuePositionLocked(v1::Job* job) const {
  job->set_queue_position(0);
  if (job->state() != v1::QUEUED) return;
  for (size_t i = 0; i < queue_.size(); ++i)
    if (queue_[i] == job->id()) job->set_queue_position(static_cast<int32_t>(i + 1));
}

void JobManager::EmitLocked(v1::Job& job, v1::JobEvent event) {
  event.set_job_id(job.id());
  absl::Status st = store_->AppendEvent(&event, &job);
  if (!st.ok()) spdlog::error("job {}: cannot store event: {}", job.id(), std::string(st.message()));
}

void JobManager::SetStateLocked(v1::Job& job, v1::JobState state, const std::string& reason) {
  job.set_state(state);
  v1::JobEvent ev;
  ev.mutable_state()->set_state(state);
  ev.mutable_state()->set_reason(reason);
  EmitLocked(job, std::move(ev));
  metrics_->OnJobState(job.id(), state);
  spdlog::info("job {} -> {} ({})", job.id(), v1::JobState_Name(state), reason);
}

void JobManager::LogLocked(v1::Job& job, const std::string& message) {
  v1::JobEvent ev;
  ev.mutable_log()->set_message(message);
  ev.mutable_log()->set_source("sfd");
  EmitLocked(job, std::move(ev));
}

std::string JobManager::WorkerLogPath(const std::string& job_id) const {
  return absl::StrCat(config_.state_dir, "/logs/", job_id, ".log");
}

std::string JobManager::WorkerLogTail(const std::string& job_id) const {
  std::ifstream f(WorkerLogPath(job_id), std::ios::binary | std::ios::ate);
  if (!f) return "";
  const std::streamoff size = f.tellg();
  const std::streamoff start = std::max<std::streamoff>(0, size - 1024);
  f.seekg(start);
  std::string tail(static_cast<size_t>(size - start), '\0');
  f.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  std::vector<std::string> lines = absl::StrSplit(tail, '\n', absl::SkipWhitespace());
  if (start > 0 && !lines.empty()) lines.erase(lines.begin());  // partial first line
  while (lines.size() > 4) lines.erase(lines.begin());
  return absl::StrJoin(lines, " | ");
}

}  // namespace sfd
