// The executor's waits between streams are complete: the CPU tier with deferred copies
// (EngineSpec::cpu_deferred_copies, runtime/cpu_deferred_backend.cc: copies on the H2D, D2H and
// state streams run as late as the stream order allows) gives the synchronous CPU backend's
// losses, grad norms, copy bytes, logits and saved optimizer state bit for bit, over several
// steps, in the configurations whose copies depend on each other: sliding layers through one
// slot, saved inputs offloaded to pinned memory or into the layers' mirrors (with the chunked
// master reload), the gradient ring of accumulated steps and the chunked fp32 embedding/head
// gradients, direct and streamed bf16 steps (the embedding's two-part transfer), sliding layers
// updated on the device with 8-bit moments (streamed and exact, their counts changing between
// steps), and the device optimizer. A wait missing in the executor makes a copy read or land too late here.
#include <filesystem>
#include <fstream>
#include <functional>
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
using testing::ExpectSameOptimizerFiles;
using testing::LongBatch;

namespace fs = std::filesystem;

struct Scenario {
  TrainerSpec spec;
  std::vector<std::vector<TokenBatch>> steps;
  // Before each step (when not empty): Trainer::SetDeviceUpdateLayers.
  std::vector<int> device_update_counts;
  // Streams run eagerly (EngineSpec::cpu_eager_streams), one run each: all lazy, and where
  // copies on two streams share buffers, each copy stream eager on its own (other orders).
  std::vector<int> eager_streams = {0};
  // Checks that the plan has the features the case is about (none were planned away).
  std::function<void(const MemoryPlan&)> expect_plan = [](const MemoryPlan&) {};
};

void ExpectSameBitsWith(const Scenario& run, const std::string& name, int eager_streams);

// `run` on the synchronous CPU backend and with deferred copies (each eager setting): the same bits.
void ExpectDeferredCopiesGiveTheSameBits(const Scenario& run, const std::string& name) {
  for (int eager : run.eager_streams) {
    SCOPED_TRACE(::testing::Message() << "eager streams mask " << eager);
    ExpectSameBitsWith(run, name + "_" + std::to_string(eager), eager);
  }
}

void ExpectSameBitsWith(const Scenario& run, const std::string& name, int eager_streams) {
  TrainerSpec sync_spec = run.spec;
  sync_spec.engine.device = DeviceKind::kCpu;
  sync_spec.engine.cpu_deferred_copies = false;
  TrainerSpec deferred_spec = sync_spec;
  deferred_spec.engine.cpu_deferred_copies = true;
  deferred_spec.engine.cpu_eager_streams = eager_streams;
  auto sync = Make(sync_spec);
  auto deferred = Make(deferred_spec);
  ASSERT_TRUE(sync && deferred);
  ASSERT_EQ(deferred->plan().device_name, "cpu (deferred copies)");
  ASSERT_EQ(sync->plan().device_name, "cpu");
  run.expect_plan(deferred->plan());
  for (size_t s = 0; s < run.steps.size(); ++s) {
    SCOPED_TRACE(::testing::Message() << "step " << s);
    if (!run.device_update_counts.empty()) {
      ASSERT_TRUE(sync->SetDeviceUpdateLayers(run.device_update_counts[s]).ok());
      ASSERT_TRUE(deferred->SetDeviceUpdateLayers(run.device_update_counts[s]).ok());
    }
    auto want = sync->Step(run.steps[s]);
    auto got = deferred->Step(run.steps[s]);
    ASSERT_TRUE(want.ok()) << want.status();
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->loss, want->loss);
    EXPECT_EQ(got->grad_norm, want->grad_norm);
    EXPECT_EQ(got->h2d_bytes, want->h2d_bytes);
    EXPECT_EQ(got->d2h_bytes, want->d2h_bytes);
    EXPECT_EQ(got->device_update_layers, want->device_update_layers);
  }
  auto la = deferred->Logits(run.steps[0][0]);
  auto lb = sync->Logits(run.steps[0][0]);
  ASSERT_TRUE(la.ok() && lb.ok());
  EXPECT_EQ(testing::RelErr(*la, *lb), 0);
  const std::string da = FreshDir("deferred_copies_" + name + "_deferred"), db = FreshDir("deferred_copies_" + name + "_sync");
  ASSERT_TRUE(deferred->SaveState(da).ok());
  ASSERT_TRUE(sync->SaveState(db).ok());
  EXPECT_GT(ExpectSameOptimizerFiles(da, db), 0);
}

// fp32, one slot, two micro-batches per step (the gradient ring and the drain thread), every
// saved input offloaded to pinned memory, the embedding/head gradients through 1000-element
// fp32 chunks, clipping at the fixture's 0.5.
TEST(DeferredCopiesTest, Fp32SlidingAccumulatedOffloaded) {
  auto f = testing::LoadGolden("llama31");
  Scenario run;
  run.spec = testing::GoldenSpec(f, 1);
  run.spec.engine.activations = ActivationPlacement::kHost;
  run.spec.engine.device_saved_layers = 0;
  run.spec.engine.staging_elems = 1000;
  for (int s = 0; s < 4; ++s) run.steps.push_back(f.batches[s]);
  run.expect_plan = [](const MemoryPlan& p) {
    EXPECT_EQ(p.window_slots, 1);
    EXPECT_FALSE(p.activations_on_device);
    EXPECT_EQ(p.device_saved_layers, 0);
  };
  ExpectDeferredCopiesGiveTheSameBits(run, "fp32_sliding");
}

// bf16, one slot, steps of one micro-batch (direct: gradients straight into the mirrors) and of
// two (accumulated) alternating, clipping on; layer 0's input offloaded, layer 1's kept.
TEST(DeferredCopiesTest, Bf16DirectAndAccumulatedSteps) {
  auto f = testing::LoadGolden("qwen3");
  Scenario run;
  run.spec = testing::GoldenSpec(f, 1);
  run.spec.engine.compute_dtype = "bf16";
  run.spec.engine.activations = ActivationPlacement::kHost;
  run.spec.engine.device_saved_layers = 1;
  run.spec.max_grad_norm = 1.0;
  for (int s = 0; s < 4; ++s) run.steps.push_back(s % 2 == 0 ? std::vector<TokenBatch>{f.batches[s][0]} : f.batches[s]);
  run.expect_plan = [](const MemoryPlan& p) {
    EXPECT_EQ(p.window_slots, 1);
    EXPECT_EQ(p.device_saved_layers, 1);
  };
  ExpectDeferredCopiesGiveTheSameBits(run, "bf16_direct");
}

// bf16 streamed update (no clipping, one micro-batch): each unit's update starts when its
// gradient lands, the embedding in two parts (tied to the LM head here), two slots; the
// embedding's and head's new weights go up early (kEarlyH2D), and the next step's embedding
// load sends only the batch's rows, through slot 0's gradient buffer. Each copy stream eager
// on its own too.
TEST(DeferredCopiesTest, Bf16StreamedUpdateTied) {
  auto f = testing::LoadGolden("llama_tied_bias");
  Scenario run;
  run.spec = testing::GoldenSpec(f, 2);
  run.spec.engine.compute_dtype = "bf16";
  run.spec.max_grad_norm = 0;
  run.eager_streams = {0, 1 << 1, 1 << 2, 1 << 4};
  for (int s = 0; s < 4; ++s) run.steps.push_back({f.batches[s][0]});
  ExpectDeferredCopiesGiveTheSameBits(run, "bf16_streamed");
}

// engine.inputs_in_mirrors, streamed: five layers through one slot, 4 x 160 tokens (inputs of
// 41k elements: a layer's mirror takes 34k, a pinned buffer the rest), and each backward reload
// rounding the master into the 2-buffer ring in 5000-element chunks.
TEST(DeferredCopiesTest, Bf16InputsInMirrorsStreamed) {
  auto f = testing::LoadGolden("llama31");
  Scenario run;
  run.spec = testing::GoldenSpec(f, 1);
  run.spec.model_dir = testing::ConfigVariant(f, "five_layers", {{"num_hidden_layers", 5}});
  run.spec.random_init = true;
  run.spec.engine.compute_dtype = "bf16";
  run.spec.engine.activations = ActivationPlacement::kHost;
  run.spec.engine.device_saved_layers = 0;
  run.spec.engine.max_micro_batches_per_step = 1;
  run.spec.engine.max_tokens_per_micro_batch = 1024;
  run.spec.engine.staging_elems = 5000;
  run.spec.engine.inputs_in_mirrors = 1;
  run.spec.max_grad_norm = 0;
  for (int s = 0; s < 3; ++s) run.steps.push_back({LongBatch(4, 160, 256, s)});
  run.expect_plan = [](const MemoryPlan& p) {
    EXPECT_EQ(p.window_slots, 1);
    EXPECT_TRUE(p.inputs_in_mirrors);
  };
  ExpectDeferredCopiesGiveTheSameBits(run, "inputs_in_mirrors");
}

// engine.device_update_layers with 8-bit moments: five sliding layers, one slot, the state of
// up to five layers through the two staging buffers; the count changes between direct steps
// (a layer leaving and joining the device path) and a step of two micro-batches (not direct)
// updates them all on the CPU.
Scenario DeviceUpdateScenario(double max_grad_norm) {
  auto f = testing::LoadGolden("llama31");
  Scenario run;
  run.spec = testing::GoldenSpec(f, 1);
  run.spec.model_dir = testing::ConfigVariant(f, "five_layers", {{"num_hidden_layers", 5}});
  run.spec.random_init = true;
  run.spec.optimizer.moments_8bit = true;
  run.spec.engine.compute_dtype = "bf16";
  run.spec.engine.device_update_layers = 5;
  run.spec.max_grad_norm = max_grad_norm;
  run.device_update_counts = {5, 3, 5, 1, 2};
  for (int s = 0; s < 5; ++s) run.steps.push_back(s == 3 ? f.batches[s] : std::vector<TokenBatch>{f.batches[s][0]});
  run.expect_plan = [](const MemoryPlan& p) {
    EXPECT_EQ(p.window_slots, 1);
    EXPECT_EQ(p.device_update_layers, 5);
  };
  run.eager_streams = {0, 1 << 1, 1 << 2, 1 << 3};
  return run;
}

// Streamed steps (no clipping): each layer's state goes up one device-updated layer ahead of
// its backward.
TEST(DeferredCopiesTest, Bf16DeviceUpdateLayers8bit) {
  ExpectDeferredCopiesGiveTheSameBits(DeviceUpdateScenario(0), "device_update");
}

// Exact steps (clipping on): the device layers are updated after the pass, each one's state and
// gradient (from its mirror) going up through the two staging buffers, two ahead.
TEST(DeferredCopiesTest, Bf16ClippedDeviceUpdateLayers8bit) {
  ExpectDeferredCopiesGiveTheSameBits(DeviceUpdateScenario(0.05), "device_update_clipped");
}

// Every layer resident with its forward graph kept for one of them, the embedding updated by
// the device optimizer, fp32, two micro-batches per step.
TEST(DeferredCopiesTest, Fp32ResidentKeptGraphDeviceOptimizer) {
  auto f = testing::LoadGolden("qwen3");
  Scenario run;
  run.spec = testing::GoldenSpec(f, 2);
  run.spec.engine.keep_graph_layers = 1;
  run.spec.engine.activations = ActivationPlacement::kHost;
  run.spec.engine.device_saved_layers = 0;
  run.spec.engine.device_optimizer_units = 1;
  for (int s = 0; s < 3; ++s) run.steps.push_back(f.batches[s]);
  run.expect_plan = [](const MemoryPlan& p) {
    EXPECT_EQ(p.keep_graph_layers, 1);
    EXPECT_EQ(p.device_optimizer_units, 1);
    EXPECT_FALSE(p.activations_on_device);
  };
  ExpectDeferredCopiesGiveTheSameBits(run, "device_optimizer");
}

}  // namespace
}  // namespace sfd
