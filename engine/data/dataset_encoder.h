// DatasetEncoder: a validated Sample (dataset_row.h) -> token ids + per-token loss mask
// (a Document), truncated to max_seq_len. What carries loss:
//   text:        every token (BOS/EOS as the tokenizer adds them, EOS appended);
//   prompt/completion and alpaca: completion/output tokens + EOS (all with TrainOn::kAll);
//   messages:    the chat template's assistant turns incl. their end-of-turn token, minus turns
//                with weight 0 (all tokens with TrainOn::kAll).
// Alpaca prompts use the standard Stanford Alpaca template (see engine/data/README.md).
// For messages the whole render is tokenized at once (ids identical to HF
// apply_chat_template(tokenize=True)); span boundaries are mapped to tokens by tokenizing the
// pieces (exact when the pieces' ids concatenate to the whole) or else by tokenizing the
// prefix up to each boundary; a token that straddles a boundary belongs to the turn.
// Thread-safe: Encode() may run on several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/data/chat_template.h"
#include "engine/data/dataset_row.h"
#include "engine/data/tokenizer.h"
#include "engine/data/tokenizer_config.h"
#include "engine/job/job_spec.h"

namespace sfd {

// One tokenized sample. trained[t] != 0: token t is a target (its prediction from tokens
// [0, t) carries loss). Host memory, int32 ids / uint8 flags, same length.
struct Document {
  std::vector<int32_t> ids;
  std::vector<uint8_t> trained;
  bool truncated = false;
  // True when at least one token with a predecessor is trained (a loss can be computed).
  bool HasTarget() const {
    for (size_t t = 1; t < trained.size(); ++t)
      if (trained[t]) return true;
    return false;
  }
};

// The Alpaca prompt (everything before the output).
std::string AlpacaPrompt(const std::string& instruction, const std::string& input);

class DatasetEncoder {
 public:
  // `chat_template` may be null (then a messages sample is an error). Pointers must outlive
  // the encoder.
  DatasetEncoder(const Tokenizer* tokenizer, const ChatTemplate* chat_template,
                 const TokenizerConfig& config, TrainOn train_on, int64_t max_seq_len);

  absl::StatusOr<Document> Encode(const Sample& sample) const;

  // For the messages path (exposed for tests): ids of `text` and the trained flags of the
  // char spans.
  absl::StatusOr<Document> EncodeWithSpans(
      const std::string& text, const std::vector<std::pair<size_t, size_t>>& spans) const;

  std::optional<int32_t> eos_id() const { return eos_id_; }

 private:
  absl::StatusOr<Document> EncodePromptCompletion(const std::string& prompt,
                                                  const std::string& completion) const;
  void Truncate(Document* d) const;

  const Tokenizer* tok_;
  const ChatTemplate* tmpl_;
  TrainOn train_on_;
  int64_t max_seq_len_;
  std::optional<int32_t> eos_id_;
  std::vector<std::string> end_markers_;
};

}  // namespace sfd
