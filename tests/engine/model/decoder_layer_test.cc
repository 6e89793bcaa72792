// Fused GEMMs of the decoder layer (one GEMM over adjacent q/k/v and gate/up weights of the
// flat buffer) against the per-projection GEMMs: same layer output, input gradient and
// parameter gradients at each parameter's offset of the flat grad buffer (fp32, CPU). The
// recompute path (DecoderLayerBackward, which stops before the down projection and writes its
// gradients by hand) is checked against the whole recorded graph (RecordLayer + BackwardLayer),
// writing and accumulating.
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "engine/model/decoder_layer.h"
#include "engine/model/fused_ops.h"
#include "engine/model/model_layout.h"
#include "engine/model/rope.h"
#include "gtest/gtest.h"

namespace sfd {
namespace {

// Restores the process-wide fused-ops switch when a test ends.
class FusedOpsScope {
 public:
  FusedOpsScope() : saved_(GetFusedOps()) {}
  ~FusedOpsScope() { SetFusedOps(saved_); }
  void Gemm(bool on) {
    FusedOpsOptions o = GetFusedOps();
    o.fused_gemm = on;
    SetFusedOps(o);
  }

 private:
  FusedOpsOptions saved_;
};

ModelConfig SmallConfig(int64_t d, int64_t heads, int64_t kv_heads, int64_t head_dim,
                        int64_t inter) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.vocab_size = 32;
  c.hidden_size = d;
  c.intermediate_size = inter;
  c.num_layers = 1;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  return c;
}

std::vector<ParamGroup::Kind> Kinds(const ModelConfig& c) {
  ModelLayout layout(c);
  std::vector<ParamGroup::Kind> kinds;
  for (const ParamGroup& g : LayerParamGroups(layout.layout(layout.layer_unit(0)), true)) {
    if (g.kind != ParamGroup::kSingle) kinds.push_back(g.kind);
  }
  return kinds;
}

TEST(LayerParamGroupsTest, FusesOnlyAdjacentWeights) {
  using K = std::vector<ParamGroup::Kind>;
  ModelConfig llama = SmallConfig(64, 4, 2, 16, 192);
  EXPECT_EQ(Kinds(llama), (K{ParamGroup::kQkv, ParamGroup::kGateUp}));
  ModelConfig qwen2 = llama;
  qwen2.attention_bias = true;  // biases between q, k and v
  EXPECT_EQ(Kinds(qwen2), (K{ParamGroup::kGateUp}));
  ModelConfig mlp_bias = llama;
  mlp_bias.mlp_bias = true;
  EXPECT_EQ(Kinds(mlp_bias), (K{ParamGroup::kQkv}));
  // k_proj of 12*24 = 288 elements is padded to 320: k and v are not back to back.
  EXPECT_EQ(Kinds(SmallConfig(24, 2, 1, 12, 128)), (K{ParamGroup::kGateUp}));

  ModelLayout layout(llama);
  const UnitLayout& l = layout.layout(layout.layer_unit(0));
  std::vector<ParamGroup> groups = LayerParamGroups(l, true);
  const ParamGroup& qkv = groups[1];
  EXPECT_EQ(qkv.offset, l.Find("self_attn.q_proj.weight")->offset);
  EXPECT_EQ(qkv.shape, (std::vector<int64_t>{64 + 2 * 32, 64}));
  EXPECT_EQ(qkv.numel, (64 + 2 * 32) * 64);
  EXPECT_EQ(LayerParamGroups(l, false).size(), l.params().size());
}

struct LayerCase {
  ModelConfig config;
  UnitLayout layout;
  at::Tensor flat, x, dy;
  AttentionInputs attn;
};

LayerCase MakeCase(const ModelConfig& c, bool packed) {
  at::manual_seed(7);
  LayerCase t{c, ModelLayout(c).layout(1), {}, {}, {}, {}};
  t.flat = at::zeros({t.layout.numel()}, at::kFloat);
  for (const ParamEntry& e : t.layout.params()) {
    at::Tensor v = t.flat.narrow(0, e.offset, e.numel);
    if (e.shape.size() == 1 && e.name.find("norm") != std::string::npos) {
      v.copy_(1.0 + 0.1 * at::randn({e.numel}));
    } else {
      v.copy_(0.15 * at::randn({e.numel}));
    }
  }
  const int64_t b = 2, s = 9;
  t.x = at::randn({b, s, c.hidden_size});
  t.dy = at::randn({b, s, c.hidden_size});
  at::Tensor pos = at::arange(s, at::kLong).unsqueeze(0).repeat({b, 1});
  at::Tensor seg = at::zeros({b, s}, at::kLong);
  if (packed) {  // row 1: two documents, positions restart at 4
    seg[1].narrow(0, 4, s - 4).fill_(1);
    pos[1].narrow(0, 4, s - 4).copy_(at::arange(s - 4, at::kLong));
  }
  t.attn.rope = MakeRopeTables(RopeInverseFrequencies(c), pos, at::kFloat);
  t.attn.keep_mask = MakeKeepMask(seg, !packed);
  return t;
}

double MaxDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

// Runs the layer with fused GEMMs on and off and compares everything.
void ExpectFusedGemmMatches(const ModelConfig& c, bool packed, bool expect_fused) {
  FusedOpsScope scope;
  LayerCase t = MakeCase(c, packed);
  const std::vector<ParamGroup> groups = LayerParamGroups(t.layout, true);
  ASSERT_EQ(groups.size() < t.layout.params().size(), expect_fused);

  struct Result {
    at::Tensor y, dx, grads, dx_graph, grads_graph, grads_recompute_twice;
  };
  auto run = [&](bool fuse) {
    scope.Gemm(fuse);
    Result r;
    LayerWeights w = LayerWeights::View(t.flat, t.layout);
    EXPECT_EQ(w.qkv_w.defined() || w.gate_up_w.defined(), fuse && expect_fused);
    r.y = DecoderLayerForward(t.config, w, t.x, t.attn);
    // Padding of the grad buffer must stay untouched: fill it with a sentinel.
    r.grads = at::full({t.layout.numel()}, 7.0, at::kFloat);
    r.dx = DecoderLayerBackward(t.config, t.layout, t.flat, t.x, t.dy, t.attn, r.grads);
    // Recorded graph, accumulating onto the first gradients: twice the gradient.
    r.grads_graph = r.grads.clone();
    LayerGraph g = RecordLayer(t.config, t.layout, t.flat, t.x, t.attn);
    EXPECT_LT(MaxDiff(g.y, r.y), 1e-6);
    r.dx_graph = BackwardLayer(g, t.dy, r.grads_graph, /*accumulate=*/true);
    // The recompute (which skips the down projection's forward) accumulating as well.
    r.grads_recompute_twice = r.grads.clone();
    DecoderLayerBackward(t.config, t.layout, t.flat, t.x, t.dy, t.attn, r.grads_recompute_twice,
                         /*accumulate=*/true);
    return r;
  };
  Result fused = run(true), plain = run(false);

  const double scale = plain.y.abs().max().item<double>();
  EXPECT_LT(MaxDiff(fused.y, plain.y), 1e-5 * scale);
  EXPECT_LT(MaxDiff(fused.dx, plain.dx), 1e-5 * plain.dx.abs().max().item<double>());
  EXPECT_LT(MaxDiff(fused.dx_graph, plain.dx), 1e-5 * plain.dx.abs().max().item<double>());
  for (const ParamEntry& e : t.layout.params()) {
    at::Tensor want = plain.grads.narrow(0, e.offset, e.numel);
    const double tol = 1e-5 * want.abs().max().item<double>() + 1e-7;
    EXPECT_LT(MaxDiff(fused.grads.narrow(0, e.offset, e.numel), want), tol) << e.name;
    at::Tensor twice = plain.grads_graph.narrow(0, e.offset, e.numel);
    EXPECT_LT(MaxDiff(fused.grads_graph.narrow(0, e.offset, e.numel), twice), 2 * tol) << e.name;
    // The gradient is not trivially zero, and the accumulation doubled it.
    EXPECT_GT(want.abs().max().item<double>(), 0.0) << e.name;
    EXPECT_LT(MaxDiff(twice, 2 * want), 2 * tol) << e.name;
    EXPECT_LT(MaxDiff(fused.grads_recompute_twice.narrow(0, e.offset, e.numel), 2 * want), 2 * tol)
        << e.name;
  }
  // Padding: every element outside the params keeps the sentinel.
  at::Tensor is_param = at::zeros({t.layout.numel()}, at::kBool);
  for (const ParamEntry& e : t.layout.params()) is_param.narrow(0, e.offset, e.numel).fill_(true);
  at::Tensor pad = fused.grads.masked_select(is_param.logical_not());
  if (pad.numel() > 0) EXPECT_TRUE(pad.eq(7.0).all().item<bool>());
}

TEST(DecoderLayerFusedGemmTest, LlamaGqaMatchesSeparateGemms) {
  ExpectFusedGemmMatches(SmallConfig(64, 4, 2, 16, 192), /*packed=*/false, /*expect_fused=*/true);
}

TEST(DecoderLayerFusedGemmTest, PackedRowsMatchSeparateGemms) {
  ExpectFusedGemmMatches(SmallConfig(64, 4, 2, 16, 192), /*packed=*/true, /*expect_fused=*/true);
}

TEST(DecoderLayerFusedGemmTest, Qwen3QkNormMatchesSeparateGemms) {
  ModelConfig c = SmallConfig(64, 4, 2, 32, 128);  // head_dim != hidden / heads
  c.architecture = "Qwen3ForCausalLM";
  c.model_type = "qwen3";
  c.qk_norm = true;
  ExpectFusedGemmMatches(c, /*packed=*/false, /*expect_fused=*/true);
}

TEST(DecoderLayerFusedGemmTest, BiasedLayerKeepsSeparateGemms) {
  ModelConfig c = SmallConfig(64, 4, 2, 16, 192);
  c.attention_bias = true;
  c.mlp_bias = true;
  ExpectFusedGemmMatches(c, /*packed=*/true, /*expect_fused=*/false);
}

}  // namespace
}  // namespace sfd
