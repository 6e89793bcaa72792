// MetricsSink: the seam between the daemon and its metrics exporter (Prometheus lives in a
// separate implementation; see issue 5). The job manager calls these hooks for every worker
// report, job state change and queue-depth change. The default implementation does nothing.
// Calls may come from several threads; implementations must be thread-safe and must not block.
#pragma once

#include <string>

#include "sfd/v1/sfd.pb.h"

namespace sfd {

class MetricsSink {
 public:
  virtual ~MetricsSink() = default;
  // A job moved to `state` (QUEUED on creation, RUNNING, SUCCEEDED, FAILED, CANCELLED).
  virtual void OnJobState(const std::string& job_id, v1::JobState state) {}
  // The worker started training: memory plan and dataset statistics.
  virtual void OnJobStarted(const std::string& job_id, const v1::JobStarted& started) {}
  // One optimizer step finished (all of StepStats: loss, tokens, stalls, bytes per tier).
  virtual void OnStep(const std::string& job_id, const v1::StepMetrics& step) {}
  virtual void OnEval(const std::string& job_id, const v1::EvalResult& eval) {}
  virtual void OnCheckpoint(const std::string& job_id, const v1::Checkpoint& checkpoint) {}
  // A worker process ended; `crashed` = it died without reporting a final status.
  virtual void OnWorkerExit(const std::string& job_id, bool crashed) {}
  // Number of QUEUED jobs changed.
  virtual void OnQueueDepth(int depth) {}
};

// Shared no-op instance.
inline MetricsSink* NoopMetricsSink() {
  static MetricsSink sink;
  return &sink;
}

}  // namespace sfd
