// JobManager, scheduler half: starts the next queued job in a worker, turns the worker's
// reports into events, and decides each run's outcome when the worker is gone (success,
// failure, cancel, crash retry, re-queue on shutdown). The API half is job_manager.cc.
#include "absl/strings/str_cat.h"
#include "server/job_manager.h"
#include "server/status_mapping.h"
#include "spdlog/spdlog.h"

namespace sfd {

void JobManager::SchedulerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (running_ && running_->exited) {
      FinishRunningLocked(lock);
      continue;
    }
    if (!running_ && !queue_.empty() && !draining_) {
      StartNextLocked(lock);
      continue;
    }
    auto wake = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    if (running_ && running_->kill_deadline) {
      if (std::chrono::steady_clock::now() >= *running_->kill_deadline) {
        spdlog::warn("job {}: worker did not stop in time; SIGKILL", running_->job_id);
        running_->worker->Kill();
        running_->kill_deadline.reset();
        continue;
      }
      wake = std::min(wake, *running_->kill_deadline);
    }
    cv_.wait_until(lock, wake);
  }
}

void JobManager::StartNextLocked(std::unique_lock<std::mutex>& lock) {
  const std::string id = queue_.front();
  queue_.pop_front();
  metrics_->OnQueueDepth(static_cast<int>(queue_.size()));
  v1::Job& job = active_[id];
  const bool resume = job.attempts() > 0;
  job.set_attempts(job.attempts() + 1);
  if (job.start_time_ms() == 0) job.set_start_time_ms(NowMs());
  SetStateLocked(job, v1::RUNNING,
                 resume ? absl::StrCat("attempt ", job.attempts(), ": resuming from the latest checkpoint")
                        : "started");
  worker::v1::WorkerStart start;
  start.set_job_id(id);
  *start.mutable_spec() = job.spec();
  start.set_resume(resume);
  start.set_attempt(job.attempts());

  running_ = std::make_unique<Running>();
  running_->job_id = id;
  // The reader thread calls back into us; both callbacks take mu_ themselves.
  auto spawned = WorkerProcess::Spawn(
      config_.worker_binary, start, WorkerLogPath(id),
      [this, id](const worker::v1::WorkerReport& r) { OnReport(id, r); },
      [this] {
        std::lock_guard<std::mutex> l(mu_);
        if (running_) running_->exited = true;
        cv_.notify_all();
      });
  if (!spawned.ok()) {
    running_.reset();
    job.set_error_code(StatusCodeName(spawned.status().code()));
    job.set_error_message(absl::StrCat("cannot start worker: ", spawned.status().message()));
    job.set_end_time_ms(NowMs());
    SetStateLocked(job, v1::FAILED, job.error_message());
    active_.erase(id);
    cv_.notify_all();
    return;
  }
  running_->worker = std::move(*spawned);
  spdlog::info("job {}: worker pid {} (attempt {})", id, running_->worker->pid(), job.attempts());
}

void JobManager::OnReport(const std::string& job_id, const worker::v1::WorkerReport& r) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = active_.find(job_id);
  if (it == active_.end() || !running_ || running_->job_id != job_id) return;
  v1::Job& job = it->second;
  v1::JobEvent ev;
  switch (r.kind_case()) {
    case worker::v1::WorkerReport::kStarted:
      *job.mutable_plan() = r.started().plan();
      *job.mutable_data_stats() = r.started().data_stats();
      job.mutable_progress()->set_total_steps(r.started().data_stats().total_steps());
      *ev.mutable_started() = r.started();
      ev.mutable_started()->set_attempt(job.attempts());
      metrics_->OnJobStarted(job_id, ev.started());
      break;
    case worker::v1::WorkerReport::kStep: {
      v1::StepMetrics s = r.step();
      s.set_total_steps(job.progress().total_steps());
      auto* p = job.mutable_progress();
      p->set_step(s.step());
      p->set_loss(s.loss());
      p->set_tokens_per_second(s.step_seconds() > 0 ? s.tokens() / s.step_seconds() : 0);
      p->set_host_rss(s.host_rss());
      p->set_peak_device(s.peak().device());
      metrics_->OnStep(job_id, s);
      *ev.mutable_step() = std::move(s);
      break;
    }
    case worker::v1::WorkerReport::kEval:
      job.mutable_progress()->set_eval_loss(r.eval().eval_loss());
      *ev.mutable_eval() = r.eval();
      metrics_->OnEval(job_id, r.eval());
      break;
    case worker::v1::WorkerReport::kCheckpoint: {
      v1::Checkpoint c = r.checkpoint();
      c.set_time_ms(NowMs());
      if (c.final()) job.set_final_model_dir(c.path());
      absl::Status st = store_->AddCheckpoint(job_id, c);
      if (!st.ok()) spdlog::error("job {}: {}", job_id, std::string(st.message()));
      metrics_->OnCheckpoint(job_id, c);
      *ev.mutable_checkpoint() = std::move(c);
      break;
    }
    case worker::v1::WorkerReport::kLog:
      ev.mutable_log()->set_message(r.log());
      ev.mutable_log()->set_source("worker");
      break;
    case worker::v1::WorkerReport::kFinal:
      running_->got_final = true;
      running_->final = r.final();
      return;
    default:
      return;
  }
  EmitLocked(job, std::move(ev));
}

void JobManager::FinishRunningLocked(std::unique_lock<std::mutex>& lock) {
  std::unique_ptr<Running> run = std::move(running_);
  auto it = active_.find(run->job_id);
  v1::Job& job = it->second;
  const std::string how = run->worker->ExitDescription();
  const bool crashed = !run->got_final;
  metrics_->OnWorkerExit(job.id(), crashed);
  const absl::StatusCode code = static_cast<absl::StatusCode>(run->final.code());
  bool requeue = false;
  auto fail = [&](const std::string& code_name, const std::string& message) {
    job.set_error_code(code_name);
    job.set_error_message(message);
    v1::JobEvent ev;
    ev.mutable_error()->set_code(code_name);
    ev.mutable_error()->set_message(message);
    EmitLocked(job, std::move(ev));
  };

  if (!crashed && code == absl::StatusCode::kOk) {
    if (!run->final.final_model_dir().empty()) job.set_final_model_dir(run->final.final_model_dir());
    job.set_end_time_ms(NowMs());
    SetStateLocked(job, v1::SUCCEEDED,
                   absl::StrCat("finished; final model in ", job.final_model_dir()));
  } else if (run->cancel_requested) {
    job.set_end_time_ms(NowMs());
    SetStateLocked(job, v1::CANCELLED,
                   crashed ? absl::StrCat("cancelled; worker ", how) : "cancelled at a step boundary");
  } else if (run->drain_stop || (draining_ && crashed)) {
    requeue = true;
    SetStateLocked(job, v1::QUEUED, "daemon shutting down; the job resumes at the next start");
  } else if (!crashed) {
    const std::string name = StatusCodeName(code);
    fail(name, run->final.message());
    job.set_end_time_ms(NowMs());
    SetStateLocked(job, v1::FAILED, absl::StrCat(name, ": ", run->final.message()));
  } else {
    std::string reason = absl::StrCat("worker ", how);
    const std::string tail = WorkerLogTail(job.id());
    if (!tail.empty()) absl::StrAppend(&reason, "; last log lines: ", tail);
    if (job.attempts() < config_.max_attempts) {
      requeue = true;
      LogLocked(job, absl::StrCat(reason, "; retrying from the latest checkpoint (attempt ",
                                  job.attempts() + 1, " of ", config_.max_attempts, ")"));
      SetStateLocked(job, v1::QUEUED, absl::StrCat("worker crashed (", how, "); will resume"));
    } else {
      fail("ABORTED", absl::StrCat(reason, " (attempt ", job.attempts(), " of ",
                                   config_.max_attempts, ", giving up)"));
      job.set_end_time_ms(NowMs());
      SetStateLocked(job, v1::FAILED, job.error_message());
    }
  }
  const std::string id = job.id();
  if (requeue) {
    queue_.push_front(id);
    metrics_->OnQueueDepth(static_cast<int>(queue_.size()));
  } else {
    active_.erase(it);
  }
  cv_.notify_all();
  // Join the reader thread without holding the lock (it has finished its callbacks).
  lock.unlock();
  run.reset();
  lock.lock();
}

}  // namespace sfd
