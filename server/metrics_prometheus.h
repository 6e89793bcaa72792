// PrometheusMetrics: the Prometheus implementation of MetricsSink (prometheus-cpp). It keeps
// the daemon-wide series (sfd_build_info, sfd_jobs{state}, sfd_queue_depth, worker exits) and,
// per running job, series labelled job_id that are fed by the worker's step/eval/checkpoint
// reports and removed when the job ends. Optionally serves them over HTTP at
// http://<address>/metrics: civetweb (the server behind prometheus-cpp's Exposer) with a handler
// that renders the registry with prometheus-cpp's TextSerializer. Not the Exposer itself: it
// adds its own exposer_* series (latencies in microseconds), which break the naming rules.
//
// Naming follows the Prometheus conventions: sfd_ prefix, base units (bytes, seconds, FLOP/s),
// counters end in _total, no `job`/`instance` labels (those belong to the scraper).
// The endpoint runs in the daemon, which never loads libtorch: civetweb cannot start its worker
// threads in a process that loaded torch 2.11's libraries (see server/README.md).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/metrics_sink.h"

class CivetServer;

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace sfd {

class JobStore;

class PrometheusMetrics : public MetricsSink {
 public:
  // Without an HTTP endpoint (Render() only).
  static std::unique_ptr<PrometheusMetrics> Create();
  // Also serves /metrics on `address` ("host:port", "[::1]:port"; port 0 = any free port).
  // UNAVAILABLE with civetweb's reason when it cannot listen or start its threads.
  static absl::StatusOr<std::unique_ptr<PrometheusMetrics>> CreateServing(
      const std::string& address);
  ~PrometheusMetrics() override;

  // Counts the jobs already in the store by state (call once, before the job manager starts).
  absl::Status LoadJobStates(JobStore* store);

  // "host:port" actually bound ("" without an HTTP endpoint).
  const std::string& address() const { return address_; }
  // The current exposition in the Prometheus text format (what /metrics answers).
  std::string Render() const;

  void OnJobState(const std::string& job_id, v1::JobState state) override;
  void OnJobStarted(const std::string& job_id, const v1::JobStarted& started) override;
  void OnStep(const std::string& job_id, const v1::StepMetrics& step) override;
  void OnEval(const std::string& job_id, const v1::EvalResult& eval) override;
  void OnCheckpoint(const std::string& job_id, const v1::Checkpoint& checkpoint) override;
  void OnWorkerExit(const std::string& job_id, bool crashed) override;
  void OnQueueDepth(int depth) override;

 private:
  struct JobSeries;
  class Handler;
  PrometheusMetrics();
  JobSeries& SeriesLocked(const std::string& job_id);
  void RemoveSeriesLocked(const std::string& job_id);
  void CountStateLocked(const std::string& job_id, v1::JobState state);

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Handler> handler_;
  std::unique_ptr<CivetServer> server_;  // after handler_: stops first
  std::string address_;

  // Daemon-wide.
  prometheus::Family<prometheus::Gauge>* build_info_;
  prometheus::Family<prometheus::Gauge>* jobs_;
  prometheus::Gauge* queue_depth_;
  prometheus::Family<prometheus::Counter>* worker_exits_;
  std::map<int, prometheus::Gauge*> jobs_by_state_;  // v1::JobState -> sfd_jobs{state}

  // Per job (label job_id).
  prometheus::Family<prometheus::Counter>* steps_;
  prometheus::Family<prometheus::Counter>* tokens_;
  prometheus::Family<prometheus::Counter>* target_tokens_;
  prometheus::Family<prometheus::Counter>* flops_;
  prometheus::Family<prometheus::Counter>* transfer_;
  prometheus::Family<prometheus::Counter>* stall_;
  prometheus::Family<prometheus::Counter>* phase_;
  prometheus::Family<prometheus::Counter>* checkpoints_;
  prometheus::Family<prometheus::Gauge>* step_;
  prometheus::Family<prometheus::Gauge>* total_steps_;
  prometheus::Family<prometheus::Gauge>* attempt_;
  prometheus::Family<prometheus::Gauge>* loss_;
  prometheus::Family<prometheus::Gauge>* eval_loss_;
  prometheus::Family<prometheus::Gauge>* lr_;
  prometheus::Family<prometheus::Gauge>* grad_norm_;
  prometheus::Family<prometheus::Gauge>* tokens_per_second_;
  prometheus::Family<prometheus::Gauge>* flops_per_second_;
  prometheus::Family<prometheus::Gauge>* memory_;
  prometheus::Family<prometheus::Gauge>* planned_memory_;
  prometheus::Family<prometheus::Gauge>* gpu_reserved_;
  prometheus::Family<prometheus::Gauge>* device_update_layers_;
  prometheus::Family<prometheus::Counter>* optimizer_busy_;
  prometheus::Family<prometheus::Gauge>* rss_;
  prometheus::Family<prometheus::Histogram>* step_duration_;

  mutable std::mutex mu_;
  std::map<std::string, v1::JobState> job_states_;  // non-terminal jobs only
  std::map<std::string, std::unique_ptr<JobSeries>> series_;
};

}  // namespace sfd
