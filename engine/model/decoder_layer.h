// One decoder layer of the supported HF architectures (Llama, Qwen2, Qwen3, Mistral), as
// math over views of one flat parameter buffer (device tier, compute dtype, UnitLayout of
// ModelLayout). Forward runs without autograd; backward recomputes the forward from the saved
// layer input under autograd (per-layer activation checkpointing) and writes the parameter
// gradients into a flat grad buffer with the same layout.
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include <ATen/ATen.h>

#include "engine/io/model_config.h"
#include "engine/model/model_layout.h"
#include "engine/model/rope.h"

namespace sfd {

// Per-micro-batch inputs shared by all layers.
struct AttentionInputs {
  RopeTables rope;
  // bool [B,1,S,S], true = may attend; empty = plain causal attention (single-document rows).
  std::optional<at::Tensor> keep_mask;
};

// Parameters that one tensor covers: a single parameter, or weights that lie back to back in
// the flat buffer (same input width, no padding and no bias between them) and so form one
// [sum of rows, in] matrix: q/k/v (one GEMM for the three projections) and gate/up.
struct ParamGroup {
  enum Kind { kSingle, kQkv, kGateUp };
  Kind kind = kSingle;
  int first = 0, count = 1;      // indices into UnitLayout::params()
  int64_t offset = 0, numel = 0;  // range of the flat buffer
  std::vector<int64_t> shape;     // the param's shape, or [rows of all, in] for a fused group
};
// The layout's parameters as groups, in layout order. Adjacency is decided from the offsets;
// with `fuse_gemms` false (or nothing adjacent) every group is a single parameter.
std::vector<ParamGroup> LayerParamGroups(const UnitLayout& layout, bool fuse_gemms);

// Views of one decoder layer's parameters inside a flat buffer; absent params are undefined.
struct LayerWeights {
  at::Tensor input_norm, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, q_norm, k_norm, post_norm,
      gate_w, gate_b, up_w, up_b, down_w, down_b;
  // [q+2*kv, d] over q_w/k_w/v_w and [2*inter, d] over gate_w/up_w when those are adjacent and
  // fused GEMMs are on (GetFusedOps); the forward then runs one GEMM instead of three / two.
  at::Tensor qkv_w, gate_up_w;
  // Views of `flat`, with the fused views when the layout allows them and fusion is on.
  static LayerWeights View(const at::Tensor& flat, const UnitLayout& layout);
  // From a lookup by parameter name (undefined tensor = absent); never fused.
  static LayerWeights Build(const std::function<at::Tensor(const char*)>& get);
};

// RMSNorm as HF: normalise in fp32, cast back to the input dtype, times weight.
at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps);

// x: [B,S,d] compute dtype -> [B,S,d].
at::Tensor DecoderLayerForward(const ModelConfig& config, const LayerWeights& w,
                               const at::Tensor& x, const AttentionInputs& attn);

// A decoder layer's forward recorded under autograd: the output and the leaves (input, then
// one per parameter group of LayerParamGroups in layout order: a fused q/k/v or gate/up group
// is one leaf, whose gradient is that range of the grad buffer). Keeping it from the forward
// saves the recompute in backward, at the cost of the layer's intermediate activations
// (device tier).
struct LayerGraph {
  at::Tensor y;
  at::Tensor resid, act;  // DecoderLayerBackward's recompute: x + attention, SwiGLU output
  std::vector<at::Tensor> leaves;
  std::vector<ParamGroup> groups;
};
LayerGraph RecordLayer(const ModelConfig& config, const UnitLayout& layout,
                       const at::Tensor& weights_flat, const at::Tensor& x,
                       const AttentionInputs& attn);
// Back-propagates `dy` through a recorded layer; parameter grads are written (or added when
// `accumulate`) into `grad_flat`. Returns dx. Releases the graph.
at::Tensor BackwardLayer(LayerGraph& graph, const at::Tensor& dy, at::Tensor& grad_flat,
                         bool accumulate);

// Recomputes the layer from its input `x` (up to the down projection, whose output backward
// does not need) and back-propagates `dy`. Parameter gradients are
// written into `grad_flat` (same layout and dtype as `weights_flat`; padding is left
// untouched), or added to it when `accumulate`. Returns dx.
at::Tensor DecoderLayerBackward(const ModelConfig& config, const UnitLayout& layout,
                                const at::Tensor& weights_flat, const at::Tensor& x,
                                const at::Tensor& dy, const AttentionInputs& attn,
                                at::Tensor& grad_flat, bool accumulate = false);

// Rows [begin, begin+n) of the per-micro-batch attention inputs.
AttentionInputs SliceRows(const AttentionInputs& attn, int64_t begin, int64_t n);

// Builds the keep-mask for packed rows from segment ids [B,S] (device tier): causal and
// same-segment. Returns nullopt when every row is a single segment.
std::optional<at::Tensor> MakeKeepMask(const at::Tensor& segment_ids, bool single_document_rows);

}  // namespace sfd
