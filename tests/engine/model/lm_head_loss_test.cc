// The LM head unit (final RMSNorm, LM head, token cross-entropy in chunks) against autograd
// through full logits and at::cross_entropy: CE sum, the gradient of the head's input, and the
// fp32 LM-head and norm weight gradients it accumulates (twice, to check accumulation). Chunk
// sizes that do not divide the token count and ignored targets (-100). On CUDA builds with a
// device this exercises the fused path (in-place CE kernel, fp32-accumulating GEMM), in bf16;
// on CPU the ATen composition, in fp32.
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "engine/model/decoder_layer.h"
#include "engine/model/fused_ops.h"
#include "engine/model/lm_head_loss.h"
#include "gtest/gtest.h"

namespace sfd {
namespace {

double RelDiff(const at::Tensor& got, const at::Tensor& want) {
  at::Tensor g = got.to(at::kCPU, at::kDouble), w = want.to(at::kCPU, at::kDouble);
  EXPECT_EQ(g.sizes(), w.sizes());
  return (g - w).abs().max().item<double>() / std::max(w.abs().max().item<double>(), 1e-12);
}

struct HeadCase {
  at::Device dev = at::kCPU;
  at::ScalarType dt = at::kFloat;
  ModelConfig config;
  at::Tensor norm_w, lm_w, hidden, targets;
};

HeadCase MakeCase() {
  HeadCase h;
#if SFD_WITH_CUDA
  if (at::hasCUDA()) {
    h.dev = at::Device(at::kCUDA, 0);
    h.dt = at::kBFloat16;
  }
#endif
  at::manual_seed(5);
  h.config.hidden_size = 64;
  h.config.vocab_size = 517;
  h.config.rms_norm_eps = 1e-5;
  const int64_t t = 203;
  h.norm_w = (1.0 + 0.1 * at::randn({64})).to(h.dev, h.dt);
  h.lm_w = (0.2 * at::randn({517, 64})).to(h.dev, h.dt);
  h.hidden = at::randn({t, 64}).to(h.dev, h.dt);
  at::Tensor tg = at::randint(0, 517, {t}, at::kLong);
  for (int64_t i = 0; i < t; i += 9) tg[i] = -100;
  h.targets = tg.to(h.dev);
  return h;
}

TEST(LmHeadLossTest, MatchesAutogradThroughFullLogits) {
  HeadCase h = MakeCase();
  const double scale = 1.0 / 180;
  // reference: fp32 autograd over the same stored values
  torch::autograd::AutoGradMode enable(true);
  at::Tensor x = h.hidden.to(at::kFloat).clone().requires_grad_(true);  // clone: .to() of fp32 aliases
  at::Tensor nw = h.norm_w.to(at::kFloat).clone().requires_grad_(true);
  at::Tensor lw = h.lm_w.to(at::kFloat).clone().requires_grad_(true);
  at::Tensor hn = RmsNorm(x, nw, h.config.rms_norm_eps);
  at::Tensor logits = at::mm(hn, lw.t());
  at::Tensor ce = at::cross_entropy_loss(logits, h.targets, {}, at::Reduction::Sum, -100);
  std::vector<at::Tensor> g = torch::autograd::grad({ce * scale}, {x, nw, lw});

  for (int64_t chunk : {64, 1000}) {
    HeadInputs in;
    in.config = &h.config;
    in.norm_weight = h.norm_w;
    in.lm_weight = h.lm_w;
    in.targets = h.targets;
    in.chunk_tokens = chunk;
    at::Tensor lm_grad = at::zeros({517, 64}, h.lm_w.options().dtype(at::kFloat));
    at::Tensor norm_grad = at::zeros({64}, h.norm_w.options().dtype(at::kFloat));
    HeadOutputs out = HeadForwardBackward(in, h.hidden, scale, lm_grad, norm_grad);
    HeadOutputs again = HeadForwardBackward(in, h.hidden, scale, lm_grad, norm_grad);
    HeadOutputs eval = HeadForward(in, h.hidden);
    const double tol = h.dt == at::kFloat ? 1e-4 : 3e-2;
    SCOPED_TRACE(::testing::Message() << "chunk " << chunk << " on " << h.dev << " "
                                      << c10::toString(h.dt));
    // the CE sums only see bf16 rounding of the normed hidden and the logits
    EXPECT_LT(std::abs(out.ce_sum.item<double>() - ce.item<double>()) / ce.item<double>(),
              h.dt == at::kFloat ? 1e-5 : 5e-3);
    EXPECT_DOUBLE_EQ(out.ce_sum.item<double>(), again.ce_sum.item<double>());
    EXPECT_NEAR(eval.ce_sum.item<double>(), out.ce_sum.item<double>(),
                1e-6 * out.ce_sum.item<double>());
    EXPECT_FALSE(eval.dhidden.defined());
    EXPECT_EQ(out.dhidden.scalar_type(), h.dt);
    EXPECT_LT(RelDiff(out.dhidden, g[0]), tol);
    EXPECT_LT(RelDiff(lm_grad, 2 * g[2]), tol);
    EXPECT_LT(RelDiff(norm_grad, 2 * g[1]), tol);
  }
}

}  // namespace
}  // namespace sfd
