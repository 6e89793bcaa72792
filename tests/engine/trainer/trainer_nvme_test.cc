// The NVMe tier for AdamW moments (engine.nvme_dir, engine.nvme_fraction) end to end: training
// with the moments of all or half of the decoder layers on NVMe gives bit-identical losses, grad
// norms and optimizer state (fp32 accumulate path, bf16 launched and bf16 streamed updates);
// save/resume through the tier equals the uninterrupted run, and checkpoints move freely between
// runs with and without it; bad settings and a failing disk are clear errors naming the key.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "engine/common/remove_tree.h"
#include "engine/trainer/trainer.h"
#include "gtest/gtest.h"
#include "tests/engine/trainer/golden_fixture.h"
#include "tests/engine/trainer/trainer_test_util.h"

namespace sfd {
namespace {

using testing::Make;
using testing::FreshDir;

namespace fs = std::filesystem;

std::string FileBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Every file of two optimizer-state checkpoints is byte-identical (master, exp_avg, exp_avg_sq
// of every unit, and state.json).
void ExpectSameState(const std::string& a, const std::string& b) {
  int files = 0;
  for (const auto& e : fs::directory_iterator(a + "/optimizer")) {
    const std::string name = e.path().filename().string();
    EXPECT_TRUE(FileBytes(e.path().string()) == FileBytes(b + "/optimizer/" + name)) << name;
    ++files;
  }
  EXPECT_GE(files, 5);
}

// Subdirectories the NVMe store left in `dir` (it removes its own at exit).
int StoreDirs(const std::string& dir) {
  int n = 0;
  if (!fs::exists(dir)) return 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("sfd-moments-", 0) == 0) ++n;
  return n;
}

struct Variant {
  const char* fixture;
  const char* dtype;
  double max_grad_norm;
  bool one_micro_batch;
};

class TrainerNvmeTest : public ::testing::TestWithParam<Variant> {};

TEST_P(TrainerNvmeTest, SameLossesAndStateAsHostRam) {
  const Variant& var = GetParam();
  auto f = testing::LoadGolden(var.fixture);
  TrainerSpec ram = testing::GoldenSpec(f, 1);
  ram.engine.compute_dtype = var.dtype;
  ram.max_grad_norm = var.max_grad_norm;
  auto batches = [&](int s) {
    return var.one_micro_batch ? std::vector<TokenBatch>{f.batches[s][0]} : f.batches[s];
  };
  auto base = Make(ram);
  ASSERT_TRUE(base);
  std::vector<StepStats> want;
  for (int s = 0; s < f.steps; ++s) {
    auto st = base->Step(batches(s));
    ASSERT_TRUE(st.ok()) << st.status();
    want.push_back(*st);
  }
  const std::string want_state = FreshDir(std::string("trainer_nvme_want_") + var.fixture + var.dtype);
  ASSERT_TRUE(base->SaveState(want_state).ok());
  const int64_t host_ram = base->plan().need.host;
  EXPECT_EQ(base->plan().need.nvme, 0);
  EXPECT_EQ(base->plan().nvme_layers, 0);

  for (double fraction : {1.0, 0.5}) {
    SCOPED_TRACE(fraction);
    TrainerSpec spec = ram;
    spec.engine.nvme_dir = FreshDir("trainer_nvme_moments") + "/nested";  // created on demand
    spec.engine.nvme_fraction = fraction;
    {
      auto t = Make(spec);
      ASSERT_TRUE(t);
      const MemoryPlan& plan = t->plan();
      const int layers = fraction == 1.0 ? 2 : 1;
      EXPECT_EQ(plan.nvme_layers, layers);
      EXPECT_GT(plan.need.nvme, 0);
      EXPECT_EQ(StoreDirs(spec.engine.nvme_dir), 1);
      int64_t nvme_moved = 0;
      for (int s = 0; s < f.steps; ++s) {
        auto st = t->Step(batches(s));
        ASSERT_TRUE(st.ok()) << st.status();
        EXPECT_EQ(st->loss, want[s].loss) << "step " << s;
        EXPECT_EQ(st->grad_norm, want[s].grad_norm) << "step " << s;
        EXPECT_EQ(st->peak.nvme, plan.need.nvme);
        nvme_moved += st->nvme_bytes;
      }
      // Every completed update read each NVMe unit once (the last one may still be running).
      EXPECT_GE(nvme_moved, (f.steps - 1) * plan.need.nvme);
      EXPECT_LE(nvme_moved, 2 * (f.steps + 1) * plan.need.nvme);
      const std::string got_state = FreshDir("trainer_nvme_got");
      ASSERT_TRUE(t->SaveState(got_state).ok());
      ExpectSameState(got_state, want_state);
      // Host RAM: 8 bytes/param less for the NVMe layers, plus 3 staging buffers of one layer's
      // m+v (each padded to 4 KiB); the files hold m+v of every NVMe layer.
      const int64_t n = static_cast<int64_t>(
          testing::ReadTensor(want_state + "/optimizer/unit-00001.safetensors", "exp_avg").size());
      const int64_t file = 2 * ((4 * n + 4095) / 4096 * 4096);
      EXPECT_EQ(plan.need.nvme, layers * file);
      EXPECT_EQ(plan.need.host, host_ram - 8 * n * layers + 3 * file);
      std::string summary = plan.summary;
      EXPECT_NE(summary.find("on NVMe"), std::string::npos) << summary;
    }
    EXPECT_EQ(StoreDirs(spec.engine.nvme_dir), 0) << "the store removes its files at exit";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Paths, TrainerNvmeTest,
    ::testing::Values(Variant{"qwen3", "fp32", 1.0, false},        // fp32 grads, accumulation
                      Variant{"llama31", "bf16", 1.0, true},       // bf16 direct, launched update
                      Variant{"llama31", "bf16", 0.0, true}),      // bf16 streamed update
    [](const auto& info) {
      return std::string(info.param.fixture) + "_" + info.param.dtype +
             (info.param.max_grad_norm > 0 ? "_clipped" : "_streamed");
    });

TEST(TrainerNvmeResumeTest, ResumeThroughNvmeEqualsUninterrupted) {
  auto f = testing::LoadGolden("llama31");
  const int k = 3;
  TrainerSpec ram = testing::GoldenSpec(f, 1);
  TrainerSpec nvme = ram;
  nvme.engine.nvme_dir = FreshDir("trainer_nvme_resume_moments");
  auto full = Make(ram);
  ASSERT_TRUE(full);
  std::vector<double> want;
  for (int s = 0; s < f.steps; ++s) {
    auto st = full->Step(f.batches[s]);
    ASSERT_TRUE(st.ok()) << st.status();
    want.push_back(st->loss);
  }
  const std::string dir = FreshDir("trainer_nvme_resume_state");
  {
    auto first = Make(nvme);
    ASSERT_TRUE(first);
    for (int s = 0; s < k; ++s) ASSERT_TRUE(first->Step(f.batches[s]).ok());
    ASSERT_TRUE(first->SaveState(dir).ok());
  }
  // Resume with NVMe (the saved moments go back into the tier), and without (the checkpoint
  // does not depend on where the moments lived).
  for (double fraction : {1.0, 0.5, -1.0}) {
    SCOPED_TRACE(fraction);
    TrainerSpec spec = fraction < 0 ? ram : nvme;
    if (fraction >= 0) spec.engine.nvme_fraction = fraction;
    auto second = Make(spec);
    ASSERT_TRUE(second);
    ASSERT_TRUE(second->LoadState(dir).ok());
    EXPECT_EQ(second->step(), k);
    for (int s = k; s < f.steps; ++s) {
      auto st = second->Step(f.batches[s]);
      ASSERT_TRUE(st.ok()) << st.status();
      EXPECT_EQ(st->loss, want[s]) << "step " << s;
    }
  }
}

TEST(TrainerNvmeErrorTest, BadSettingsNameTheKey) {
  auto f = testing::LoadGolden("qwen3");
  const std::string base = FreshDir("trainer_nvme_bad");
  fs::create_directories(base);
  std::ofstream(base + "/file") << "x";
  TrainerSpec spec = testing::GoldenSpec(f, 1);
  spec.engine.nvme_dir = base + "/file/moments";  // under a regular file
  for (const auto& st : {Trainer::Plan(spec).status(), Trainer::Create(spec).status()}) {
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
    EXPECT_NE(st.message().find("engine.nvme_dir"), std::string::npos) << st;
    EXPECT_NE(st.message().find("not a directory"), std::string::npos) << st;
  }
  spec.engine.nvme_dir = base;
  for (double bad : {-0.5, 1.5, std::nan("")}) {
    spec.engine.nvme_fraction = bad;
    const absl::Status st = Trainer::Plan(spec).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
    EXPECT_NE(st.message().find("engine.nvme_fraction"), std::string::npos) << st;
  }
  spec.engine.nvme_dir.clear();
  spec.engine.nvme_fraction = 0.5;
  const absl::Status st = Trainer::Create(spec).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_NE(st.message().find("engine.nvme_dir is not"), std::string::npos) << st;
  // Fraction 0 with a directory: no layer on NVMe, nothing created there.
  spec.engine.nvme_dir = base + "/unused";
  spec.engine.nvme_fraction = 0.0;
  auto none = Make(spec);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->plan().nvme_layers, 0);
  EXPECT_EQ(none->plan().need.nvme, 0);
  EXPECT_FALSE(fs::exists(base + "/unused"));
}

// The moment files are truncated behind the trainer's back: a later step fails with a clear
// error naming engine.nvme_dir and the file, and the trainer refuses to go on.
TEST(TrainerNvmeErrorTest, LostMomentFilesFailTheRun) {
  auto f = testing::LoadGolden("qwen3");
  TrainerSpec spec = testing::GoldenSpec(f, 1);
  spec.engine.nvme_dir = FreshDir("trainer_nvme_lost");
  auto t = Make(spec);
  ASSERT_TRUE(t);
  ASSERT_TRUE(t->Step(f.batches[0]).ok());
  // Saving reads every NVMe unit after its write-back: no write is in flight afterwards.
  ASSERT_TRUE(t->SaveState(FreshDir("trainer_nvme_lost_saved")).ok());
  int truncated = 0;
  for (const auto& d : fs::directory_iterator(spec.engine.nvme_dir))
    for (const auto& file : fs::directory_iterator(d.path())) {
      fs::resize_file(file.path(), 0);
      ++truncated;
    }
  ASSERT_EQ(truncated, 2);
  absl::Status failed;
  for (int s = 1; s < f.steps && failed.ok(); ++s) failed = t->Step(f.batches[s]).status();
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find("engine.nvme_dir"), std::string::npos) << failed;
  EXPECT_NE(failed.message().find(".moments"), std::string::npos) << failed;
  EXPECT_FALSE(t->Step(f.batches[1]).ok());
  EXPECT_FALSE(t->SaveState(FreshDir("trainer_nvme_lost_state")).ok());
}

}  // namespace
}  // namespace sfd
