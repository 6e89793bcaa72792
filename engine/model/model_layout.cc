#include "engine/model/model_layout.h"

#include "engine/common/status.h"

namespace sfd {

void UnitLayout::Add(std::string name, std::vector<int64_t> shape) {
  ParamEntry e;
  e.name = std::move(name);
  e.shape = std::move(shape);
  e.numel = 1;
  for (int64_t d : e.shape) e.numel *= d;
  e.offset = numel_;
  numel_ += (e.numel + kParamAlignElems - 1) / kParamAlignElems * kParamAlignElems;
  params_.push_back(std::move(e));
}

const ParamEntry* UnitLayout::Find(const std::string& name) const {
  for (const ParamEntry& e : params_)
    if (e.name == name) return &e;
  return nullptr;
}

int64_t UnitLayout::param_count() const {
  int64_t n = 0;
  for (const ParamEntry& e : params_) n += e.numel;
  return n;
}

ModelLayout::ModelLayout(const ModelConfig& c)
    : num_layers_(static_cast<int>(c.num_layers)), tied_(c.tie_word_embeddings) {
  const int64_t d = c.hidden_size, hd = c.head_dim, q = c.num_heads * hd,
                kv = c.num_kv_heads * hd, inter = c.intermediate_size;
  embedding_.Add("embed_tokens.weight", {c.vocab_size, d});

  layer_.Add("input_layernorm.weight", {d});
  layer_.Add("self_attn.q_proj.weight", {q, d});
  if (c.attention_bias) layer_.Add("self_attn.q_proj.bias", {q});
  layer_.Add("self_attn.k_proj.weight", {kv, d});
  if (c.attention_bias) layer_.Add("self_attn.k_proj.bias", {kv});
  layer_.Add("self_attn.v_proj.weight", {kv, d});
  if (c.attention_bias) layer_.Add("self_attn.v_proj.bias", {kv});
  layer_.Add("self_attn.o_proj.weight", {d, q});
  if (c.o_proj_bias) layer_.Add("self_attn.o_proj.bias", {d});
  if (c.qk_norm) {
    layer_.Add("self_attn.q_norm.weight", {hd});
    layer_.Add("self_attn.k_norm.weight", {hd});
  }
  layer_.Add("post_attention_layernorm.weight", {d});
  layer_.Add("mlp.gate_proj.weight", {inter, d});
  if (c.mlp_bias) layer_.Add("mlp.gate_proj.bias", {inter});
  layer_.Add("mlp.up_proj.weight", {inter, d});
  if (c.mlp_bias) layer_.Add("mlp.up_proj.bias", {inter});
  layer_.Add("mlp.down_proj.weight", {d, inter});
  if (c.mlp_bias) layer_.Add("mlp.down_proj.bias", {d});

  head_.Add("norm.weight", {d});
  if (!tied_) head_.Add("lm_head.weight", {c.vocab_size, d});
}

UnitRef ModelLayout::unit(int u) const {
  SFD_CHECK(u >= 0 && u < num_units()) << "unit " << u;
  if (u == kEmbeddingUnit) return {UnitKind::kEmbedding, -1};
  if (u == head_unit()) return {UnitKind::kHead, -1};
  return {UnitKind::kDecoderLayer, u - 1};
}

const UnitLayout& ModelLayout::layout(int u) const {
  switch (unit(u).kind) {
    case UnitKind::kEmbedding: return embedding_;
    case UnitKind::kDecoderLayer: return layer_;
    case UnitKind::kHead: return head_;
  }
  return layer_;
}

std::string ModelLayout::HfName(int u, const ParamEntry& p) const {
  UnitRef r = unit(u);
  if (r.kind == UnitKind::kDecoderLayer) return "model.layers." + std::to_string(r.layer) + "." + p.name;
  if (p.name == "lm_head.weight") return p.name;
  return "model." + p.name;
}

int64_t ModelLayout::TotalParams() const {
  return embedding_.param_count() + num_layers_ * layer_.param_count() + head_.param_count();
}

int64_t ModelLayout::MatmulParams() const {
  auto matmul = [](const UnitLayout& l) {
    int64_t n = 0;
    for (const ParamEntry& e : l.params())
      if (e.shape.size() == 2) n += e.numel;
    return n;
  };
  int64_t n = num_layers_ * matmul(layer_) + matmul(head_);
  if (tied_) n += embedding_.param_count();
  return n;
}

}  // namespace sfd
