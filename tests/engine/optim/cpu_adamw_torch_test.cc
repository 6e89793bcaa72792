// Tests the AdamW kernels of engine/optim/cpu_adamw.h against libtorch's own
// torch::optim::AdamW: 5 steps, non-default lr/betas/eps, weight decay, grad_scale != 1
// (torch gets the pre-scaled grads), sizes 1, 7 and 1'000'003, at every SIMD level this CPU has.
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "engine/common/half.h"
#include "engine/optim/cpu_adamw.h"
#include "gtest/gtest.h"
#include "tests/engine/optim/simd_levels.h"

namespace sfd {
namespace {

// |ours - ref| <= 1e-6 * |ref| + atol. atol covers values that are small only because their
// inputs cancelled: exp_avg mixes beta1 * m and (1 - beta1) * g of opposite signs, so its
// rounding is relative to max |g|, not to |m|.
void ExpectClose(const char* what, const float* ours, const float* ref, int64_t n, double atol) {
  const double rtol = 1e-6;
  int64_t bad = 0;
  double worst = 0;
  int64_t worst_i = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double diff = std::fabs(double(ours[i]) - double(ref[i]));
    const double excess = diff / (rtol * std::fabs(double(ref[i])) + atol + 1e-30);
    if (excess > worst) {
      worst = excess;
      worst_i = i;
    }
    if (excess > 1.0) ++bad;
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << n << " elements off; worst [" << worst_i
                    << "] ours=" << ours[worst_i] << " torch=" << ref[worst_i];
}

struct Hyper {
  float lr = 2e-3f, beta1 = 0.8f, beta2 = 0.95f, eps = 1e-6f, wd = 0.1f, grad_scale = 0.37f;
};

void RunAgainstTorch(SimdLevel level, int64_t n, bool bf16_grads, const Hyper& h) {
  SCOPED_TRACE(testing::Message() << "level=" << SimdLevelName(level) << " n=" << n
                                  << " bf16_grads=" << bf16_grads << " beta1=" << h.beta1);
  std::mt19937 rng(1234 + n);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> param(n), m(n, 0.f), v(n, 0.f);
  // LLM-like weight scale: the 5 updates (~lr each) are then large against ulp(param), so the
  // param comparison checks the update itself to ~1e-6, not just the unchanged bulk.
  for (auto& x : param) x = 0.02f * normal(rng);
  std::vector<uint16_t> param_bf16(n);

  torch::Tensor tp = torch::from_blob(param.data(), {n}, torch::kFloat32).clone();
  torch::optim::AdamW opt({tp}, torch::optim::AdamWOptions(h.lr)
                                    .betas(std::make_tuple(double{h.beta1}, double{h.beta2}))
                                    .eps(h.eps)
                                    .weight_decay(h.wd));

  std::vector<float> grad(n), scaled(n);
  double max_scaled_grad = 0;
  std::vector<uint16_t> grad_bf16(n);
  for (int step = 1; step <= 5; ++step) {
    const float magnitude = step == 3 ? 1e-4f : 1.0f;  // one step of tiny grads (eps matters)
    for (int64_t i = 0; i < n; ++i) {
      float g = normal(rng) * magnitude;
      if (bf16_grads) {
        grad_bf16[i] = FloatToBf16(g);
        g = Bf16ToFloat(grad_bf16[i]);
      }
      grad[i] = g;
      scaled[i] = g * h.grad_scale;  // what our kernel computes first, in fp32
      max_scaled_grad = std::max(max_scaled_grad, std::fabs(double(scaled[i])));
    }
    tp.mutable_grad() = torch::from_blob(scaled.data(), {n}, torch::kFloat32).clone();
    opt.step();

    AdamWStep hp;
    hp.lr = h.lr;
    hp.beta1 = h.beta1;
    hp.beta2 = h.beta2;
    hp.eps = h.eps;
    hp.weight_decay = h.wd;
    hp.step = step;
    hp.grad_scale = h.grad_scale;
    if (bf16_grads) {
      AdamWKernelBf16Grad(level, hp, param.data(), m.data(), v.data(), grad_bf16.data(),
                          param_bf16.data(), n);
    } else {
      AdamWKernel(level, hp, param.data(), m.data(), v.data(), grad.data(), param_bf16.data(), n);
    }
  }
  ASSERT_EQ(opt.state().size(), 1u);
  auto& state = static_cast<torch::optim::AdamWParamState&>(*opt.state().begin()->second);
  ASSERT_EQ(state.step(), 5);
  torch::Tensor tm = state.exp_avg().contiguous(), tv = state.exp_avg_sq().contiguous();
  ExpectClose("param", param.data(), tp.data_ptr<float>(), n, 1e-6 * h.lr);
  ExpectClose("exp_avg", m.data(), tm.data_ptr<float>(), n, 1e-6 * max_scaled_grad);
  ExpectClose("exp_avg_sq", v.data(), tv.data_ptr<float>(), n, 0.0);
  int64_t bf16_mismatch = 0;
  for (int64_t i = 0; i < n; ++i) bf16_mismatch += param_bf16[i] != FloatToBf16(param[i]);
  EXPECT_EQ(bf16_mismatch, 0) << "bf16 output differs from rounding the fp32 param";
}

TEST(CpuAdamWTorchTest, MatchesTorchAdamWAtEveryLevel) {
  at::set_num_threads(2);
  for (SimdLevel level : SupportedLevels()) {
    for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{1000003}}) {
      RunAgainstTorch(level, n, /*bf16_grads=*/false, Hyper{});
    }
  }
}

TEST(CpuAdamWTorchTest, Bf16GradsMatchTorchAtEveryLevel) {
  at::set_num_threads(2);
  for (SimdLevel level : SupportedLevels()) {
    for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{100003}}) {
      RunAgainstTorch(level, n, /*bf16_grads=*/true, Hyper{});
    }
  }
}

TEST(CpuAdamWTorchTest, SmallBeta1UsesTheOtherLerpBranch) {
  // 1 - beta1 >= 0.5: torch's lerp computes end - (end - self) * (1 - weight).
  Hyper h;
  h.beta1 = 0.3f;
  h.grad_scale = 1.0f;
  h.wd = 0.0f;
  for (SimdLevel level : SupportedLevels()) RunAgainstTorch(level, 1003, false, h);
}

TEST(CpuAdamWTorchTest, ThreadedUpdateMatchesTorch) {
  // The multithreaded front end through the same oracle, odd size, small chunks.
  const int64_t n = 300007;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> param(n), m(n, 0.f), v(n, 0.f), grad(n);
  for (auto& x : param) x = normal(rng);
  torch::Tensor tp = torch::from_blob(param.data(), {n}, torch::kFloat32).clone();
  torch::optim::AdamW opt({tp},
                          torch::optim::AdamWOptions(double{1e-3f}).weight_decay(double{0.01f}));
  CpuAdamW adam(3);
  adam.set_chunk_elems(1000);
  for (int step = 1; step <= 3; ++step) {
    for (auto& g : grad) g = normal(rng);
    tp.mutable_grad() = torch::from_blob(grad.data(), {n}, torch::kFloat32).clone();
    opt.step();
    AdamWStep hp;
    hp.lr = 1e-3f;
    hp.weight_decay = 0.01f;
    hp.step = step;
    adam.Update(hp, param.data(), m.data(), v.data(), grad.data(), nullptr, n);
  }
  ExpectClose("param", param.data(), tp.data_ptr<float>(), n, 1e-9);
}

}  // namespace
}  // namespace sfd
