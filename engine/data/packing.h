// Packing: which documents share a row (best-fit decreasing) and how rows become the
// engine's TokenBatch (engine/data/token_batch.h): per packed document, input ids, targets
// shifted by one with kIgnoreLabel where the next token carries no loss and at the document's
// last token, position ids restarting at 0, and a segment id per document (0, 1, ... in row
// order) so attention stays inside a document. Padding (to the batch's sequence length, and
// whole filler rows in a short last micro-batch) gets pad ids, kIgnoreLabel targets and a
// segment id of its own (one past the row's last document).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/data/dataset_encoder.h"
#include "engine/data/token_batch.h"

namespace sfd {

// Rows as CSR: row r holds documents doc[row_begin[r] .. row_begin[r+1]).
struct PackPlan {
  std::vector<int64_t> row_begin{0};
  std::vector<int64_t> doc;
  int64_t num_rows() const { return static_cast<int64_t>(row_begin.size()) - 1; }
};

// Best-fit decreasing: documents by length (longest first, ties by index) each go into the
// open row with the least room that still fits, else a new row. Deterministic. Every length
// must be in [1, capacity].
PackPlan PackBestFitDecreasing(const std::vector<int32_t>& lengths, int64_t capacity);
// One document per row, in index order (packing off).
PackPlan OneDocPerRow(int64_t num_docs);

// Sequence length of a batch whose longest row has `longest` tokens: rounded up to a multiple
// of 8, but at most max_seq_len.
int64_t BatchSeqLen(int64_t longest, int64_t max_seq_len);

// rows[r] = the documents of row r (rows.size() <= batch_rows; missing rows are padding).
absl::StatusOr<TokenBatch> AssembleBatch(const std::vector<std::vector<const Document*>>& rows,
                                         int64_t batch_rows, int64_t max_seq_len, int32_t pad_id);

}  // namespace sfd
