// HF config.json of the decoder-only architectures sfd trains (Llama, Qwen2, Qwen3, Mistral),
// parsed into ModelConfig, plus the tensor names/shapes such a checkpoint must contain.
// Accepts both transformers 4.x ("torch_dtype", "rope_scaling") and 5.x ("dtype",
// "rope_parameters") spellings. Anything sfd cannot train faithfully (other architectures,
// activations, RoPE variants) is an InvalidArgument error naming the file and the field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace sfd {

struct RopeScaling {
  std::string rope_type;  // "llama3"
  double factor = 1, low_freq_factor = 1, high_freq_factor = 4;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture;  // "LlamaForCausalLM" | "Qwen2ForCausalLM" | "Qwen3ForCausalLM" | "MistralForCausalLM"
  std::string model_type;    // "llama" | "qwen2" | "qwen3" | "mistral"
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, num_layers = 0, num_heads = 0,
          num_kv_heads = 0, head_dim = 0, max_position_embeddings = 0;
  double rms_norm_eps = 1e-6, rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;  // only rope_type "llama3" (and "default"/null)
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (Qwen2: always; Llama/Qwen3: "attention_bias")
  bool o_proj_bias = false;     // Llama/Qwen3 attention_bias=true also gives o_proj a bias
  bool mlp_bias = false;        // Llama "mlp_bias"
  bool qk_norm = false;         // Qwen3: self_attn.q_norm / k_norm, shape [head_dim]
  std::string hidden_act = "silu";
  std::optional<int64_t> sliding_window;  // Mistral / Qwen2-3 with use_sliding_window
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> bos_token_id, pad_token_id;
  std::string torch_dtype;  // "bfloat16" etc. (from "dtype" or "torch_dtype")
  nlohmann::json raw;       // the original JSON, written back on save
  int64_t NumParams() const;  // total parameters implied by the config (tied counted once)
};

// The (architecture, model_type) pairs sfd supports, for error messages and docs.
const std::vector<std::pair<std::string, std::string>>& SupportedArchitectures();
// "LlamaForCausalLM (llama), Qwen2ForCausalLM (qwen2), ..."
std::string SupportedArchitecturesString();

absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text, const std::string& source);
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir);  // model_dir/config.json

// The config as HF config.json: `raw` with every field above written over it (so a config built
// in code, with an empty raw, also serialises to something transformers loads).
nlohmann::json ModelConfigToJson(const ModelConfig& config);

// Expected tensor names+shapes of the HF checkpoint for this config, in checkpoint order:
// model.embed_tokens.weight, model.layers.{i}.{input_layernorm, self_attn.{q,k,v,o}_proj
// (+ .bias), self_attn.{q,k}_norm, post_attention_layernorm, mlp.{gate,up,down}_proj (+ .bias)}
// .weight, model.norm.weight, and lm_head.weight when untied.
std::vector<std::pair<std::string, std::vector<int64_t>>> ExpectedTensors(const ModelConfig& config);

}  // namespace sfd
