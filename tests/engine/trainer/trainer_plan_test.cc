// Trainer::Plan (the daemon's CreateJob memory check): the plan of a real model equals the one
// Trainer::Create computes, a config whose fp32 training state cannot fit host RAM is
// ResourceExhausted with the numbers before any weights are looked at, a config without
// weights that fits still fails on the missing weights, and an impossible window is
// InvalidArgument naming engine.window_slots.
#include <filesystem>
#include <fstream>

#include "engine/common/remove_tree.h"
#include "absl/strings/match.h"
#include "engine/runtime/cpu_placement.h"
#include "engine/trainer/trainer.h"
#include "gtest/gtest.h"
#include "tests/engine/trainer/golden_fixture.h"

namespace sfd {
namespace {

namespace fs = std::filesystem;

// A temp dir holding only `config` as config.json.
std::string ConfigOnlyDir(const nlohmann::json& config, const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/trainer_plan_" + name;
  (void)::sfd::RemoveTree(dir);
  fs::create_directories(dir);
  std::ofstream(dir + "/config.json") << config.dump(2);
  return dir;
}

nlohmann::json GoldenConfig(const testing::GoldenFixture& f) {
  std::ifstream in(f.model_dir + "/config.json");
  return nlohmann::json::parse(in);
}

TEST(TrainerPlanTest, SamePlanAsCreate) {
  auto f = testing::LoadGolden("qwen3");
  for (int slots : {1, 2}) {
    TrainerSpec spec = testing::GoldenSpec(f, slots);
    auto plan = Trainer::Plan(spec);
    ASSERT_TRUE(plan.ok()) << plan.status();
    auto trainer = Trainer::Create(spec);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    const MemoryPlan& want = (*trainer)->plan();
    EXPECT_EQ(plan->need.device, want.need.device);
    EXPECT_EQ(plan->need.pinned, want.need.pinned);
    EXPECT_EQ(plan->need.host, want.need.host);
    EXPECT_EQ(plan->need.nvme, want.need.nvme);
    EXPECT_EQ(plan->device_name, want.device_name);
    EXPECT_EQ(plan->num_layers, want.num_layers);
    EXPECT_EQ(plan->window_slots, slots);
    EXPECT_EQ(plan->window_slots, want.window_slots);
    EXPECT_EQ(plan->resident_layers, want.resident_layers);
    EXPECT_EQ(plan->activations_on_device, want.activations_on_device);
    EXPECT_EQ(plan->lm_head_chunk_tokens, want.lm_head_chunk_tokens);
    EXPECT_EQ(plan->layer_chunk_tokens, want.layer_chunk_tokens);
    EXPECT_EQ(plan->keep_graph_layers, want.keep_graph_layers);
    EXPECT_EQ(plan->cpu_threads, want.cpu_threads);
    EXPECT_EQ(plan->numa_node, want.numa_node);
    EXPECT_GT(plan->need.host, 0);
  }
}

// The plan names its CPU optimizer threads and where they run: engine.cpu_threads when set;
// else every CPU the caller may use with a GPU (its node's when bound), all but two on the CPU
// tier — counted from the affinity mask, so a taskset/cpuset-limited process is not
// oversubscribed.
TEST(TrainerPlanTest, ReportsCpuThreadsAndPlacement) {
  auto f = testing::LoadGolden("qwen3");
  TrainerSpec spec = testing::GoldenSpec(f, 1);
  spec.engine.cpu_threads = 3;
  auto set = Trainer::Plan(spec);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->cpu_threads, 3);
  EXPECT_TRUE(absl::StrContains(set->summary, "; 3 CPU optimizer threads.")) << set->summary;

  spec.engine.cpu_threads = 0;
  const std::vector<int> allowed = AllowedCpus();
  auto scope = ScopedCpuAffinity::Bind({allowed.front()});  // as under `taskset -c <one cpu>`
  ASSERT_TRUE(scope.ok());
  auto one = Trainer::Plan(spec);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->cpu_threads, 1);
  scope->reset();
  auto all = Trainer::Plan(spec);
  ASSERT_TRUE(all.ok());
  const int n = static_cast<int>(allowed.size());
  if (all->device_name == "cpu") {
    EXPECT_EQ(all->cpu_threads, std::max(1, n - 2));
    EXPECT_EQ(all->numa_node, -1);
    EXPECT_TRUE(absl::StrContains(all->summary, "CPU threads unbound: no GPU")) << all->summary;
  } else if (all->numa_node < 0) {  // a GPU on a one-node machine (the GPU machine here)
    EXPECT_EQ(all->cpu_threads, n);
    EXPECT_TRUE(absl::StrContains(all->summary, "CPU threads unbound: ")) << all->summary;
  } else {
    EXPECT_LE(all->cpu_threads, n);
    EXPECT_TRUE(absl::StrContains(all->summary, "on NUMA node " + std::to_string(all->numa_node)));
  }
}

TEST(TrainerPlanTest, ConfigThatCannotFitHostRamIsResourceExhausted) {
  auto f = testing::LoadGolden("qwen3");
  nlohmann::json cfg = GoldenConfig(f);
  // Llama-3-70B shapes: ~70e9 fp32 params + Adam m, v are far beyond any test machine's RAM.
  cfg["hidden_size"] = 8192;
  cfg["intermediate_size"] = 28672;
  cfg["num_hidden_layers"] = 80;
  cfg["num_attention_heads"] = 64;
  cfg["num_key_value_heads"] = 8;
  cfg["head_dim"] = 128;
  cfg["vocab_size"] = 128256;
  TrainerSpec spec = testing::GoldenSpec(f, 1);
  spec.model_dir = ConfigOnlyDir(cfg, "huge");  // no weights: the plan refuses first
  auto plan = Trainer::Plan(spec);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kResourceExhausted) << plan.status();
  EXPECT_TRUE(absl::StrContains(plan.status().message(), "host RAM")) << plan.status();
  EXPECT_TRUE(absl::StrContains(plan.status().message(), "GiB")) << plan.status();
  auto trainer = Trainer::Create(spec);  // the same refusal
  ASSERT_FALSE(trainer.ok());
  EXPECT_EQ(trainer.status(), plan.status());
}

TEST(TrainerPlanTest, ConfigThatFitsStillNeedsItsWeights) {
  auto f = testing::LoadGolden("qwen3");
  TrainerSpec spec = testing::GoldenSpec(f, 1);
  spec.model_dir = ConfigOnlyDir(GoldenConfig(f), "no_weights");
  auto plan = Trainer::Plan(spec);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().code(), absl::StatusCode::kResourceExhausted) << plan.status();
  EXPECT_TRUE(absl::StrContains(plan.status().message(), spec.model_dir)) << plan.status();
  spec.random_init = true;  // a random-init model needs config.json only
  EXPECT_TRUE(Trainer::Plan(spec).ok());
}

TEST(TrainerPlanTest, ImpossibleWindowIsInvalidArgument) {
  auto f = testing::LoadGolden("qwen3");
  auto plan = Trainer::Plan(testing::GoldenSpec(f, 1000));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument) << plan.status();
  EXPECT_TRUE(absl::StrContains(plan.status().message(), "engine.window_slots")) << plan.status();
}

}  // namespace
}  // namespace sfd
