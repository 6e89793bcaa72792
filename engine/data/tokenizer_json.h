// JsonTokenizer: a Tokenizer built from an HF tokenizer.json (BPE model). Pipeline of Encode:
//   1. added tokens (special or not) are matched in the raw text, leftmost-longest, with
//      lstrip/rstrip trimming the neighbouring text;
//   2. each remaining section: normalizer -> pre-tokenizer -> BPE model, word by word;
//   3. add_special_tokens: the post-processor (TemplateProcessing "single", Bert/Roberta
//      cls/sep, ByteLevel = no-op, Sequence) wraps the ids.
// Decode maps ids to token strings (added tokens verbatim, special ones dropped on request) and
// runs the decoder. Matches transformers.js / HF tokenizers; deviations are listed in
// engine/data/README.md. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/data/bpe_model.h"
#include "engine/data/pretokenizer.h"
#include "engine/data/tokenizer.h"
#include "engine/data/tokenizer_decoder.h"
#include "engine/data/tokenizer_normalizer.h"

namespace sfd {

class JsonTokenizer : public Tokenizer {
 public:
  // `source` names the file in errors.
  static absl::StatusOr<std::unique_ptr<JsonTokenizer>> Parse(std::string_view json,
                                                              const std::string& source);

  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                              bool add_special_tokens) const override;
  absl::StatusOr<std::string> Decode(const std::vector<int32_t>& ids,
                                     bool skip_special_tokens) const override;
  std::optional<int32_t> TokenToId(std::string_view token) const override;
  std::optional<std::string> IdToToken(int32_t id) const override;
  // Largest id (vocab or added token) + 1.
  int64_t vocab_size() const override { return vocab_size_; }
  bool IsSpecial(int32_t id) const override;

 private:
  struct AddedToken {
    std::string content;
    int32_t id;
    bool special;
    bool lstrip;
    bool rstrip;
  };
  // One step of the post-processor's "single" template: fixed ids, or the sequence itself.
  struct TemplatePiece {
    bool is_sequence;
    std::vector<int32_t> ids;
  };

  JsonTokenizer() = default;
  absl::Status LoadAddedTokens(const nlohmann::json& j, const std::string& what);
  absl::Status LoadPostProcessor(const nlohmann::json& j, const std::string& what);
  // Leftmost-longest added token starting at or after `from`; returns its index or -1.
  int FindAddedToken(std::string_view text, size_t from, size_t* at) const;
  absl::Status EncodeSection(std::string_view section, bool first_section,
                             std::vector<int32_t>* ids) const;

  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Decoder> decoder_;
  std::vector<AddedToken> added_;
  absl::flat_hash_map<std::string, int> added_by_content_;
  absl::flat_hash_map<int32_t, int> added_by_id_;
  std::vector<int> added_by_first_byte_[256];  // indices into added_, longest first
  // Post-processor templates applied in order (a Sequence of TemplateProcessing is rare but
  // allowed); empty: no special tokens are added.
  std::vector<std::vector<TemplatePiece>> templates_;
  int64_t vocab_size_ = 0;
};

}  // namespace sfd
