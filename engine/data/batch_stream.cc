#include "engine/data/batch_stream.h"

#include <algorithm>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "engine/common/status.h"
#include "engine/common/thread_pool.h"
#include "engine/data/dataset_encoder.h"
#include "engine/data/dataset_row.h"
#include "engine/data/jsonl_reader.h"
#include "nlohmann/json.hpp"

namespace sfd {
namespace {

constexpr size_t kChunkLines = 1024;

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

struct Encoded {
  absl::Status status;
  bool selected = false;
  Document doc;
};

}  // namespace

std::string DataPosition::ToJson() const {
  nlohmann::json j = {{"epoch", epoch}, {"step_in_epoch", step_in_epoch}};
  return j.dump();
}

absl::StatusOr<DataPosition> DataPosition::FromJson(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("epoch") || !j.contains("step_in_epoch") ||
      !j["epoch"].is_number_integer() || !j["step_in_epoch"].is_number_integer())
    return absl::InvalidArgumentError(absl::StrCat("bad data position JSON: ", text));
  DataPosition p;
  p.epoch = j["epoch"].get<int64_t>();
  p.step_in_epoch = j["step_in_epoch"].get<int64_t>();
  if (p.epoch < 0 || p.step_in_epoch < 0)
    return absl::InvalidArgumentError(absl::StrCat("negative data position: ", text));
  return p;
}

bool IsEvalRow(uint64_t seed, int64_t index, double fraction) {
  if (fraction <= 0) return false;
  uint64_t h = SplitMix64(SplitMix64(seed ^ 0xE7A15EEDull) + static_cast<uint64_t>(index));
  return static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0) < fraction;
}

absl::StatusOr<std::unique_ptr<BatchStream>> BatchStream::Create(const DataSpec& spec,
                                                                 const std::string& model_dir,
                                                                 int64_t micro_batch_size,
                                                                 uint64_t seed, bool is_eval) {
  SFD_ASSIGN_OR_RETURN(auto tok, Tokenizer::FromModelDir(model_dir));
  TokenizerConfig config;
  auto cfg = TokenizerConfig::FromFile(
      (std::filesystem::path(model_dir) / "tokenizer_config.json").string());
  if (cfg.ok())
    config = *cfg;
  else if (!absl::IsNotFound(cfg.status()))
    return cfg.status();
  return CreateWithTokenizer(spec, std::shared_ptr<const Tokenizer>(std::move(tok)), config,
                             model_dir, micro_batch_size, seed, is_eval);
}

absl::StatusOr<std::unique_ptr<BatchStream>> BatchStream::CreateWithTokenizer(
    const DataSpec& spec, std::shared_ptr<const Tokenizer> tokenizer, const TokenizerConfig& config,
    const std::string& model_dir, int64_t micro_batch_size, uint64_t seed, bool is_eval) {
  if (micro_batch_size <= 0) return absl::InvalidArgumentError("micro_batch_size must be positive");
  if (spec.max_seq_len <= 1)
    return absl::InvalidArgumentError("data.max_seq_len must be at least 2");
  if (spec.eval_fraction < 0 || spec.eval_fraction >= 1)
    return absl::InvalidArgumentError("data.eval_fraction must be in [0, 1)");
  auto s = std::unique_ptr<BatchStream>(new BatchStream());
  s->tokenizer_ = std::move(tokenizer);
  s->config_ = config;
  s->micro_batch_size_ = micro_batch_size;
  s->max_seq_len_ = spec.max_seq_len;
  s->seed_ = seed;
  s->shuffle_ = spec.shuffle && !is_eval;
  std::optional<int32_t> pad;
  if (auto p = config.Get("pad_token")) pad = s->tokenizer_->TokenToId(*p);
  if (!pad)
    if (auto e = config.eos_token()) pad = s->tokenizer_->TokenToId(*e);
  s->pad_id_ = pad.value_or(0);
  SFD_RETURN_IF_ERROR(s->Load(spec, model_dir, is_eval));
  return s;
}

BatchStream::~BatchStream() { CancelPrefetch(); }

absl::Status BatchStream::Load(const DataSpec& spec, const std::string& model_dir, bool is_eval) {
  const bool split = spec.eval_path.empty() && spec.eval_fraction > 0;
  if (is_eval && spec.eval_path.empty() && !split)
    return absl::InvalidArgumentError("no eval data: set data.eval_path or data.eval_fraction");
  path_ = (is_eval && !split) ? spec.eval_path : spec.train_path;
  if (path_.empty()) return absl::InvalidArgumentError("data.train_path is not set");

  // Format: the spec's, else the first row's; every row must then be in it.
  DatasetFormat format = spec.format;
  {
    SFD_ASSIGN_OR_RETURN(auto reader, JsonlReader::Open(path_));
    std::string line;
    int64_t line_no = 0;
    SFD_ASSIGN_OR_RETURN(bool any, reader->Next(&line, &line_no));
    if (!any) return absl::InvalidArgumentError(absl::StrCat(path_, ": the dataset is empty"));
    if (format == DatasetFormat::kAuto) {
      auto first = ParseRow(line, DatasetFormat::kAuto);
      if (!first.ok())
        return absl::InvalidArgumentError(
            absl::StrCat(path_, ":", line_no, ": ", first.status().message()));
      format = first->format;
    }
  }
  if (format == DatasetFormat::kMessages) {
    SFD_ASSIGN_OR_RETURN(template_, ChatTemplate::ForModel(model_dir, spec.chat_template));
  }
  DatasetEncoder encoder(tokenizer_.get(), template_.get(), config_, spec.train_on, max_seq_len_);
  SFD_ASSIGN_OR_RETURN(cache_, DocumentCache::Create());
  SFD_ASSIGN_OR_RETURN(auto reader, JsonlReader::Open(path_));

  ThreadPool pool(
      static_cast<int>(std::min(16u, std::max(1u, std::thread::hardware_concurrency()))));
  std::vector<std::string> lines;
  std::vector<int64_t> line_nos;
  std::vector<Encoded> out;
  int64_t row_index = 0, rows_selected = 0;
  bool eof = false;
  while (!eof) {
    lines.clear();
    line_nos.clear();
    std::string line;
    int64_t line_no = 0;
    while (lines.size() < kChunkLines) {
      SFD_ASSIGN_OR_RETURN(bool any, reader->Next(&line, &line_no));
      if (!any) {
        eof = true;
        break;
      }
      lines.push_back(std::move(line));
      line_nos.push_back(line_no);
    }
    out.assign(lines.size(), Encoded());
    const int64_t base = row_index;
    pool.ParallelFor(static_cast<int64_t>(lines.size()), [&](int64_t i) {
      Encoded& e = out[i];
      auto sample = ParseRow(lines[i], format);
      if (!sample.ok()) {
        e.status = sample.status();
        return;
      }
      bool eval_row = split && IsEvalRow(seed_, base + i, spec.eval_fraction);
      e.selected = !split || eval_row == is_eval;
      if (!e.selected) return;
      auto doc = encoder.Encode(*sample);
      if (!doc.ok()) {
        e.status = doc.status();
        return;
      }
      e.doc = std::move(*doc);
    });
    for (size_t i = 0; i < out.size(); ++i) {
      if (!out[i].status.ok())
        return absl::Status(out[i].status.code(),
                            absl::StrCat(path_, ":", line_nos[i], ": ", out[i].status.message()));
      if (!out[i].selected) continue;
      ++rows_selected;
      Document& d = out[i].doc;
      if (!d.HasTarget()) {
        ++stats_.skipped_no_target;
        continue;
      }
      stats_.truncated += d.truncated;
      stats_.tokens += static_cast<int64_t>(d.ids.size());
      ++stats_.samples;
      SFD_RETURN_IF_ERROR(cache_->Append(d));
    }
    row_index += static_cast<int64_t>(lines.size());
  }
  SFD_RETURN_IF_ERROR(cache_->Flush());
  if (stats_.samples == 0)
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": no usable sample",
                     split ? (is_eval ? " in the eval split" : " in the train split") : "", " (",
                     rows_selected, " rows, ", stats_.skipped_no_target,
                     " without a trainable token — e.g. empty completions, no assistant turn, or "
                     "cut off by max_seq_len ",
                     max_seq_len_, ")"));
  plan_ = spec.packing ? PackBestFitDecreasing(cache_->lengths(), max_seq_len_)
                       : OneDocPerRow(cache_->size());
  return absl::OkStatus();
}

int64_t BatchStream::steps_per_epoch(int64_t grad_accum) const {
  const int64_t rps = micro_batch_size_ * std::max<int64_t>(grad_accum, 1);
  return (plan_.num_rows() + rps - 1) / rps;
}

std::vector<int64_t> BatchStream::RowOrder(int64_t epoch) const {
  std::vector<int64_t> order(static_cast<size_t>(plan_.num_rows()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  if (!shuffle_) return order;
  uint64_t state = SplitMix64(seed_ ^ SplitMix64(static_cast<uint64_t>(epoch) + 0x5F0F1Eull));
  for (size_t i = order.size(); i > 1; --i) {  // Fisher-Yates with a portable generator
    state = SplitMix64(state);
    size_t j = static_cast<size_t>(state % i);
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

absl::StatusOr<std::vector<Document>> BatchStream::RowDocuments(int64_t r) const {
  if (r < 0 || r >= plan_.num_rows())
    return absl::OutOfRangeError(absl::StrCat("row ", r, " out of range"));
  std::vector<Document> docs;
  for (int64_t k = plan_.row_begin[r]; k < plan_.row_begin[r + 1]; ++k) {
    SFD_ASSIGN_OR_RETURN(auto d, cache_->Read(plan_.doc[k]));
    docs.push_back(std::move(d));
  }
  return docs;
}

absl::StatusOr<std::vector<TokenBatch>> BatchStream::BuildStep(DataPosition p,
                                                               int64_t grad_accum) const {
  const std::vector<int64_t> order = RowOrder(p.epoch);
  const int64_t num_rows = plan_.num_rows();
  const int64_t start = p.step_in_epoch * micro_batch_size_ * grad_accum;
  std::vector<TokenBatch> batches;
  for (int64_t m = 0; m < grad_accum; ++m) {
    const int64_t first = start + m * micro_batch_size_;
    if (first >= num_rows) break;
    const int64_t last = std::min(first + micro_batch_size_, num_rows);
    std::vector<std::vector<Document>> docs;
    for (int64_t i = first; i < last; ++i) {
      SFD_ASSIGN_OR_RETURN(auto row, RowDocuments(order[i]));
      docs.push_back(std::move(row));
    }
    std::vector<std::vector<const Document*>> rows;
    for (const auto& row : docs) {
      rows.emplace_back();
      for (const auto& d : row) rows.back().push_back(&d);
    }
    SFD_ASSIGN_OR_RETURN(auto b, AssembleBatch(rows, micro_batch_size_, max_seq_len_, pad_id_));
    batches.push_back(std::move(b));
  }
  return batches;
}

void BatchStream::CancelPrefetch() {
  if (prefetch_ && prefetch_->result.valid()) prefetch_->result.wait();
  prefetch_.reset();
}

absl::Status BatchStream::Seek(const DataPosition& p) {
  if (p.epoch < 0 || p.step_in_epoch < 0)
    return absl::InvalidArgumentError("negative data position");
  CancelPrefetch();
  pos_ = p;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TokenBatch>> BatchStream::NextStep(int64_t grad_accum) {
  if (grad_accum <= 0) return absl::InvalidArgumentError("grad_accum must be positive");
  if (pos_.epoch >= num_epochs_)
    return absl::OutOfRangeError(
        absl::StrCat("all ", num_epochs_, " epochs of ", path_, " are done"));
  const int64_t spe = steps_per_epoch(grad_accum);
  if (pos_.step_in_epoch >= spe)
    return absl::FailedPreconditionError(
        absl::StrCat("data position step ", pos_.step_in_epoch, " is beyond the epoch's ", spe,
                     " steps (did the dataset or batch size change?)"));
  absl::StatusOr<std::vector<TokenBatch>> result;
  if (prefetch_ && prefetch_->pos.epoch == pos_.epoch &&
      prefetch_->pos.step_in_epoch == pos_.step_in_epoch && prefetch_->grad_accum == grad_accum) {
    result = prefetch_->result.get();
    prefetch_.reset();
  } else {
    CancelPrefetch();
    result = BuildStep(pos_, grad_accum);
  }
  if (!result.ok()) return result.status();
  if (++pos_.step_in_epoch >= spe) {
    ++pos_.epoch;
    pos_.step_in_epoch = 0;
  }
  if (pos_.epoch < num_epochs_) {
    prefetch_ = std::make_unique<Prefetch>();
    prefetch_->pos = pos_;
    prefetch_->grad_accum = grad_accum;
    DataPosition p = pos_;
    prefetch_->result =
        std::async(std::launch::async, [this, p, grad_accum] { return BuildStep(p, grad_accum); });
  }
  return result;
}

}  // namespace sfd
