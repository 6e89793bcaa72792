// TokenBatch: one micro-batch of token ids as the trainer consumes it (host memory, int32,
// row-major [rows, seq]). Produced by the data pipeline (data/), consumed by trainer/.
#pragma once

#include <cstdint>
#include <vector>

namespace sfd {

inline constexpr int32_t kIgnoreLabel = -100;

struct TokenBatch {
  int64_t rows = 0;  // micro-batch size
  int64_t seq = 0;   // tokens per row (all rows padded to the same length)
  // [rows*seq] input token ids.
  std::vector<int32_t> input_ids;
  // [rows*seq] target for each position, already shifted: targets[t] is the token the model
  // must predict after reading input_ids[..t]; kIgnoreLabel where no loss is taken (prompt,
  // padding, last token of a document).
  std::vector<int32_t> targets;
  // [rows*seq] RoPE positions; restart at 0 for each packed document.
  std::vector<int32_t> position_ids;
  // [rows*seq] document id within the row: a token attends only to earlier tokens with the
  // same id (causal + block-diagonal). Padding gets an id of its own.
  std::vector<int32_t> segment_ids;

  int64_t num_tokens() const { return rows * seq; }
  // Number of positions that contribute to the loss.
  int64_t num_target_tokens() const {
    int64_t n = 0;
    for (int32_t t : targets) n += (t != kIgnoreLabel);
    return n;
  }
  // True when every row is one document (segment ids all equal per row): the engine can use
  // plain causal attention.
  bool single_document_rows() const {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t t = 1; t < seq; ++t)
        if (segment_ids[r * seq + t] != segment_ids[r * seq]) return false;
    return true;
  }
};

}  // namespace sfd
