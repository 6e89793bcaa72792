// ParseModelConfig / ModelConfigToJson / ExpectedTensors.
#include "engine/io/model_config.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/common/status.h"
#include "engine/io/absl_compat.h"
#include "engine/io/file_util.h"

namespace sfd {
namespace {

using Json = nlohmann::json;

// Field access with type checking; every error names the source and the field.
class Fields {
 public:
  Fields(const Json& j, const std::string& source) : j_(j), source_(source) {}

  bool Has(const char* key) const {
    auto it = j_.find(key);
    return it != j_.end() && !it->is_null();
  }
  absl::Status Error(std::string_view field, std::string_view msg) const {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": field \"", Sv(field), "\": ", Sv(msg)));
  }
  absl::StatusOr<int64_t> Int(const char* key, std::optional<int64_t> def) const {
    if (!Has(key)) {
      if (def) return *def;
      return Error(key, "required but missing");
    }
    return ToInt(key, j_.at(key));
  }
  absl::StatusOr<int64_t> PositiveInt(const char* key, std::optional<int64_t> def) const {
    SFD_ASSIGN_OR_RETURN(int64_t v, Int(key, def));
    if (v <= 0) return Error(key, absl::StrCat("must be positive, got ", v));
    return v;
  }
  absl::StatusOr<double> Double(const char* key, double def) const {
    if (!Has(key)) return def;
    return ToDouble(key, j_.at(key));
  }
  absl::StatusOr<bool> Bool(const char* key, bool def) const {
    if (!Has(key)) return def;
    const Json& v = j_.at(key);
    if (!v.is_boolean()) return Error(key, absl::StrCat("expected a boolean, got ", v.dump()));
    return v.get<bool>();
  }
  absl::StatusOr<std::string> String(const char* key, std::optional<std::string> def) const {
    if (!Has(key)) {
      if (def) return *def;
      return Error(key, "required but missing");
    }
    const Json& v = j_.at(key);
    if (!v.is_string()) return Error(key, absl::StrCat("expected a string, got ", v.dump()));
    return v.get<std::string>();
  }
  absl::StatusOr<int64_t> ToInt(std::string_view field, const Json& v) const {
    if (v.is_number_unsigned()) {
      uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Error(field, "integer out of range");
      }
      return static_cast<int64_t>(u);
    }
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (std::floor(d) == d && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
    }
    return Error(field, absl::StrCat("expected an integer, got ", v.dump()));
  }
  absl::StatusOr<double> ToDouble(std::string_view field, const Json& v) const {
    if (!v.is_number()) return Error(field, absl::StrCat("expected a number, got ", v.dump()));
    return v.get<double>();
  }

 private:
  const Json& j_;
  const std::string& source_;
};

struct ArchDefaults {
  const char* architecture;
  const char* model_type;
  int64_t max_position_embeddings;  // transformers' config class default
};

// Sanity bounds on config dimensions (far above any real model).
constexpr int64_t kMaxDim = int64_t{1} << 24;
constexpr int64_t kMaxLayers = int64_t{1} << 16;
constexpr int64_t kMaxParams = int64_t{1} << 50;

constexpr ArchDefaults kArchs[] = {
    {"LlamaForCausalLM", "llama", 2048},
    {"Qwen2ForCausalLM", "qwen2", 32768},
    {"Qwen3ForCausalLM", "qwen3", 32768},
    {"MistralForCausalLM", "mistral", 4096 * 32},
};

// Parses a rope_scaling / rope_parameters object into `out` (left empty for "default").
absl::Status ParseRope(const Json& rope, const std::string& source, const char* field,
                       std::optional<RopeScaling>* out) {
  if (!rope.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": field \"", field,
                                                   "\": expected an object, got ", rope.dump()));
  }
  std::string sub_source = absl::StrCat(source, " (", field, ")");
  Fields f(rope, sub_source);
  std::string type;
  if (f.Has("rope_type")) {
    SFD_ASSIGN_OR_RETURN(type, f.String("rope_type", std::nullopt));
  } else {
    SFD_ASSIGN_OR_RETURN(type, f.String("type", std::string("default")));
  }
  if (type == "default") return absl::OkStatus();
  if (type != "llama3") {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": field \"", field, "\": rope_type \"", type,
        "\" is not supported (supported: default, llama3)"));
  }
  RopeScaling r;
  r.rope_type = type;
  SFD_ASSIGN_OR_RETURN(r.factor, f.Double("factor", 8.0));
  SFD_ASSIGN_OR_RETURN(r.low_freq_factor, f.Double("low_freq_factor", 1.0));
  SFD_ASSIGN_OR_RETURN(r.high_freq_factor, f.Double("high_freq_factor", 4.0));
  SFD_ASSIGN_OR_RETURN(r.original_max_position_embeddings,
                       f.PositiveInt("original_max_position_embeddings", 8192));
  if (!(r.factor > 0)) return f.Error("factor", "must be positive");
  if (!(r.high_freq_factor > r.low_freq_factor) || !(r.low_freq_factor > 0)) {
    return f.Error("high_freq_factor", "llama3 RoPE needs 0 < low_freq_factor < high_freq_factor");
  }
  *out = r;
  return absl::OkStatus();
}

}  // namespace

const std::vector<std::pair<std::string, std::string>>& SupportedArchitectures() {
  static const auto* archs = [] {
    auto* v = new std::vector<std::pair<std::string, std::string>>();
    for (const ArchDefaults& a : kArchs) v->emplace_back(a.architecture, a.model_type);
    return v;
  }();
  return *archs;
}

std::string SupportedArchitecturesString() {
  std::vector<std::string> parts;
  for (const auto& [arch, type] : SupportedArchitectures()) {
    parts.push_back(absl::StrCat(arch, " (", type, ")"));
  }
  return absl::StrJoin(parts, ", ");
}

absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text,
                                             const std::string& source) {
  Json j;
  try {
    j = Json::parse(json_text.begin(), json_text.end());
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not valid JSON: ", e.what()));
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": expected a JSON object, got a ", j.type_name()));
  }
  Fields f(j, source);
  ModelConfig c;
  c.raw = j;

  // Architecture.
  if (!f.Has("architectures") || !j["architectures"].is_array() || j["architectures"].empty() ||
      !j["architectures"][0].is_string()) {
    return f.Error("architectures", absl::StrCat("expected a non-empty list of names; supported: ",
                                                 SupportedArchitecturesString()));
  }
  c.architecture = j["architectures"][0].get<std::string>();
  SFD_ASSIGN_OR_RETURN(c.model_type, f.String("model_type", std::nullopt));
  const ArchDefaults* arch = nullptr;
  for (const ArchDefaults& a : kArchs) {
    if (c.architecture == a.architecture) arch = &a;
  }
  if (arch == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": architecture \"", c.architecture, "\" (model_type \"", c.model_type,
        "\") is not supported; supported: ", SupportedArchitecturesString()));
  }
  if (c.model_type != arch->model_type) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": model_type \"", c.model_type, "\" does not match architecture ",
        c.architecture, " (expected \"", arch->model_type, "\")"));
  }
  if (f.Has("quantization_config")) {
    return f.Error("quantization_config",
                   "quantized checkpoints cannot be fine-tuned; use the unquantized model");
  }

  // Shapes.
  SFD_ASSIGN_OR_RETURN(c.vocab_size, f.PositiveInt("vocab_size", std::nullopt));
  SFD_ASSIGN_OR_RETURN(c.hidden_size, f.PositiveInt("hidden_size", std::nullopt));
  SFD_ASSIGN_OR_RETURN(c.intermediate_size, f.PositiveInt("intermediate_size", std::nullopt));
  SFD_ASSIGN_OR_RETURN(c.num_layers, f.PositiveInt("num_hidden_layers", std::nullopt));
  SFD_ASSIGN_OR_RETURN(c.num_heads, f.PositiveInt("num_attention_heads", std::nullopt));
  SFD_ASSIGN_OR_RETURN(c.num_kv_heads, f.PositiveInt("num_key_value_heads", c.num_heads));
  if (c.num_heads % c.num_kv_heads != 0) {
    return f.Error("num_key_value_heads",
                   absl::StrCat(c.num_kv_heads, " does not divide num_attention_heads ",
                                c.num_heads));
  }
  if (f.Has("head_dim")) {
    SFD_ASSIGN_OR_RETURN(c.head_dim, f.PositiveInt("head_dim", std::nullopt));
  } else {
    if (c.hidden_size % c.num_heads != 0) {
      return f.Error("hidden_size", absl::StrCat(c.hidden_size, " is not a multiple of ",
                                                 "num_attention_heads ", c.num_heads,
                                                 " and no head_dim is given"));
    }
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim % 2 != 0) return f.Error("head_dim", "RoPE needs an even head_dim");
  SFD_ASSIGN_OR_RETURN(c.max_position_embeddings,
                       f.PositiveInt("max_position_embeddings", arch->max_position_embeddings));
  SFD_ASSIGN_OR_RETURN(c.rms_norm_eps, f.Double("rms_norm_eps", 1e-6));
  if (!(c.rms_norm_eps > 0)) return f.Error("rms_norm_eps", "must be positive");

  // RoPE: transformers 4.x has rope_theta + rope_scaling, 5.x has rope_parameters.
  SFD_ASSIGN_OR_RETURN(c.rope_theta, f.Double("rope_theta", 10000.0));
  if (f.Has("rope_scaling")) {
    SFD_RETURN_IF_ERROR(ParseRope(j["rope_scaling"], source, "rope_scaling", &c.rope_scaling));
  } else if (f.Has("rope_parameters")) {
    const Json& rp = j["rope_parameters"];
    SFD_RETURN_IF_ERROR(ParseRope(rp, source, "rope_parameters", &c.rope_scaling));
    Fields rpf(rp, absl::StrCat(source, " (rope_parameters)"));
    SFD_ASSIGN_OR_RETURN(c.rope_theta, rpf.Double("rope_theta", c.rope_theta));
  }
  if (!(c.rope_theta > 0)) return f.Error("rope_theta", "must be positive");

  // Per-architecture layer structure.
  const std::string& mt = c.model_type;
  SFD_ASSIGN_OR_RETURN(c.tie_word_embeddings, f.Bool("tie_word_embeddings", false));
  if (mt == "qwen2") {
    c.attention_bias = true;
  } else if (mt == "llama" || mt == "qwen3") {
    SFD_ASSIGN_OR_RETURN(c.attention_bias, f.Bool("attention_bias", false));
    c.o_proj_bias = c.attention_bias;
  }
  if (mt == "llama") {
    SFD_ASSIGN_OR_RETURN(c.mlp_bias, f.Bool("mlp_bias", false));
  }
  c.qk_norm = (mt == "qwen3");
  SFD_ASSIGN_OR_RETURN(c.hidden_act, f.String("hidden_act", std::string("silu")));
  if (c.hidden_act != "silu") {
    return f.Error("hidden_act", absl::StrCat("\"", c.hidden_act, "\" is not supported (only silu)"));
  }
  if (mt == "mistral") {
    if (f.Has("sliding_window")) {
      SFD_ASSIGN_OR_RETURN(c.sliding_window, f.PositiveInt("sliding_window", std::nullopt));
    }
  } else if (mt == "qwen2" || mt == "qwen3") {
    SFD_ASSIGN_OR_RETURN(bool use_sw, f.Bool("use_sliding_window", false));
    if (use_sw) {
      SFD_ASSIGN_OR_RETURN(c.sliding_window, f.PositiveInt("sliding_window", std::nullopt));
    }
  }

  // Bound the dimensions so that every size derived from them (ExpectedTensors, NumParams,
  // the engine's buffer sizes) fits comfortably in int64.
  struct Dim {
    const char* field;
    int64_t value;
    int64_t max;
  };
  for (const Dim& dim : {Dim{"vocab_size", c.vocab_size, kMaxDim}, Dim{"hidden_size", c.hidden_size, kMaxDim},
                         Dim{"intermediate_size", c.intermediate_size, kMaxDim},
                         Dim{"num_hidden_layers", c.num_layers, kMaxLayers},
                         Dim{"num_attention_heads", c.num_heads, kMaxDim},
                         Dim{"head_dim", c.head_dim, kMaxDim}}) {
    if (dim.value > dim.max) {
      return f.Error(dim.field, absl::StrCat(dim.value, " exceeds the supported maximum ", dim.max));
    }
  }
  __int128 h = c.hidden_size, q = static_cast<__int128>(c.num_heads) * c.head_dim,
           kv = static_cast<__int128>(c.num_kv_heads) * c.head_dim, inter = c.intermediate_size;
  __int128 per_layer = 2 * h + 2 * q * h + 2 * kv * h + 3 * h * inter + 2 * q + 2 * kv + 2 * h +
                       3 * inter + 2 * c.head_dim;  // upper bound incl. every optional tensor
  __int128 total = 2 * static_cast<__int128>(c.vocab_size) * h + h + c.num_layers * per_layer;
  if (total > kMaxParams) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": the dimensions imply more than ", kMaxParams, " parameters; not a real model"));
  }

  // Special tokens and dtype.
  if (f.Has("eos_token_id")) {
    const Json& e = j["eos_token_id"];
    if (e.is_array()) {
      for (const Json& id : e) {
        SFD_ASSIGN_OR_RETURN(int64_t v, f.ToInt("eos_token_id", id));
        c.eos_token_ids.push_back(v);
      }
    } else {
      SFD_ASSIGN_OR_RETURN(int64_t v, f.ToInt("eos_token_id", e));
      c.eos_token_ids.push_back(v);
    }
  }
  if (f.Has("bos_token_id")) {
    SFD_ASSIGN_OR_RETURN(c.bos_token_id, f.Int("bos_token_id", std::nullopt));
  }
  if (f.Has("pad_token_id")) {
    SFD_ASSIGN_OR_RETURN(c.pad_token_id, f.Int("pad_token_id", std::nullopt));
  }
  if (f.Has("dtype")) {
    SFD_ASSIGN_OR_RETURN(c.torch_dtype, f.String("dtype", std::nullopt));
  } else if (f.Has("torch_dtype")) {
    SFD_ASSIGN_OR_RETURN(c.torch_dtype, f.String("torch_dtype", std::nullopt));
  }
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir) {
  std::string path = absl::StrCat(model_dir, "/config.json");
  SFD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseModelConfig(text, path);
}

nlohmann::json ModelConfigToJson(const ModelConfig& c) {
  Json j = c.raw.is_object() ? c.raw : Json::object();
  j["architectures"] = Json::array({c.architecture});
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  if (j.contains("head_dim") || c.head_dim * c.num_heads != c.hidden_size) {
    j["head_dim"] = c.head_dim;
  }
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["hidden_act"] = c.hidden_act;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  Json rope = nullptr;
  if (c.rope_scaling) {
    rope = {{"rope_type", c.rope_scaling->rope_type},
            {"factor", c.rope_scaling->factor},
            {"low_freq_factor", c.rope_scaling->low_freq_factor},
            {"high_freq_factor", c.rope_scaling->high_freq_factor},
            {"original_max_position_embeddings", c.rope_scaling->original_max_position_embeddings}};
  }
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {  // transformers 5
    Json rp = c.rope_scaling ? rope : Json{{"rope_type", "default"}};
    rp["rope_theta"] = c.rope_theta;
    j["rope_parameters"] = rp;
  } else {
    j["rope_theta"] = c.rope_theta;
    j["rope_scaling"] = rope;
  }
  if (c.model_type == "llama" || c.model_type == "qwen3") j["attention_bias"] = c.attention_bias;
  if (c.model_type == "llama") j["mlp_bias"] = c.mlp_bias;
  if (c.model_type == "mistral") {
    j["sliding_window"] = c.sliding_window ? Json(*c.sliding_window) : Json(nullptr);
  } else if (c.model_type == "qwen2" || c.model_type == "qwen3") {
    j["use_sliding_window"] = c.sliding_window.has_value();
    if (c.sliding_window) j["sliding_window"] = *c.sliding_window;
  }
  if (c.eos_token_ids.size() == 1) {
    j["eos_token_id"] = c.eos_token_ids[0];
  } else if (!c.eos_token_ids.empty()) {
    j["eos_token_id"] = c.eos_token_ids;
  }
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  if (c.pad_token_id) j["pad_token_id"] = *c.pad_token_id;
  if (!c.torch_dtype.empty()) {
    j["torch_dtype"] = c.torch_dtype;
    if (j.contains("dtype")) j["dtype"] = c.torch_dtype;
  }
  return j;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> ExpectedTensors(const ModelConfig& c) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> t;
  const int64_t h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  t.push_back({"model.embed_tokens.weight", {c.vocab_size, h}});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    t.push_back({p + "input_layernorm.weight", {h}});
    t.push_back({p + "self_attn.q_proj.weight", {q, h}});
    if (c.attention_bias) t.push_back({p + "self_attn.q_proj.bias", {q}});
    t.push_back({p + "self_attn.k_proj.weight", {kv, h}});
    if (c.attention_bias) t.push_back({p + "self_attn.k_proj.bias", {kv}});
    t.push_back({p + "self_attn.v_proj.weight", {kv, h}});
    if (c.attention_bias) t.push_back({p + "self_attn.v_proj.bias", {kv}});
    t.push_back({p + "self_attn.o_proj.weight", {h, q}});
    if (c.o_proj_bias) t.push_back({p + "self_attn.o_proj.bias", {h}});
    if (c.qk_norm) {
      t.push_back({p + "self_attn.q_norm.weight", {c.head_dim}});
      t.push_back({p + "self_attn.k_norm.weight", {c.head_dim}});
    }
    t.push_back({p + "post_attention_layernorm.weight", {h}});
    t.push_back({p + "mlp.gate_proj.weight", {c.intermediate_size, h}});
    if (c.mlp_bias) t.push_back({p + "mlp.gate_proj.bias", {c.intermediate_size}});
    t.push_back({p + "mlp.up_proj.weight", {c.intermediate_size, h}});
    if (c.mlp_bias) t.push_back({p + "mlp.up_proj.bias", {c.intermediate_size}});
    t.push_back({p + "mlp.down_proj.weight", {h, c.intermediate_size}});
    if (c.mlp_bias) t.push_back({p + "mlp.down_proj.bias", {h}});
  }
  t.push_back({"model.norm.weight", {h}});
  if (!c.tie_word_embeddings) t.push_back({"lm_head.weight", {c.vocab_size, h}});
  return t;
}

int64_t ModelConfig::NumParams() const {
  int64_t total = 0;
  for (const auto& [name, shape] : ExpectedTensors(*this)) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    total += n;
  }
  return total;
}

}  // namespace sfd
