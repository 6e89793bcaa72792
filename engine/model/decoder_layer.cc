#include "engine/model/decoder_layer.h"

#include <cmath>
#include <functional>
#include <vector>

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "engine/common/status.h"
#include "engine/common/torch_compat.h"

namespace sfd {
namespace {

at::Tensor ViewOf(const at::Tensor& flat, const UnitLayout& layout, const char* name) {
  const ParamEntry* e = layout.Find(name);
  if (e == nullptr) return at::Tensor();
  return flat.narrow(0, e->offset, e->numel).view(e->shape);
}

at::Tensor Linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
}

}  // namespace

LayerWeights LayerWeights::Build(const std::function<at::Tensor(const char*)>& get) {
  LayerWeights w;
  w.input_norm = get("input_layernorm.weight");
  w.q_w = get("self_attn.q_proj.weight");
  w.q_b = get("self_attn.q_proj.bias");
  w.k_w = get("self_attn.k_proj.weight");
  w.k_b = get("self_attn.k_proj.bias");
  w.v_w = get("self_attn.v_proj.weight");
  w.v_b = get("self_attn.v_proj.bias");
  w.o_w = get("self_attn.o_proj.weight");
  w.o_b = get("self_attn.o_proj.bias");
  w.q_norm = get("self_attn.q_norm.weight");
  w.k_norm = get("self_attn.k_norm.weight");
  w.post_norm = get("post_attention_layernorm.weight");
  w.gate_w = get("mlp.gate_proj.weight");
  w.gate_b = get("mlp.gate_proj.bias");
  w.up_w = get("mlp.up_proj.weight");
  w.up_b = get("mlp.up_proj.bias");
  w.down_w = get("mlp.down_proj.weight");
  w.down_b = get("mlp.down_proj.bias");
  return w;
}

LayerWeights LayerWeights::View(const at::Tensor& flat, const UnitLayout& l) {
  return Build([&](const char* name) { return ViewOf(flat, l, name); });
}

at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor h = x.to(at::kFloat);
  at::Tensor var = h.pow(2).mean(-1, /*keepdim=*/true);
  h = h * at::rsqrt(var + eps);
  return weight * h.to(x.scalar_type());
}

at::Tensor DecoderLayerForward(const ModelConfig& c, const LayerWeights& w, const at::Tensor& x,
                               const AttentionInputs& attn) {
  const int64_t b = x.size(0), s = x.size(1), hd = c.head_dim;
  at::Tensor h = RmsNorm(x, w.input_norm, c.rms_norm_eps);
  at::Tensor q = Linear(h, w.q_w, w.q_b).view({b, s, c.num_heads, hd});
  at::Tensor k = Linear(h, w.k_w, w.k_b).view({b, s, c.num_kv_heads, hd});
  at::Tensor v = Linear(h, w.v_w, w.v_b).view({b, s, c.num_kv_heads, hd}).transpose(1, 2);
  if (c.qk_norm) {
    q = RmsNorm(q, w.q_norm, c.rms_norm_eps);
    k = RmsNorm(k, w.k_norm, c.rms_norm_eps);
  }
  q = ApplyRope(q.transpose(1, 2), attn.rope);
  k = ApplyRope(k.transpose(1, 2), attn.rope);
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  at::Tensor o = compat::Attention(q, k, v, attn.keep_mask, scale);  // [B,H,S,hd]
  o = o.transpose(1, 2).reshape({b, s, c.num_heads * hd});
  at::Tensor resid = x + Linear(o, w.o_w, w.o_b);
  at::Tensor m = RmsNorm(resid, w.post_norm, c.rms_norm_eps);
  at::Tensor act = at::silu(Linear(m, w.gate_w, w.gate_b)) * Linear(m, w.up_w, w.up_b);
  return resid + Linear(act, w.down_w, w.down_b);
}

LayerGraph RecordLayer(const ModelConfig& c, const UnitLayout& layout,
                       const at::Tensor& weights_flat, const at::Tensor& x,
                       const AttentionInputs& attn) {
  torch::autograd::AutoGradMode enable(true);
  // Leaves: the layer input and one leaf per parameter view (views of a buffer that does not
  // require grad are leaves, so no autograd bookkeeping touches the whole flat buffer).
  LayerGraph g;
  g.leaves.push_back(x.detach().requires_grad_(true));
  at::Tensor detached = weights_flat.detach();
  for (const ParamEntry& e : layout.params()) {
    g.leaves.push_back(detached.narrow(0, e.offset, e.numel).view(e.shape).requires_grad_(true));
    g.entries.push_back(&e);
  }
  LayerWeights w = LayerWeights::Build([&](const char* name) -> at::Tensor {
    for (size_t i = 0; i < g.entries.size(); ++i)
      if (g.entries[i]->name == name) return g.leaves[i + 1];
    return at::Tensor();
  });
  g.y = DecoderLayerForward(c, w, g.leaves[0], attn);
  return g;
}

at::Tensor BackwardLayer(LayerGraph& g, const at::Tensor& dy, at::Tensor& grad_flat,
                         bool accumulate) {
  torch::autograd::AutoGradMode enable(true);
  std::vector<at::Tensor> grads = torch::autograd::grad({g.y}, g.leaves, {dy});
  for (size_t i = 0; i < g.entries.size(); ++i) {
    const ParamEntry& e = *g.entries[i];
    at::Tensor dst = grad_flat.narrow(0, e.offset, e.numel);
    if (accumulate) {
      dst.add_(grads[i + 1].reshape({-1}));
    } else {
      dst.copy_(grads[i + 1].reshape({-1}));
    }
  }
  g = LayerGraph();
  return grads[0];
}

at::Tensor DecoderLayerBackward(const ModelConfig& c, const UnitLayout& layout,
                                const at::Tensor& weights_flat, const at::Tensor& x,
                                const at::Tensor& dy, const AttentionInputs& attn,
                                at::Tensor& grad_flat, bool accumulate) {
  LayerGraph g = RecordLayer(c, layout, weights_flat, x, attn);
  return BackwardLayer(g, dy, grad_flat, accumulate);
}

AttentionInputs SliceRows(const AttentionInputs& attn, int64_t begin, int64_t n) {
  AttentionInputs out;
  out.rope.cos = attn.rope.cos.narrow(0, begin, n);
  out.rope.sin = attn.rope.sin.narrow(0, begin, n);
  if (attn.keep_mask) out.keep_mask = attn.keep_mask->narrow(0, begin, n);
  return out;
}

std::optional<at::Tensor> MakeKeepMask(const at::Tensor& segment_ids, bool single_document_rows) {
  if (single_document_rows) return std::nullopt;
  const int64_t s = segment_ids.size(1);
  at::Tensor same = segment_ids.unsqueeze(2) == segment_ids.unsqueeze(1);  // [B,S,S]
  at::Tensor causal = at::ones({s, s}, segment_ids.options().dtype(at::kBool)).tril();
  return same.logical_and(causal).unsqueeze(1);
}

}  // namespace sfd
