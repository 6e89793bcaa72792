// Tokenizer: text <-> token ids for the data pipeline (no torch). Two implementations behind
// one interface:
//  - HF tokenizers' tokenizer.json (engine/data/tokenizer_json.h): BPE models — byte-level
//    (Llama-3.x, Qwen2/2.5/3, GPT-2) and SentencePiece-style with byte fallback (Llama-2 /
//    Mistral tokenizer.json) — with added tokens, normalizer, pre-tokenizer (PCRE2),
//    post-processor and decoder as the file describes them.
//  - SentencePiece tokenizer.model through libsentencepiece
//    (engine/data/sentencepiece_tokenizer.h), when a model directory has no tokenizer.json.
// tokenizer_config.json, chat templates and bos/eos names are handled elsewhere (chat_template*).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace sfd {

class Tokenizer {
 public:
  // tokenizer.json (HF tokenizers format) when the directory has one, else tokenizer.model
  // (SentencePiece via libsentencepiece). NotFound when it has neither.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromModelDir(const std::string& dir);
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromTokenizerJson(const std::string& path);
  // Same as FromTokenizerJson, from the file's contents; `source` names it in errors.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromTokenizerJsonString(
      std::string_view json, const std::string& source);
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromSentencePiece(
      const std::string& model_path);
  virtual ~Tokenizer();

  // add_special_tokens: apply the post-processor template (e.g. Llama-3 BOS), like HF
  // encode(text, add_special_tokens=...). Added/special tokens written in the text are always
  // recognised. `text` must be valid UTF-8 (InvalidArgument otherwise).
  virtual absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                                      bool add_special_tokens) const = 0;
  // Ids out of range are InvalidArgument. Byte sequences that are not valid UTF-8 come out as
  // U+FFFD, like HF decode.
  virtual absl::StatusOr<std::string> Decode(const std::vector<int32_t>& ids,
                                             bool skip_special_tokens) const = 0;
  virtual std::optional<int32_t> TokenToId(std::string_view token) const = 0;  // vocab or added
  virtual std::optional<std::string> IdToToken(int32_t id) const = 0;
  virtual int64_t vocab_size() const = 0;  // including added tokens
  virtual bool IsSpecial(int32_t id) const = 0;
};

}  // namespace sfd
