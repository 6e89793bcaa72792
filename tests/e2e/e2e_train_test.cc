// End to end with real training on the CPU: a real sfd + sfd-worker train the tiny model;
// the event stream shows QUEUED -> RUNNING -> SUCCEEDED with decreasing loss, checkpoints
// and the final HF model; sfctl drives the same daemon; queued and running jobs can be
// cancelled (running: at a step boundary, with a final checkpoint); the queue is bounded.
#include <filesystem>
#include <fstream>
#include <numeric>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/e2e/sfd_harness.h"

namespace sfd::e2e {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

#define REQUIRE_WORKER()                                                        \
  if (!WorkerBuilt()) GTEST_SKIP() << "sfd-worker not built (no engine/job sources yet)"

double Mean(const std::vector<double>& v, size_t begin, size_t end) {
  return std::accumulate(v.begin() + begin, v.begin() + end, 0.0) / (end - begin);
}

std::string RunCommand(const std::string& cmd, int* rc) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  while (p && std::fgets(buf, sizeof(buf), p)) out += buf;
  const int status = p ? ::pclose(p) : -1;
  *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

TEST(TrainTest, TrainsToSucceededWithDecreasingLossAndFinalModel) {
  REQUIRE_WORKER();
  Sfd sfd;
  ASSERT_TRUE(sfd.Start().ok());
  auto job = sfd.Submit(TinyJobYaml(24, 8, "eval: {every_steps: 12, max_batches: 2}\n"));
  ASSERT_TRUE(job.ok()) << job.status();
  std::vector<v1::JobEvent> events;
  grpc::Status st = sfd.ReadEvents(sfd.stub(), job->id(), 0, true, seconds(900), &events);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_FALSE(events.empty());
  for (size_t i = 0; i < events.size(); ++i) ASSERT_EQ(events[i].seq(), static_cast<int64_t>(i + 1));
  // State sequence.
  std::vector<v1::JobState> states;
  for (const auto& e : events)
    if (e.has_state()) states.push_back(e.state().state());
  ASSERT_EQ(states, (std::vector<v1::JobState>{v1::QUEUED, v1::RUNNING, v1::SUCCEEDED}))
      << "last event: " << events.back().DebugString();
  // Loss goes down: mean of the last 5 steps well below the first 5.
  const std::vector<double> loss = Losses(events);
  ASSERT_EQ(loss.size(), 24u);
  EXPECT_LT(Mean(loss, loss.size() - 5, loss.size()), Mean(loss, 0, 5) - 0.5)
      << "first " << loss.front() << " last " << loss.back();
  // Started event with a plan; checkpoints at 8 and 16; a final model.
  bool started = false;
  std::vector<int64_t> ckpt_steps;
  std::string final_dir;
  for (const auto& e : events) {
    if (e.has_started()) {
      started = true;
      EXPECT_EQ(e.started().data_stats().total_steps(), 24);
      EXPECT_GT(e.started().plan().need().host(), 0);
    }
    if (e.has_checkpoint() && !e.checkpoint().final()) ckpt_steps.push_back(e.checkpoint().step());
    if (e.has_checkpoint() && e.checkpoint().final()) final_dir = e.checkpoint().path();
    if (e.has_step()) EXPECT_EQ(e.step().total_steps(), 24);
  }
  EXPECT_TRUE(started);
  std::vector<int64_t> eval_steps;
  for (const auto& e : events)
    if (e.has_eval()) eval_steps.push_back(e.eval().step());
  EXPECT_GE(eval_steps.size(), 2u);
  EXPECT_EQ(eval_steps.front(), 12);
  // Every 8 steps (the engine may also checkpoint the last step).
  ASSERT_GE(ckpt_steps.size(), 2u);
  EXPECT_EQ(ckpt_steps[0], 8);
  EXPECT_EQ(ckpt_steps[1], 16);
  auto done = sfd.Get(job->id());
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::SUCCEEDED);
  EXPECT_EQ(done->final_model_dir(), final_dir);
  ASSERT_FALSE(final_dir.empty());
  EXPECT_TRUE(absl::StartsWith(final_dir, fs::canonical(sfd.dir() + "/out").string()));
  EXPECT_TRUE(fs::exists(final_dir + "/config.json"));
  EXPECT_TRUE(fs::exists(final_dir + "/tokenizer.json"));
  bool has_weights = false;
  for (const auto& f : fs::directory_iterator(final_dir))
    has_weights |= absl::EndsWith(f.path().string(), ".safetensors");
  EXPECT_TRUE(has_weights);
  EXPECT_EQ(done->progress().step(), 24);

  // sfctl against the same daemon: get (human), list --json, events without follow.
  int rc = 0;
  const std::string sfctl = absl::StrCat(BinDir(), "/sfctl --socket=", sfd.socket());
  std::string out = RunCommand(sfctl + " get " + job->id(), &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "SUCCEEDED")) << out;
  EXPECT_TRUE(absl::StrContains(out, "max_steps: 24")) << out;
  out = RunCommand(sfctl + " --json list", &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(absl::StrContains(out, "\"state\":\"SUCCEEDED\"")) << out;
  out = RunCommand(sfctl + " checkpoints " + job->id(), &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(absl::StrContains(out, "final")) << out;
  out = RunCommand(sfctl + " get j-missing", &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_TRUE(absl::StrContains(out, "NOT_FOUND")) << out;
}

TEST(TrainTest, SfctlSubmitFollowShowsProgressAndExitsZero) {
  REQUIRE_WORKER();
  Sfd sfd;
  ASSERT_TRUE(sfd.Start().ok());
  const std::string job_file = sfd.dir() + "/job.yaml";
  std::ofstream(job_file) << TinyJobYaml(6);
  int rc = 0;
  const std::string out = RunCommand(
      absl::StrCat(BinDir(), "/sfctl --socket=", sfd.socket(), " submit ", job_file, " --follow"), &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "6/6 loss")) << out;
  EXPECT_TRUE(absl::StrContains(out, "tok/s")) << out;
  EXPECT_TRUE(absl::StrContains(out, "SUCCEEDED; trained model: ")) << out;
  // Bad input: non-zero exit with the server's message.
  std::ofstream(job_file) << "model: tiny\ndata: {train: example/instructions.jsonl}\n"
                             "training: {optimizer: {lr: -1}}\n";
  const std::string bad = RunCommand(
      absl::StrCat(BinDir(), "/sfctl --socket=", sfd.socket(), " submit ", job_file), &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_TRUE(absl::StrContains(bad, "INVALID_ARGUMENT: training.optimizer.lr")) << bad;
}

TEST(TrainTest, CancelQueuedAndRunningJobsAndBoundedQueue) {
  REQUIRE_WORKER();
  Sfd sfd("queue_limit: 2\n");
  ASSERT_TRUE(sfd.Start().ok());
  auto running = sfd.Submit(TinyJobYaml(100000));
  ASSERT_TRUE(running.ok()) << running.status();
  ASSERT_TRUE(sfd.WaitForState(running->id(), {v1::RUNNING}, seconds(60)).ok());
  auto queued = sfd.Submit(TinyJobYaml(5));
  ASSERT_TRUE(queued.ok());
  auto queued2 = sfd.Submit(TinyJobYaml(6));
  ASSERT_TRUE(queued2.ok());
  EXPECT_EQ(queued2->queue_position(), 2);
  auto full = sfd.Submit(TinyJobYaml(7));
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted) << full.status();
  EXPECT_TRUE(absl::StrContains(full.status().message(), "queue is full")) << full.status();

  // Cancel a queued job: CANCELLED at once, never started.
  grpc::ClientContext c1;
  v1::CancelJobRequest req;
  req.set_job_id(queued->id());
  v1::Job out;
  ASSERT_TRUE(sfd.stub()->CancelJob(&c1, req, &out).ok());
  EXPECT_EQ(out.state(), v1::CANCELLED);
  EXPECT_EQ(out.attempts(), 0);

  // Cancel the running job after a few steps, with a final checkpoint.
  auto at = sfd.WaitForStep(running->id(), 3, seconds(600));
  ASSERT_TRUE(at.ok()) << at.status();
  grpc::ClientContext c2;
  req.set_job_id(running->id());
  req.set_final_checkpoint(true);
  ASSERT_TRUE(sfd.stub()->CancelJob(&c2, req, &out).ok());
  EXPECT_TRUE(out.cancel_requested());
  auto cancelled = sfd.WaitForState(running->id(), {v1::CANCELLED, v1::FAILED, v1::SUCCEEDED}, seconds(300));
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), v1::CANCELLED) << cancelled->error_message();
  std::vector<v1::JobEvent> events;
  ASSERT_TRUE(sfd.ReadEvents(sfd.stub(), running->id(), 0, false, seconds(60), &events).ok());
  bool cancel_logged = false, ckpt_after_cancel = false;
  for (const auto& e : events) {
    if (e.has_log() && absl::StrContains(e.log().message(), "cancel requested")) cancel_logged = true;
    if (cancel_logged && e.has_checkpoint() && !e.checkpoint().final()) ckpt_after_cancel = true;
  }
  EXPECT_TRUE(cancel_logged);
  EXPECT_TRUE(ckpt_after_cancel);
  EXPECT_LT(cancelled->progress().step(), 100000);
  // The remaining queued job runs next and succeeds.
  auto next = sfd.WaitForState(queued2->id(), {v1::SUCCEEDED, v1::FAILED}, seconds(600));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->state(), v1::SUCCEEDED) << next->error_message();
  // A finished job cannot be cancelled.
  grpc::ClientContext c3;
  req.set_job_id(queued2->id());
  EXPECT_EQ(sfd.stub()->CancelJob(&c3, req, &out).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

}  // namespace
}  // namespace sfd::e2e
