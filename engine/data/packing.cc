#include "engine/data/packing.h"

#include <algorithm>
#include <numeric>
#include <set>

#include "absl/strings/str_cat.h"

namespace sfd {

PackPlan PackBestFitDecreasing(const std::vector<int32_t>& lengths, int64_t capacity) {
  std::vector<int64_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
  std::vector<std::vector<int64_t>> rows;
  std::set<std::pair<int64_t, int64_t>> open;  // (room left, row index)
  for (int64_t d : order) {
    const int64_t len = lengths[d];
    auto it = open.lower_bound({len, -1});
    if (it == open.end()) {
      rows.push_back({d});
      if (capacity - len > 0) open.insert({capacity - len, static_cast<int64_t>(rows.size()) - 1});
      continue;
    }
    auto [room, r] = *it;
    open.erase(it);
    rows[r].push_back(d);
    if (room - len > 0) open.insert({room - len, r});
  }
  PackPlan plan;
  for (const auto& row : rows) {
    plan.doc.insert(plan.doc.end(), row.begin(), row.end());
    plan.row_begin.push_back(static_cast<int64_t>(plan.doc.size()));
  }
  return plan;
}

PackPlan OneDocPerRow(int64_t num_docs) {
  PackPlan plan;
  for (int64_t d = 0; d < num_docs; ++d) {
    plan.doc.push_back(d);
    plan.row_begin.push_back(d + 1);
  }
  return plan;
}

int64_t BatchSeqLen(int64_t longest, int64_t max_seq_len) {
  int64_t seq = (std::max<int64_t>(longest, 1) + 7) / 8 * 8;
  return std::min(seq, std::max<int64_t>(max_seq_len, longest));
}

absl::StatusOr<TokenBatch> AssembleBatch(const std::vector<std::vector<const Document*>>& rows,
                                         int64_t batch_rows, int64_t max_seq_len, int32_t pad_id) {
  if (static_cast<int64_t>(rows.size()) > batch_rows)
    return absl::InternalError(
        absl::StrCat("batch has ", rows.size(), " rows, more than ", batch_rows));
  int64_t longest = 0;
  for (const auto& row : rows) {
    int64_t n = 0;
    for (const Document* d : row) n += static_cast<int64_t>(d->ids.size());
    if (n > max_seq_len)
      return absl::InternalError(
          absl::StrCat("packed row of ", n, " tokens exceeds max_seq_len ", max_seq_len));
    longest = std::max(longest, n);
  }
  TokenBatch b;
  b.rows = batch_rows;
  b.seq = BatchSeqLen(longest, max_seq_len);
  const size_t total = static_cast<size_t>(b.rows * b.seq);
  b.input_ids.assign(total, pad_id);
  b.targets.assign(total, kIgnoreLabel);
  b.position_ids.assign(total, 0);
  b.segment_ids.assign(total, 0);
  for (int64_t r = 0; r < batch_rows; ++r) {
    const size_t base = static_cast<size_t>(r * b.seq);
    int64_t t = 0;
    int32_t seg = 0;
    if (r < static_cast<int64_t>(rows.size())) {
      for (const Document* d : rows[r]) {
        const int64_t n = static_cast<int64_t>(d->ids.size());
        for (int64_t i = 0; i < n; ++i) {
          b.input_ids[base + t + i] = d->ids[i];
          b.position_ids[base + t + i] = static_cast<int32_t>(i);
          b.segment_ids[base + t + i] = seg;
          if (i + 1 < n && d->trained[i + 1]) b.targets[base + t + i] = d->ids[i + 1];
        }
        t += n;
        ++seg;
      }
    }
    for (int64_t p = 0; t + p < b.seq; ++p) {  // padding: a segment of its own
      b.position_ids[base + t + p] = static_cast<int32_t>(p);
      b.segment_ids[base + t + p] = seg;
    }
  }
  return b;
}

}  // namespace sfd
