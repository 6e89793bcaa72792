// ModelLayout: the one layout table of sfd's flat parameter arenas. The model is cut into
// units — the embedding, each decoder layer, the head (final norm + untied lm_head) — and each
// unit's parameters live in one flat buffer per tier (fp32 master/m/v/grad on the host, compute
// dtype on the device). Every tensor the engine touches is a view [offset, offset+numel) of
// such a buffer; this table says where. All decoder layers share one UnitLayout. No torch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/io/model_config.h"

namespace sfd {

// Offsets are aligned to this many elements (256 bytes of fp32) so SIMD loops and DMA engines
// see aligned starts for every tensor.
inline constexpr int64_t kParamAlignElems = 64;

enum class UnitKind { kEmbedding, kDecoderLayer, kHead };

struct ParamEntry {
  std::string name;             // relative to the unit's HF prefix, e.g. "self_attn.q_proj.weight"
  std::vector<int64_t> shape;
  int64_t offset = 0;           // elements from the unit buffer's start
  int64_t numel = 0;
  bool decay = true;            // weight decay applies (AdamW applies it to all, as torch does)
};

class UnitLayout {
 public:
  void Add(std::string name, std::vector<int64_t> shape);
  const std::vector<ParamEntry>& params() const { return params_; }
  // nullptr when the unit has no such parameter (e.g. no q_proj bias in Llama).
  const ParamEntry* Find(const std::string& name) const;
  int64_t numel() const { return numel_; }  // padded size of the flat buffer
  int64_t param_count() const;             // unpadded count of real parameters

 private:
  std::vector<ParamEntry> params_;
  int64_t numel_ = 0;
};

struct UnitRef {
  UnitKind kind;
  int layer = -1;  // decoder layer index, -1 otherwise
};

class ModelLayout {
 public:
  explicit ModelLayout(const ModelConfig& config);

  // Units in forward order: 0 = embedding, 1..L = decoder layers, L+1 = head.
  int num_units() const { return num_layers_ + 2; }
  int num_layers() const { return num_layers_; }
  static constexpr int kEmbeddingUnit = 0;
  int head_unit() const { return num_layers_ + 1; }
  int layer_unit(int layer) const { return layer + 1; }
  UnitRef unit(int u) const;
  const UnitLayout& layout(int u) const;
  // HF tensor name of a unit's parameter, e.g. "model.layers.3." + "mlp.up_proj.weight".
  std::string HfName(int u, const ParamEntry& p) const;
  // Parameters that enter matmuls (everything but norms and biases; the embedding lookup is
  // not a matmul, but a tied embedding is used by the LM head, which is).
  int64_t MatmulParams() const;
  int64_t TotalParams() const;
  bool tied() const { return tied_; }

 private:
  int num_layers_;
  bool tied_;
  UnitLayout embedding_, layer_, head_;
};

}  // namespace sfd
