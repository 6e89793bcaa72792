// The CUDA 8-bit AdamW (runtime/device_adamw_8bit.h) against the CPU kernel on the same inputs:
// the new weights, bf16 weights, codes and scales are equal bit for bit, for fp32 and bf16
// gradients, beta1 below and above 0.5 (both lerp forms), a slice starting inside a unit
// (index0 > 0) and a last block shorter than 64, over several steps (so decoding non-trivial
// codes is covered too). Skipped without a CUDA device
// (it runs on the GPU machine).
#include "engine/runtime/device_adamw_8bit.h"

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <ATen/ATen.h>

#include "engine/optim/adamw_8bit.h"
#include "engine/optim/cpu_adamw.h"
#include "engine/runtime/backend.h"
#include "gtest/gtest.h"

#if SFD_WITH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

namespace sfd {
namespace {

struct Q8Buffers {
  at::Tensor p, m, ms, v, vs, out;
  Q8Moments q() {
    return {m.data_ptr<uint8_t>(), ms.data_ptr<float>(), v.data_ptr<uint8_t>(), vs.data_ptr<float>()};
  }
  Q8Buffers To(at::Device d) const {
    return {p.to(d), m.to(d), ms.to(d), v.to(d), vs.to(d), out.to(d)};
  }
};

bool SameBytes(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.cpu().contiguous(), y = b.cpu().contiguous();
  return x.nbytes() == y.nbytes() && std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) == 0;
}

TEST(DeviceAdamW8bitTest, CudaKernelGivesTheCpuKernelsBits) {
  if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device (tested on the GPU machine)";
#if SFD_WITH_CUDA
  const int64_t index0 = 3 * kQ8Block, n = 50 * kQ8Block + 37;
  for (int variant = 0; variant < 3; ++variant) {
    // fp32 grads; bf16 grads; bf16 grads with beta1 0.4 (torch's lerp from the end).
    const bool bf16_grad = variant > 0;
    SCOPED_TRACE(::testing::Message() << "variant " << variant);
    at::manual_seed(7);
    Q8Buffers host{at::randn({n}), at::zeros({n}, at::kByte), at::zeros({Q8Blocks(n)}),
                   at::zeros({n}, at::kByte), at::zeros({Q8Blocks(n)}), at::zeros({n}, at::kBFloat16)};
    Q8Buffers dev = host.To(at::Device(at::kCUDA, 0));
    AdamWStep hp;
    hp.lr = 1e-2f;
    hp.weight_decay = 0.1f;
    if (variant == 2) hp.beta1 = 0.4f;
    for (int step = 1; step <= 4; ++step) {
      hp.step = step;
      hp.seed = Q8Seed(step, 5);
      hp.grad_scale = step == 3 ? 0.25f : 1.0f;
      // Gradients over many binades, some exactly zero (the linear code range).
      at::Tensor g = at::randn({n}) * at::exp(at::randn({n}) * 4);
      g = at::where(at::rand({n}) < 0.05, at::zeros_like(g), g);
      if (bf16_grad) g = g.to(at::kBFloat16);
      const at::Tensor gd = g.cuda();
      auto* out_h = static_cast<uint16_t*>(host.out.data_ptr());
      auto* out_d = static_cast<uint16_t*>(dev.out.data_ptr());
      if (bf16_grad) {
        AdamW8bitKernelBf16Grad(DetectSimdLevel(), hp, index0, host.p.data_ptr<float>(), host.q(),
                                static_cast<const uint16_t*>(g.data_ptr()), out_h, n);
      } else {
        AdamW8bitKernel(DetectSimdLevel(), hp, index0, host.p.data_ptr<float>(), host.q(),
                        g.data_ptr<float>(), out_h, n);
      }
      const int err = DeviceAdamW8bit(hp, index0, dev.p.data_ptr<float>(), dev.q(), gd.data_ptr(),
                                      bf16_grad, out_d, n, c10::cuda::getCurrentCUDAStream().stream());
      ASSERT_EQ(err, 0) << DeviceAdamW8bitErrorString(err);
      EXPECT_TRUE(SameBytes(host.p, dev.p)) << "weights, step " << step;
      EXPECT_TRUE(SameBytes(host.out, dev.out)) << "bf16 weights, step " << step;
      EXPECT_TRUE(SameBytes(host.m, dev.m)) << "m codes, step " << step;
      EXPECT_TRUE(SameBytes(host.v, dev.v)) << "v codes, step " << step;
      EXPECT_TRUE(SameBytes(host.ms, dev.ms)) << "m scales, step " << step;
      EXPECT_TRUE(SameBytes(host.vs, dev.vs)) << "v scales, step " << step;
    }
    EXPECT_GT(host.m.to(at::kInt).sum().item<int64_t>(), 0) << "codes were never written";
  }
  const int bad = DeviceAdamW8bit(AdamWStep{}, 1, nullptr, Q8Moments{}, nullptr, false, nullptr, 64, nullptr);
  EXPECT_NE(bad, 0) << "a slice not starting on a block boundary is refused";
#endif
}

}  // namespace
}  // namespace sfd
