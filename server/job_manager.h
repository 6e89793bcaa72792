// JobManager: the job lifecycle. Validates and stores new jobs, keeps the FIFO queue, runs
// one job at a time in an sfd-worker process, turns worker reports into persisted events and
// job updates, cancels (queued: at once; running: request at a step boundary, SIGKILL after a
// grace period), retries a crashed worker from its latest checkpoint, recovers RUNNING jobs
// after a daemon restart and drains on shutdown (final checkpoint, job re-queued).
//
// States: QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED (RUNNING -> QUEUED when a worker
// crashed or the daemon stops; the job resumes from its latest checkpoint).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/config.h"
#include "server/job_store.h"
#include "server/metrics_sink.h"
#include "server/path_policy.h"
#include "server/worker_process.h"
#include "sfd/v1/sfd.pb.h"

namespace sfd {

class JobManager {
 public:
  JobManager(const ServerConfig& config, JobStore* store, const PathPolicy* policy,
             MetricsSink* metrics);
  ~JobManager();  // stops the scheduler; a still-running worker is killed

  // Re-queues jobs left QUEUED/RUNNING by an earlier daemon and starts the scheduler.
  absl::Status Start();

  absl::StatusOr<v1::CreateJobResponse> CreateJob(const v1::CreateJobRequest& request);
  absl::StatusOr<v1::Job> GetJob(const std::string& job_id);
  absl::StatusOr<v1::ListJobsResponse> ListJobs(const v1::ListJobsRequest& request);
  absl::StatusOr<v1::Job> CancelJob(const v1::CancelJobRequest& request);
  absl::StatusOr<v1::ListCheckpointsResponse> ListCheckpoints(const std::string& job_id);

  // Stops accepting jobs, asks the running worker for a final checkpoint and to stop, waits
  // for it (SIGKILL after checkpoint_grace_seconds); the job stays QUEUED for the next start.
  void Drain();
  bool draining() const;
  int queue_length() const;
  std::string running_job_id() const;

 private:
  struct Running {
    std::string job_id;
    std::unique_ptr<WorkerProcess> worker;
    bool exited = false;
    bool got_final = false;
    worker::v1::Final final;
    bool cancel_requested = false;
    bool drain_stop = false;
    std::optional<std::chrono::steady_clock::time_point> kill_deadline;
  };

  void SchedulerLoop();
  void StartNextLocked(std::unique_lock<std::mutex>& lock);
  void FinishRunningLocked(std::unique_lock<std::mutex>& lock);
  void OnReport(const std::string& job_id, const worker::v1::WorkerReport& report);
  // Appends an event for `job` and persists `job` with it (one transaction).
  void EmitLocked(v1::Job& job, v1::JobEvent event);
  void SetStateLocked(v1::Job& job, v1::JobState state, const std::string& reason);
  void LogLocked(v1::Job& job, const std::string& message);
  void FillQueuePositionLocked(v1::Job* job) const;
  std::string WorkerLogPath(const std::string& job_id) const;
  std::string WorkerLogTail(const std::string& job_id) const;

  const ServerConfig config_;
  JobStore* store_;
  const PathPolicy* policy_;
  MetricsSink* metrics_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, v1::Job> active_;  // QUEUED and RUNNING jobs
  std::deque<std::string> queue_;           // FIFO of QUEUED job ids
  std::unique_ptr<Running> running_;
  bool draining_ = false;
  bool stop_ = false;
  std::thread scheduler_;
};

bool IsTerminal(v1::JobState state);

}  // namespace sfd
