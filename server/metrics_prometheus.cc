#include "server/metrics_prometheus.h"

#include <CivetServer.h>
#include <google/protobuf/stubs/common.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <exception>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/common/status.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "server/job_store.h"

namespace sfd {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;
using prometheus::Labels;

constexpr v1::JobState kStates[] = {v1::QUEUED, v1::RUNNING, v1::SUCCEEDED, v1::FAILED,
                                    v1::CANCELLED};

bool IsTerminal(v1::JobState s) {
  return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED;
}

std::string StateLabel(v1::JobState s) { return absl::AsciiStrToLower(v1::JobState_Name(s)); }

// Step durations from milliseconds (tiny models on the CPU) to minutes (large models).
const Histogram::BucketBoundaries& StepBuckets() {
  static const Histogram::BucketBoundaries kBuckets = {
      0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000};
  return kBuckets;
}

// civetweb reports why it could not start only through its log callback: collect the lines
// while the server is being constructed (once, at daemon start).
std::mutex g_civet_log_mu;
std::vector<std::string>* g_civet_log = nullptr;

int CollectCivetLog(const mg_connection*, const char* message) {
  std::lock_guard<std::mutex> lock(g_civet_log_mu);
  if (g_civet_log != nullptr && message != nullptr) g_civet_log->emplace_back(message);
  return 1;  // handled: do not print to stderr
}

}  // namespace

// GET /metrics: the registry in the text exposition format, one scrape per connection.
class PrometheusMetrics::Handler : public CivetHandler {
 public:
  explicit Handler(const PrometheusMetrics* metrics) : metrics_(metrics) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    const std::string body = metrics_->Render();
    mg_printf(conn,
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
              "Content-Length: %zu\r\nConnection: close\r\n\r\n",
              body.size());
    mg_write(conn, body.data(), body.size());
    return true;
  }

 private:
  const PrometheusMetrics* metrics_;
};

// The series of one job; each is created by its first value and removed when the job ends.
struct PrometheusMetrics::JobSeries {
  Labels labels;
  std::vector<std::pair<Family<Counter>*, Counter*>> counters;
  std::vector<std::pair<Family<Gauge>*, Gauge*>> gauges;
  Histogram* step_duration = nullptr;
  std::map<std::pair<Family<Counter>*, std::string>, Counter*> counter_index;
  std::map<std::pair<Family<Gauge>*, std::string>, Gauge*> gauge_index;

  // `extra` is an optional second label {name, value} (tier, direction, cause, phase).
  Counter& C(Family<Counter>* family, const std::pair<std::string, std::string>& extra = {}) {
    Counter*& slot = counter_index[{family, extra.first + "=" + extra.second}];
    if (slot == nullptr) {
      Labels l = labels;
      if (!extra.first.empty()) l[extra.first] = extra.second;
      slot = &family->Add(l);
      counters.emplace_back(family, slot);
    }
    return *slot;
  }
  Gauge& G(Family<Gauge>* family, const std::pair<std::string, std::string>& extra = {}) {
    Gauge*& slot = gauge_index[{family, extra.first + "=" + extra.second}];
    if (slot == nullptr) {
      Labels l = labels;
      if (!extra.first.empty()) l[extra.first] = extra.second;
      slot = &family->Add(l);
      gauges.emplace_back(family, slot);
    }
    return *slot;
  }
};

PrometheusMetrics::PrometheusMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  build_info_ = &prometheus::BuildGauge()
                     .Name("sfd_build_info")
                     .Help("Always 1; labels give the versions of sfd and its libraries")
                     .Register(r);
  build_info_
      ->Add({{"version", SFD_VERSION},
             {"grpc_version", grpc::Version()},
             {"protobuf_version",
              google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION)}})
      .Set(1);
  jobs_ = &prometheus::BuildGauge()
               .Name("sfd_jobs")
               .Help("Jobs known to this daemon, by state")
               .Register(r);
  for (v1::JobState s : kStates) jobs_by_state_[s] = &jobs_->Add({{"state", StateLabel(s)}});
  queue_depth_ = &prometheus::BuildGauge()
                      .Name("sfd_queue_depth")
                      .Help("Jobs waiting in the queue (QUEUED)")
                      .Register(r)
                      .Add({});
  worker_exits_ = &prometheus::BuildCounter()
                       .Name("sfd_worker_exits_total")
                       .Help(
                           "sfd-worker processes that ended, by outcome (exited = reported a "
                           "final status, crashed = died without one)")
                       .Register(r);
  worker_exits_->Add({{"outcome", "exited"}});
  worker_exits_->Add({{"outcome", "crashed"}});

  auto counter = [&](const char* name, const char* help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(r);
  };
  auto gauge = [&](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(r);
  };
  steps_ = counter("sfd_job_steps_total",
                   "Optimizer steps trained (re-run steps after a resume count again)");
  tokens_ = counter("sfd_job_tokens_total", "Input tokens trained on");
  target_tokens_ = counter("sfd_job_target_tokens_total", "Tokens that carried loss");
  flops_ = counter("sfd_job_model_flops_total",
                   "Model floating-point operations (6*N*tokens + attention)");
  transfer_ = counter("sfd_job_transfer_bytes_total",
                      "Bytes moved between memory tiers, by direction (h2d, d2h, nvme)");
  stall_ = counter("sfd_job_stall_seconds_total",
                   "Time the compute stream waited, by cause (weights = weight streaming, "
                   "optimizer = the CPU optimizer, activations = offloaded activations)");
  phase_ = counter("sfd_job_phase_seconds_total",
                   "Time per training phase (forward, backward, optimizer = CPU AdamW wall time, "
                   "overlapping compute)");
  checkpoints_ =
      counter("sfd_job_checkpoints_total", "Checkpoints written (the final model included)");
  step_ = gauge("sfd_job_step", "Optimizer step last completed");
  total_steps_ = gauge("sfd_job_total_steps", "Optimizer steps the job will run");
  attempt_ = gauge("sfd_job_attempt", "Worker launch number of the current attempt (1 = first)");
  loss_ = gauge("sfd_job_loss",
                "Training loss (mean cross-entropy over target tokens) of the last step");
  eval_loss_ = gauge("sfd_job_eval_loss", "Loss on the evaluation set at the last evaluation");
  lr_ = gauge("sfd_job_learning_rate", "Learning rate of the last step");
  grad_norm_ =
      gauge("sfd_job_grad_norm", "Global L2 gradient norm of the last step, before clipping");
  tokens_per_second_ =
      gauge("sfd_job_tokens_per_second", "Input tokens per second of the last step");
  flops_per_second_ = gauge("sfd_job_model_flops_per_second",
                            "Model FLOP/s of the last step (model_flops / step time)");
  memory_ = gauge("sfd_job_memory_bytes",
                  "Peak memory during the last step, by tier (gpu = allocated on the GPU, "
                  "pinned_host = page-locked host buffers, host = master weights and optimizer "
                  "state in RAM, nvme = bytes on the NVMe tier)");
  planned_memory_ = gauge("sfd_job_planned_memory_bytes",
                          "Memory the job's plan needs, by tier (as sfd_job_memory_bytes)");
  gpu_reserved_ = gauge("sfd_job_gpu_reserved_bytes",
                        "Peak GPU memory reserved by the allocator during the last step "
                        "(allocated + cached; sfd_job_memory_bytes{tier=\"gpu\"} is allocated)");
  rss_ = gauge("sfd_job_resident_memory_bytes", "Resident set size of the job's worker process");
  device_update_layers_ = gauge("sfd_job_device_update_layers",
                                "Sliding layers whose AdamW ran on the GPU in the last step "
                                "(engine.device_update_layers; auto searches the count first)");
  optimizer_busy_ = counter("sfd_job_optimizer_busy_seconds_total",
                            "CPU AdamW time spent updating (phase optimizer less the waits for "
                            "gradients to land)");
  step_duration_ = &prometheus::BuildHistogram()
                        .Name("sfd_job_step_duration_seconds")
                        .Help("Wall time of an optimizer step")
                        .Register(r);
}

PrometheusMetrics::~PrometheusMetrics() {
  server_.reset();  // stop serving before the handler and the registry go away
}

std::unique_ptr<PrometheusMetrics> PrometheusMetrics::Create() {
  return std::unique_ptr<PrometheusMetrics>(new PrometheusMetrics());
}

absl::StatusOr<std::unique_ptr<PrometheusMetrics>> PrometheusMetrics::CreateServing(
    const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size())
    return absl::InvalidArgumentError(
        absl::StrCat("metrics_address ", address, ": expected host:port, e.g. 127.0.0.1:9464"));
  std::unique_ptr<PrometheusMetrics> m = Create();
  std::vector<std::string> log;
  CivetCallbacks callbacks;
  callbacks.log_message = &CollectCivetLog;
  {
    std::lock_guard<std::mutex> lock(g_civet_log_mu);
    g_civet_log = &log;
  }
  std::string error;
  m->handler_ = std::make_unique<Handler>(m.get());
  try {
    // Two threads: scrapes are rare and cheap.
    m->server_ = std::make_unique<CivetServer>(
        std::vector<std::string>{"listening_ports", address, "num_threads", "2"}, &callbacks);
    m->server_->addHandler("/metrics", m->handler_.get());
  } catch (const std::exception& e) {
    error = e.what();
    m->server_.reset();
  }
  {
    std::lock_guard<std::mutex> lock(g_civet_log_mu);
    g_civet_log = nullptr;
  }
  if (!m->server_) {
    if (!log.empty()) error = absl::StrJoin(log, "; ");
    return absl::UnavailableError(
        absl::StrCat("metrics_address ", address, ": cannot serve metrics: ", error));
  }
  const std::vector<int> ports = m->server_->getListeningPorts();
  m->address_ =
      ports.empty() ? address : absl::StrCat(address.substr(0, colon), ":", ports.front());
  return m;
}

absl::Status PrometheusMetrics::LoadJobStates(JobStore* store) {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t key = 0;
  do {
    SFD_ASSIGN_OR_RETURN(std::vector<v1::Job> jobs, store->ListJobs({}, key, 500, &key));
    for (const v1::Job& j : jobs) CountStateLocked(j.id(), j.state());
  } while (key != 0);
  return absl::OkStatus();
}

std::string PrometheusMetrics::Render() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

void PrometheusMetrics::CountStateLocked(const std::string& job_id, v1::JobState state) {
  auto it = job_states_.find(job_id);
  if (it != job_states_.end()) {
    if (it->second == state) return;
    jobs_by_state_[it->second]->Decrement();
  }
  if (jobs_by_state_.count(state)) jobs_by_state_[state]->Increment();
  if (IsTerminal(state)) {
    if (it != job_states_.end()) job_states_.erase(it);
  } else {
    job_states_[job_id] = state;
  }
}

PrometheusMetrics::JobSeries& PrometheusMetrics::SeriesLocked(const std::string& job_id) {
  std::unique_ptr<JobSeries>& s = series_[job_id];
  if (!s) {
    s = std::make_unique<JobSeries>();
    s->labels = {{"job_id", job_id}};
  }
  return *s;
}

void PrometheusMetrics::RemoveSeriesLocked(const std::string& job_id) {
  auto it = series_.find(job_id);
  if (it == series_.end()) return;
  JobSeries& s = *it->second;
  for (auto& [family, counter] : s.counters) family->Remove(counter);
  for (auto& [family, gauge] : s.gauges) family->Remove(gauge);
  if (s.step_duration != nullptr) step_duration_->Remove(s.step_duration);
  series_.erase(it);
}

void PrometheusMetrics::OnJobState(const std::string& job_id, v1::JobState state) {
  std::lock_guard<std::mutex> lock(mu_);
  CountStateLocked(job_id, state);
  if (IsTerminal(state)) RemoveSeriesLocked(job_id);
}

void PrometheusMetrics::OnJobStarted(const std::string& job_id, const v1::JobStarted& started) {
  std::lock_guard<std::mutex> lock(mu_);
  JobSeries& s = SeriesLocked(job_id);
  s.G(attempt_).Set(started.attempt());
  s.G(total_steps_).Set(static_cast<double>(started.data_stats().total_steps()));
  const v1::TierBytes& need = started.plan().need();
  s.G(planned_memory_, {"tier", "gpu"}).Set(static_cast<double>(need.device()));
  s.G(planned_memory_, {"tier", "pinned_host"}).Set(static_cast<double>(need.pinned()));
  s.G(planned_memory_, {"tier", "host"}).Set(static_cast<double>(need.host()));
  s.G(planned_memory_, {"tier", "nvme"}).Set(static_cast<double>(need.nvme()));
}

void PrometheusMetrics::OnStep(const std::string& job_id, const v1::StepMetrics& m) {
  std::lock_guard<std::mutex> lock(mu_);
  JobSeries& s = SeriesLocked(job_id);
  s.C(steps_).Increment();
  s.C(tokens_).Increment(static_cast<double>(std::max<int64_t>(0, m.tokens())));
  s.C(target_tokens_).Increment(static_cast<double>(std::max<int64_t>(0, m.target_tokens())));
  s.C(flops_).Increment(std::max(0.0, m.model_flops()));
  s.C(transfer_, {"direction", "h2d"})
      .Increment(static_cast<double>(std::max<int64_t>(0, m.h2d_bytes())));
  s.C(transfer_, {"direction", "d2h"})
      .Increment(static_cast<double>(std::max<int64_t>(0, m.d2h_bytes())));
  s.C(transfer_, {"direction", "nvme"})
      .Increment(static_cast<double>(std::max<int64_t>(0, m.nvme_bytes())));
  s.C(stall_, {"cause", "weights"}).Increment(std::max(0.0, m.stall_weights_seconds()));
  s.C(stall_, {"cause", "optimizer"}).Increment(std::max(0.0, m.stall_optimizer_seconds()));
  s.C(stall_, {"cause", "activations"}).Increment(std::max(0.0, m.stall_activations_seconds()));
  s.C(phase_, {"phase", "forward"}).Increment(std::max(0.0, m.forward_seconds()));
  s.C(phase_, {"phase", "backward"}).Increment(std::max(0.0, m.backward_seconds()));
  s.C(phase_, {"phase", "optimizer"}).Increment(std::max(0.0, m.optimizer_seconds()));
  s.G(step_).Set(static_cast<double>(m.step()));
  if (m.total_steps() > 0) s.G(total_steps_).Set(static_cast<double>(m.total_steps()));
  s.G(loss_).Set(m.loss());
  s.G(lr_).Set(m.lr());
  s.G(grad_norm_).Set(m.grad_norm());
  const double secs = m.step_seconds();
  s.G(tokens_per_second_).Set(secs > 0 ? static_cast<double>(m.tokens()) / secs : 0);
  s.G(flops_per_second_).Set(secs > 0 ? m.model_flops() / secs : 0);
  s.G(memory_, {"tier", "gpu"}).Set(static_cast<double>(m.peak().device()));
  s.G(memory_, {"tier", "pinned_host"}).Set(static_cast<double>(m.peak().pinned()));
  s.G(memory_, {"tier", "host"}).Set(static_cast<double>(m.peak().host()));
  s.G(memory_, {"tier", "nvme"}).Set(static_cast<double>(m.peak().nvme()));
  s.G(gpu_reserved_).Set(static_cast<double>(m.device_reserved()));
  s.G(rss_).Set(static_cast<double>(m.host_rss()));
  s.G(device_update_layers_).Set(static_cast<double>(m.device_update_layers()));
  s.C(optimizer_busy_).Increment(std::max(0.0, m.optimizer_busy_seconds()));
  if (s.step_duration == nullptr) s.step_duration = &step_duration_->Add(s.labels, StepBuckets());
  s.step_duration->Observe(std::max(0.0, secs));
}

void PrometheusMetrics::OnEval(const std::string& job_id, const v1::EvalResult& eval) {
  std::lock_guard<std::mutex> lock(mu_);
  SeriesLocked(job_id).G(eval_loss_).Set(eval.eval_loss());
}

void PrometheusMetrics::OnCheckpoint(const std::string& job_id, const v1::Checkpoint&) {
  std::lock_guard<std::mutex> lock(mu_);
  SeriesLocked(job_id).C(checkpoints_).Increment();
}

void PrometheusMetrics::OnWorkerExit(const std::string&, bool crashed) {
  worker_exits_->Add({{"outcome", crashed ? "crashed" : "exited"}}).Increment();
}

void PrometheusMetrics::OnQueueDepth(int depth) { queue_depth_->Set(depth); }

}  // namespace sfd
