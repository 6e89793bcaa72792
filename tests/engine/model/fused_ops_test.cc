// The fused ops of engine/model/fused_ops.h against the ATen compositions they replace:
// forward outputs and every input/weight gradient, fp32 and bf16, odd sizes (rows not a
// multiple of a block, widths that rule out vector accesses), head_dim 64 and 128, GQA, RoPE
// input as a strided split of one qkv tensor. CUDA builds run them on the GPU (skipped without
// a device); CPU builds run the same wrappers over the host definitions of the launchers.
// The last tests run whole decoder layers with the kernels on and off.
#include <cmath>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "engine/model/decoder_layer.h"
#include "engine/model/fused_ops.h"
#include "engine/model/model_layout.h"
#include "engine/model/rope.h"
#include "gtest/gtest.h"

namespace sfd {
namespace {

using torch::autograd::grad;

// The device the fused ops run on in this build, or nullopt (test skipped).
std::optional<at::Device> FusedDevice() {
#if SFD_WITH_CUDA
  if (!at::hasCUDA()) return std::nullopt;
  return at::Device(at::kCUDA, 0);
#else
  return at::Device(at::kCPU);
#endif
}

#define SFD_FUSED_DEVICE_OR_SKIP(var)                                                  \
  std::optional<at::Device> var##_opt = FusedDevice();                                 \
  if (!var##_opt) GTEST_SKIP() << "CUDA build without a visible CUDA device: the fused " \
                                  "kernels are tested on the GPU machine";             \
  const at::Device var = *var##_opt

// max |a - b| relative to max |want| (fp32).
double RelDiff(const at::Tensor& got, const at::Tensor& want) {
  at::Tensor g = got.to(at::kCPU, at::kFloat), w = want.to(at::kCPU, at::kFloat);
  EXPECT_EQ(g.sizes(), w.sizes());
  const double scale = std::max(w.abs().max().item<double>(), 1e-12);
  return (g - w).abs().max().item<double>() / scale;
}

double Tol(at::ScalarType dt) { return dt == at::kFloat ? 2e-5 : 2e-2; }

at::Tensor Leaf(const at::Tensor& t) { return t.detach().clone().requires_grad_(true); }

at::Tensor RefRmsNorm(const at::Tensor& x, const at::Tensor& w, double eps) {
  at::Tensor h = x.to(at::kFloat);
  h = h * at::rsqrt(h.pow(2).mean(-1, true) + eps);
  return w * h.to(x.scalar_type());
}

class FusedOpsTest : public ::testing::TestWithParam<at::ScalarType> {
 protected:
  void SetUp() override {
    torch::autograd::AutoGradMode enable(true);
    at::manual_seed(11);
  }
};

void CheckRmsNorm(const at::Device dev, at::ScalarType dt, const at::Tensor& x_in, int64_t cols) {
  torch::autograd::AutoGradMode enable(true);
  const double eps = 1e-5;
  at::Tensor w0 = (1.0 + 0.2 * at::randn({cols})).to(dev, dt);
  at::Tensor g = at::randn(x_in.sizes()).to(dev, dt);
  at::Tensor xr = Leaf(x_in), wr = Leaf(w0);
  at::Tensor ref = RefRmsNorm(xr, wr, eps);
  std::vector<at::Tensor> rg = grad({ref}, {xr, wr}, {g});
  at::Tensor xf = Leaf(x_in), wf = Leaf(w0);
  at::Tensor out = FusedRmsNorm(xf, wf, eps);
  std::vector<at::Tensor> fg = grad({out}, {xf, wf}, {g});
  const std::string what = std::string(c10::toString(dt)) + " x " + c10::str(x_in.sizes());
  EXPECT_EQ(out.scalar_type(), dt) << what;
  EXPECT_LT(RelDiff(out, ref), Tol(dt)) << what;
  EXPECT_LT(RelDiff(fg[0], rg[0]), Tol(dt)) << what << " dx";
  EXPECT_LT(RelDiff(fg[1], rg[1]), Tol(dt)) << what << " dweight";
}

TEST_P(FusedOpsTest, RmsNormMatchesAten) {
  SFD_FUSED_DEVICE_OR_SKIP(dev);
  const at::ScalarType dt = GetParam();
  for (int64_t cols : {96, 130, 3072}) {  // 130: no 16-byte vectors
    CheckRmsNorm(dev, dt, (2.0 * at::randn({37, cols})).to(dev, dt), cols);
  }
  // q-norm input: [B,S,H,hd] view of a wider projection output (not contiguous).
  at::Tensor wide = at::randn({2, 5, 3 * 128 + 64}).to(dev, dt);
  CheckRmsNorm(dev, dt, wide.narrow(-1, 0, 3 * 128).view({2, 5, 3, 128}), 128);
  // More rows than one dweight chunk holds.
  CheckRmsNorm(dev, dt, at::randn({3, 700, 64}).to(dev, dt), 64);
}

TEST_P(FusedOpsTest, SwiGluMatchesAten) {
  SFD_FUSED_DEVICE_OR_SKIP(dev);
  torch::autograd::AutoGradMode enable(true);
  const at::ScalarType dt = GetParam();
  for (int64_t inter : {100, 128}) {
    const std::string what = std::string(c10::toString(dt)) + " inter " + std::to_string(inter);
    at::Tensor gu0 = (2.0 * at::randn({3, 37, 2 * inter})).to(dev, dt);
    at::Tensor g = at::randn({3, 37, inter}).to(dev, dt);
    at::Tensor gur = Leaf(gu0);
    std::vector<at::Tensor> parts = gur.chunk(2, -1);
    at::Tensor ref = at::silu(parts[0]) * parts[1];
    at::Tensor rgrad = grad({ref}, {gur}, {g})[0];

    at::Tensor guf = Leaf(gu0);
    at::Tensor out = FusedSwiGlu(guf);
    EXPECT_LT(RelDiff(out, ref), Tol(dt)) << what;
    EXPECT_LT(RelDiff(grad({out}, {guf}, {g})[0], rgrad), Tol(dt)) << what << " d(gate_up)";

    // Separate gate and up tensors.
    at::Tensor gate = Leaf(gu0.narrow(-1, 0, inter)), up = Leaf(gu0.narrow(-1, inter, inter));
    at::Tensor out2 = FusedSwiGlu(gate, up);
    std::vector<at::Tensor> g2 = grad({out2}, {gate, up}, {g});
    EXPECT_LT(RelDiff(out2, ref), Tol(dt)) << what;
    EXPECT_LT(RelDiff(g2[0], rgrad.narrow(-1, 0, inter)), Tol(dt)) << what << " dgate";
    EXPECT_LT(RelDiff(g2[1], rgrad.narrow(-1, inter, inter)), Tol(dt)) << what << " dup";
  }
}

TEST_P(FusedOpsTest, RopeOnStridedQkvMatchesAten) {
  SFD_FUSED_DEVICE_OR_SKIP(dev);
  torch::autograd::AutoGradMode enable(true);
  const at::ScalarType dt = GetParam();
  const int64_t b = 2, s = 37, h = 6, hkv = 2;
  for (int64_t hd : {64, 128}) {
    const std::string what = std::string(c10::toString(dt)) + " head_dim " + std::to_string(hd);
    ModelConfig c;
    c.head_dim = hd;
    c.rope_theta = 500000.0;
    // Row 1 holds two packed documents: positions restart at 20.
    at::Tensor pos = at::arange(s, at::kLong).unsqueeze(0).repeat({b, 1});
    pos[1].narrow(0, 20, s - 20).copy_(at::arange(s - 20, at::kLong));
    RopeTables rope = MakeRopeTables(RopeInverseFrequencies(c), pos.to(dev), dt);
    at::Tensor qkv0 = at::randn({b, s, (h + 2 * hkv) * hd}).to(dev, dt);
    at::Tensor gq = at::randn({b, h, s, hd}).to(dev, dt), gk = at::randn({b, hkv, s, hd}).to(dev, dt);

    auto run = [&](bool fused, at::Tensor& q_out, at::Tensor& k_out) {
      at::Tensor qkv = Leaf(qkv0);
      std::vector<at::Tensor> p = at::split_with_sizes(qkv, {h * hd, hkv * hd, hkv * hd}, -1);
      at::Tensor q = p[0].view({b, s, h, hd}), k = p[1].view({b, s, hkv, hd});
      q_out = fused ? FusedRope(q, rope) : ApplyRope(q.transpose(1, 2), rope);
      k_out = fused ? FusedRope(k, rope) : ApplyRope(k.transpose(1, 2), rope);
      return grad({q_out, k_out}, {qkv}, {gq, gk})[0];
    };
    at::Tensor rq, rk, fq, fk;
    at::Tensor rgrad = run(false, rq, rk), fgrad = run(true, fq, fk);
    EXPECT_TRUE(fq.is_contiguous() && fk.is_contiguous()) << what;
    EXPECT_EQ(fq.sizes(), (std::vector<int64_t>{b, h, s, hd})) << what;
    EXPECT_LT(RelDiff(fq, rq), Tol(dt)) << what << " q";
    EXPECT_LT(RelDiff(fk, rk), Tol(dt)) << what << " k";
    EXPECT_LT(RelDiff(fgrad, rgrad), Tol(dt)) << what << " d(qkv)";
  }
}

// Cross-entropy in place: per-row CE and (softmax - onehot) * scale against fp32 ATen math over
// the same stored logits; ignored rows (-100), a target at the last column, a vocabulary that
// rules out vector accesses, and evaluation (scale 0) leaving the logits untouched.
TEST_P(FusedOpsTest, CrossEntropyMatchesAten) {
  SFD_FUSED_DEVICE_OR_SKIP(dev);
  const at::ScalarType dt = GetParam();
  for (int64_t vocab : {1000, 1003}) {
    const int64_t rows = 37;
    at::Tensor logits0 = (3.0 * at::randn({rows, vocab})).to(dev, dt);
    at::Tensor targets = at::randint(0, vocab, {rows}, at::kLong);
    targets[3] = -100;
    targets[10] = -100;
    targets[5] = vocab - 1;
    targets = targets.to(dev);
    // reference, fp32 from the stored values
    at::Tensor x = logits0.to(at::kFloat);
    at::Tensor valid = targets.ne(-100);
    at::Tensor tgt = targets.clamp_min(0);
    at::Tensor lse = at::logsumexp(x, -1);
    at::Tensor ce_ref = (lse - x.gather(1, tgt.unsqueeze(1)).squeeze(1)) * valid.to(at::kFloat);
    const double scale = 0.125;
    at::Tensor grad_ref = (at::softmax(x, -1) - at::one_hot(tgt, vocab).to(at::kFloat)) *
                          (valid.to(at::kFloat) * scale).unsqueeze(1);
    const std::string what = std::string(c10::toString(dt)) + " vocab " + std::to_string(vocab);

    at::Tensor eval = logits0.clone();
    at::Tensor ce_eval = FusedCrossEntropy(eval, targets, 0.0);
    EXPECT_TRUE(at::equal(eval, logits0)) << what << ": evaluation wrote the logits";
    EXPECT_LT(RelDiff(ce_eval, ce_ref), 1e-5) << what;

    at::Tensor train = logits0.clone();
    at::Tensor ce = FusedCrossEntropy(train, targets, scale);
    EXPECT_EQ(ce.scalar_type(), at::kFloat);
    EXPECT_LT(RelDiff(ce, ce_ref), 1e-5) << what;
    EXPECT_LT(RelDiff(train, grad_ref), Tol(dt)) << what << " gradient";
    EXPECT_EQ(train[3].abs().max().item<double>(), 0.0) << what << ": ignored row not zeroed";
    // each valid gradient row sums to ~0 (softmax sums to 1, minus the one-hot)
    EXPECT_LT(train.to(at::kFloat).sum(1).abs().max().item<double>(), 1e-2 * scale) << what;
  }
}

// A target outside the vocabulary poisons its own row (NaN loss and gradient) instead of
// reading out of bounds; the other rows are unaffected.
TEST_P(FusedOpsTest, CrossEntropyTargetOutOfRangeIsNanForItsRowOnly) {
  SFD_FUSED_DEVICE_OR_SKIP(dev);
  const int64_t vocab = 64;
  at::Tensor logits0 = at::randn({3, vocab}).to(dev, GetParam());
  at::Tensor targets = at::tensor({int64_t{5}, vocab, int64_t{7}}, at::kLong).to(dev);
  at::Tensor logits = logits0.clone();
  at::Tensor ce = FusedCrossEntropy(logits, targets, 1.0).cpu();
  EXPECT_TRUE(std::isnan(ce[1].item<float>()));
  EXPECT_TRUE(at::isnan(logits[1].to(at::kFloat)).all().item<bool>());
  EXPECT_TRUE(std::isfinite(ce[0].item<float>()) && std::isfinite(ce[2].item<float>()));
  EXPECT_FALSE(at::isnan(logits[0].to(at::kFloat)).any().item<bool>());
}

TEST_P(FusedOpsTest, CrossEntropyRejectsBadShapes) {
  SFD_FUSED_DEVICE_OR_SKIP(dev);
  at::Tensor logits = at::zeros({4, 10}, at::TensorOptions().device(dev).dtype(GetParam()));
  at::Tensor short_targets = at::zeros({3}, at::TensorOptions().device(dev).dtype(at::kLong));
  EXPECT_THROW(FusedCrossEntropy(logits, short_targets, 1.0), c10::Error);
  at::Tensor int_targets = at::zeros({4}, at::TensorOptions().device(dev).dtype(at::kInt));
  EXPECT_THROW(FusedCrossEntropy(logits, int_targets, 1.0), c10::Error);
}

// c += a^T b into an fp32 accumulator (the LM-head weight gradient), twice, against fp64 math
// over the same stored inputs.
TEST_P(FusedOpsTest, AddMatmulTransposedAAccumulatesInFp32) {
  SFD_FUSED_DEVICE_OR_SKIP(dev);
  const at::ScalarType dt = GetParam();
  const int64_t n = 77, m = 129, k = 64;
  at::Tensor a = at::randn({n, m}).to(dev, dt), b = at::randn({n, k}).to(dev, dt);
  at::Tensor c0 = at::randn({m, k}).to(dev);
  at::Tensor c = c0.clone();
  AddMatmulTransposedA(c, a, b);
  AddMatmulTransposedA(c, a, b);
  at::Tensor ref = c0.to(at::kDouble) +
                   2 * at::mm(a.to(at::kDouble).t(), b.to(at::kDouble));
  EXPECT_EQ(c.scalar_type(), at::kFloat);
  // CUDA accumulates in fp32 inside the GEMM; the host path rounds the product to dt first
  const double tol = (dt == at::kFloat || c.is_cuda()) ? 1e-5 : Tol(dt);
  EXPECT_LT(RelDiff(c, ref), tol);
  at::Tensor wrong = at::zeros({m + 1, k}, at::TensorOptions().device(dev).dtype(at::kFloat));
  EXPECT_THROW(AddMatmulTransposedA(wrong, a, b), c10::Error);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, FusedOpsTest, ::testing::Values(at::kFloat, at::kBFloat16),
                         [](const ::testing::TestParamInfo<at::ScalarType>& i) {
                           return std::string(i.param == at::kFloat ? "fp32" : "bf16");
                         });

TEST(FusedOpsDispatchTest, CpuTensorsKeepTheAtenPath) {
  EXPECT_FALSE(FusedKernelsApply(at::zeros({4}, at::kBFloat16)));
  EXPECT_FALSE(FusedKernelsApply(at::zeros({4}, at::kFloat)));
}

// Whole decoder layers with the fused kernels on vs off (fused GEMMs on in both): output,
// input gradient and every parameter gradient. Only CUDA dispatches to the kernels.
void ExpectLayerKernelsMatch(ModelConfig c, at::ScalarType dt) {
#if !SFD_WITH_CUDA
  GTEST_SKIP() << "built without CUDA: the engine only dispatches to the fused kernels on CUDA";
#else
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const at::Device dev(at::kCUDA, 0);
  const FusedOpsOptions saved = GetFusedOps();
  at::manual_seed(3);
  UnitLayout layout = ModelLayout(c).layout(1);
  at::Tensor flat = at::zeros({layout.numel()});
  for (const ParamEntry& e : layout.params()) {
    const bool norm = e.shape.size() == 1 && e.name.find("norm") != std::string::npos;
    flat.narrow(0, e.offset, e.numel).copy_(norm ? 1.0 + 0.1 * at::randn({e.numel})
                                                 : 0.05 * at::randn({e.numel}));
  }
  flat = flat.to(dev, dt);
  const int64_t b = 2, s = 67;
  at::Tensor x = at::randn({b, s, c.hidden_size}).to(dev, dt);
  at::Tensor dy = at::randn({b, s, c.hidden_size}).to(dev, dt);
  AttentionInputs attn;
  attn.rope = MakeRopeTables(RopeInverseFrequencies(c),
                             at::arange(s, at::kLong).unsqueeze(0).repeat({b, 1}).to(dev), dt);
  at::Tensor y[2], dx[2], grads[2];
  for (int k = 0; k < 2; ++k) {
    SetFusedOps({/*fused_gemm=*/true, /*fused_kernels=*/k == 1});
    y[k] = DecoderLayerForward(c, LayerWeights::View(flat, layout), x, attn);
    grads[k] = at::zeros_like(flat);
    dx[k] = DecoderLayerBackward(c, layout, flat, x, dy, attn, grads[k]);
  }
  SetFusedOps(saved);
  const double tol = dt == at::kFloat ? 1e-4 : 3e-2;
  EXPECT_LT(RelDiff(y[1], y[0]), tol);
  EXPECT_LT(RelDiff(dx[1], dx[0]), tol);
  for (const ParamEntry& e : layout.params()) {
    EXPECT_LT(RelDiff(grads[1].narrow(0, e.offset, e.numel), grads[0].narrow(0, e.offset, e.numel)),
              tol)
        << e.name;
  }
#endif
}

ModelConfig LayerConfig(int64_t d, int64_t heads, int64_t kv, int64_t hd, int64_t inter) {
  ModelConfig c;
  c.hidden_size = d;
  c.intermediate_size = inter;
  c.num_layers = 1;
  c.num_heads = heads;
  c.num_kv_heads = kv;
  c.head_dim = hd;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000.0;
  return c;
}

TEST(FusedLayerTest, LlamaGqaBf16) { ExpectLayerKernelsMatch(LayerConfig(512, 8, 2, 64, 1376), at::kBFloat16); }
TEST(FusedLayerTest, LlamaGqaFp32) { ExpectLayerKernelsMatch(LayerConfig(512, 4, 2, 128, 1376), at::kFloat); }
TEST(FusedLayerTest, Qwen3QkNormBf16) {
  ModelConfig c = LayerConfig(256, 4, 2, 128, 704);
  c.qk_norm = true;
  ExpectLayerKernelsMatch(c, at::kBFloat16);
}
TEST(FusedLayerTest, Qwen2BiasedBf16) {  // separate GEMMs: FusedSwiGlu(gate, up)
  ModelConfig c = LayerConfig(256, 4, 2, 64, 704);
  c.attention_bias = true;
  c.mlp_bias = true;
  ExpectLayerKernelsMatch(c, at::kBFloat16);
}

}  // namespace
}  // namespace sfd
