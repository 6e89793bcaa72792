// BatchStream end to end with a real tokenizer: bad input errors (file:line, no usable
// sample), skipped counts, every document once per epoch, deterministic shuffle, exact resume
// from a saved position, epochs and OutOfRange, eval split, packing on/off.
#include "engine/data/batch_stream.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "tests/engine/data/data_test_util.h"

namespace sfd {
namespace {

std::string Dir() {
  static const std::string dir = testing_util::TokenizerModelDir("qwen3");
  return dir;
}

// n prompt/completion rows of varying length.
std::string CompletionRows(int n) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    std::string words;
    for (int w = 0; w < 1 + (i * 7) % 23; ++w) absl::StrAppend(&words, " w", w);
    absl::StrAppend(&out, "{\"prompt\": \"Question ", i, ":", words,
                    "\", \"completion\": \" Answer ", i, ".\"}\n");
  }
  return out;
}

DataSpec Spec(const std::string& path, int64_t max_seq_len = 64) {
  DataSpec s;
  s.train_path = path;
  s.max_seq_len = max_seq_len;
  return s;
}

// All steps of all epochs, flattened to their micro-batches.
std::vector<TokenBatch> Drain(BatchStream& bs, int64_t grad_accum) {
  std::vector<TokenBatch> out;
  while (true) {
    auto step = bs.NextStep(grad_accum);
    if (!step.ok()) {
      EXPECT_TRUE(absl::IsOutOfRange(step.status())) << step.status();
      return out;
    }
    EXPECT_FALSE(step->empty());
    EXPECT_LE(static_cast<int64_t>(step->size()), grad_accum);
    for (auto& b : *step) out.push_back(std::move(b));
  }
}

bool SameBatch(const TokenBatch& a, const TokenBatch& b) {
  return a.rows == b.rows && a.seq == b.seq && a.input_ids == b.input_ids &&
         a.targets == b.targets && a.position_ids == b.position_ids &&
         a.segment_ids == b.segment_ids;
}

TEST(BatchStreamTest, MalformedLineNamesFileAndLine) {
  ASSERT_FALSE(Dir().empty());
  const std::string path = testing_util::WriteTempFile(
      "bad.jsonl", "{\"text\": \"ok\"}\n\n{\"text\": \"ok\"}\n{\"text\": 3}\n");
  auto bs = BatchStream::Create(Spec(path), Dir(), 2, 1, false);
  ASSERT_FALSE(bs.ok());
  EXPECT_NE(bs.status().message().find(path + ":4:"), std::string::npos) << bs.status();
  EXPECT_NE(bs.status().message().find("\"text\" must be a string"), std::string::npos)
      << bs.status();

  const std::string mixed = testing_util::WriteTempFile(
      "mixed.jsonl", "{\"text\": \"ok\"}\n{\"prompt\": \"p\", \"completion\": \"c\"}\n");
  auto m = BatchStream::Create(Spec(mixed), Dir(), 2, 1, false);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find(mixed + ":2:"), std::string::npos) << m.status();

  const std::string broken =
      testing_util::WriteTempFile("broken.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"\n");
  auto b = BatchStream::Create(Spec(broken), Dir(), 2, 1, false);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find(broken + ":2: invalid JSON"), std::string::npos)
      << b.status();
}

TEST(BatchStreamTest, NoUsableSampleIsAnErrorAndSkipsAreCounted) {
  ASSERT_FALSE(Dir().empty());
  const std::string empty_completions = testing_util::WriteTempFile(
      "nothing.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n");
  DataSpec spec = Spec(empty_completions);
  spec.chat_template = "qwen2.5";
  auto bs = BatchStream::Create(spec, Dir(), 1, 1, false);
  ASSERT_FALSE(bs.ok());
  EXPECT_NE(bs.status().message().find("no usable sample"), std::string::npos) << bs.status();
  EXPECT_NE(bs.status().message().find("1 without a trainable token"), std::string::npos)
      << bs.status();

  const std::string some =
      testing_util::WriteTempFile("some.jsonl",
                                  "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n"
                                  "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, "
                                  "{\"role\": \"assistant\", \"content\": \"yo\"}]}\n"
                                  "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, "
                                  "{\"role\": \"assistant\", \"content\": \"no\", "
                                  "\"weight\": 0}]}\n");
  // No data.chat_template: the model's own (tokenizer_config.json of the Qwen3 fixture).
  auto s = BatchStream::Create(Spec(some), Dir(), 1, 1, false);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->stats().samples, 1);
  EXPECT_EQ((*s)->stats().skipped_no_target, 2);
}

TEST(BatchStreamTest, EveryDocumentOncePerEpochAndDeterministicShuffle) {
  ASSERT_FALSE(Dir().empty());
  const std::string path = testing_util::WriteTempFile("rows.jsonl", CompletionRows(57));
  for (bool packing : {true, false}) {
    DataSpec spec = Spec(path, 128);
    spec.packing = packing;
    auto a = BatchStream::Create(spec, Dir(), 3, 7, false);
    ASSERT_TRUE(a.ok()) << a.status();
    BatchStream& s = **a;
    EXPECT_EQ(s.stats().samples, 57);
    EXPECT_EQ(s.stats().skipped_no_target, 0);
    if (packing)
      EXPECT_LT(s.num_rows(), 57);
    else
      EXPECT_EQ(s.num_rows(), 57);
    s.set_num_epochs(2);
    const int64_t ga = 2;
    const int64_t spe = s.steps_per_epoch(ga);
    EXPECT_EQ(spe, (s.num_rows() + 5) / 6);
    auto batches = Drain(s, ga);
    // Over both epochs every document appears exactly twice: count segments that carry a
    // target (padding segments never do), keyed by their tokens.
    std::map<std::vector<int32_t>, int> docs;
    for (const auto& b : batches) {
      ASSERT_EQ(b.rows, 3);
      ASSERT_LE(b.seq, 128);
      ASSERT_EQ(b.seq % 8, 0);
      for (int64_t r = 0; r < b.rows; ++r) {
        std::vector<int32_t> cur;
        bool has_target = false;
        for (int64_t t = 0; t <= b.seq; ++t) {
          const size_t i = r * b.seq + t;
          if (t == b.seq || (t > 0 && b.segment_ids[i] != b.segment_ids[i - 1])) {
            if (has_target) ++docs[cur];
            cur.clear();
            has_target = false;
            if (t == b.seq) break;
            EXPECT_EQ(b.position_ids[i], 0);
          }
          cur.push_back(b.input_ids[i]);
          has_target |= b.targets[i] != kIgnoreLabel;
        }
      }
    }
    EXPECT_EQ(docs.size(), 57u);
    for (const auto& [ids, n] : docs) EXPECT_EQ(n, 2);
    // Same seed: identical stream; different seed: different order.
    auto b = BatchStream::Create(spec, Dir(), 3, 7, false);
    ASSERT_TRUE(b.ok());
    (*b)->set_num_epochs(2);
    auto again = Drain(**b, ga);
    ASSERT_EQ(again.size(), batches.size());
    for (size_t i = 0; i < again.size(); ++i) EXPECT_TRUE(SameBatch(again[i], batches[i])) << i;
    auto c = BatchStream::Create(spec, Dir(), 3, 8, false);
    ASSERT_TRUE(c.ok());
    EXPECT_NE((*c)->RowOrder(0), (*b)->RowOrder(0));
    EXPECT_NE((*b)->RowOrder(0), (*b)->RowOrder(1));  // reshuffled per epoch
  }
}

TEST(BatchStreamTest, ExactResumeFromSavedPosition) {
  ASSERT_FALSE(Dir().empty());
  const std::string path = testing_util::WriteTempFile("resume.jsonl", CompletionRows(40));
  auto full = BatchStream::Create(Spec(path), Dir(), 2, 3, false);
  ASSERT_TRUE(full.ok());
  (*full)->set_num_epochs(3);
  std::vector<std::vector<TokenBatch>> steps;
  std::vector<DataPosition> positions;
  while (true) {
    positions.push_back((*full)->position());
    auto s = (*full)->NextStep(2);
    if (!s.ok()) {
      ASSERT_TRUE(absl::IsOutOfRange(s.status())) << s.status();
      break;
    }
    steps.push_back(std::move(*s));
  }
  const int64_t spe = (*full)->steps_per_epoch(2);
  ASSERT_EQ(static_cast<int64_t>(steps.size()), 3 * spe);
  for (size_t k :
       {size_t{1}, static_cast<size_t>(spe), static_cast<size_t>(spe + 1), steps.size() - 1}) {
    auto json = positions[k].ToJson();
    auto pos = DataPosition::FromJson(json);
    ASSERT_TRUE(pos.ok()) << pos.status();
    EXPECT_EQ(pos->epoch, static_cast<int64_t>(k) / spe);
    EXPECT_EQ(pos->step_in_epoch, static_cast<int64_t>(k) % spe);
    auto resumed = BatchStream::Create(Spec(path), Dir(), 2, 3, false);
    ASSERT_TRUE(resumed.ok());
    (*resumed)->set_num_epochs(3);
    ASSERT_TRUE((*resumed)->Seek(*pos).ok());
    for (size_t j = k; j < steps.size(); ++j) {
      auto s = (*resumed)->NextStep(2);
      ASSERT_TRUE(s.ok()) << s.status();
      ASSERT_EQ(s->size(), steps[j].size());
      for (size_t m = 0; m < s->size(); ++m)
        EXPECT_TRUE(SameBatch((*s)[m], steps[j][m])) << "step " << j;
    }
    EXPECT_TRUE(absl::IsOutOfRange((*resumed)->NextStep(2).status()));
  }
  EXPECT_FALSE(DataPosition::FromJson("{\"epoch\": -1, \"step_in_epoch\": 0}").ok());
  EXPECT_FALSE(DataPosition::FromJson("nope").ok());
}

TEST(BatchStreamTest, EvalSplitIsDisjointAndUnshuffled) {
  ASSERT_FALSE(Dir().empty());
  const std::string path = testing_util::WriteTempFile("split.jsonl", CompletionRows(200));
  DataSpec spec = Spec(path, 128);
  spec.eval_fraction = 0.2;
  auto train = BatchStream::Create(spec, Dir(), 4, 11, false);
  auto eval = BatchStream::Create(spec, Dir(), 4, 11, true);
  ASSERT_TRUE(train.ok()) << train.status();
  ASSERT_TRUE(eval.ok()) << eval.status();
  EXPECT_EQ((*train)->stats().samples + (*eval)->stats().samples, 200);
  EXPECT_GT((*eval)->stats().samples, 15);
  EXPECT_LT((*eval)->stats().samples, 65);
  auto order = (*eval)->RowOrder(0);
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], static_cast<int64_t>(i));
  // Eval rows never appear in train: compare the documents' token sequences.
  std::set<std::vector<int32_t>> eval_docs;
  for (int64_t r = 0; r < (*eval)->num_rows(); ++r) {
    auto docs = (*eval)->RowDocuments(r);
    ASSERT_TRUE(docs.ok()) << docs.status();
    for (auto& d : *docs) eval_docs.insert(d.ids);
  }
  EXPECT_EQ(static_cast<int64_t>(eval_docs.size()), (*eval)->stats().samples);
  for (int64_t r = 0; r < (*train)->num_rows(); ++r) {
    auto docs = (*train)->RowDocuments(r);
    ASSERT_TRUE(docs.ok()) << docs.status();
    for (auto& d : *docs) EXPECT_EQ(eval_docs.count(d.ids), 0u);
  }
  // No eval data configured: a clear error.
  auto none = BatchStream::Create(Spec(path), Dir(), 4, 11, true);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("eval"), std::string::npos);
}

TEST(BatchStreamTest, TruncationAndPackedRowsRespectMaxSeqLen) {
  ASSERT_FALSE(Dir().empty());
  std::string rows;
  for (int i = 0; i < 30; ++i) {
    std::string text;
    for (int w = 0; w < 5 + i * 3; ++w) absl::StrAppend(&text, "token", w, " ");
    absl::StrAppend(&rows, "{\"text\": \"", text, "\"}\n");
  }
  const std::string path = testing_util::WriteTempFile("trunc.jsonl", rows);
  auto bs = BatchStream::Create(Spec(path, 50), Dir(), 2, 5, false);
  ASSERT_TRUE(bs.ok()) << bs.status();
  EXPECT_GT((*bs)->stats().truncated, 0);
  EXPECT_EQ((*bs)->stats().samples, 30);
  for (const auto& b : Drain(**bs, 1)) {
    EXPECT_LE(b.seq, 50);
    for (int64_t r = 0; r < b.rows; ++r) {
      int64_t real = 0;
      for (int64_t t = 0; t < b.seq; ++t) {
        // Targets are the next token within the same document only.
        const size_t i = r * b.seq + t;
        if (b.targets[i] != kIgnoreLabel) {
          ASSERT_LT(t + 1, b.seq);
          EXPECT_EQ(b.targets[i], b.input_ids[i + 1]);
          EXPECT_EQ(b.segment_ids[i], b.segment_ids[i + 1]);
          ++real;
        }
      }
      (void)real;
    }
  }
}

}  // namespace
}  // namespace sfd
