// End to end: 200 concurrent StreamJobEvents calls, opened while a real job trains, each
// receive every event of the job exactly once and in order, and end when the job ends.
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "tests/e2e/sfd_harness.h"

namespace sfd::e2e {
namespace {

using std::chrono::seconds;

TEST(StreamsTest, TwoHundredFollowersReceiveEveryEventInOrder) {
  if (!WorkerBuilt()) GTEST_SKIP() << "sfd-worker not built (no engine/job sources yet)";
  Sfd sfd;
  ASSERT_TRUE(sfd.Start().ok());
  auto job = sfd.Submit(TinyJobYaml(12, 4));
  ASSERT_TRUE(job.ok()) << job.status();
  constexpr int kStreams = 200;
  constexpr int kChannels = 8;
  std::vector<std::unique_ptr<v1::Sfd::Stub>> stubs;
  for (int i = 0; i < kChannels; ++i) stubs.push_back(sfd.NewStub());
  std::vector<std::vector<v1::JobEvent>> got(kStreams);
  std::vector<grpc::Status> status(kStreams);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] {
      status[i] = sfd.ReadEvents(stubs[i % kChannels].get(), job->id(), 0, true, seconds(900), &got[i]);
    });
  }
  for (auto& t : threads) t.join();
  std::vector<v1::JobEvent> all;
  ASSERT_TRUE(sfd.ReadEvents(sfd.stub(), job->id(), 0, false, seconds(60), &all).ok());
  ASSERT_TRUE(all.back().has_state());
  EXPECT_EQ(all.back().state().state(), v1::SUCCEEDED);
  EXPECT_EQ(Losses(all).size(), 12u);
  for (int i = 0; i < kStreams; ++i) {
    ASSERT_TRUE(status[i].ok()) << "stream " << i << ": " << status[i].error_message();
    ASSERT_EQ(got[i].size(), all.size()) << "stream " << i;
    for (size_t k = 0; k < all.size(); ++k) {
      ASSERT_EQ(got[i][k].seq(), static_cast<int64_t>(k + 1)) << "stream " << i;
      ASSERT_EQ(got[i][k].SerializeAsString(), all[k].SerializeAsString()) << "stream " << i;
    }
  }
}

}  // namespace
}  // namespace sfd::e2e
