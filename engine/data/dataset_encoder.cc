#include "engine/data/dataset_encoder.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine/common/status.h"
#include "engine/data/chat_template_spans.h"

namespace sfd {

std::string AlpacaPrompt(const std::string& instruction, const std::string& input) {
  if (input.empty()) {
    return absl::StrCat(
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the "
        "request.\n\n### Instruction:\n",
        instruction, "\n\n### Response:\n");
  }
  return absl::StrCat(
      "Below is an instruction that describes a task, paired with an input that provides further "
      "context. Write a "
      "response that appropriately completes the request.\n\n### Instruction:\n",
      instruction, "\n\n### Input:\n", input, "\n\n### Response:\n");
}

DatasetEncoder::DatasetEncoder(const Tokenizer* tokenizer, const ChatTemplate* chat_template,
                               const TokenizerConfig& config, TrainOn train_on, int64_t max_seq_len)
    : tok_(tokenizer), tmpl_(chat_template), train_on_(train_on), max_seq_len_(max_seq_len) {
  if (auto eos = config.eos_token()) {
    eos_id_ = tok_->TokenToId(*eos);
    end_markers_.push_back(*eos);
  }
  for (const char* m : {"<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>",
                        "</s>", "<|endoftext|>", "<|end_of_text|>"})
    end_markers_.push_back(m);
}

void DatasetEncoder::Truncate(Document* d) const {
  if (max_seq_len_ > 0 && static_cast<int64_t>(d->ids.size()) > max_seq_len_) {
    d->ids.resize(max_seq_len_);
    d->trained.resize(max_seq_len_);
    d->truncated = true;
  }
}

absl::StatusOr<Document> DatasetEncoder::EncodePromptCompletion(
    const std::string& prompt, const std::string& completion) const {
  SFD_ASSIGN_OR_RETURN(auto p, tok_->Encode(prompt, /*add_special_tokens=*/true));
  SFD_ASSIGN_OR_RETURN(auto c, tok_->Encode(completion, /*add_special_tokens=*/false));
  if (eos_id_ && (c.empty() || c.back() != *eos_id_)) c.push_back(*eos_id_);
  Document d;
  d.ids = std::move(p);
  d.trained.assign(d.ids.size(), train_on_ == TrainOn::kAll ? 1 : 0);
  d.ids.insert(d.ids.end(), c.begin(), c.end());
  d.trained.resize(d.ids.size(), 1);
  return d;
}

absl::StatusOr<Document> DatasetEncoder::EncodeWithSpans(
    const std::string& text, const std::vector<std::pair<size_t, size_t>>& spans) const {
  Document d;
  SFD_ASSIGN_OR_RETURN(d.ids, tok_->Encode(text, /*add_special_tokens=*/false));
  d.trained.assign(d.ids.size(), 0);
  if (spans.empty()) return d;
  // Boundaries in order; pieces between them alternate outside/inside spans.
  std::vector<size_t> cuts;
  std::vector<uint8_t> inside;  // per piece
  size_t pos = 0;
  for (const auto& s : spans) {
    if (s.first < pos || s.second < s.first || s.second > text.size())
      return absl::InternalError("assistant spans out of order");
    if (s.first > pos) {
      cuts.push_back(s.first);
      inside.push_back(0);
    }
    if (s.second > s.first) {
      cuts.push_back(s.second);
      inside.push_back(1);
    }
    pos = s.second;
  }
  if (pos < text.size()) {
    cuts.push_back(text.size());
    inside.push_back(0);
  }
  // Method 1: tokenize pieces separately; exact when they concatenate to the whole.
  std::vector<int32_t> concat;
  std::vector<uint8_t> flags;
  size_t prev = 0;
  for (size_t k = 0; k < cuts.size(); ++k) {
    SFD_ASSIGN_OR_RETURN(auto ids,
                         tok_->Encode(std::string_view(text).substr(prev, cuts[k] - prev), false));
    concat.insert(concat.end(), ids.begin(), ids.end());
    flags.insert(flags.end(), ids.size(), inside[k]);
    prev = cuts[k];
    if (concat.size() > d.ids.size()) break;
  }
  if (concat == d.ids) {
    d.trained = std::move(flags);
    return d;
  }
  // Method 2: token index of each boundary from the tokenization of the prefix before it.
  auto boundary = [&](size_t b, bool is_begin) -> absl::StatusOr<size_t> {
    SFD_ASSIGN_OR_RETURN(auto pre, tok_->Encode(std::string_view(text).substr(0, b), false));
    size_t k = 0;
    while (k < pre.size() && k < d.ids.size() && pre[k] == d.ids[k]) ++k;
    if (k == pre.size()) return k;
    return is_begin ? k : std::min(k + 1, d.ids.size());  // straddling token belongs to the turn
  };
  for (const auto& s : spans) {
    SFD_ASSIGN_OR_RETURN(size_t b, boundary(s.first, true));
    SFD_ASSIGN_OR_RETURN(size_t e, boundary(s.second, false));
    for (size_t t = b; t < e && t < d.trained.size(); ++t) d.trained[t] = 1;
  }
  return d;
}

absl::StatusOr<Document> DatasetEncoder::Encode(const Sample& s) const {
  Document d;
  switch (s.format) {
    case DatasetFormat::kText: {
      SFD_ASSIGN_OR_RETURN(d.ids, tok_->Encode(s.text, /*add_special_tokens=*/true));
      if (eos_id_ && (d.ids.empty() || d.ids.back() != *eos_id_)) d.ids.push_back(*eos_id_);
      d.trained.assign(d.ids.size(), 1);
      break;
    }
    case DatasetFormat::kCompletion: {
      SFD_ASSIGN_OR_RETURN(d, EncodePromptCompletion(s.prompt, s.completion));
      break;
    }
    case DatasetFormat::kAlpaca: {
      SFD_ASSIGN_OR_RETURN(d,
                           EncodePromptCompletion(AlpacaPrompt(s.instruction, s.input), s.output));
      break;
    }
    case DatasetFormat::kMessages: {
      if (!tmpl_) return absl::FailedPreconditionError("messages dataset but no chat template");
      if (train_on_ == TrainOn::kAll) {
        SFD_ASSIGN_OR_RETURN(auto text, tmpl_->Render(s.messages, /*add_generation_prompt=*/false));
        SFD_ASSIGN_OR_RETURN(d.ids, tok_->Encode(text, /*add_special_tokens=*/false));
        d.trained.assign(d.ids.size(), 1);
        break;
      }
      SFD_ASSIGN_OR_RETURN(
          auto rc, RenderWithAssistantSpans(*tmpl_, s.messages, s.message_weights, end_markers_));
      std::vector<std::pair<size_t, size_t>> spans;
      for (const auto& sp : rc.spans) spans.emplace_back(sp.begin, sp.end);
      SFD_ASSIGN_OR_RETURN(d, EncodeWithSpans(rc.text, spans));
      break;
    }
    case DatasetFormat::kAuto:
      return absl::InternalError("sample format not resolved");
  }
  Truncate(&d);
  return d;
}

}  // namespace sfd
