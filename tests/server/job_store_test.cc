// Tests server/job_store.cc: SQLite persistence of jobs, gapless per-job event seqs that
// survive reopening, request_id uniqueness, paging and state filters, and event waiting.
#include "server/job_store.h"

#include <unistd.h>

#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

namespace sfd {
namespace {

namespace fs = std::filesystem;

class JobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("sfd_store_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "sfd.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  static v1::Job MakeJob(const std::string& id, v1::JobState state, const std::string& rid = "") {
    v1::Job j;
    j.set_id(id);
    j.set_state(state);
    j.set_request_id(rid);
    return j;
  }
  fs::path dir_;
  std::string path_;
};

TEST_F(JobStoreTest, EventsGetGaplessSeqsThatSurviveReopen) {
  {
    auto store = JobStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    v1::Job job = MakeJob("a", v1::QUEUED);
    ASSERT_TRUE((*store)->InsertJob(job, "text").ok());
    for (int i = 0; i < 5; ++i) {
      v1::JobEvent ev;
      ev.set_job_id("a");
      ev.mutable_log()->set_message("m" + std::to_string(i));
      job.mutable_progress()->set_step(i);
      ASSERT_TRUE((*store)->AppendEvent(&ev, &job).ok());
      EXPECT_EQ(ev.seq(), i + 1);
      EXPECT_GT(ev.time_ms(), 0);
    }
  }
  auto store = JobStore::Open(path_);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->LastSeq("a"), 5);
  v1::JobEvent ev;
  ev.set_job_id("a");
  ASSERT_TRUE((*store)->AppendEvent(&ev).ok());
  EXPECT_EQ(ev.seq(), 6);
  auto events = (*store)->EventsAfter("a", 2, 100);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 4u);
  EXPECT_EQ((*events)[0].seq(), 3);
  EXPECT_EQ((*events)[0].log().message(), "m2");
  auto job = (*store)->GetJob("a");
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->progress().step(), 4);  // updated with the events
  EXPECT_EQ((*store)->LastSeq("other"), 0);
}

TEST_F(JobStoreTest, RequestIdIsUniqueAndFindable) {
  auto store = JobStore::Open(path_);
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->InsertJob(MakeJob("a", v1::QUEUED, "r1"), "spec-a").ok());
  ASSERT_TRUE((*store)->InsertJob(MakeJob("b", v1::QUEUED), "spec-b").ok());
  ASSERT_TRUE((*store)->InsertJob(MakeJob("c", v1::QUEUED), "spec-c").ok());  // empty ids are fine
  absl::Status dup = (*store)->InsertJob(MakeJob("d", v1::QUEUED, "r1"), "spec-d");
  EXPECT_EQ(dup.code(), absl::StatusCode::kAlreadyExists) << dup;
  auto found = (*store)->FindByRequestId("r1");
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->first.id(), "a");
  EXPECT_EQ((*found)->second, "spec-a");
  auto none = (*store)->FindByRequestId("r2");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_EQ((*store)->GetJob("zzz").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(JobStoreTest, ListsInCreationOrderWithPagingAndStateFilter) {
  auto store = JobStore::Open(path_);
  ASSERT_TRUE(store.ok());
  for (int i = 0; i < 7; ++i)
    ASSERT_TRUE((*store)->InsertJob(MakeJob("j" + std::to_string(i), i % 2 ? v1::FAILED : v1::QUEUED), "").ok());
  std::vector<std::string> ids;
  int64_t key = 0;
  int pages = 0;
  do {
    auto page = (*store)->ListJobs({}, key, 3, &key);
    ASSERT_TRUE(page.ok());
    for (auto& j : *page) ids.push_back(j.id());
    ++pages;
  } while (key != 0);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(ids, (std::vector<std::string>{"j0", "j1", "j2", "j3", "j4", "j5", "j6"}));
  int64_t next = 0;
  auto failed = (*store)->ListJobs({v1::FAILED}, 0, 10, &next);
  ASSERT_TRUE(failed.ok());
  ASSERT_EQ(failed->size(), 3u);
  EXPECT_EQ((*failed)[0].id(), "j1");
  EXPECT_EQ(next, 0);
}

TEST_F(JobStoreTest, WaitForEventsWakesOnAppend) {
  auto store = JobStore::Open(path_);
  ASSERT_TRUE(store.ok());
  JobStore* s = store->get();
  std::thread writer([s] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    v1::JobEvent ev;
    ev.set_job_id("w");
    ASSERT_TRUE(s->AppendEvent(&ev).ok());
  });
  const bool got = s->WaitForEvents("w", 0, std::chrono::steady_clock::now() + std::chrono::seconds(30));
  writer.join();
  EXPECT_TRUE(got);
  EXPECT_FALSE(s->WaitForEvents("w", 1, std::chrono::steady_clock::now() + std::chrono::milliseconds(10)));
}

TEST_F(JobStoreTest, CheckpointsAreListedInStepOrder) {
  auto store = JobStore::Open(path_);
  ASSERT_TRUE(store.ok());
  for (int step : {20, 10}) {
    v1::Checkpoint c;
    c.set_step(step);
    c.set_path("/out/ckpt-" + std::to_string(step));
    ASSERT_TRUE((*store)->AddCheckpoint("a", c).ok());
  }
  auto list = (*store)->Checkpoints("a");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].step(), 10);
  EXPECT_EQ((*list)[1].path(), "/out/ckpt-20");
}

}  // namespace
}  // namespace sfd
