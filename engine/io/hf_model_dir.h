// A Hugging Face model directory: config.json plus model.safetensors or sharded
// model-0000i-of-0000N.safetensors with model.safetensors.index.json.
//
// HfModelDir opens one for reading (shards mmapped, tensors read as fp32 on demand; const
// methods thread-safe) after
// checking that it is a checkpoint sfd can train: a supported config and every tensor
// ExpectedTensors() names, with the right shape and a float dtype.
// WriteHfModelDir writes one (config, shards, index, tokenizer files) that transformers loads,
// atomically: into a temp dir beside the target, fsynced, then swapped into place.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/io/dtype.h"
#include "engine/io/model_config.h"
#include "engine/io/safetensors.h"

namespace sfd {

class HfModelDir {
 public:
  // Validates config, every shard header, index consistency, and that every ExpectedTensors()
  // name exists with the right shape (the error lists missing/mismatched names and says which
  // architectures are supported). Tensors beyond the expected ones are allowed and ignored.
  static absl::StatusOr<std::unique_ptr<HfModelDir>> Open(const std::string& dir);

  const ModelConfig& config() const { return config_; }
  const std::string& dir() const { return dir_; }
  // fp32 copy of a tensor into out (numel must match); errors name file + tensor.
  absl::Status ReadFloat(std::string_view name, absl::Span<float> out) const;
  const TensorInfo* Find(std::string_view name) const;  // nullptr if absent
  // The shard holding `name` (for raw Bytes() access); nullptr if absent.
  const SafetensorsFile* FileOf(std::string_view name) const;
  // Every tensor name of the checkpoint, sorted.
  std::vector<std::string> TensorNames() const;
  // The opened shard files, in file-name order.
  const std::vector<std::unique_ptr<SafetensorsFile>>& shards() const { return shards_; }

 private:
  HfModelDir() = default;
  struct Location {
    const SafetensorsFile* file;
    const TensorInfo* info;
  };
  std::string dir_;
  ModelConfig config_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, Location, std::less<>> tensors_;
};

// Source of one tensor for writing: name, shape, and a function that fills fp32 data on demand
// (so the whole model never has to exist twice in RAM). dst holds numel floats.
struct TensorSource {
  std::string name;
  std::vector<int64_t> shape;
  std::function<void(float* dst)> fill;
};

struct HfWriteOptions {
  DType dtype = DType::kBF16;  // F32, F16 or BF16 (F64 allowed)
  int64_t max_shard_bytes = 5'000'000'000;
  // Model dir whose tokenizer files (tokenizer.json, tokenizer_config.json, tokenizer.model,
  // special_tokens_map.json, chat_template.jinja, generation_config.json, vocab.json,
  // merges.txt, added_tokens.json) are copied when present. Empty: none.
  std::string copy_tokenizer_from;
};

// Files WriteHfModelDir copies from HfWriteOptions::copy_tokenizer_from when they exist.
const std::vector<std::string>& TokenizerFileNames();

// Writes config (raw JSON with torch_dtype/dtype updated to the written dtype), shards
// model-0000i-of-0000N.safetensors with __metadata__ {"format":"pt"} and
// model.safetensors.index.json (metadata.total_size + weight_map) -- or a single
// model.safetensors when one shard suffices -- into a temp dir beside `dir`, fsyncs, then
// renames it to `dir` (an existing dir is swapped out with renameat2(RENAME_EXCHANGE) and
// deleted). Tensors are filled and written one at a time (peak extra RAM: the largest tensor
// in fp32). On error nothing is left behind and an existing `dir` is untouched.
absl::Status WriteHfModelDir(const std::string& dir, const ModelConfig& config,
                             const std::vector<TensorSource>& tensors,
                             const HfWriteOptions& options);

}  // namespace sfd
