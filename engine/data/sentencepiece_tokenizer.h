// SentencePieceTokenizer: a Tokenizer over a SentencePiece tokenizer.model (libsentencepiece),
// for model directories without tokenizer.json (Llama-2 / Mistral-v0.1 style). Like HF's
// LlamaTokenizer: control pieces (<s>, </s>) and the unk piece written in the text are matched
// first (leftmost-longest) and each text section between them goes through SentencePiece on its
// own; add_special_tokens prepends BOS (when the model has one). Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/data/tokenizer.h"

namespace sfd {

class SentencePieceTokenizer : public Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> Load(
      const std::string& model_path);
  ~SentencePieceTokenizer() override;

  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                              bool add_special_tokens) const override;
  absl::StatusOr<std::string> Decode(const std::vector<int32_t>& ids,
                                     bool skip_special_tokens) const override;
  std::optional<int32_t> TokenToId(std::string_view token) const override;
  std::optional<std::string> IdToToken(int32_t id) const override;
  int64_t vocab_size() const override;
  bool IsSpecial(int32_t id) const override;

 private:
  struct Impl;
  explicit SentencePieceTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sfd
