// optimizer adamw_8bit (OptimizerSpec::moments_8bit) end to end: training follows fp32 AdamW
// closely on the golden fixtures; the streamed update (with the embedding's row split, both
// when rows tile into 8-bit blocks and when they do not) equals the launched one bit for bit;
// resume from its own checkpoint is exact; checkpoints move between fp32 and 8-bit runs; the
// plan's and the stats' host bytes drop by the moments' 6 bytes per parameter; units updated by
// the device optimizer give the CPU update's bits (the CPU backend standing in for the device
// here, the CUDA kernel on the GPU machine) and their state moves between the tiers exactly; a
// combination it cannot serve is refused naming the key.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/common/remove_tree.h"
#include "engine/io/model_config.h"
#include "engine/model/model_layout.h"
#include "engine/optim/adamw_8bit.h"
#include "engine/runtime/backend.h"
#include "engine/trainer/trainer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/engine/trainer/golden_fixture.h"
#include "tests/engine/trainer/trainer_test_util.h"

namespace sfd {
namespace {

using testing::Make;
using testing::FreshDir;
using testing::ExpectSameOptimizerFiles;

namespace fs = std::filesystem;

std::vector<double> Train(Trainer& t, const testing::GoldenFixture& f, int from, int to,
                          bool first_micro_batch_only = false) {
  std::vector<double> losses;
  for (int s = from; s < to; ++s) {
    auto st = first_micro_batch_only ? t.Step({f.batches[s][0]}) : t.Step(f.batches[s]);
    EXPECT_TRUE(st.ok()) << st.status();
    losses.push_back(st.ok() ? st->loss : NAN);
  }
  return losses;
}

TrainerSpec Spec8(const testing::GoldenFixture& f, int slots) {
  TrainerSpec s = testing::GoldenSpec(f, slots);
  s.optimizer.moments_8bit = true;
  return s;
}

// Spec8 on `device` with bf16 compute and the given clipping.
TrainerSpec Spec8Bf16(const testing::GoldenFixture& f, int slots, DeviceKind device, double max_grad_norm) {
  TrainerSpec s = Spec8(f, slots);
  s.engine.device = device;
  s.engine.compute_dtype = "bf16";
  s.max_grad_norm = max_grad_norm;
  return s;
}

// The fixture's 10 steps (lr 3e-3, two micro-batches, clipping at 0.5) with 8-bit moments stay
// within 0.2% of the fp32 run's loss at every step (seen: 0.01-0.02%), and after the first
// update (from zero moments) the loss is the fp32 run's.
TEST(Trainer8bitTest, TracksFp32AdamW) {
  for (const char* family : {"llama31", "qwen3"}) {
    SCOPED_TRACE(family);
    auto f = testing::LoadGolden(family);
    auto q = Make(Spec8(f, 1));
    auto full = Make(testing::GoldenSpec(f, 1));
    ASSERT_TRUE(q && full);
    const std::vector<double> l8 = Train(*q, f, 0, f.steps);
    const std::vector<double> l32 = Train(*full, f, 0, f.steps);
    EXPECT_EQ(l8[0], l32[0]);
    // After one update (from zero moments the update uses its own fp32 m and v) the weights
    // agree up to the fp32 kernels' rounding (the AVX-512 one uses a reciprocal estimate).
    EXPECT_NEAR(l8[1], l32[1], 1e-6 * l32[1]);
    double max_rel = 0;
    for (int s = 0; s < f.steps; ++s) {
      EXPECT_NEAR(l8[s], l32[s], 0.002 * l32[s]) << "step " << s;
      max_rel = std::max(max_rel, std::fabs(l8[s] - l32[s]) / l32[s]);
    }
    EXPECT_GT(max_rel, 0) << "8-bit moments made no difference at all: were they used?";
  }
}

// Streamed (no clipping) vs launched (clip coefficient exactly 1) with 8-bit moments: the same
// bits, with the embedding updated in two parts. hidden 64 tiles into 8-bit blocks; hidden 48
// (random init from a config) does not, and the embedding then goes in one piece at the end.
TEST(Trainer8bitTest, StreamedUpdateEqualsLaunched) {
  auto f = testing::LoadGolden("llama31");
  const std::string odd = testing::ConfigVariant(f, "hidden48", {{"hidden_size", 48}, {"head_dim", 12}});
  for (const std::string& model : {f.model_dir, odd}) {
    SCOPED_TRACE(model);
    TrainerSpec streamed = Spec8(f, 1);
    streamed.model_dir = model;
    streamed.random_init = model == odd;
    streamed.engine.compute_dtype = "bf16";
    streamed.max_grad_norm = 0;
    TrainerSpec launched = streamed;
    launched.max_grad_norm = 1e30;
    auto a = Make(streamed);
    auto b = Make(launched);
    ASSERT_TRUE(a && b);
    for (int s = 0; s < f.steps; ++s) {
      auto sa = a->Step({f.batches[s][0]});
      auto sb = b->Step({f.batches[s][0]});
      ASSERT_TRUE(sa.ok() && sb.ok()) << sa.status() << sb.status();
      EXPECT_EQ(sa->loss, sb->loss) << "step " << s;
      EXPECT_EQ(sa->grad_norm, sb->grad_norm) << "step " << s;
    }
    const std::string da = FreshDir("trainer_8bit_streamed"), db = FreshDir("trainer_8bit_launched");
    ASSERT_TRUE(a->SaveState(da).ok());
    ASSERT_TRUE(b->SaveState(db).ok());
    EXPECT_GT(ExpectSameOptimizerFiles(da, db), 0);
  }
}

// Stop after k steps, save, resume in a new trainer (another window): the same losses as the
// uninterrupted 8-bit run, exactly (the codes are saved as they are).
TEST(Trainer8bitTest, ResumeIsExact) {
  auto f = testing::LoadGolden("llama31");
  const int k = 4;
  auto full = Make(Spec8(f, 1));
  ASSERT_TRUE(full);
  const std::vector<double> want = Train(*full, f, 0, f.steps);
  const std::string dir = FreshDir("trainer_8bit_resume");
  {
    auto first = Make(Spec8(f, 1));
    Train(*first, f, 0, k);
    ASSERT_TRUE(first->SaveState(dir).ok());
  }
  auto st = SafetensorsFile::Open(dir + "/optimizer/unit-00001.safetensors");
  ASSERT_TRUE(st.ok()) << st.status();
  ASSERT_NE((*st)->Find("exp_avg.q8"), nullptr);
  EXPECT_EQ((*st)->Find("exp_avg.q8")->dtype, DType::kU8);
  EXPECT_EQ((*st)->Find("exp_avg"), nullptr);
  auto second = Make(Spec8(f, 2));
  ASSERT_TRUE(second);
  ASSERT_TRUE(second->LoadState(dir).ok());
  const std::vector<double> got = Train(*second, f, k, f.steps);
  for (int s = k; s < f.steps; ++s) EXPECT_EQ(got[s - k], want[s]) << s;
}

// fp32 checkpoint -> 8-bit run and 8-bit checkpoint -> fp32 run: both continue within 1% of
// the run they came from.
TEST(Trainer8bitTest, CheckpointsMoveBetweenFp32And8bit) {
  auto f = testing::LoadGolden("llama31");
  const int k = 4;
  for (bool from_8bit : {false, true}) {
    SCOPED_TRACE(from_8bit ? "8-bit -> fp32" : "fp32 -> 8-bit");
    const TrainerSpec from = from_8bit ? Spec8(f, 1) : testing::GoldenSpec(f, 1);
    const TrainerSpec to = from_8bit ? testing::GoldenSpec(f, 1) : Spec8(f, 1);
    auto full = Make(from);
    ASSERT_TRUE(full);
    const std::vector<double> want = Train(*full, f, 0, f.steps);
    const std::string dir = FreshDir(std::string("trainer_8bit_") + (from_8bit ? "from8" : "from32"));
    {
      auto first = Make(from);
      Train(*first, f, 0, k);
      ASSERT_TRUE(first->SaveState(dir).ok());
    }
    auto second = Make(to);
    ASSERT_TRUE(second);
    ASSERT_TRUE(second->LoadState(dir).ok());
    EXPECT_EQ(second->step(), k);
    const std::vector<double> got = Train(*second, f, k, f.steps);
    EXPECT_EQ(got[0], want[k]);  // the weights are the saved fp32 master
    for (int s = k; s < f.steps; ++s) EXPECT_NEAR(got[s - k], want[s], 0.01 * want[s]) << s;
  }
}

// The plan and the step stats count 2 bytes + 8 per 64-element block for the moments instead
// of 8 bytes per parameter.
TEST(Trainer8bitTest, HostBytesDropBySixPerParameter) {
  auto f = testing::LoadGolden("llama31");
  auto q = Make(Spec8(f, 1));
  auto full = Make(testing::GoldenSpec(f, 1));
  ASSERT_TRUE(q && full);
  ModelLayout layout(*LoadModelConfig(f.model_dir));
  int64_t saved = 0;
  for (int u = 0; u < layout.num_units(); ++u) {
    const int64_t n = layout.layout(u).numel();
    saved += 8 * n - 2 * (n + 4 * Q8Blocks(n));
  }
  EXPECT_EQ(full->plan().need.host - q->plan().need.host, saved);
  auto a = q->Step(f.batches[0]);
  auto b = full->Step(f.batches[0]);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(b->peak.host - a->peak.host, saved);
}

TEST(Trainer8bitTest, UnsupportedCombinationsNameTheKey) {
  auto f = testing::LoadGolden("llama31");
  TrainerSpec nvme = Spec8(f, 1);
  nvme.engine.nvme_dir = FreshDir("trainer_8bit_nvme");
  auto a = Trainer::Create(nvme);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(a.status().message().find("engine.nvme_dir"), std::string::npos) << a.status();
  EXPECT_FALSE(Trainer::Plan(nvme).ok());  // the admission check refuses it too
}

// Every unit (embedding, both layers, head) updated by the device optimizer vs none, two
// micro-batches per step (fp32 gradient accumulators on both tiers): the same losses and the
// same saved state, bit for bit. Clipping at 1e30 makes the clip coefficient exactly 1 on both
// tiers (their grad-norm sums differ in the last bits). Then a checkpoint written from device
// state resumes on a run without device units, exactly. With one bf16 micro-batch (direct mode)
// the host tier receives the embedding's and head's gradients rounded to bf16 while the device
// updates from their fp32 accumulators, so there the losses only stay within the bound that
// 8-bit moments keep to fp32 AdamW (0.2%; seen: equal for 5 steps, then up to 0.03%).
// On the CPU backend the device optimizer calls the CPU kernel (this checks the plumbing: state
// upload/download, seeds, element offsets); on CUDA it is the CUDA kernel.
void ExpectDeviceUnitsGiveCpuBits(DeviceKind device) {
  auto f = testing::LoadGolden("qwen3");
  TrainerSpec host = Spec8Bf16(f, 2, device, /*max_grad_norm=*/1e30);
  host.engine.device_optimizer_units = 0;
  TrainerSpec dev = host;
  dev.engine.device_optimizer_units = 4;
  {
    SCOPED_TRACE("direct");
    auto a = Make(dev);
    auto b = Make(host);
    ASSERT_TRUE(a && b);
    const std::vector<double> la = Train(*a, f, 0, f.steps, /*first_micro_batch_only=*/true);
    const std::vector<double> lb = Train(*b, f, 0, f.steps, /*first_micro_batch_only=*/true);
    for (int s = 0; s < f.steps; ++s) EXPECT_NEAR(la[s], lb[s], 2e-3 * lb[s]) << "step " << s;
  }
  auto a = Make(dev);
  auto b = Make(host);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->plan().device_optimizer_units, 4);
  EXPECT_EQ(b->plan().device_optimizer_units, 0);
  const int k = 5;
  const std::vector<double> la = Train(*a, f, 0, k);
  const std::vector<double> lb = Train(*b, f, 0, k);
  for (int s = 0; s < k; ++s) EXPECT_EQ(la[s], lb[s]) << "step " << s;
  const std::string da = FreshDir("trainer_8bit_device_units"), db = FreshDir("trainer_8bit_host_units");
  ASSERT_TRUE(a->SaveState(da).ok());
  ASSERT_TRUE(b->SaveState(db).ok());
  EXPECT_EQ(ExpectSameOptimizerFiles(da, db), 4 + 1) << "one file per unit and the index";
  // Device state -> a run whose units are all on the host, and host state -> a run whose units
  // are all on the device (non-zero codes and scales uploaded): both continue as `b` does.
  auto c = Make(host);
  auto e = Make(dev);
  ASSERT_TRUE(c && e);
  ASSERT_TRUE(c->LoadState(da).ok());
  ASSERT_TRUE(e->LoadState(db).ok());
  const std::vector<double> lc = Train(*c, f, k, f.steps);
  const std::vector<double> le = Train(*e, f, k, f.steps);
  const std::vector<double> lb2 = Train(*b, f, k, f.steps);
  for (int s = 0; s < f.steps - k; ++s) {
    EXPECT_EQ(lc[s], lb2[s]) << "step " << k + s;
    EXPECT_EQ(le[s], lb2[s]) << "step " << k + s;
  }
}

TEST(Trainer8bitTest, DeviceOptimizerGivesTheCpuBits) { ExpectDeviceUnitsGiveCpuBits(DeviceKind::kCpu); }

TEST(Trainer8bitTest, CudaDeviceOptimizerGivesTheCpuBits) {
  if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device (tested on the GPU machine)";
  ExpectDeviceUnitsGiveCpuBits(DeviceKind::kCuda);
}

// engine.device_update_layers: sliding layers whose update runs on the device in direct steps
// (one bf16 micro-batch; one slot, so every layer slides): streamed during the backward without
// clipping, after the pass with it (exact: the gradient goes up from the layer's mirror with the
// state once the clip coefficient is known). Some and all layers give the same losses, grad
// norms and saved state, bit for bit, as none: the state goes to the device (the step's H2D and
// D2H bytes grow by exactly that state, and in exact steps by the gradient up and the weights
// down), is updated there and comes back with the new bf16 weights. A step of two micro-batches
// (not direct) in between updates those layers on the CPU as any, and the device path resumes
// after it. The golden model has two layers; a random-init copy with five puts three and five
// layers through the two staging buffers (streamed: each state going up one device-updated
// layer ahead of its backward; exact: two ahead of the update).
void ExpectDeviceUpdateLayersGiveCpuBits(DeviceKind device, double max_grad_norm) {
  auto f = testing::LoadGolden("llama31");
  const std::string five = testing::ConfigVariant(f, "five_layers", {{"num_hidden_layers", 5}});
  const int k = 6;
  // Direct steps (first micro-batch only), then one step of two micro-batches (not direct),
  // then direct again.
  auto run = [&](Trainer& t) {
    std::vector<StepStats> out;
    for (int s = 0; s < k + 2; ++s) {
      auto st = s == k ? t.Step(f.batches[s]) : t.Step({f.batches[s][0]});
      EXPECT_TRUE(st.ok()) << st.status();
      out.push_back(st.ok() ? *st : StepStats());
    }
    return out;
  };
  for (const auto& [model, counts] : std::vector<std::pair<std::string, std::vector<int>>>{
           {f.model_dir, {1, 2}}, {five, {3, 5}}}) {
    SCOPED_TRACE(model);
    TrainerSpec none = Spec8Bf16(f, 1, device, max_grad_norm);
    none.model_dir = model;
    none.random_init = model == five;
    auto ref = Make(none);
    ASSERT_TRUE(ref);
    const std::vector<StepStats> want = run(*ref);
    // With clipping, every step clips (the coefficient reaches the device kernel).
    for (int s = 0; s < k + 2 && max_grad_norm > 0; ++s) EXPECT_GT(want[s].grad_norm, max_grad_norm) << "step " << s;
    const std::string dref = FreshDir("trainer_8bit_update_none");
    ASSERT_TRUE(ref->SaveState(dref).ok());
    const ModelLayout layout(*LoadModelConfig(model));
    const int64_t n = layout.layout(1).numel(), state = 6 * n + 8 * Q8Blocks(n);
    const int64_t per_layer = max_grad_norm > 0 ? state + 2 * n : state;
    // Counts of the spread order, then (five layers) the two leading layers instead of the
    // spread order's first two (layers 0 and 2).
    std::vector<std::pair<int, bool>> variants;
    for (int layers : counts) variants.push_back({layers, false});
    if (model == five) variants.insert(variants.end(), {{2, false}, {2, true}});
    for (const auto& [layers, leading] : variants) {
      SCOPED_TRACE(::testing::Message() << layers << (leading ? " leading" : "") << " layer(s) updated on the device");
      TrainerSpec dev = none;
      dev.engine.device_update_layers = layers;
      dev.engine.device_update_leading = leading;
      auto t = Make(dev);
      ASSERT_TRUE(t);
      EXPECT_EQ(t->plan().device_update_layers, layers);
      EXPECT_NE(t->plan().summary.find("sliding layer(s) on the device"), std::string::npos) << t->plan().summary;
      if (model == five && layers == 2) {
        const int l0 = layout.layer_unit(0);
        EXPECT_EQ(t->device_update_order(), (std::vector<int>{l0, l0 + (leading ? 1 : 2)}));
      }
      const std::vector<StepStats> got = run(*t);
      for (int s = 0; s < k + 2; ++s) {
        EXPECT_EQ(got[s].loss, want[s].loss) << "step " << s;
        EXPECT_EQ(got[s].grad_norm, want[s].grad_norm) << "step " << s;
        EXPECT_EQ(got[s].device_update_layers, s == k ? 0 : layers) << "step " << s;
        // The device path ran in the direct steps: each such layer's state went both ways.
        const int64_t extra = s == k ? 0 : layers * per_layer;
        EXPECT_EQ(got[s].h2d_bytes - want[s].h2d_bytes, extra) << "step " << s;
        EXPECT_EQ(got[s].d2h_bytes - want[s].d2h_bytes, extra) << "step " << s;
      }
      const std::string d = FreshDir("trainer_8bit_update_dev");
      ASSERT_TRUE(t->SaveState(d).ok());
      EXPECT_EQ(ExpectSameOptimizerFiles(d, dref), layout.num_units() + 1);
    }
  }
}

TEST(Trainer8bitTest, DeviceUpdateLayersGiveTheCpuBits) { ExpectDeviceUpdateLayersGiveCpuBits(DeviceKind::kCpu, 0); }

TEST(Trainer8bitTest, ClippedDeviceUpdateLayersGiveTheCpuBits) {
  ExpectDeviceUpdateLayersGiveCpuBits(DeviceKind::kCpu, 0.05);
}

TEST(Trainer8bitTest, CudaDeviceUpdateLayersGiveTheCpuBits) {
  if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device (tested on the GPU machine)";
  ExpectDeviceUpdateLayersGiveCpuBits(DeviceKind::kCuda, 0);
  ExpectDeviceUpdateLayersGiveCpuBits(DeviceKind::kCuda, 0.05);
}

// The count of device-updated layers may change between steps (engine.device_update_layers:
// auto searches it on the job's steps): a layer leaving the device path has its state back on
// the host before its next CPU update, one joining it sends its state up after its last CPU
// update. Counts changing every step (the first n of the candidate order) give the bits of none,
// and each step reports its count; counts outside the candidates are refused.
void ExpectChangingCountsGiveCpuBits(DeviceKind device, double max_grad_norm) {
  auto f = testing::LoadGolden("llama31");
  const std::string five = testing::ConfigVariant(f, "five_layers", {{"num_hidden_layers", 5}});
  const std::vector<int> counts = {5, 0, 3, 1, 5, 2, 0, 4};
  TrainerSpec none = Spec8Bf16(f, 1, device, max_grad_norm);
  none.model_dir = five;
  none.random_init = true;
  auto ref = Make(none);
  ASSERT_TRUE(ref);
  TrainerSpec dev = none;
  dev.engine.device_update_layers = 5;
  auto t = Make(dev);
  ASSERT_TRUE(t);
  const ModelLayout layout(*LoadModelConfig(five));
  const int64_t n = layout.layout(1).numel(), state = 6 * n + 8 * Q8Blocks(n);
  const int64_t per_layer = max_grad_norm > 0 ? state + 2 * n : state;  // exact: gradient up, weights down
  for (size_t s = 0; s < counts.size(); ++s) {
    SCOPED_TRACE(::testing::Message() << "step " << s << ", " << counts[s] << " layer(s) on the device");
    auto want = ref->Step({f.batches[s][0]});
    ASSERT_TRUE(want.ok()) << want.status();
    if (max_grad_norm > 0) EXPECT_GT(want->grad_norm, max_grad_norm);  // the step clips
    ASSERT_TRUE(t->SetDeviceUpdateLayers(counts[s]).ok());
    auto got = t->Step({f.batches[s][0]});
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->loss, want->loss);
    EXPECT_EQ(got->grad_norm, want->grad_norm);
    EXPECT_EQ(got->device_update_layers, counts[s]);
    EXPECT_FALSE(got->device_update_tuning);
    EXPECT_EQ(got->h2d_bytes - want->h2d_bytes, counts[s] * per_layer);
    EXPECT_EQ(got->d2h_bytes - want->d2h_bytes, counts[s] * per_layer);
  }
  const std::string dref = FreshDir("trainer_8bit_counts_none"), d = FreshDir("trainer_8bit_counts_dev");
  ASSERT_TRUE(ref->SaveState(dref).ok());
  ASSERT_TRUE(t->SaveState(d).ok());
  EXPECT_EQ(ExpectSameOptimizerFiles(d, dref), layout.num_units() + 1);
  for (int bad : {-1, 6}) {
    const absl::Status st = t->SetDeviceUpdateLayers(bad);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
    EXPECT_NE(st.message().find("engine.device_update_layers"), std::string::npos) << st;
  }
}

TEST(Trainer8bitTest, ChangingDeviceUpdateCountsGiveTheCpuBits) {
  ExpectChangingCountsGiveCpuBits(DeviceKind::kCpu, 0);
  ExpectChangingCountsGiveCpuBits(DeviceKind::kCpu, 0.05);
}

TEST(Trainer8bitTest, CudaChangingDeviceUpdateCountsGiveTheCpuBits) {
  if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device (tested on the GPU machine)";
  ExpectChangingCountsGiveCpuBits(DeviceKind::kCuda, 0);
  ExpectChangingCountsGiveCpuBits(DeviceKind::kCuda, 0.05);
}

// engine.device_update_layers auto on the CPU tier (five layers through one slot): two thirds
// of the layers are candidates; the search (forced: the tiny model's steps are not bound by the
// update) changes the count between steps without changing a bit against none, reports each
// step's count and whether it was still searching (true, then false for good, within warm-up +
// count 0 + one try of each candidate), and leaves the state none leaves. Without the force it
// stops at count 0 after measuring it. Without sliding layers there are no candidates.
TEST(Trainer8bitTest, DeviceUpdateAutoSearchesWithoutChangingABit) {
  auto f = testing::LoadGolden("llama31");
  // Streamed steps, and exact ones (clipping 0.05: every step clips).
  for (double clip : {0.0, 0.05}) {
    SCOPED_TRACE(::testing::Message() << "max_grad_norm " << clip);
    TrainerSpec none = Spec8Bf16(f, 1, DeviceKind::kCpu, clip);
    none.model_dir = testing::ConfigVariant(f, "five_layers", {{"num_hidden_layers", 5}});
    none.random_init = true;
    none.engine.max_micro_batches_per_step = 1;  // every step is direct (auto plans nothing otherwise)
    TrainerSpec autos = none;
    autos.engine.device_update_layers = -1;
    autos.engine.device_update_cpu_bound = 0;  // search whatever the CPU's share
    auto ref = Make(none);
    auto t = Make(autos);
    ASSERT_TRUE(ref && t);
    EXPECT_TRUE(t->plan().device_update_auto);
    ASSERT_EQ(t->plan().device_update_layers, 4);
    EXPECT_NE(t->plan().summary.find("up to 4 sliding layer(s) on the device"), std::string::npos) << t->plan().summary;
    const int limit = 2 + 3 * (4 + 1);  // warm-up, then at most every count once (settle + 2)
    bool searching = true;
    int last_search_step = -1, max_count_searched = 0;
    for (int s = 0; s < limit + 3; ++s) {
      SCOPED_TRACE(::testing::Message() << "step " << s);
      const std::vector<TokenBatch> batch = {f.batches[s % f.batches.size()][0]};
      auto want = ref->Step(batch);
      auto got = t->Step(batch);
      ASSERT_TRUE(want.ok() && got.ok()) << want.status() << got.status();
      if (clip > 0) EXPECT_GT(want->grad_norm, clip);  // the step clips
      EXPECT_EQ(got->loss, want->loss);
      EXPECT_EQ(got->grad_norm, want->grad_norm);
      EXPECT_GE(got->device_update_layers, 0);
      EXPECT_LE(got->device_update_layers, 4);
      if (got->device_update_tuning) {
        EXPECT_TRUE(searching) << "searching again after it had ended";
        last_search_step = s;
        max_count_searched = std::max(max_count_searched, got->device_update_layers);
      } else {
        searching = false;
        // Once the search has ended, every step runs its choice; a choice of none released
        // the staging (no candidates left in the plan).
        ASSERT_TRUE(t->device_update_choice().has_value());
        EXPECT_EQ(got->device_update_layers, *t->device_update_choice());
        EXPECT_EQ(t->plan().device_update_layers, *t->device_update_choice() == 0 ? 0 : 4);
      }
    }
    EXPECT_GE(last_search_step, 1);  // the warm-up steps at least
    EXPECT_LT(last_search_step, limit);
    EXPECT_GE(max_count_searched, 2);  // after count 0 it tries (4 + 1) / 2 whatever the times
    const std::string dref = FreshDir("trainer_8bit_auto_none"), d = FreshDir("trainer_8bit_auto");
    ASSERT_TRUE(ref->SaveState(dref).ok());
    ASSERT_TRUE(t->SaveState(d).ok());
    EXPECT_EQ(ExpectSameOptimizerFiles(d, dref), ModelLayout(*LoadModelConfig(none.model_dir)).num_units() + 1);
  }
  TrainerSpec none = Spec8Bf16(f, 1, DeviceKind::kCpu, /*max_grad_norm=*/0);
  none.model_dir = testing::ConfigVariant(f, "five_layers", {{"num_hidden_layers", 5}});
  none.random_init = true;
  none.engine.max_micro_batches_per_step = 1;  // every step streams (auto plans nothing otherwise)
  TrainerSpec autos = none;
  autos.engine.device_update_layers = -1;
  autos.engine.device_update_cpu_bound = 0;  // search whatever the CPU's share
  // Not forced: the tiny model's update is a small share of its step, so count 0 it stays, and
  // the candidates' staging is released then: the plan has none left, a count above 0 is
  // refused, and the steps go on with none's bits.
  TrainerSpec unforced = autos;
  unforced.engine.device_update_cpu_bound = 0.8;
  auto u = Make(unforced);
  auto ref0 = Make(none);
  ASSERT_TRUE(u && ref0);
  for (int s = 0; s < 8; ++s) {
    const std::vector<TokenBatch> batch = {f.batches[s % f.batches.size()][0]};
    auto st = u->Step(batch);
    auto want = ref0->Step(batch);
    ASSERT_TRUE(st.ok() && want.ok()) << st.status() << want.status();
    EXPECT_EQ(st->loss, want->loss) << "step " << s;
    EXPECT_EQ(st->device_update_layers, 0) << "step " << s;
    EXPECT_EQ(st->device_update_tuning, s < 4) << "step " << s;
    EXPECT_EQ(u->plan().device_update_layers, s < 3 ? 4 : 0) << "step " << s;  // released after the search
  }
  EXPECT_FALSE(u->plan().device_update_auto);
  EXPECT_EQ(u->SetDeviceUpdateLayers(1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(u->SetDeviceUpdateLayers(0).ok());
  auto after = u->Step({f.batches[0][0]});
  auto want_after = ref0->Step({f.batches[0][0]});
  ASSERT_TRUE(after.ok() && want_after.ok());
  EXPECT_EQ(after->loss, want_after->loss);
  // Steps that may accumulate (max_micro_batches_per_step not 1) never stream: no candidates.
  TrainerSpec accumulating = autos;
  accumulating.engine.max_micro_batches_per_step = 0;
  auto acc = Make(accumulating);
  ASSERT_TRUE(acc);
  EXPECT_EQ(acc->plan().device_update_layers, 0);
  EXPECT_FALSE(acc->device_update_choice().has_value());
  TrainerSpec resident = autos;
  resident.engine.window_slots = 5;
  auto r = Make(resident);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->plan().device_update_layers, 0);
  EXPECT_FALSE(r->plan().device_update_auto);
  EXPECT_EQ(r->SetDeviceUpdateLayers(1).code(), absl::StatusCode::kInvalidArgument);
}

// What engine.device_update_layers cannot serve is refused naming the key: fp32 moments, steps
// that accumulate (gradients never in the mirrors), fp32 compute, more layers than the model
// has. Clipping is served (exact steps update those layers after the pass).
TEST(Trainer8bitTest, DeviceUpdateLayersRefusalsNameTheKey) {
  auto f = testing::LoadGolden("llama31");
  TrainerSpec ok = Spec8Bf16(f, 1, DeviceKind::kAuto, /*max_grad_norm=*/0);
  ok.engine.device_update_layers = 1;
  ASSERT_TRUE(Trainer::Plan(ok).ok());
  TrainerSpec fp32 = ok;
  fp32.optimizer.moments_8bit = false;
  TrainerSpec clip = ok;
  clip.max_grad_norm = 1.0;
  EXPECT_TRUE(Trainer::Create(clip).ok());
  TrainerSpec f32c = ok;
  f32c.engine.compute_dtype = "fp32";
  TrainerSpec many = ok;
  many.engine.device_update_layers = 3;
  TrainerSpec accum = ok;
  accum.engine.max_micro_batches_per_step = 2;
  for (const TrainerSpec* s : {&fp32, &f32c, &many, &accum}) {
    auto t = Trainer::Create(*s);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << t.status();
    EXPECT_NE(t.status().message().find("engine.device_update_layers"), std::string::npos) << t.status();
  }
}

// A declared engine.max_micro_batches_per_step bounds the steps (the plan relied on it).
TEST(Trainer8bitTest, StepWithMoreMicroBatchesThanDeclaredIsRefused) {
  auto f = testing::LoadGolden("llama31");
  TrainerSpec s = Spec8(f, 1);
  s.engine.max_micro_batches_per_step = 1;
  auto t = Make(s);
  ASSERT_TRUE(t);
  ASSERT_GE(f.batches[0].size(), 2u);
  auto st = t->Step(f.batches[0]);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.status().message().find("engine.max_micro_batches_per_step"), std::string::npos) << st.status();
  EXPECT_TRUE(t->Step({f.batches[0][0]}).ok());
}

}  // namespace
}  // namespace sfd
