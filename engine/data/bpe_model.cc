// BPE model of HF tokenizer.json (see bpe_model.h).
#include "engine/data/bpe_model.h"

#include <algorithm>
#include <cstdio>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/common/status.h"
#include "engine/data/tokenizer_utf8.h"

namespace sfd {
namespace {

constexpr int32_t kUnknown = -1;  // symbol whose character is not in the vocab
constexpr int32_t kDead = -2;     // symbol merged into its left neighbour

struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  uint32_t begin;  // byte range of the symbol's text in the word (kept for unknowns only)
  uint32_t len;
};

struct Candidate {
  int32_t rank;
  int32_t left;  // index of the left symbol; ties go to the leftmost pair
  int32_t left_id;
  int32_t right_id;
  bool operator>(const Candidate& o) const {
    return rank != o.rank ? rank > o.rank : left > o.left;
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const nlohmann::json& j,
                                                             const std::string& what) {
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(what, ": not an object"));
  const std::string type = j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>()
                                                                       : "BPE";
  if (type != "BPE") {
    return absl::UnimplementedError(
        absl::StrCat(what, ": model type '", type, "' not supported (only BPE)"));
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (j.contains(key) && j[key].is_string() && !j[key].get<std::string>().empty()) {
      return absl::UnimplementedError(absl::StrCat(what, ": ", key, " is not supported"));
    }
  }
  if (!j.contains("vocab") || !j["vocab"].is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": missing vocab object"));
  }
  if (!j.contains("merges") || !j["merges"].is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": missing merges array"));
  }
  std::unique_ptr<BpeModel> m(new BpeModel());
  const auto& vocab = j["vocab"];
  m->vocab_.reserve(vocab.size());
  int64_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() >= (int64_t{1} << 30)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ".vocab[\"", it.key(), "\"]: id must be an integer in [0, 2^30)"));
    }
    SFD_RETURN_IF_ERROR(ValidateUtf8(it.key(), absl::StrCat(what, ".vocab key")));
    const int32_t id = static_cast<int32_t>(it.value().get<int64_t>());
    m->vocab_[it.key()] = id;
    max_id = std::max<int64_t>(max_id, id);
  }
  m->id_to_token_.resize(max_id + 1);
  m->has_id_.assign(max_id + 1, false);
  for (const auto& [tok, id] : m->vocab_) {
    m->id_to_token_[id] = tok;
    m->has_id_[id] = true;
  }

  const auto& merges = j["merges"];
  m->merges_.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto& e = merges[r];
    std::string a, b;
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ".merges[", r, "]: expected \"a b\" with one space, got \"", s, "\""));
      }
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ".merges[", r, "]: expected \"a b\" or [\"a\", \"b\"]"));
    }
    auto ia = m->vocab_.find(a), ib = m->vocab_.find(b), iab = m->vocab_.find(a + b);
    if (ia == m->vocab_.end() || ib == m->vocab_.end() || iab == m->vocab_.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ".merges[", r, "]: \"", a, "\", \"", b, "\" or their merge is not in the vocab"));
    }
    // A pair listed twice keeps its first (best) rank, as in HF.
    m->merges_.try_emplace(PairKey(ia->second, ib->second),
                           Merge{static_cast<int32_t>(r), iab->second});
  }

  auto flag = [&](const char* key) {
    return j.contains(key) && j[key].is_boolean() && j[key].get<bool>();
  };
  m->ignore_merges_ = flag("ignore_merges");
  m->byte_fallback_ = flag("byte_fallback");
  m->fuse_unk_ = flag("fuse_unk");
  if (j.contains("unk_token") && j["unk_token"].is_string()) {
    auto it = m->vocab_.find(j["unk_token"].get<std::string>());
    if (it == m->vocab_.end()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ".unk_token is not in the vocab"));
    }
    m->unk_id_ = it->second;
  }
  m->bmp_char_ids_.assign(0x10000, -1);
  for (const auto& [tok, id] : m->vocab_) {
    size_t p = 0;
    const char32_t cp = NextCodePoint(tok, &p);
    if (p == tok.size() && cp < 0x10000) m->bmp_char_ids_[cp] = id;
  }
  for (int b = 0; b < 256; ++b) {
    auto it = m->vocab_.find(absl::StrFormat("<0x%02X>", b));
    m->byte_ids_[b] = it == m->vocab_.end() ? -1 : it->second;
  }
  return m;
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(ToAbsl(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || id >= static_cast<int32_t>(id_to_token_.size()) || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

absl::Status BpeModel::EncodeWord(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return absl::OkStatus();
  if (ignore_merges_) {
    auto it = vocab_.find(ToAbsl(word));
    if (it != vocab_.end()) {
      ids->push_back(it->second);
      return absl::OkStatus();
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWord;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(ToAbsl(word));
    if (it != cache_.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return absl::OkStatus();
    }
  }
  const size_t start = ids->size();
  SFD_RETURN_IF_ERROR(MergeWord(word, ids));
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() >= kCacheCapacity) cache_.clear();
    cache_.try_emplace(std::string(word), ids->begin() + start, ids->end());
  }
  return absl::OkStatus();
}

absl::Status BpeModel::MergeWord(std::string_view word, std::vector<int32_t>* ids) const {
  thread_local std::vector<Symbol> syms;
  syms.clear();
  size_t pos = 0;
  while (pos < word.size()) {
    const size_t begin = pos;
    const char32_t cp = NextCodePoint(word, &pos);
    int32_t id = kUnknown;
    if (cp < 0x10000) {
      id = bmp_char_ids_[cp];
    } else {
      auto it = vocab_.find(ToAbsl(word.substr(begin, pos - begin)));
      if (it != vocab_.end()) id = it->second;
    }
    const int32_t idx = static_cast<int32_t>(syms.size());
    syms.push_back(Symbol{id, idx - 1, idx + 1, static_cast<uint32_t>(begin),
                          static_cast<uint32_t>(pos - begin)});
  }
  syms.back().next = -1;

  // Min-heap on (rank, left position), storage reused across words.
  thread_local std::vector<Candidate> heap;
  heap.clear();
  const auto cmp = std::greater<Candidate>();
  auto consider = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = syms[left].next;
    if (right < 0 || syms[left].id < 0 || syms[right].id < 0) return;
    auto it = merges_.find(PairKey(syms[left].id, syms[right].id));
    if (it != merges_.end()) {
      heap.push_back({it->second.rank, left, syms[left].id, syms[right].id});
      std::push_heap(heap.begin(), heap.end(), cmp);
    }
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) consider(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), cmp);
    const Candidate c = heap.back();
    heap.pop_back();
    Symbol& l = syms[c.left];
    if (l.id != c.left_id || l.next < 0) continue;
    Symbol& r = syms[l.next];
    if (r.id != c.right_id) continue;
    l.id = merges_.find(PairKey(c.left_id, c.right_id))->second.merged_id;
    l.len += r.len;
    l.next = r.next;
    r.id = kDead;
    if (l.next >= 0) syms[l.next].prev = c.left;
    consider(l.prev);
    consider(c.left);
  }

  bool last_was_unk = false;
  for (int32_t i = 0; i >= 0; i = syms[i].next) {
    const Symbol& s = syms[i];
    if (s.id >= 0) {
      ids->push_back(s.id);
      last_was_unk = false;
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (uint32_t k = 0; k < s.len; ++k) {
        all = all && byte_ids_[static_cast<unsigned char>(word[s.begin + k])] >= 0;
      }
      if (all) {
        for (uint32_t k = 0; k < s.len; ++k) {
          ids->push_back(byte_ids_[static_cast<unsigned char>(word[s.begin + k])]);
        }
        last_was_unk = false;
        continue;
      }
    }
    if (!unk_id_.has_value()) {
      size_t p = s.begin;
      return absl::InvalidArgumentError(absl::StrFormat(
          "tokenizer: character U+%04X is not in the vocab and the model has no unk_token",
          static_cast<uint32_t>(NextCodePoint(word, &p))));
    }
    if (!(fuse_unk_ && last_was_unk)) ids->push_back(*unk_id_);
    last_was_unk = true;
  }
  return absl::OkStatus();
}

}  // namespace sfd
