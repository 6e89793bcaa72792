#include "engine/model/decoder_layer.h"

#include <cmath>
#include <functional>
#include <vector>

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "engine/common/status.h"
#include "engine/common/torch_compat.h"
#include "engine/model/fused_ops.h"

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

// Whether params[i, i+names.size()) are exactly `names`, 2-D with one input width, and lie
// back to back (no padding, nothing between them).
bool Adjacent(const std::vector<ParamEntry>& ps, size_t i, const std::vector<const char*>& names) {
  if (i + names.size() > ps.size()) return false;
  for (size_t k = 0; k < names.size(); ++k) {
    const ParamEntry& e = ps[i + k];
    if (e.name != names[k] || e.shape.size() != 2 || e.shape[1] != ps[i].shape[1]) return false;
    if (k > 0 && e.offset != ps[i + k - 1].offset + ps[i + k - 1].numel) return false;
  }
  return true;
}

// Sets the fused views of `w` from the group tensors (`tensor_of(group index)`).
void AttachFused(LayerWeights& w, const std::vector<ParamGroup>& groups,
                 const std::function<at::Tensor(size_t)>& tensor_of) {
  for (size_t i = 0; i < groups.size(); ++i) {
    if (groups[i].kind == ParamGroup::kQkv) w.qkv_w = tensor_of(i);
    if (groups[i].kind == ParamGroup::kGateUp) w.gate_up_w = tensor_of(i);
  }
}

}  // namespace

std::vector<ParamGroup> LayerParamGroups(const UnitLayout& layout, bool fuse_gemms) {
  static const std::vector<const char*> kQkvNames = {
      "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"};
  static const std::vector<const char*> kGateUpNames = {"mlp.gate_proj.weight",
                                                        "mlp.up_proj.weight"};
  const std::vector<ParamEntry>& ps = layout.params();
  std::vector<ParamGroup> groups;
  for (size_t i = 0; i < ps.size();) {
    ParamGroup g;
    g.first = static_cast<int>(i);
    g.offset = ps[i].offset;
    if (fuse_gemms && Adjacent(ps, i, kQkvNames)) {
      g.kind = ParamGroup::kQkv;
      g.count = 3;
    } else if (fuse_gemms && Adjacent(ps, i, kGateUpNames)) {
      g.kind = ParamGroup::kGateUp;
      g.count = 2;
    }
    int64_t rows = 0;
    for (int k = 0; k < g.count; ++k) {
      g.numel += ps[i + k].numel;
      rows += ps[i + k].shape[0];
    }
    g.shape = g.count == 1 ? ps[i].shape : std::vector<int64_t>{rows, ps[i].shape[1]};
    groups.push_back(std::move(g));
    i += groups.back().count;
  }
  return groups;
}

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
  LayerWeights w = Build([&](const char* name) { return ViewOf(flat, l, name); });
  if (GetFusedOps().fused_gemm) {
    const std::vector<ParamGroup> groups = LayerParamGroups(l, true);
    AttachFused(w, groups, [&](size_t i) {
      return flat.narrow(0, groups[i].offset, groups[i].numel).view(groups[i].shape);
    });
  }
  return w;
}

at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  if (FusedKernelsApply(x) && weight.scalar_type() == x.scalar_type()) {
    return FusedRmsNorm(x, weight, eps);
  }
  at::Tensor h = x.to(at::kFloat);
  at::Tensor var = h.pow(2).mean(-1, /*keepdim=*/true);
  h = h * at::rsqrt(var + eps);
  return weight * h.to(x.scalar_type());
}

namespace {

// Where the recompute's GEMMs put their weight gradients (views of the grad buffer, compute
// dtype; undefined = through autograd as usual): written, or added inside the GEMM when
// `accumulate`, with no gradient tensor, copy or add of its own.
struct WeightGradSink {
  at::Tensor qkv, o, gate_up;
  bool accumulate = false;
};

// y = x w^T whose backward writes d(loss)/dw into `dst` (beta 0 or 1) and returns dx only.
struct LinearIntoFn : public torch::autograd::Function<LinearIntoFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& w, const at::Tensor& dst, bool accumulate) {
    ctx->save_for_backward({x, w});
    ctx->saved_data["dst"] = dst;
    ctx->saved_data["accumulate"] = accumulate;
    return at::linear(x, w);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    torch::autograd::variable_list saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& w = saved[1];
    const at::Tensor dy2 = grads[0].reshape({-1, w.size(0)});
    const at::Tensor x2 = x.reshape({-1, w.size(1)});
    at::Tensor dst = ctx->saved_data["dst"].toTensor();
    if (ctx->saved_data["accumulate"].toBool()) {
      dst.addmm_(dy2.t(), x2);
    } else {
      at::mm_out(dst, dy2.t(), x2);
    }
    return {at::matmul(grads[0], w), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor LinearInto(const at::Tensor& x, const at::Tensor& w, const at::Tensor& sink,
                      const WeightGradSink* s) {
  return sink.defined() ? LinearIntoFn::apply(x, w, sink, s->accumulate) : at::linear(x, w);
}

// The layer up to its down projection: resid = x + attention (the residual stream the MLP adds
// to) and act = SwiGLU output (the down projection's input).
struct BeforeDown {
  at::Tensor resid, act;
};

BeforeDown ForwardToDown(const ModelConfig& c, const LayerWeights& w, const at::Tensor& x,
                         const AttentionInputs& attn, const WeightGradSink* sink = nullptr) {
  static const WeightGradSink kNone;
  const WeightGradSink* gs = sink != nullptr ? sink : &kNone;
  const int64_t b = x.size(0), s = x.size(1), hd = c.head_dim;
  const bool fused_kernels = FusedKernelsApply(x);
  at::Tensor h = RmsNorm(x, w.input_norm, c.rms_norm_eps);
  at::Tensor q, k, v;
  if (w.qkv_w.defined()) {
    // One GEMM; the splits are views of its [B,S,q+2kv] output (split_with_sizes: one
    // gradient concatenation in backward).
    const int64_t nq = c.num_heads * hd, nkv = c.num_kv_heads * hd;
    std::vector<at::Tensor> qkv = at::split_with_sizes(LinearInto(h, w.qkv_w, gs->qkv, gs), {nq, nkv, nkv}, -1);
    q = qkv[0];
    k = qkv[1];
    v = qkv[2];
  } else {
    q = Linear(h, w.q_w, w.q_b);
    k = Linear(h, w.k_w, w.k_b);
    v = Linear(h, w.v_w, w.v_b);
  }
  q = q.view({b, s, c.num_heads, hd});
  k = k.view({b, s, c.num_kv_heads, hd});
  v = v.view({b, s, c.num_kv_heads, hd}).transpose(1, 2);
  if (c.qk_norm) {
    q = RmsNorm(q, w.q_norm, c.rms_norm_eps);
    k = RmsNorm(k, w.k_norm, c.rms_norm_eps);
  }
  if (fused_kernels && attn.rope.cos.scalar_type() == x.scalar_type()) {
    q = FusedRope(q, attn.rope);  // [B,S,H,hd] in, [B,H,S,hd] contiguous out
    k = FusedRope(k, attn.rope);
  } else {
    q = ApplyRope(q.transpose(1, 2), attn.rope);
    k = ApplyRope(k.transpose(1, 2), attn.rope);
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  at::Tensor o = compat::Attention(q, k, v, attn.keep_mask, scale);  // [B,H,S,hd]
  o = o.transpose(1, 2).reshape({b, s, c.num_heads * hd});
  at::Tensor resid = x + (w.o_b.defined() ? Linear(o, w.o_w, w.o_b) : LinearInto(o, w.o_w, gs->o, gs));
  at::Tensor m = RmsNorm(resid, w.post_norm, c.rms_norm_eps);
  at::Tensor act;
  if (w.gate_up_w.defined()) {
    at::Tensor gate_up = LinearInto(m, w.gate_up_w, gs->gate_up, gs);  // [B,S,2*inter], gate first
    if (fused_kernels) {
      act = FusedSwiGlu(gate_up);
    } else {
      std::vector<at::Tensor> parts = gate_up.chunk(2, -1);
      act = at::silu(parts[0]) * parts[1];
    }
  } else {
    at::Tensor gate = Linear(m, w.gate_w, w.gate_b), up = Linear(m, w.up_w, w.up_b);
    act = fused_kernels ? FusedSwiGlu(gate, up) : at::silu(gate) * up;
  }
  return {resid, act};
}

}  // namespace

at::Tensor DecoderLayerForward(const ModelConfig& c, const LayerWeights& w, const at::Tensor& x,
                               const AttentionInputs& attn) {
  BeforeDown p = ForwardToDown(c, w, x, attn);
  return p.resid + Linear(p.act, w.down_w, w.down_b);
}

namespace {

// Builds the leaves of a layer's autograd graph and runs its forward over them: the whole
// layer (g.y) or, for the recompute in DecoderLayerBackward, up to the down projection (g.resid
// and g.act, with g.down_w the down projection's weight view).
LayerGraph Record(const ModelConfig& c, const UnitLayout& layout, const at::Tensor& weights_flat,
                  const at::Tensor& x, const AttentionInputs& attn, bool whole_layer,
                  const WeightGradSink* sink = nullptr) {
  torch::autograd::AutoGradMode enable(true);
  // Leaves: the layer input and one leaf per parameter group's view (views of a buffer that
  // does not require grad are leaves, so no autograd bookkeeping touches the whole flat
  // buffer). A fused group's members are row ranges of its leaf.
  LayerGraph g;
  g.leaves.push_back(x.detach().requires_grad_(true));
  at::Tensor detached = weights_flat.detach();
  g.groups = LayerParamGroups(layout, GetFusedOps().fused_gemm);
  for (const ParamGroup& pg : g.groups) {
    g.leaves.push_back(detached.narrow(0, pg.offset, pg.numel).view(pg.shape).requires_grad_(true));
  }
  const std::vector<ParamEntry>& ps = layout.params();
  LayerWeights w = LayerWeights::Build([&](const char* name) -> at::Tensor {
    for (size_t i = 0; i < g.groups.size(); ++i) {
      const ParamGroup& pg = g.groups[i];
      for (int k = 0; k < pg.count; ++k) {
        const ParamEntry& e = ps[pg.first + k];
        if (e.name != name) continue;
        if (pg.count == 1) return g.leaves[i + 1];
        return g.leaves[i + 1].narrow(0, (e.offset - pg.offset) / pg.shape[1], e.shape[0]);
      }
    }
    return at::Tensor();
  });
  AttachFused(w, g.groups, [&](size_t i) { return g.leaves[i + 1]; });
  if (whole_layer) {
    g.y = DecoderLayerForward(c, w, g.leaves[0], attn);
  } else {
    BeforeDown p = ForwardToDown(c, w, g.leaves[0], attn, sink);
    g.resid = p.resid;
    g.act = p.act;
  }
  return g;
}

// Writes (or adds) each group's gradient into its range of grad_flat; undefined ones are
// skipped (the down projection of a recompute, written by hand).
void StoreGroupGrads(const LayerGraph& g, const std::vector<at::Tensor>& grads,
                     at::Tensor& grad_flat, bool accumulate) {
  for (size_t i = 0; i < g.groups.size(); ++i) {
    if (!grads[i + 1].defined()) continue;
    const ParamGroup& e = g.groups[i];
    at::Tensor dst = grad_flat.narrow(0, e.offset, e.numel);
    if (accumulate) {
      dst.add_(grads[i + 1].reshape({-1}));
    } else {
      dst.copy_(grads[i + 1].reshape({-1}));
    }
  }
}

}  // namespace

LayerGraph RecordLayer(const ModelConfig& c, const UnitLayout& layout,
                       const at::Tensor& weights_flat, const at::Tensor& x,
                       const AttentionInputs& attn) {
  return Record(c, layout, weights_flat, x, attn, /*whole_layer=*/true);
}

at::Tensor BackwardLayer(LayerGraph& g, const at::Tensor& dy, at::Tensor& grad_flat,
                         bool accumulate) {
  torch::autograd::AutoGradMode enable(true);
  std::vector<at::Tensor> grads = torch::autograd::grad({g.y}, g.leaves, {dy});
  StoreGroupGrads(g, grads, grad_flat, accumulate);
  g = LayerGraph();
  return grads[0];
}

at::Tensor DecoderLayerBackward(const ModelConfig& c, const UnitLayout& layout,
                                const at::Tensor& weights_flat, const at::Tensor& x,
                                const at::Tensor& dy, const AttentionInputs& attn,
                                at::Tensor& grad_flat, bool accumulate) {
  // The recompute stops before the down projection: its output only feeds the layer output,
  // which backward does not need, so that GEMM (a quarter of a Llama layer's forward FLOPs) is
  // skipped. Its gradients are two GEMMs by hand, the weight's accumulated in the GEMM.
  // The big GEMMs (fused q/k/v, o, fused gate/up) write their weight gradients straight into
  // grad_flat as well (small parameters and unfused projections go through autograd).
  WeightGradSink sink;
  sink.accumulate = accumulate;
  for (const ParamGroup& pg : LayerParamGroups(layout, GetFusedOps().fused_gemm)) {
    at::Tensor dst = grad_flat.narrow(0, pg.offset, pg.numel).view(pg.shape);
    if (pg.kind == ParamGroup::kQkv) sink.qkv = dst;
    if (pg.kind == ParamGroup::kGateUp) sink.gate_up = dst;
  }
  sink.o = ViewOf(grad_flat, layout, "self_attn.o_proj.weight");
  LayerGraph g = Record(c, layout, weights_flat, x, attn, /*whole_layer=*/false, &sink);
  const int64_t d = dy.size(-1), inter = g.act.size(-1);
  const at::Tensor dy2 = dy.reshape({-1, d});
  const at::Tensor act2 = g.act.detach().reshape({-1, inter});
  const at::Tensor down_w = ViewOf(weights_flat, layout, "mlp.down_proj.weight");  // [d, inter]
  at::Tensor dact = at::mm(dy2, down_w).view(g.act.sizes());
  at::Tensor dw = ViewOf(grad_flat, layout, "mlp.down_proj.weight");
  if (accumulate) {
    dw.addmm_(dy2.t(), act2);
  } else {
    at::mm_out(dw, dy2.t(), act2);
  }
  at::Tensor db = ViewOf(grad_flat, layout, "mlp.down_proj.bias");
  if (db.defined()) {
    at::Tensor sum = dy2.sum(0, /*keepdim=*/false, at::kFloat).to(db.scalar_type());
    accumulate ? db.add_(sum) : db.copy_(sum);
  }
  torch::autograd::AutoGradMode enable(true);
  std::vector<at::Tensor> grads = torch::autograd::grad({g.resid, g.act}, g.leaves, {dy, dact},
                                                        /*retain_graph=*/false,
                                                        /*create_graph=*/false,
                                                        /*allow_unused=*/true);
  StoreGroupGrads(g, grads, grad_flat, accumulate);
  return grads[0];
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
