// BatchStream: a JSONL dataset as the trainer's stream of micro-batches (TokenBatch).
// Create() streams the file once (bounded memory), validates every row (errors name
// file:line), tokenizes and masks the samples on a pool of background threads, spills tokens
// to a temporary file (engine/data/dataset_cache.h) and packs rows (best-fit decreasing,
// engine/data/packing.h). Rows are shuffled per epoch from (seed, epoch); while the trainer
// runs a step, a background thread assembles the next one. The position (epoch, step in
// epoch) is all a checkpoint needs to resume exactly: same data + tokenizer + spec + seed give
// the same rows in the same order.
// Eval: `is_eval` reads data.eval_path, or the data.eval_fraction of train rows (chosen by a
// hash of (seed, row index); the train stream leaves them out), unshuffled.
// Each optimizer step is up to grad_accum micro-batches of micro_batch_size rows; the last step
// of an epoch may have fewer micro-batches, and its last micro-batch filler rows (all padding).
#pragma once

#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/data/chat_template.h"
#include "engine/data/dataset_cache.h"
#include "engine/data/packing.h"
#include "engine/data/token_batch.h"
#include "engine/data/tokenizer.h"
#include "engine/data/tokenizer_config.h"
#include "engine/job/job_spec.h"

namespace sfd {

struct SampleStats {
  int64_t samples = 0;            // documents kept
  int64_t skipped_no_target = 0;  // samples without any trainable token (after truncation)
  int64_t truncated = 0;          // samples cut to max_seq_len
  int64_t tokens = 0;             // tokens of the kept documents
};

// Saved in checkpoints (as JSON, see ToJson/FromJson).
struct DataPosition {
  int64_t epoch = 0;
  int64_t step_in_epoch = 0;
  std::string ToJson() const;
  static absl::StatusOr<DataPosition> FromJson(const std::string& json);
};

class BatchStream {
 public:
  static absl::StatusOr<std::unique_ptr<BatchStream>> Create(const DataSpec& spec,
                                                             const std::string& model_dir,
                                                             int64_t micro_batch_size,
                                                             uint64_t seed, bool is_eval);
  // Same with an already loaded tokenizer / config (tests, tools). `tokenizer` must outlive the
  // stream; `model_dir` is only used to find the chat template (may be "").
  static absl::StatusOr<std::unique_ptr<BatchStream>> CreateWithTokenizer(
      const DataSpec& spec, std::shared_ptr<const Tokenizer> tokenizer,
      const TokenizerConfig& config, const std::string& model_dir, int64_t micro_batch_size,
      uint64_t seed, bool is_eval);
  ~BatchStream();

  // The micro-batches of the next optimizer step. Wraps to the next epoch; OutOfRange when
  // the configured epochs are done.
  absl::StatusOr<std::vector<TokenBatch>> NextStep(int64_t grad_accum);
  int64_t steps_per_epoch(int64_t grad_accum) const;
  int64_t num_rows() const { return plan_.num_rows(); }
  const SampleStats& stats() const { return stats_; }
  // Position of the next step NextStep() returns.
  DataPosition position() const { return pos_; }
  absl::Status Seek(const DataPosition& p);
  void set_num_epochs(int64_t e) { num_epochs_ = e; }
  int64_t num_epochs() const { return num_epochs_; }
  const std::string& path() const { return path_; }

  // Row indices (into the pack plan) of an epoch, in training order.
  std::vector<int64_t> RowOrder(int64_t epoch) const;
  // Documents of row `r` (tests).
  absl::StatusOr<std::vector<Document>> RowDocuments(int64_t r) const;

 private:
  BatchStream() = default;
  absl::Status Load(const DataSpec& spec, const std::string& model_dir, bool is_eval);
  absl::StatusOr<std::vector<TokenBatch>> BuildStep(DataPosition p, int64_t grad_accum) const;
  void CancelPrefetch();

  std::shared_ptr<const Tokenizer> tokenizer_;
  TokenizerConfig config_;
  std::unique_ptr<ChatTemplate> template_;
  std::unique_ptr<DocumentCache> cache_;
  PackPlan plan_;
  SampleStats stats_;
  std::string path_;
  int64_t micro_batch_size_ = 1;
  int64_t max_seq_len_ = 2048;
  uint64_t seed_ = 0;
  bool shuffle_ = true;
  int32_t pad_id_ = 0;
  int64_t num_epochs_ = 1;
  DataPosition pos_;

  struct Prefetch {
    DataPosition pos;
    int64_t grad_accum = 0;
    std::future<absl::StatusOr<std::vector<TokenBatch>>> result;
  };
  std::unique_ptr<Prefetch> prefetch_;
};

// Whether row `index` (0-based among non-blank lines) of the train file belongs to the eval
// split of `fraction`.
bool IsEvalRow(uint64_t seed, int64_t index, double fraction);

}  // namespace sfd
