// Rotary position embeddings as HF transformers computes them (LlamaRotaryEmbedding):
// inverse frequencies with optional Llama-3 "llama3" scaling, cos/sin tables gathered at
// arbitrary position ids (packed documents restart at 0), and rotate-half application.
#pragma once

#include <ATen/ATen.h>

#include "engine/io/model_config.h"

namespace sfd {

// fp32 [head_dim/2] inverse frequencies for `config` (rope_theta, rope_scaling).
at::Tensor RopeInverseFrequencies(const ModelConfig& config);

struct RopeTables {
  at::Tensor cos;  // [B, 1, S, head_dim], compute dtype, device tier
  at::Tensor sin;  // same
};

// position_ids: int64 [B, S] on the device tier. Tables are computed in fp32 and cast to
// `dtype`, as HF does.
RopeTables MakeRopeTables(const at::Tensor& inv_freq, const at::Tensor& position_ids,
                          at::ScalarType dtype);

// x: [B, H, S, head_dim]; returns x*cos + rotate_half(x)*sin.
at::Tensor ApplyRope(const at::Tensor& x, const RopeTables& rope);

}  // namespace sfd
