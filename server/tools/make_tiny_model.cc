// make_tiny_model: writes a small random-init decoder (Qwen3 or Llama architecture) as an HF
// model directory that sfd can train, with the vocabulary of a real tokenizer: config.json,
// model.safetensors (bf16), tokenizer.json and tokenizer_config.json. Used by the quickstart
// and the end-to-end tests. Torch-free (engine/io only). Weights: N(0, 0.02) from --seed,
// RMSNorm weights 1.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/common/status.h"
#include "engine/io/file_util.h"
#include "engine/io/hf_model_dir.h"
#include "engine/io/model_config.h"

ABSL_FLAG(std::string, out, "", "output model directory (replaced atomically)");
ABSL_FLAG(std::string, tokenizer_json, "", "tokenizer.json of a real tokenizer");
ABSL_FLAG(std::string, tokenizer_config, "", "tokenizer_config.json (chat template, eos)");
ABSL_FLAG(std::string, arch, "qwen3", "qwen3 | llama");
ABSL_FLAG(int64_t, hidden, 64, "hidden size");
ABSL_FLAG(int64_t, layers, 2, "decoder layers");
ABSL_FLAG(int64_t, intermediate, 128, "MLP intermediate size");
ABSL_FLAG(int64_t, heads, 4, "attention heads");
ABSL_FLAG(int64_t, kv_heads, 2, "key/value heads");
ABSL_FLAG(int64_t, seed, 1, "weight init seed");

namespace sfd {
namespace {

// Vocabulary size implied by tokenizer.json: 1 + the largest id of model.vocab and
// added_tokens, rounded up to a multiple of 64 (as real checkpoints pad it).
absl::StatusOr<int64_t> VocabSize(const std::string& path) {
  SFD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, ": not JSON"));
  int64_t max_id = -1;
  if (j.contains("model") && j["model"].contains("vocab") && j["model"]["vocab"].is_object())
    for (auto& [k, v] : j["model"]["vocab"].items())
      if (v.is_number_integer()) max_id = std::max<int64_t>(max_id, v.get<int64_t>());
  if (j.contains("added_tokens") && j["added_tokens"].is_array())
    for (auto& t : j["added_tokens"])
      if (t.contains("id") && t["id"].is_number_integer())
        max_id = std::max<int64_t>(max_id, t["id"].get<int64_t>());
  if (max_id < 0) return absl::InvalidArgumentError(absl::StrCat(path, ": no vocabulary"));
  return (max_id + 1 + 63) / 64 * 64;
}

// Token id of `content` in tokenizer.json's added_tokens, or -1.
int64_t AddedTokenId(const std::string& tokenizer_json, const std::string& content) {
  auto text = ReadFileToString(tokenizer_json);
  if (!text.ok()) return -1;
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.contains("added_tokens")) return -1;
  for (auto& t : j["added_tokens"])
    if (t.value("content", "") == content) return t.value("id", -1);
  return -1;
}

absl::Status Run() {
  const std::string out = absl::GetFlag(FLAGS_out);
  const std::string tok = absl::GetFlag(FLAGS_tokenizer_json);
  const std::string tok_cfg = absl::GetFlag(FLAGS_tokenizer_config);
  if (out.empty() || tok.empty())
    return absl::InvalidArgumentError("--out and --tokenizer_json are required");
  SFD_ASSIGN_OR_RETURN(int64_t vocab, VocabSize(tok));

  ModelConfig c;
  const std::string arch = absl::GetFlag(FLAGS_arch);
  if (arch == "qwen3") {
    c.architecture = "Qwen3ForCausalLM";
    c.model_type = "qwen3";
    c.qk_norm = true;
    c.rope_theta = 1000000.0;
    c.tie_word_embeddings = true;
  } else if (arch == "llama") {
    c.architecture = "LlamaForCausalLM";
    c.model_type = "llama";
    c.rope_theta = 500000.0;
    c.tie_word_embeddings = true;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("--arch: qwen3 or llama, got ", arch));
  }
  c.vocab_size = vocab;
  c.hidden_size = absl::GetFlag(FLAGS_hidden);
  c.intermediate_size = absl::GetFlag(FLAGS_intermediate);
  c.num_layers = absl::GetFlag(FLAGS_layers);
  c.num_heads = absl::GetFlag(FLAGS_heads);
  c.num_kv_heads = absl::GetFlag(FLAGS_kv_heads);
  if (c.num_heads <= 0 || c.hidden_size % c.num_heads != 0)
    return absl::InvalidArgumentError("--hidden must be a multiple of --heads");
  c.head_dim = c.hidden_size / c.num_heads;
  c.max_position_embeddings = 4096;
  c.rms_norm_eps = 1e-6;
  c.torch_dtype = "bfloat16";
  for (const char* eos : {"<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>"}) {
    const int64_t id = AddedTokenId(tok, eos);
    if (id >= 0) c.eos_token_ids.push_back(id);
  }

  std::vector<TensorSource> tensors;
  const uint64_t seed = static_cast<uint64_t>(absl::GetFlag(FLAGS_seed));
  uint64_t index = 0;
  for (auto& [name, shape] : ExpectedTensors(c)) {
    const bool norm = absl::EndsWith(name, "norm.weight");
    const uint64_t tensor_seed = seed * 1000003ULL + index++;
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    tensors.push_back({name, shape, [norm, numel, tensor_seed](float* dst) {
                         if (norm) {
                           std::fill(dst, dst + numel, 1.0f);
                           return;
                         }
                         std::mt19937_64 rng(tensor_seed);
                         std::normal_distribution<float> dist(0.0f, 0.02f);
                         for (int64_t i = 0; i < numel; ++i) dst[i] = dist(rng);
                       }});
  }
  HfWriteOptions opts;
  opts.dtype = DType::kBF16;
  SFD_RETURN_IF_ERROR(WriteHfModelDir(out, c, tensors, opts));
  SFD_RETURN_IF_ERROR(CopyFile(tok, out + "/tokenizer.json"));
  if (!tok_cfg.empty()) SFD_RETURN_IF_ERROR(CopyFile(tok_cfg, out + "/tokenizer_config.json"));
  std::printf("make_tiny_model: %s (%s, vocab %lld, %lld params)\n", out.c_str(),
              c.architecture.c_str(), static_cast<long long>(vocab),
              static_cast<long long>(c.NumParams()));
  return absl::OkStatus();
}

}  // namespace
}  // namespace sfd

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "make_tiny_model --out=DIR --tokenizer_json=PATH [--tokenizer_config=PATH] [--arch=qwen3]");
  absl::ParseCommandLine(argc, argv);
  absl::Status st = sfd::Run();
  if (!st.ok()) {
    std::fprintf(stderr, "make_tiny_model: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  return 0;
}
