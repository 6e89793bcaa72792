// Test helper: the ModelConfig of a Llama-architecture model of a given shape (config only, no
// weights), for tests that plan or allocate by shape: the memory planner, the host arenas.
#pragma once

#include <cstdint>

#include "engine/io/model_config.h"

namespace sfd::testing {

inline ModelConfig LlamaShape(int64_t hidden, int64_t intermediate, int layers, int64_t heads,
                              int64_t kv_heads, int64_t vocab, bool tied) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.max_position_embeddings = 8192;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000.0;
  c.tie_word_embeddings = tied;
  return c;
}

}  // namespace sfd::testing
