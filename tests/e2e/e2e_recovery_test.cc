// End to end, failure handling with real processes: kill -9 of the job's worker (the job
// resumes from its checkpoint, or fails with the reason when no attempts are left, and sfd
// keeps serving); kill -9 of sfd mid-training then restart (the job resumes by itself and
// finishes; a stream reconnecting with after_seq sees every seq exactly once); SIGTERM (the
// running job is checkpointed, sfd exits 0, the job resumes at the next start).
#include <signal.h>

#include <thread>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "tests/e2e/sfd_harness.h"

namespace sfd::e2e {
namespace {

using std::chrono::seconds;

#define REQUIRE_WORKER()                                                        \
  if (!WorkerBuilt()) GTEST_SKIP() << "sfd-worker not built (no engine/job sources yet)"

// Waits until a (non-final) checkpoint of at least `step` is recorded.
bool WaitForCheckpoint(Sfd& sfd, const std::string& job_id, int64_t step) {
  const auto deadline = std::chrono::steady_clock::now() + seconds(600);
  while (std::chrono::steady_clock::now() < deadline) {
    std::vector<v1::JobEvent> events;
    if (sfd.ReadEvents(sfd.stub(), job_id, 0, false, seconds(30), &events).ok())
      for (const auto& e : events)
        if (e.has_checkpoint() && !e.checkpoint().final() && e.checkpoint().step() >= step) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

void ExpectGapless(const std::vector<v1::JobEvent>& events) {
  for (size_t i = 0; i < events.size(); ++i)
    ASSERT_EQ(events[i].seq(), static_cast<int64_t>(i + 1)) << "gap or duplicate at index " << i;
}

TEST(RecoveryTest, WorkerKill9ResumesFromCheckpointAndSfdKeepsServing) {
  REQUIRE_WORKER();
  Sfd sfd;
  ASSERT_TRUE(sfd.Start().ok());
  auto job = sfd.Submit(TinyJobYaml(16, 4));
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(WaitForCheckpoint(sfd, job->id(), 4));
  const auto workers = sfd.WorkerPids();
  ASSERT_EQ(workers.size(), 1u);
  ASSERT_EQ(::kill(workers[0], SIGKILL), 0);
  // sfd still answers while the job recovers.
  grpc::ClientContext ctx;
  v1::ServerInfo info;
  ASSERT_TRUE(sfd.stub()->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info).ok());
  auto done = sfd.WaitForState(job->id(), {v1::SUCCEEDED, v1::FAILED}, seconds(900));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::SUCCEEDED) << done->error_message();
  EXPECT_EQ(done->attempts(), 2);
  std::vector<v1::JobEvent> events;
  ASSERT_TRUE(sfd.ReadEvents(sfd.stub(), job->id(), 0, false, seconds(60), &events).ok());
  ExpectGapless(events);
  bool crash_logged = false;
  std::string resumed_from;
  for (const auto& e : events) {
    if (e.has_log() && absl::StrContains(e.log().message(), "signal 9")) crash_logged = true;
    if (e.has_started() && e.started().attempt() == 2) resumed_from = e.started().resumed_from();
  }
  EXPECT_TRUE(crash_logged);
  EXPECT_FALSE(resumed_from.empty()) << "second attempt did not resume from a checkpoint";
}

TEST(RecoveryTest, WorkerKill9WithoutAttemptsLeftFailsWithTheReason) {
  REQUIRE_WORKER();
  Sfd sfd("max_attempts: 1\n");
  ASSERT_TRUE(sfd.Start().ok());
  auto job = sfd.Submit(TinyJobYaml(100000));
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE(sfd.WaitForStep(job->id(), 1, seconds(600)).ok());
  auto workers = sfd.WorkerPids();
  ASSERT_EQ(workers.size(), 1u);
  ::kill(workers[0], SIGKILL);
  auto done = sfd.WaitForState(job->id(), {v1::FAILED, v1::SUCCEEDED, v1::CANCELLED}, seconds(120));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::FAILED);
  EXPECT_TRUE(absl::StrContains(done->error_message(), "killed by signal 9")) << done->error_message();
  // And the daemon takes the next job.
  auto next = sfd.Submit(TinyJobYaml(2));
  ASSERT_TRUE(next.ok());
  auto ok = sfd.WaitForState(next->id(), {v1::SUCCEEDED, v1::FAILED}, seconds(600));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->state(), v1::SUCCEEDED) << ok->error_message();
}

TEST(RecoveryTest, SfdKill9MidTrainingThenRestartResumesWithoutEventGaps) {
  REQUIRE_WORKER();
  Sfd sfd;
  ASSERT_TRUE(sfd.Start().ok());
  auto job = sfd.Submit(TinyJobYaml(16, 4));
  ASSERT_TRUE(job.ok()) << job.status();
  // A follower that will lose its connection.
  std::vector<v1::JobEvent> before;
  std::thread follower([&] {
    auto stub = sfd.NewStub();
    sfd.ReadEvents(stub.get(), job->id(), 0, true, seconds(900), &before);
  });
  ASSERT_TRUE(WaitForCheckpoint(sfd, job->id(), 4));
  const auto workers = sfd.WorkerPids();
  sfd.Kill9();
  follower.join();
  ASSERT_FALSE(before.empty());
  // The worker dies with sfd (PR_SET_PDEATHSIG).
  for (int i = 0; i < 100 && !workers.empty() && ::kill(workers[0], 0) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (!workers.empty()) EXPECT_NE(::kill(workers[0], 0), 0) << "worker outlived sfd";

  ASSERT_TRUE(sfd.Start().ok());
  std::vector<v1::JobEvent> after;
  grpc::Status st = sfd.ReadEvents(sfd.stub(), job->id(), before.back().seq(), true, seconds(900), &after);
  ASSERT_TRUE(st.ok()) << st.error_message();
  std::vector<v1::JobEvent> all = before;
  all.insert(all.end(), after.begin(), after.end());
  ExpectGapless(all);
  ASSERT_TRUE(all.back().has_state());
  EXPECT_EQ(all.back().state().state(), v1::SUCCEEDED) << all.back().DebugString();
  bool resumed = false;
  for (const auto& e : after)
    if (e.has_started() && !e.started().resumed_from().empty()) resumed = true;
  EXPECT_TRUE(resumed);
}

TEST(RecoveryTest, SigtermCheckpointsExitsCleanlyAndTheJobResumes) {
  REQUIRE_WORKER();
  Sfd sfd;
  ASSERT_TRUE(sfd.Start().ok());
  auto job = sfd.Submit(TinyJobYaml(14));
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE(sfd.WaitForStep(job->id(), 3, seconds(600)).ok());
  EXPECT_EQ(sfd.Terminate(seconds(300)), 0);
  ASSERT_TRUE(sfd.Start().ok());
  auto done = sfd.WaitForState(job->id(), {v1::SUCCEEDED, v1::FAILED}, seconds(900));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::SUCCEEDED) << done->error_message();
  std::vector<v1::JobEvent> events;
  ASSERT_TRUE(sfd.ReadEvents(sfd.stub(), job->id(), 0, false, seconds(60), &events).ok());
  ExpectGapless(events);
  bool shutdown_ckpt = false, saw_shutdown = false, resumed = false;
  for (const auto& e : events) {
    if (e.has_log() && absl::StrContains(e.log().message(), "shutting down")) saw_shutdown = true;
    if (saw_shutdown && e.has_checkpoint() && !e.checkpoint().final()) shutdown_ckpt = true;
    if (e.has_started() && !e.started().resumed_from().empty()) resumed = true;
  }
  EXPECT_TRUE(saw_shutdown);
  EXPECT_TRUE(shutdown_ckpt);
  EXPECT_TRUE(resumed);
}

}  // namespace
}  // namespace sfd::e2e
