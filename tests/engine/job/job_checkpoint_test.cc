// Checkpoint directory rules without a model: which dirs count as complete checkpoints (by
// number, not by name order; staging .tmp dirs and dirs without job_state.json never), pruning,
// stale temp removal, and job_state.json round trip / errors naming the file and field.
#include "engine/common/remove_tree.h"
#include "engine/job/job_checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/job/job_runner.h"

namespace sfd {
namespace {

namespace fs = std::filesystem;

std::string Fresh(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/" + name;
  (void)::sfd::RemoveTree(dir);
  fs::create_directories(dir);
  return dir;
}

void MakeCheckpointDir(const std::string& path, bool with_state = true) {
  fs::create_directories(path);
  if (with_state) {
    JobState s;
    std::ofstream(path + "/" + kJobStateFile) << s.ToJson();
  }
}

TEST(JobCheckpointTest, LatestIsTheHighestCompleteStep) {
  const std::string out = Fresh("ckpt_latest");
  EXPECT_EQ(JobRunner::LatestCheckpoint(out), "");
  EXPECT_EQ(JobRunner::LatestCheckpoint(out + "/missing"), "");
  EXPECT_EQ(JobRunner::LatestCheckpoint(""), "");
  MakeCheckpointDir(out + "/checkpoint-3");
  EXPECT_EQ(JobRunner::LatestCheckpoint(out), out + "/checkpoint-3");
  // A crash while staging step 7 leaves checkpoint-7.tmp (even with its job_state.json).
  MakeCheckpointDir(out + "/checkpoint-7.tmp");
  // Not checkpoints: no job_state.json, odd names, a plain file.
  MakeCheckpointDir(out + "/checkpoint-12", /*with_state=*/false);
  MakeCheckpointDir(out + "/checkpoint-x1");
  MakeCheckpointDir(out + "/checkpoint-");
  MakeCheckpointDir(out + "/final");
  std::ofstream(out + "/checkpoint-50") << "not a dir";
  EXPECT_EQ(JobRunner::LatestCheckpoint(out), out + "/checkpoint-3");
  // By number: 10 > 3 although "checkpoint-10" < "checkpoint-3" as strings.
  MakeCheckpointDir(out + "/checkpoint-10");
  EXPECT_EQ(JobRunner::LatestCheckpoint(out), out + "/checkpoint-10");
  std::vector<int64_t> steps;
  for (const CheckpointEntry& e : ListCheckpoints(out)) steps.push_back(e.step);
  EXPECT_EQ(steps, (std::vector<int64_t>{3, 10}));

  ASSERT_TRUE(RemoveStaleCheckpointTemps(out).ok());
  EXPECT_FALSE(fs::exists(out + "/checkpoint-7.tmp"));
  EXPECT_TRUE(fs::exists(out + "/checkpoint-12"));  // not ours to judge: left alone
  EXPECT_TRUE(fs::exists(out + "/checkpoint-10"));
}

TEST(JobCheckpointTest, PruneKeepsTheNewest) {
  const std::string out = Fresh("ckpt_prune");
  for (int s : {2, 4, 6, 8, 10}) MakeCheckpointDir(out + "/" + CheckpointDirName(s));
  auto none = PruneCheckpoints(out, 0);  // 0 keeps all
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  auto removed = PruneCheckpoints(out, 2);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, (std::vector<std::string>{out + "/checkpoint-2", out + "/checkpoint-4",
                                                out + "/checkpoint-6"}));
  std::vector<int64_t> steps;
  for (const CheckpointEntry& e : ListCheckpoints(out)) steps.push_back(e.step);
  EXPECT_EQ(steps, (std::vector<int64_t>{8, 10}));
}

TEST(JobCheckpointTest, JobStateRoundTripAndErrors) {
  JobState s;
  s.step = 17;
  s.data = {2, 5};
  s.seed = 18446744073709551557ull;  // beyond int64
  s.total_steps = 40;
  s.micro_batch_size = 3;
  s.gradient_accumulation_steps = 4;
  s.steps_per_epoch = 9;
  s.last_eval_step = 16;
  s.last_eval_loss = 2.125;
  s.best_eval_step = 8;
  s.best_eval_loss = 2.0625;
  auto back = JobState::FromJson(s.ToJson(), "x.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->step, 17);
  EXPECT_EQ(back->data.epoch, 2);
  EXPECT_EQ(back->data.step_in_epoch, 5);
  EXPECT_EQ(back->seed, s.seed);
  EXPECT_EQ(back->total_steps, 40);
  EXPECT_EQ(back->micro_batch_size, 3);
  EXPECT_EQ(back->gradient_accumulation_steps, 4);
  EXPECT_EQ(back->steps_per_epoch, 9);
  EXPECT_EQ(back->last_eval_step, 16);
  EXPECT_EQ(back->last_eval_loss, 2.125);
  EXPECT_EQ(back->best_eval_step, 8);
  EXPECT_EQ(back->best_eval_loss, 2.0625);

  auto garbage = JobState::FromJson("{not json", "dir/job_state.json");
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.status().message().find("dir/job_state.json"), std::string::npos);
  std::string text = s.ToJson();
  text.replace(text.find("\"step\""), 6, "\"stepz\"");
  auto missing = JobState::FromJson(text, "dir/job_state.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("\"step\""), std::string::npos) << missing.status();
}

}  // namespace
}  // namespace sfd
