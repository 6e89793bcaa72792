// Packing: best-fit decreasing plans and the TokenBatch layout the engine consumes (targets
// shifted within a document, ignore at document ends and on prompt tokens, position ids
// restarting per document, one segment per document and one for padding, seq rounding).
#include "engine/data/packing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

namespace sfd {
namespace {

Document Doc(std::vector<int32_t> ids, std::vector<uint8_t> trained) {
  Document d;
  d.ids = std::move(ids);
  d.trained = std::move(trained);
  return d;
}

TEST(PackBestFitDecreasingTest, KnownExample) {
  // capacity 10: 7 -> row0 (3 left), 6 -> row1 (4), 4 -> row1 (best fit: 4 left -> 0),
  // 3 -> row0 (3 -> 0), 2 -> row2.
  std::vector<int32_t> lens = {3, 7, 2, 6, 4};
  PackPlan p = PackBestFitDecreasing(lens, 10);
  ASSERT_EQ(p.num_rows(), 3);
  auto row = [&](int r) {
    return std::vector<int64_t>(p.doc.begin() + p.row_begin[r], p.doc.begin() + p.row_begin[r + 1]);
  };
  EXPECT_EQ(row(0), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(row(1), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(row(2), (std::vector<int64_t>{2}));
}

TEST(PackBestFitDecreasingTest, EveryDocOnceAndRowsFit) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    const int64_t cap = 16 + rng() % 100;
    std::vector<int32_t> lens(1 + rng() % 300);
    for (auto& l : lens) l = 1 + static_cast<int32_t>(rng() % cap);
    PackPlan p = PackBestFitDecreasing(lens, cap);
    std::vector<int> seen(lens.size(), 0);
    int64_t total = 0;
    for (int64_t r = 0; r < p.num_rows(); ++r) {
      int64_t used = 0;
      for (int64_t k = p.row_begin[r]; k < p.row_begin[r + 1]; ++k) {
        used += lens[p.doc[k]];
        ++seen[p.doc[k]];
      }
      ASSERT_LE(used, cap);
      ASSERT_GT(used, 0);
      total += used;
    }
    for (int s : seen) ASSERT_EQ(s, 1);
    // Near-optimal: no more rows than first-fit's bound 2 * ceil(total / cap).
    EXPECT_LE(p.num_rows(), 2 * ((total + cap - 1) / cap));
    // Deterministic.
    PackPlan q = PackBestFitDecreasing(lens, cap);
    EXPECT_EQ(p.doc, q.doc);
    EXPECT_EQ(p.row_begin, q.row_begin);
  }
}

TEST(PackBestFitDecreasingTest, ExactFitsFillRows) {
  std::vector<int32_t> lens = {5, 5, 5, 5, 10, 8, 2};
  PackPlan p = PackBestFitDecreasing(lens, 10);
  EXPECT_EQ(p.num_rows(), 4);
}

TEST(BatchSeqLenTest, RoundsToEightCappedAtMax) {
  EXPECT_EQ(BatchSeqLen(1, 2048), 8);
  EXPECT_EQ(BatchSeqLen(8, 2048), 8);
  EXPECT_EQ(BatchSeqLen(9, 2048), 16);
  EXPECT_EQ(BatchSeqLen(2045, 2047), 2047);
  EXPECT_EQ(BatchSeqLen(2047, 2047), 2047);
  EXPECT_EQ(BatchSeqLen(5, 6), 6);
}

TEST(AssembleBatchTest, PackedRowLayout) {
  // Doc A: prompt 10,11 then completion 12,13 (trained); doc B: all trained 20,21,22.
  Document a = Doc({10, 11, 12, 13}, {0, 0, 1, 1});
  Document b = Doc({20, 21, 22}, {1, 1, 1});
  Document c = Doc({30, 31}, {0, 1});
  auto batch = AssembleBatch({{&a, &b}, {&c}}, /*batch_rows=*/3, /*max_seq_len=*/64, /*pad_id=*/0);
  ASSERT_TRUE(batch.ok()) << batch.status();
  const TokenBatch& t = *batch;
  ASSERT_EQ(t.rows, 3);
  ASSERT_EQ(t.seq, 8);
  const int32_t I = kIgnoreLabel;
  // Row 0: A then B then one pad.
  std::vector<int32_t> in0(t.input_ids.begin(), t.input_ids.begin() + 8);
  std::vector<int32_t> tg0(t.targets.begin(), t.targets.begin() + 8);
  std::vector<int32_t> pos0(t.position_ids.begin(), t.position_ids.begin() + 8);
  std::vector<int32_t> seg0(t.segment_ids.begin(), t.segment_ids.begin() + 8);
  EXPECT_EQ(in0, (std::vector<int32_t>{10, 11, 12, 13, 20, 21, 22, 0}));
  // 10 predicts 11 (prompt: ignored); 11 predicts 12 (trained); 12 predicts 13; 13 is A's last
  // token: no target across the document boundary. B: 20->21, 21->22, 22 last. Pad ignored.
  EXPECT_EQ(tg0, (std::vector<int32_t>{I, 12, 13, I, 21, 22, I, I}));
  EXPECT_EQ(pos0, (std::vector<int32_t>{0, 1, 2, 3, 0, 1, 2, 0}));
  EXPECT_EQ(seg0, (std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1, 2}));
  // Row 1: C then padding in its own segment.
  std::vector<int32_t> tg1(t.targets.begin() + 8, t.targets.begin() + 16);
  std::vector<int32_t> seg1(t.segment_ids.begin() + 8, t.segment_ids.begin() + 16);
  EXPECT_EQ(tg1, (std::vector<int32_t>{31, I, I, I, I, I, I, I}));
  EXPECT_EQ(seg1, (std::vector<int32_t>{0, 0, 1, 1, 1, 1, 1, 1}));
  // Row 2: filler, all ignored.
  for (int i = 16; i < 24; ++i) EXPECT_EQ(t.targets[i], I);
  EXPECT_EQ(t.num_target_tokens(), 2 + 2 + 1);
  EXPECT_FALSE(t.single_document_rows());
}

TEST(AssembleBatchTest, FullRowsHaveNoPaddingAndSingleDocRowsAreDetected) {
  Document a = Doc({1, 2, 3, 4, 5, 6, 7, 8}, std::vector<uint8_t>(8, 1));
  Document b = Doc({9, 10, 11, 12, 13, 14, 15, 16}, std::vector<uint8_t>(8, 1));
  auto batch = AssembleBatch({{&a}, {&b}}, 2, 8, 0);
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(batch->seq, 8);
  EXPECT_TRUE(batch->single_document_rows());
  EXPECT_EQ(batch->num_target_tokens(), 14);
  EXPECT_EQ(batch->targets[7], kIgnoreLabel);
  EXPECT_EQ(batch->targets[6], 8);
}

TEST(AssembleBatchTest, RejectsOverlongRowsAndTooManyRows) {
  Document a = Doc(std::vector<int32_t>(9, 1), std::vector<uint8_t>(9, 1));
  EXPECT_FALSE(AssembleBatch({{&a}}, 1, 8, 0).ok());
  Document b = Doc({1, 2}, {1, 1});
  EXPECT_FALSE(AssembleBatch({{&b}, {&b}}, 1, 8, 0).ok());
}

}  // namespace
}  // namespace sfd
