// PrometheusMetrics: the series the daemon exports for job states, worker reports and the
// queue, their removal when a job ends, the counts of stored jobs at startup, and the HTTP
// endpoint (served over a real loopback socket, parsed back from the text format).
#include "server/metrics_prometheus.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <regex>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "server/job_store.h"

namespace sfd {
namespace {

// Parses the text exposition format into "name{labels}" -> value (labels as printed).
std::map<std::string, double> Parse(const std::string& text) {
  std::map<std::string, double> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (line[0] == '#') continue;
    const size_t sp = line.rfind(' ');
    double v = 0;
    EXPECT_TRUE(absl::SimpleAtod(line.substr(sp + 1), &v)) << line;
    out[std::string(line.substr(0, sp))] = v;
  }
  return out;
}

v1::StepMetrics Step(int64_t step, double loss) {
  v1::StepMetrics s;
  s.set_step(step);
  s.set_loss(loss);
  s.set_lr(1e-4 * step);
  s.set_grad_norm(0.5);
  s.set_tokens(1000);
  s.set_target_tokens(400);
  s.set_step_seconds(0.2);
  s.set_forward_seconds(0.05);
  s.set_backward_seconds(0.1);
  s.set_optimizer_seconds(0.08);
  s.set_stall_weights_seconds(0.01);
  s.set_stall_optimizer_seconds(0.02);
  s.set_stall_activations_seconds(0.03);
  s.set_h2d_bytes(1 << 20);
  s.set_d2h_bytes(1 << 19);
  s.set_nvme_bytes(0);
  s.mutable_peak()->set_device(3 << 20);
  s.mutable_peak()->set_pinned(5 << 20);
  s.mutable_peak()->set_host(7 << 20);
  s.set_device_reserved(4 << 20);
  s.set_device_update_layers(static_cast<int32_t>(step) + 2);
  s.set_optimizer_busy_seconds(0.0625);
  s.set_host_rss(11 << 20);
  s.set_model_flops(6e12);
  s.set_total_steps(10);
  return s;
}

TEST(PrometheusMetricsTest, StepReportsBecomeJobSeries) {
  auto m = PrometheusMetrics::Create();
  m->OnJobState("j1", v1::QUEUED);
  m->OnQueueDepth(1);
  m->OnJobState("j1", v1::RUNNING);
  m->OnQueueDepth(0);
  v1::JobStarted started;
  started.set_attempt(1);
  started.mutable_data_stats()->set_total_steps(10);
  started.mutable_plan()->mutable_need()->set_device(100);
  started.mutable_plan()->mutable_need()->set_host(300);
  m->OnJobStarted("j1", started);
  m->OnStep("j1", Step(1, 2.5));
  m->OnStep("j1", Step(2, 2.0));
  v1::EvalResult eval;
  eval.set_step(2);
  eval.set_eval_loss(2.25);
  m->OnEval("j1", eval);
  m->OnCheckpoint("j1", v1::Checkpoint());

  auto v = Parse(m->Render());
  const std::string j = "job_id=\"j1\"";
  EXPECT_EQ(v["sfd_jobs{state=\"running\"}"], 1);
  EXPECT_EQ(v["sfd_jobs{state=\"queued\"}"], 0);
  EXPECT_EQ(v["sfd_queue_depth"], 0);
  EXPECT_EQ(v["sfd_job_steps_total{" + j + "}"], 2);
  EXPECT_EQ(v["sfd_job_tokens_total{" + j + "}"], 2000);
  EXPECT_EQ(v["sfd_job_target_tokens_total{" + j + "}"], 800);
  EXPECT_EQ(v["sfd_job_step{" + j + "}"], 2);
  EXPECT_EQ(v["sfd_job_total_steps{" + j + "}"], 10);
  EXPECT_EQ(v["sfd_job_attempt{" + j + "}"], 1);
  EXPECT_EQ(v["sfd_job_loss{" + j + "}"], 2.0);
  EXPECT_EQ(v["sfd_job_eval_loss{" + j + "}"], 2.25);
  EXPECT_DOUBLE_EQ(v["sfd_job_learning_rate{" + j + "}"], 2e-4);
  EXPECT_EQ(v["sfd_job_grad_norm{" + j + "}"], 0.5);
  EXPECT_DOUBLE_EQ(v["sfd_job_tokens_per_second{" + j + "}"], 1000 / 0.2);
  EXPECT_DOUBLE_EQ(v["sfd_job_model_flops_per_second{" + j + "}"], 6e12 / 0.2);
  EXPECT_DOUBLE_EQ(v["sfd_job_model_flops_total{" + j + "}"], 12e12);
  EXPECT_EQ(v["sfd_job_transfer_bytes_total{direction=\"h2d\"," + j + "}"], 2 << 20);
  EXPECT_EQ(v["sfd_job_transfer_bytes_total{direction=\"d2h\"," + j + "}"], 1 << 20);
  EXPECT_EQ(v["sfd_job_transfer_bytes_total{direction=\"nvme\"," + j + "}"], 0);
  EXPECT_DOUBLE_EQ(v["sfd_job_stall_seconds_total{cause=\"weights\"," + j + "}"], 0.02);
  EXPECT_DOUBLE_EQ(v["sfd_job_stall_seconds_total{cause=\"optimizer\"," + j + "}"], 0.04);
  EXPECT_DOUBLE_EQ(v["sfd_job_stall_seconds_total{cause=\"activations\"," + j + "}"], 0.06);
  EXPECT_DOUBLE_EQ(v["sfd_job_phase_seconds_total{" + j + ",phase=\"backward\"}"], 0.2);
  EXPECT_EQ(v["sfd_job_memory_bytes{" + j + ",tier=\"gpu\"}"], 3 << 20);
  EXPECT_EQ(v["sfd_job_memory_bytes{" + j + ",tier=\"pinned_host\"}"], 5 << 20);
  EXPECT_EQ(v["sfd_job_memory_bytes{" + j + ",tier=\"host\"}"], 7 << 20);
  EXPECT_EQ(v["sfd_job_planned_memory_bytes{" + j + ",tier=\"gpu\"}"], 100);
  EXPECT_EQ(v["sfd_job_planned_memory_bytes{" + j + ",tier=\"host\"}"], 300);
  EXPECT_EQ(v["sfd_job_gpu_reserved_bytes{" + j + "}"], 4 << 20);
  EXPECT_EQ(v["sfd_job_device_update_layers{" + j + "}"], 4);  // the last step's
  EXPECT_DOUBLE_EQ(v["sfd_job_optimizer_busy_seconds_total{" + j + "}"], 0.125);
  EXPECT_EQ(v["sfd_job_resident_memory_bytes{" + j + "}"], 11 << 20);
  EXPECT_EQ(v["sfd_job_checkpoints_total{" + j + "}"], 1);
  EXPECT_EQ(v["sfd_job_step_duration_seconds_count{" + j + "}"], 2);
  EXPECT_DOUBLE_EQ(v["sfd_job_step_duration_seconds_sum{" + j + "}"], 0.4);
  EXPECT_EQ(v["sfd_job_step_duration_seconds_bucket{" + j + ",le=\"0.1\"}"], 0);
  EXPECT_EQ(v["sfd_job_step_duration_seconds_bucket{" + j + ",le=\"0.25\"}"], 2);
  EXPECT_EQ(v["sfd_job_step_duration_seconds_bucket{" + j + ",le=\"+Inf\"}"], 2);
}

TEST(PrometheusMetricsTest, EvalLossAppearsOnlyAfterAnEval) {
  auto m = PrometheusMetrics::Create();
  m->OnJobState("j1", v1::RUNNING);
  m->OnStep("j1", Step(1, 2.5));
  EXPECT_EQ(m->Render().find("sfd_job_eval_loss{"), std::string::npos);
  EXPECT_NE(m->Render().find("sfd_job_loss{job_id=\"j1\"} 2.5"), std::string::npos);
}

TEST(PrometheusMetricsTest, SeriesOfAnEndedJobAreRemoved) {
  auto m = PrometheusMetrics::Create();
  for (const char* id : {"a", "b"}) {
    m->OnJobState(id, v1::QUEUED);
    m->OnJobState(id, v1::RUNNING);
    m->OnStep(id, Step(1, 3.0));
  }
  m->OnWorkerExit("a", false);
  m->OnJobState("a", v1::SUCCEEDED);
  const std::string text = m->Render();
  EXPECT_EQ(text.find("job_id=\"a\""), std::string::npos) << text;
  EXPECT_NE(text.find("sfd_job_loss{job_id=\"b\"} 3"), std::string::npos);
  auto v = Parse(text);
  EXPECT_EQ(v["sfd_jobs{state=\"succeeded\"}"], 1);
  EXPECT_EQ(v["sfd_jobs{state=\"running\"}"], 1);
  EXPECT_EQ(v["sfd_worker_exits_total{outcome=\"exited\"}"], 1);
}

TEST(PrometheusMetricsTest, CrashAndRequeueKeepTheSeriesAndCountSteps) {
  auto m = PrometheusMetrics::Create();
  m->OnJobState("j", v1::QUEUED);
  m->OnJobState("j", v1::RUNNING);
  m->OnStep("j", Step(1, 3.0));
  m->OnStep("j", Step(2, 2.9));
  m->OnWorkerExit("j", true);
  m->OnJobState("j", v1::QUEUED);
  m->OnJobState("j", v1::RUNNING);
  m->OnStep("j", Step(2, 2.9));  // resumed from the step-1 checkpoint: step 2 runs again
  auto v = Parse(m->Render());
  EXPECT_EQ(v["sfd_job_steps_total{job_id=\"j\"}"], 3);
  EXPECT_EQ(v["sfd_job_step{job_id=\"j\"}"], 2);
  EXPECT_EQ(v["sfd_worker_exits_total{outcome=\"crashed\"}"], 1);
  EXPECT_EQ(v["sfd_jobs{state=\"running\"}"], 1);
  EXPECT_EQ(v["sfd_jobs{state=\"queued\"}"], 0);
  m->OnJobState("j", v1::CANCELLED);
  v = Parse(m->Render());
  EXPECT_EQ(v["sfd_jobs{state=\"running\"}"], 0);
  EXPECT_EQ(v["sfd_jobs{state=\"cancelled\"}"], 1);
  EXPECT_EQ(v.count("sfd_job_steps_total{job_id=\"j\"}"), 0);
}

TEST(PrometheusMetricsTest, BuildInfoAndNamingRules) {
  auto m = PrometheusMetrics::Create();
  m->OnJobState("j", v1::RUNNING);
  m->OnStep("j", Step(1, 3.0));
  const std::string text = m->Render();
  EXPECT_NE(text.find("sfd_build_info{grpc_version=\""), std::string::npos);
  EXPECT_NE(text.find(absl::StrCat("version=\"", SFD_VERSION, "\"} 1")), std::string::npos);
  const std::regex type_line("# TYPE (\\S+) (\\S+)");
  int families = 0;
  for (std::sregex_iterator it(text.begin(), text.end(), type_line), end; it != end; ++it) {
    const std::string name = (*it)[1], type = (*it)[2];
    ++families;
    EXPECT_EQ(name.rfind("sfd_", 0), 0u) << name;
    if (type == "counter") EXPECT_TRUE(absl::EndsWith(name, "_total")) << name;
    if (type != "counter") EXPECT_FALSE(absl::EndsWith(name, "_total")) << name;
    EXPECT_EQ(name.find("milli"), std::string::npos) << name;
  }
  EXPECT_GE(families, 20);
  EXPECT_EQ(text.find(" job=\""), std::string::npos);
  EXPECT_EQ(text.find("{job=\""), std::string::npos);
  EXPECT_EQ(text.find("instance=\""), std::string::npos);
}

TEST(PrometheusMetricsTest, LoadJobStatesCountsStoredJobs) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/metrics_store_", ::getpid());
  std::filesystem::create_directories(dir);
  auto store = JobStore::Open(dir + "/sfd.db");
  ASSERT_TRUE(store.ok()) << store.status();
  int n = 0;
  for (v1::JobState s : {v1::SUCCEEDED, v1::SUCCEEDED, v1::FAILED, v1::QUEUED, v1::RUNNING}) {
    v1::Job job;
    job.set_id(absl::StrCat("job", n++));
    job.set_state(s);
    ASSERT_TRUE((*store)->InsertJob(job, job.id()).ok());
  }
  auto m = PrometheusMetrics::Create();
  ASSERT_TRUE(m->LoadJobStates(store->get()).ok());
  auto v = Parse(m->Render());
  EXPECT_EQ(v["sfd_jobs{state=\"succeeded\"}"], 2);
  EXPECT_EQ(v["sfd_jobs{state=\"failed\"}"], 1);
  EXPECT_EQ(v["sfd_jobs{state=\"queued\"}"], 1);
  EXPECT_EQ(v["sfd_jobs{state=\"running\"}"], 1);
  // Startup recovery re-queues the interrupted job: a transition, not a new job.
  m->OnJobState("job4", v1::QUEUED);
  v = Parse(m->Render());
  EXPECT_EQ(v["sfd_jobs{state=\"queued\"}"], 2);
  EXPECT_EQ(v["sfd_jobs{state=\"running\"}"], 0);
  store->reset();
  std::filesystem::remove_all(dir);
}

// One HTTP/1.0 GET over loopback; returns the whole response (headers and body).
std::string HttpGet(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "";
  }
  const std::string req = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: localhost\r\n\r\n");
  (void)!::write(fd, req.data(), req.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

TEST(PrometheusMetricsTest, ServesTheTextFormatOverHttp) {
  auto m = PrometheusMetrics::CreateServing("127.0.0.1:0");
  ASSERT_TRUE(m.ok()) << m.status();
  const std::string addr = (*m)->address();
  ASSERT_EQ(addr.rfind("127.0.0.1:", 0), 0u) << addr;
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(addr.substr(10), &port)) << addr;
  ASSERT_GT(port, 0);
  (*m)->OnJobState("web", v1::RUNNING);
  (*m)->OnStep("web", Step(4, 1.25));
  const std::string resp = HttpGet(port, "/metrics");
  ASSERT_EQ(resp.rfind("HTTP/1.1 200", 0), 0u) << resp;
  EXPECT_NE(resp.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  const std::string body = resp.substr(resp.find("\r\n\r\n") + 4);
  EXPECT_EQ(body, (*m)->Render());
  EXPECT_NE(body.find("sfd_job_loss{job_id=\"web\"} 1.25"), std::string::npos);
  const std::string other = HttpGet(port, "/other");
  EXPECT_NE(other.find(" 404 "), std::string::npos) << other;

  // The port is taken now: a second exporter on it fails with civetweb's reason.
  auto second = PrometheusMetrics::CreateServing(addr);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("Address already in use"), std::string::npos)
      << second.status();
}

TEST(PrometheusMetricsTest, BadAddressesAreClearErrors) {
  for (const char* bad : {"9464", "127.0.0.1:", ":"}) {
    auto m = PrometheusMetrics::CreateServing(bad);
    ASSERT_FALSE(m.ok()) << bad;
    EXPECT_NE(m.status().message().find("metrics_address"), std::string::npos) << m.status();
  }
  auto m = PrometheusMetrics::CreateServing("127.0.0.1:notaport");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("127.0.0.1:notaport"), std::string::npos) << m.status();
}

}  // namespace
}  // namespace sfd
