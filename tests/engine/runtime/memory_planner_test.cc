// PlanMemory on a CUDA device (synthetic inputs: an H200-sized device, the 3B and 8B Llama
// shapes of bench/): every plan fits its budget; budgets between "a few slots" and "everything
// fits" give the room to the AdamW state of the leading units or to kept forward graphs, more
// budget never gives less; a CPU-bound step (3B, 8k tokens) gives the optimizer first claim,
// a GPU-bound one (8B, 64k tokens) the kept graphs; explicit settings win; a budget too small
// for one slot is refused with the numbers; offloaded saved inputs keep as many of the last
// layers' inputs on the device as the room allows; 8-bit moments take half the device bytes per
// unit of optimizer state; large direct micro-batches keep offloaded inputs in the mirrors.
#include "engine/runtime/memory_planner.h"

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/engine/model/llama_shape.h"

namespace sfd {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

ModelConfig Llama(int64_t d, int64_t inter, int layers, int64_t heads, bool tied) {
  return testing::LlamaShape(d, inter, layers, heads, /*kv_heads=*/8, /*vocab=*/128256, tied);
}

struct Shape {
  ModelConfig config;
  ModelLayout layout;
  explicit Shape(const ModelConfig& c) : config(c), layout(c) {}
};

Shape Llama3B() { return Shape(Llama(3072, 8192, 28, 24, true)); }
Shape Llama8B() { return Shape(Llama(4096, 14336, 32, 32, false)); }

// Planner inputs for `s` on a test H200 (139 GiB free), `e` with `tokens` per micro-batch and a
// budget of `budget_gib` (0: none); `e` must outlive the result.
PlannerInputs Inputs(const Shape& s, int64_t tokens, int64_t budget_gib, EngineSpec* e, bool moments_8bit,
                     bool grad_accumulators, bool direct_steps, bool clipped) {
  e->max_tokens_per_micro_batch = tokens;
  e->device_memory_budget = budget_gib * kGiB;
  PlannerInputs in;
  in.config = &s.config;
  in.layout = &s.layout;
  in.compute_dtype_bytes = 2;
  in.cuda = true;
  in.fused_cross_entropy = true;
  in.device_name = "test H200";
  in.device_free = 139 * kGiB;
  in.host_available = 0;  // unknown: not what these tests are about
  in.engine = e;
  in.moments_8bit = moments_8bit;
  in.grad_accumulators = grad_accumulators;
  in.direct_steps = direct_steps;
  in.clipped = clipped;
  return in;
}

absl::StatusOr<MemoryPlan> Plan(const Shape& s, int64_t tokens, int64_t budget_gib,
                                EngineSpec e = EngineSpec(), bool moments_8bit = false,
                                bool grad_accumulators = true, bool direct_steps = false,
                                bool clipped = false) {
  return PlanMemory(Inputs(s, tokens, budget_gib, &e, moments_8bit, grad_accumulators, direct_steps, clipped));
}

TEST(MemoryPlannerTest, EveryBudgetFitsAndMoreBudgetNeverGivesLess) {
  const Shape s = Llama3B();
  int last_opt = -1, last_slots = 0;
  for (int64_t gib : {6, 8, 12, 16, 24, 32, 48, 64, 96}) {
    auto p = Plan(s, 8192, gib);
    ASSERT_TRUE(p.ok()) << gib << " GiB: " << p.status();
    SCOPED_TRACE(::testing::Message() << gib << " GiB: " << p->summary);
    EXPECT_LE(p->need.device, gib * kGiB);
    EXPECT_LE(p->keep_graph_layers, p->window_slots);  // only resident layers keep a graph
    EXPECT_GE(p->window_slots, last_slots);
    EXPECT_GE(p->device_optimizer_units, last_opt);
    last_slots = p->window_slots;
    last_opt = p->device_optimizer_units;
  }
}

TEST(MemoryPlannerTest, RoomUnderABudgetGoesToTheOptimizerWhenTheCpuBounds) {
  // 3B at 8k tokens: ~0.3 s of GPU work against ~0.65 s of CPU AdamW.
  const Shape s = Llama3B();
  auto small = Plan(s, 8192, 8);
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_LT(small->window_slots, 28);
  EXPECT_EQ(small->device_optimizer_units, 0);  // layers slide: no device state
  auto mid = Plan(s, 8192, 32);
  ASSERT_TRUE(mid.ok()) << mid.status();
  EXPECT_EQ(mid->window_slots, 28) << mid->summary;
  EXPECT_GT(mid->device_optimizer_units, 0) << mid->summary;
  EXPECT_LT(mid->device_optimizer_units, s.layout.num_units()) << mid->summary;
  EXPECT_TRUE(absl::StrContains(mid->summary, "AdamW of " + std::to_string(mid->device_optimizer_units)));
  auto all = Plan(s, 8192, 0);  // no budget: 90% of the free 139 GiB
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->device_optimizer_units, s.layout.num_units()) << all->summary;
}

TEST(MemoryPlannerTest, EightBitMomentsPutAboutTwiceTheUnitsOnTheDevice) {
  // 3B at 8k tokens under 32 GiB, one bf16 micro-batch per step (no accumulators): the room
  // that holds k units' fp32 state (12 B/param) holds about 2k units' 8-bit state (4 B master +
  // 2 B codes + 8 B of scales per 64 elements), and the plan counts exactly those bytes.
  const Shape s = Llama3B();
  auto fp32 = Plan(s, 8192, 32, EngineSpec(), false, /*grad_accumulators=*/false);
  auto q8 = Plan(s, 8192, 32, EngineSpec(), /*moments_8bit=*/true, /*grad_accumulators=*/false);
  ASSERT_TRUE(fp32.ok() && q8.ok()) << fp32.status() << q8.status();
  SCOPED_TRACE(q8->summary);
  ASSERT_GT(fp32->device_optimizer_units, 1) << fp32->summary;
  EXPECT_GE(q8->device_optimizer_units, 2 * fp32->device_optimizer_units - 1);
  EXPECT_LE(q8->need.device, 32 * kGiB);
  // Explicit units: the 8-bit plan needs 6 B/param + scales less per unit than fp32's 12.
  EngineSpec e;
  e.device_optimizer_units = 3;
  e.keep_graph_layers = 0;
  auto a = Plan(s, 8192, 32, e, false, false);
  auto b = Plan(s, 8192, 32, e, /*moments_8bit=*/true, false);
  ASSERT_TRUE(a.ok() && b.ok());
  int64_t saved = 0;
  for (int u = 0; u < 3; ++u) {
    const int64_t n = s.layout.layout(u).numel();
    saved += 12 * n - (6 * n + 8 * ((n + 63) / 64));
  }
  EXPECT_EQ(a->need.device - b->need.device, saved);
  // Steps that may accumulate: each device decoder layer also holds an fp32 accumulator
  // (units 1 and 2 are layers; unit 0, the embedding, has its accumulator among the fixed).
  auto c = Plan(s, 8192, 32, e, /*moments_8bit=*/true, /*grad_accumulators=*/true);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->need.device - b->need.device, 4 * (s.layout.layout(1).numel() + s.layout.layout(2).numel()));
}

TEST(MemoryPlannerTest, DeviceUpdateLayersStageStateAndPinItsHostArenas) {
  // 3B at 8k tokens under 12 GiB (4 slots: layers slide), 8-bit moments: 14 of 28 layers updated on the
  // device take two staging buffers of one layer's master + codes + scales on the device, and
  // their host state moves from pageable to pinned memory (same total). Slots and activation
  // placement fixed, so nothing else moves.
  const Shape s = Llama3B();
  EngineSpec base;
  base.window_slots = 4;
  base.activations = ActivationPlacement::kDevice;
  base.keep_graph_layers = 0;
  EngineSpec e = base;
  e.device_update_layers = 14;
  auto p = Plan(s, 8192, 12, e, /*moments_8bit=*/true);
  auto q = Plan(s, 8192, 12, base, /*moments_8bit=*/true);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE(q.ok()) << q.status();
  SCOPED_TRACE(p->summary);
  EXPECT_EQ(p->device_update_layers, 14);
  EXPECT_LE(p->need.device, 12 * kGiB);
  const int64_t n = s.layout.layout(1).numel(), state = 6 * n + 8 * ((n + 63) / 64);
  EXPECT_EQ(p->need.pinned - q->need.pinned, 14 * state);
  EXPECT_EQ(p->need.pinned + p->need.host, q->need.pinned + q->need.host);
  EXPECT_TRUE(absl::StrContains(p->summary, "14 sliding layer(s) on the device"));
  EXPECT_EQ(p->need.device - q->need.device, 2 * state);
  // With clipping the update runs after the pass from the gradient in the mirror: each staging
  // buffer holds a layer's bf16 gradient too.
  auto clipped = Plan(s, 8192, 12, e, /*moments_8bit=*/true, /*grad_accumulators=*/false,
                      /*direct_steps=*/true, /*clipped=*/true);
  ASSERT_TRUE(clipped.ok()) << clipped.status();
  EXPECT_EQ(clipped->need.device - q->need.device, 2 * (state + 2 * n));
  EXPECT_TRUE(absl::StrContains(clipped->summary, "after the backward, exact")) << clipped->summary;
  // Refused: with fp32 moments, or more layers than the model has (naming the key).
  auto fp32 = Plan(s, 8192, 8, e, /*moments_8bit=*/false);
  ASSERT_FALSE(fp32.ok());
  EXPECT_TRUE(absl::StrContains(fp32.status().message(), "engine.device_update_layers"));
  e.device_update_layers = 29;
  auto many = Plan(s, 8192, 8, e, true);
  ASSERT_FALSE(many.ok());
  EXPECT_TRUE(absl::StrContains(many.status().message(), "engine.device_update_layers"));
}

TEST(MemoryPlannerTest, DeviceUpdateAutoPlansCandidatesWhereTheUpdateCanRun) {
  // engine.device_update_layers auto: with 8-bit moments, direct steps (clipped or not) and
  // sliding layers, two thirds of the layers get pinned state and the staging fits the budget;
  // without any of those (or with every layer resident) there are none and nothing is refused.
  const Shape s = Llama3B();
  EngineSpec e;
  e.device_update_layers = -1;
  for (bool clipped : {false, true}) {
    SCOPED_TRACE(::testing::Message() << "clipped " << clipped);
    auto p = Plan(s, 8192, 8, e, /*moments_8bit=*/true, /*grad_accumulators=*/false, /*direct_steps=*/true, clipped);
    ASSERT_TRUE(p.ok()) << p.status();
    SCOPED_TRACE(p->summary);
    EXPECT_EQ(p->device_update_layers, AutoDeviceUpdateLayers(28));
    EXPECT_TRUE(p->device_update_auto);
    EXPECT_TRUE(absl::StrContains(p->summary, "up to 19 sliding layer(s) on the device"));
    EXPECT_LE(p->need.device, 8 * kGiB);
    EXPECT_LT(p->window_slots, 28);
    EXPECT_GE(p->window_slots, kAutoMinSlots);
  }
  EXPECT_EQ(AutoDeviceUpdateLayers(28), 19);
  for (const auto& [moments_8bit, direct, budget] :
       std::vector<std::tuple<bool, bool, int64_t>>{{false, true, 8}, {true, false, 8}, {true, true, 0}}) {
    SCOPED_TRACE(::testing::Message() << "8-bit " << moments_8bit << ", direct " << direct << ", budget " << budget);
    auto q = Plan(s, 8192, budget, e, moments_8bit, /*grad_accumulators=*/false, direct);
    ASSERT_TRUE(q.ok()) << q.status();
    EXPECT_EQ(q->device_update_layers, 0);
    EXPECT_FALSE(q->device_update_auto);
    EXPECT_FALSE(absl::StrContains(q->summary, "sliding layer(s) on the device")) << q->summary;
  }
  e.device_update_layers = -2;
  EXPECT_FALSE(Plan(s, 8192, 8, e, true, false, true).ok());
}

TEST(MemoryPlannerTest, ReleasedStagingGivesTheSavedInputsBack) {
  // 3B bs8 under 8 GiB (the session-11 H100 plans): with auto's staging the saved inputs are
  // offloaded but for a few layers; without it they all stay on the device, so once auto has
  // chosen none (staging released) every layer keeps its input there. The plan without the
  // staging keeps the executor's slots; where it cannot, or auto planned no staging, the count
  // stays.
  const Shape s = Llama3B();
  EngineSpec e;
  e.device_update_layers = -1;
  const PlannerInputs in = Inputs(s, 8192, 8, &e, /*moments_8bit=*/true, /*grad_accumulators=*/false,
                                  /*direct_steps=*/true, /*clipped=*/false);
  auto p = PlanMemory(in);
  ASSERT_TRUE(p.ok()) << p.status();
  SCOPED_TRACE(p->summary);
  ASSERT_TRUE(p->device_update_auto);
  ASSERT_FALSE(p->activations_on_device);
  EXPECT_LT(p->device_saved_layers, 28);
  EXPECT_EQ(DeviceSavedLayersWithoutStaging(in, *p), 28);
  // Clipped, the staging (two layer gradients more) costs a slot too (3 against 4 without):
  // the inputs still come back, planned for the 3 slots the executor keeps.
  const PlannerInputs inc = Inputs(s, 8192, 8, &e, true, false, true, /*clipped=*/true);
  auto c = PlanMemory(inc);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->window_slots, 3) << c->summary;
  ASSERT_FALSE(c->activations_on_device);
  EXPECT_GT(DeviceSavedLayersWithoutStaging(inc, *c), c->device_saved_layers);
  // A current plan the budget could not hold without the staging either: the count stays.
  MemoryPlan too_many = *p;
  too_many.window_slots = 28;
  EXPECT_EQ(DeviceSavedLayersWithoutStaging(in, too_many), p->device_saved_layers);
  EngineSpec none = e;
  none.device_update_layers = 0;
  const PlannerInputs in0 = Inputs(s, 8192, 8, &none, true, false, true, false);
  auto q = PlanMemory(in0);
  ASSERT_TRUE(q.ok());
  EXPECT_TRUE(q->activations_on_device);
  EXPECT_EQ(DeviceSavedLayersWithoutStaging(in0, *q), q->device_saved_layers);
}

TEST(MemoryPlannerTest, DeviceUpdateOrderSpreadsEveryPrefix) {
  // Every count takes the first n of one order (so a smaller count's layers are among a larger
  // one's): a permutation of the layers whose every prefix is spread over the model (no gap
  // between chosen layers, the ends included, wider than 2L/n + 1), without device units.
  const Shape s = Llama3B();
  const std::vector<int> order = DeviceUpdateOrder(s.layout, 0);
  ASSERT_EQ(order.size(), 28u);
  std::vector<int> layers;
  for (size_t n = 1; n <= order.size(); ++n) {
    layers.push_back(order[n - 1] - s.layout.layer_unit(0));
    std::vector<int> sorted = layers;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());
    int gap = sorted.front() + 1;
    for (size_t k = 1; k < sorted.size(); ++k) gap = std::max(gap, sorted[k] - sorted[k - 1]);
    gap = std::max(gap, 28 - sorted.back());
    EXPECT_LE(gap, 2 * 28 / static_cast<int>(n) + 1) << n << " layers";
    const std::vector<bool> on = DeviceUpdateUnits(s.layout, static_cast<int>(n), 0);
    for (int l : layers) EXPECT_TRUE(on[s.layout.layer_unit(l)]);
  }
  for (int u : DeviceUpdateOrder(s.layout, 6)) EXPECT_GE(u, 6);
  EXPECT_EQ(DeviceUpdateOrder(s.layout, 6).size(), 28u - 5);
}

TEST(MemoryPlannerTest, DeviceUpdateOrderLeadingTakesTheFirstLayers) {
  // EngineSpec::device_update_leading: layers in index order, device units left out.
  const Shape s = Llama3B();
  const std::vector<int> order = DeviceUpdateOrder(s.layout, 6, /*leading=*/true);
  ASSERT_EQ(order.size(), 28u - 5);
  for (size_t k = 0; k < order.size(); ++k) EXPECT_EQ(order[k], 6 + static_cast<int>(k));
  const std::vector<bool> on = DeviceUpdateUnits(s.layout, 3, 0, /*leading=*/true);
  for (int l = 0; l < 28; ++l) EXPECT_EQ(on[s.layout.layer_unit(l)], l < 3) << "layer " << l;
}

TEST(MemoryPlannerTest, GpuBoundStepKeepsGraphsBeforeOptimizerState) {
  // 8B at 64k tokens: ~6 s of GPU work against ~1.6 s of CPU AdamW, so the free memory keeps
  // forward graphs (no recompute) rather than AdamW state.
  const Shape s = Llama8B();
  auto p = Plan(s, 65536, 0);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_GT(p->keep_graph_layers, 0) << p->summary;
  EXPECT_LE(p->need.device, 139 * kGiB * 9 / 10);
  // At 16k tokens the CPU AdamW bounds: state first.
  auto q = Plan(s, 16384, 0);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_GT(q->device_optimizer_units, 0) << q->summary;
}

TEST(MemoryPlannerTest, ExplicitSettingsWin) {
  const Shape s = Llama3B();
  EngineSpec e;
  e.device_optimizer_units = 2;
  e.keep_graph_layers = 1;
  auto p = Plan(s, 8192, 32, e);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->device_optimizer_units, 2);
  EXPECT_EQ(p->keep_graph_layers, 1);
  // One explicit setting, the other automatic: the automatic one takes only what is left, on
  // a CPU-bound step (3B, 8k tokens: the optimizer would claim first) and a GPU-bound one (8B,
  // 64k tokens, no budget: graphs would).
  for (int which = 0; which < 2; ++which) {
    EngineSpec one;
    (which == 0 ? one.keep_graph_layers : one.device_optimizer_units) = which == 0 ? 1 : 2;
    auto q = Plan(s, 8192, 32, one);
    ASSERT_TRUE(q.ok()) << q.status();
    EXPECT_LE(q->need.device, 32 * kGiB) << q->summary;
    auto r = Plan(Llama8B(), 65536, 0, one);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_LE(r->need.device, 139 * kGiB * 9 / 10) << r->summary;
  }
}

TEST(MemoryPlannerTest, OffloadedInputsKeepTheLastLayersOnTheDeviceWithinTheRoom) {
  // 8B at 64k tokens: every saved input (0.5 GiB each, 16 GiB in all) cannot stay on the
  // device under 20-28 GiB, so they are offloaded; the room left keeps the last layers' inputs.
  const Shape s = Llama8B();
  const int64_t per_input = int64_t{65536} * 4096 * 2;
  int last_kept = -1;
  for (int64_t gib : {20, 24, 28}) {
    auto p = Plan(s, 65536, gib);
    ASSERT_TRUE(p.ok()) << gib << " GiB: " << p.status();
    SCOPED_TRACE(::testing::Message() << gib << " GiB: " << p->summary);
    EXPECT_FALSE(p->activations_on_device);
    EXPECT_GT(p->device_saved_layers, 0);
    EXPECT_LT(p->device_saved_layers, 32);
    EXPECT_GE(p->device_saved_layers, last_kept);
    EXPECT_LE(p->need.device, gib * kGiB);
    // One input more would not fit the budget.
    EXPECT_GT(p->need.device + per_input, gib * kGiB);
    EXPECT_TRUE(absl::StrContains(p->summary, "the last " + std::to_string(p->device_saved_layers) + " of 32"));
    // Pinned host memory holds only the offloaded layers' inputs.
    EngineSpec none;
    none.device_saved_layers = 0;
    auto q = Plan(s, 65536, gib, none);
    ASSERT_TRUE(q.ok()) << q.status();
    EXPECT_EQ(q->device_saved_layers, 0);
    EXPECT_EQ(q->need.pinned - p->need.pinned, p->device_saved_layers * per_input);
    EXPECT_EQ(p->need.device - q->need.device, p->device_saved_layers * per_input);
    last_kept = p->device_saved_layers;
    if (gib == 28) {
      // An explicit setting takes its bytes before the kept inputs (here the embedding's AdamW
      // state, 6.3 GB): the plan still fits, with fewer inputs kept.
      EngineSpec opt;
      opt.device_optimizer_units = 1;
      auto r = Plan(s, 65536, gib, opt);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_LE(r->need.device, gib * kGiB) << r->summary;
      EXPECT_LT(r->device_saved_layers, p->device_saved_layers) << r->summary;
    }
  }
  // Inputs on the device anyway: nothing to keep.
  auto all = Plan(Llama3B(), 8192, 0);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE(all->activations_on_device);
  EXPECT_EQ(all->device_saved_layers, 0);
}

// Offloaded inputs go into the layers' mirrors automatically when every step is direct and the
// micro-batch is large enough for the master's rounding to hide under a layer's backward (8B
// at 64k tokens, not 3B at 8k); then the pinned buffers keep only what exceeds a layer's mirror
// (and a 2-buffer ring). Never with gradient accumulation; "off" wins.
TEST(MemoryPlannerTest, InputsGoIntoTheMirrorsForLargeDirectMicroBatches) {
  EngineSpec host;
  host.activations = ActivationPlacement::kHost;
  host.device_saved_layers = 0;
  const Shape b8 = Llama8B(), b3 = Llama3B();
  auto big = Plan(b8, 65536, 17, host, /*moments_8bit=*/true, /*grad_accumulators=*/false);
  auto own = Plan(b8, 65536, 17, [&] { EngineSpec e = host; e.inputs_in_mirrors = 0; return e; }(), true, false);
  auto accum = Plan(b8, 65536, 17, host, true, /*grad_accumulators=*/true);
  auto small = Plan(b3, 8192, 8, host, true, false);
  ASSERT_TRUE(big.ok() && own.ok() && accum.ok() && small.ok());
  EXPECT_TRUE(big->inputs_in_mirrors);
  EXPECT_FALSE(own->inputs_in_mirrors);
  EXPECT_FALSE(accum->inputs_in_mirrors);
  EXPECT_FALSE(small->inputs_in_mirrors);
  EXPECT_TRUE(absl::StrContains(big->summary, "in the layers' bf16 mirrors")) << big->summary;
  // 32 inputs of 64k x 4096 bf16 (512 MiB each, more than a layer's 436 MB mirror): each moves
  // a mirror's worth out of its pinned buffer; the ring (2 x 16M bf16) comes in.
  const int64_t layer = b8.layout.layout(b8.layout.layer_unit(0)).numel();
  EXPECT_EQ(own->need.pinned - big->need.pinned, 32 * layer * 2 - 2 * (int64_t{1} << 24) * 2);
  // Asked for without direct steps: refused naming the key.
  EngineSpec always = host;
  always.inputs_in_mirrors = 1;
  auto refused = Plan(b8, 65536, 17, always, true, /*grad_accumulators=*/true);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "engine.inputs_in_mirrors")) << refused.status();
}

TEST(MemoryPlannerTest, BudgetBelowOneSlotIsRefusedWithTheNumbers) {
  auto p = Plan(Llama8B(), 65536, 4);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(p.status().message(), "engine.gpu_memory_budget")) << p.status();
}

TEST(MemoryPlannerTest, AutoDeviceUpdateKeepsTheWeightWindow) {
  // 8B bs64 under 17 GiB, streamed: the candidates' staging (2.49 GiB) would leave one weight
  // slot against four without it, so auto plans none: the plan is the one without staging.
  const Shape s = Llama8B();
  EngineSpec none;
  none.device_update_layers = 0;
  auto q = Plan(s, 65536, 17, none, /*moments_8bit=*/true, /*grad_accumulators=*/false, /*direct_steps=*/true);
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_GE(q->window_slots, kAutoMinSlots);
  EngineSpec e;
  e.device_update_layers = -1;
  auto p = Plan(s, 65536, 17, e, true, false, true);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->device_update_layers, 0) << p->summary;
  EXPECT_FALSE(p->device_update_auto);
  EXPECT_EQ(p->window_slots, q->window_slots);
  EXPECT_EQ(p->need.device, q->need.device);
  // A fixed count is the user's choice: planned with whatever slots remain.
  EngineSpec fixed;
  fixed.device_update_layers = 8;
  auto f = Plan(s, 65536, 17, fixed, true, false, true);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->device_update_layers, 8);
  EXPECT_LT(f->window_slots, kAutoMinSlots);
  // Where only the plan with the staging fits (8B bs16 @17 GiB with window_slots 3: without
  // it the inputs stay on the device and overflow; the staging sends them to the host), auto
  // is that plan.
  EngineSpec three = none;
  three.window_slots = 3;
  EXPECT_FALSE(Plan(Llama8B(), 16384, 17, three, true, false, true).ok());
  three.device_update_layers = -1;
  auto w = Plan(Llama8B(), 16384, 17, three, true, false, true);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_GT(w->device_update_layers, 0);
  EXPECT_EQ(w->window_slots, 3);
}

}  // namespace
}  // namespace sfd
