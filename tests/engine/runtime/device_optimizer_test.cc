// DeviceAdamW8bitStep (runtime/device_optimizer.h) on the CPU backend's tensors: a unit larger
// than one update chunk (2^25 elements), so the later chunks' offsets into the weights, codes
// and scales are exercised, gives the bits of one CPU-kernel call over the whole unit, for bf16
// gradients written over in place (the sliding-layer form) and for fp32 gradients into fp32
// weights (cast from the master).
#include "engine/runtime/device_optimizer.h"

#include <cstdint>
#include <cstring>

#include <ATen/ATen.h>

#include "engine/optim/adamw_8bit.h"
#include "engine/optim/cpu_adamw.h"
#include "gtest/gtest.h"

namespace sfd {
namespace {

bool SameBytes(const at::Tensor& a, const at::Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0;
}

TEST(DeviceAdamW8bitStepTest, UnitsLargerThanAChunkGiveOneKernelCallsBits) {
  const int64_t n = (int64_t{1} << 25) + 3 * 64 + 17;
  const int unit = 3;
  for (bool bf16 : {true, false}) {
    SCOPED_TRACE(bf16 ? "bf16 grads, in place" : "fp32 grads, fp32 weights");
    at::manual_seed(11);
    const at::Tensor p0 = at::randn({n});
    at::Tensor m = at::randint(0, 256, {n}, at::kByte), v = at::randint(1, 256, {n}, at::kByte);
    at::Tensor ms = at::rand({Q8Blocks(n)}) * 1e-2, vs = at::rand({Q8Blocks(n)}) * 1e-3;
    at::Tensor g = at::randn({n}) * 1e-2;
    if (bf16) g = g.to(at::kBFloat16);
    AdamWStep hp;
    hp.lr = 1e-3f;
    hp.weight_decay = 0.01f;
    hp.step = 7;
    // Reference: one kernel call over the whole unit.
    at::Tensor p_ref = p0.clone(), m_ref = m.clone(), v_ref = v.clone(), ms_ref = ms.clone(),
               vs_ref = vs.clone();
    at::Tensor out_ref = at::empty({n}, at::kBFloat16);
    AdamWStep hp8 = hp;
    hp8.seed = Q8Seed(hp.step, unit);
    const Q8Moments q_ref{m_ref.data_ptr<uint8_t>(), ms_ref.data_ptr<float>(), v_ref.data_ptr<uint8_t>(),
                          vs_ref.data_ptr<float>()};
    if (bf16) {
      AdamW8bitKernelBf16Grad(DetectSimdLevel(), hp8, 0, p_ref.data_ptr<float>(), q_ref,
                              static_cast<const uint16_t*>(g.data_ptr()),
                              static_cast<uint16_t*>(out_ref.data_ptr()), n);
    } else {
      AdamW8bitKernel(DetectSimdLevel(), hp8, 0, p_ref.data_ptr<float>(), q_ref, g.data_ptr<float>(),
                      nullptr, n);
    }
    // Chunked through DeviceAdamW8bitStep.
    at::Tensor p = p0.clone();
    at::Tensor weights = bf16 ? g.clone() : at::empty({n});
    DeviceAdamW8bitStep(hp, unit, p, m, ms, v, vs, bf16 ? weights : g, weights);
    EXPECT_TRUE(SameBytes(p, p_ref));
    EXPECT_TRUE(SameBytes(m, m_ref));
    EXPECT_TRUE(SameBytes(v, v_ref));
    EXPECT_TRUE(SameBytes(ms, ms_ref));
    EXPECT_TRUE(SameBytes(vs, vs_ref));
    EXPECT_TRUE(bf16 ? SameBytes(weights, out_ref) : SameBytes(weights, p_ref));
  }
}

}  // namespace
}  // namespace sfd
