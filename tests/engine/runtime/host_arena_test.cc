// AllocateHostUnits / HostUnitBytes (engine/runtime/host_arena.h) on a ~120M-parameter Llama
// shape: the resident memory the arenas really add (measured with /proc/self/statm) matches
// HostUnitBytes for fp32 and for 8-bit moments, the 8-bit layout saves 6 bytes per parameter
// less its scales, and the 8-bit arenas have the documented dtypes and sizes.
#include "engine/runtime/host_arena.h"

#include "engine/runtime/memory_planner.h"
#include "gtest/gtest.h"
#include "tests/engine/model/llama_shape.h"

namespace sfd {
namespace {

// ~120M parameters: 4 layers of a 1024-wide Llama, untied 32k vocabulary.
ModelConfig SmallLlama() { return testing::LlamaShape(1024, 2816, 4, 16, 8, 32000, false); }

// Resident bytes the arenas add: allocated (zeroed, so every page is touched), then measured.
int64_t ResidentGrowth(const ModelLayout& layout, Backend* backend, bool moments_8bit,
                       std::vector<HostUnit>* keep) {
  const int64_t before = ProcessRss();
  auto units = AllocateHostUnits(layout, backend, /*bf16_mirror=*/false, /*all_grads=*/false, {}, moments_8bit);
  EXPECT_TRUE(units.ok()) << units.status();
  const int64_t after = ProcessRss();
  if (units.ok()) *keep = std::move(*units);
  return after - before;
}

TEST(HostArenaTest, ResidentMemoryMatchesHostUnitBytes) {
  const ModelConfig config = SmallLlama();
  const ModelLayout layout(config);
  const int64_t params = layout.TotalParams();
  ASSERT_GT(params, 100'000'000);
  auto backend = CreateCpuBackend();
  ASSERT_TRUE(backend.ok()) << backend.status();

  std::vector<HostUnit> fp32, q8;
  const int64_t grew_fp32 = ResidentGrowth(layout, backend->get(), false, &fp32);
  const int64_t grew_q8 = ResidentGrowth(layout, backend->get(), true, &q8);
  const int64_t want_fp32 = HostUnitBytes(layout, false, false, {}, false);
  const int64_t want_q8 = HostUnitBytes(layout, false, false, {}, true);
  EXPECT_EQ(want_fp32, 12 * params);
  int64_t scales = 0;
  for (int u = 0; u < layout.num_units(); ++u) scales += 8 * Q8Blocks(layout.layout(u).numel());
  EXPECT_EQ(want_q8, 6 * params + scales);
  // The allocator's own overhead is small against ~1.4 GB / ~0.7 GB.
  EXPECT_NEAR(static_cast<double>(grew_fp32), static_cast<double>(want_fp32), 0.03 * want_fp32);
  EXPECT_NEAR(static_cast<double>(grew_q8), static_cast<double>(want_q8), 0.03 * want_q8);

  for (int u = 0; u < layout.num_units(); ++u) {
    const HostUnit& h = q8[u];
    const int64_t n = layout.layout(u).numel();
    ASSERT_TRUE(h.moments_8bit());
    EXPECT_EQ(h.m.scalar_type(), at::kByte);
    EXPECT_EQ(h.v.scalar_type(), at::kByte);
    EXPECT_EQ(h.m.numel(), n);
    EXPECT_EQ(h.m_scale.numel(), Q8Blocks(n));
    EXPECT_EQ(h.v_scale.scalar_type(), at::kFloat);
    EXPECT_FALSE(fp32[u].moments_8bit());
  }
}

}  // namespace
}  // namespace sfd
