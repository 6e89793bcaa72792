// HF tokenizer.json pre-tokenizers (see pretokenizer.h).
#include "engine/data/pretokenizer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/common/status.h"
#include "engine/data/pretokenizer_regex.h"
#include "engine/data/tokenizer_normalizer.h"
#include "engine/data/tokenizer_utf8.h"

namespace sfd {
namespace {

// GPT-2's split pattern (ByteLevel with use_regex).
constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Splits `text` around the matches of `regex` as HF's NormalizedString::split does and
// appends the non-empty pieces to *out.
void SplitWithBehavior(const Regex& regex, const std::string& text, Behavior behavior,
                       bool invert, std::vector<std::string>* out) {
  thread_local std::vector<std::pair<size_t, size_t>> matches;
  matches.clear();
  regex.FindAll(text, &matches);
  // Segments covering the text, each flagged as (part of) a match or not.
  struct Segment {
    size_t begin, end;
    bool is_match;
  };
  thread_local std::vector<Segment> segs;
  segs.clear();
  size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (b > prev) segs.push_back({prev, b, invert});
    segs.push_back({b, e, !invert});
    prev = e;
  }
  if (prev < text.size()) segs.push_back({prev, text.size(), invert});

  auto emit = [&](size_t b, size_t e) {
    if (e > b) out->emplace_back(text, b, e - b);
  };
  switch (behavior) {
    case Behavior::kRemoved:
      for (const auto& s : segs) {
        if (!s.is_match) emit(s.begin, s.end);
      }
      break;
    case Behavior::kIsolated:
      for (const auto& s : segs) emit(s.begin, s.end);
      break;
    case Behavior::kMergedWithPrevious: {
      // A match joins the piece before it.
      size_t start = 0;
      bool open = false;
      for (const auto& s : segs) {
        if (s.is_match) {
          emit(open ? start : s.begin, s.end);
          open = false;
        } else {
          if (open) emit(start, s.begin);
          start = s.begin;
          open = true;
        }
      }
      if (open) emit(start, text.size());
      break;
    }
    case Behavior::kMergedWithNext: {
      // A match starts a new piece that runs to the next match.
      size_t start = 0;
      for (const auto& s : segs) {
        if (s.is_match && s.begin > start) {
          emit(start, s.begin);
          start = s.begin;
        }
      }
      emit(start, text.size());
      break;
    }
    case Behavior::kContiguous: {
      size_t start = 0;
      for (size_t i = 0; i < segs.size(); ++i) {
        // Neighbouring segments with the same flag (i.e. adjacent matches) are merged.
        if (i > 0 && segs[i].is_match != segs[i - 1].is_match) {
          emit(start, segs[i].begin);
          start = segs[i].begin;
        }
      }
      emit(start, text.size());
      break;
    }
  }
}

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(std::unique_ptr<Regex> regex, Behavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}
  void PreTokenize(std::vector<std::string>* words, bool) const override {
    std::vector<std::string> out;
    out.reserve(words->size() * 2);
    for (const auto& w : *words) SplitWithBehavior(*regex_, w, behavior_, invert_, &out);
    *words = std::move(out);
  }

 private:
  std::unique_ptr<Regex> regex_;
  Behavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}
  void PreTokenize(std::vector<std::string>* words, bool) const override {
    if (add_prefix_space_) {
      for (auto& w : *words) {
        if (w.empty() || w[0] != ' ') w.insert(w.begin(), ' ');
      }
    }
    if (regex_ != nullptr) {
      std::vector<std::string> out;
      for (const auto& w : *words) {
        SplitWithBehavior(*regex_, w, Behavior::kIsolated, /*invert=*/false, &out);
      }
      *words = std::move(out);
    }
    const auto& table = ByteLevelUtf8();
    for (auto& w : *words) {
      std::string mapped;
      mapped.reserve(w.size() * 2);
      for (unsigned char c : w) mapped += table[c];
      w = std::move(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;  // nullptr when use_regex is false
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split,
                        std::unique_ptr<Regex> split_regex)
      : replacement_(std::move(replacement)),
        scheme_(scheme),
        split_(split),
        split_regex_(std::move(split_regex)) {}
  void PreTokenize(std::vector<std::string>* words, bool first_section) const override {
    std::vector<std::string> out;
    for (auto& w : *words) {
      std::string s = absl::StrReplaceAll(w, {{" ", replacement_}});
      const bool prepend = scheme_ == PrependScheme::kAlways ||
                           (scheme_ == PrependScheme::kFirst && first_section);
      if (prepend && s.compare(0, replacement_.size(), replacement_) != 0) {
        s.insert(0, replacement_);
      }
      if (split_) {
        SplitWithBehavior(*split_regex_, s, Behavior::kMergedWithNext, false, &out);
      } else if (!s.empty()) {
        out.push_back(std::move(s));
      }
    }
    *words = std::move(out);
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
  std::unique_ptr<Regex> split_regex_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  void PreTokenize(std::vector<std::string>* words, bool first_section) const override {
    for (const auto& p : parts_) p->PreTokenize(words, first_section);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

absl::StatusOr<Behavior> ParseBehavior(const nlohmann::json& j, const std::string& what) {
  const std::string b = j.is_string() ? j.get<std::string>() : "";
  if (b == "Removed") return Behavior::kRemoved;
  if (b == "Isolated") return Behavior::kIsolated;
  if (b == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::kMergedWithNext;
  if (b == "Contiguous") return Behavior::kContiguous;
  return absl::InvalidArgumentError(absl::StrCat(what, ": unknown split behavior '", b, "'"));
}

bool BoolField(const nlohmann::json& j, const char* key, bool def) {
  return j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : def;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizer::FromJson(const nlohmann::json& j,
                                                                     const std::string& what) {
  if (j.is_null()) return std::unique_ptr<PreTokenizer>();
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": expected an object with a type"));
  }
  const std::string type = j["type"].get<std::string>();
  const std::string where = absl::StrCat(what, " (", type, ")");
  if (type == "Split") {
    if (!j.contains("pattern")) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": missing pattern"));
    }
    SFD_ASSIGN_OR_RETURN(auto regex, PatternFromJson(j["pattern"], where));
    SFD_ASSIGN_OR_RETURN(Behavior behavior,
                         ParseBehavior(j.contains("behavior") ? j["behavior"] : nlohmann::json(),
                                       where));
    return std::make_unique<SplitPreTokenizer>(std::move(regex), behavior,
                                               BoolField(j, "invert", false));
  }
  if (type == "ByteLevel") {
    std::unique_ptr<Regex> regex;
    if (BoolField(j, "use_regex", true)) {
      SFD_ASSIGN_OR_RETURN(regex, Regex::Compile(kGpt2Pattern, where));
    }
    return std::make_unique<ByteLevelPreTokenizer>(BoolField(j, "add_prefix_space", true),
                                                   std::move(regex));
  }
  if (type == "Metaspace") {
    std::string replacement = "\xE2\x96\x81";  // U+2581
    if (j.contains("replacement") && j["replacement"].is_string()) {
      replacement = j["replacement"].get<std::string>();
    }
    if (replacement.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": empty replacement"));
    }
    PrependScheme scheme = BoolField(j, "add_prefix_space", true) ? PrependScheme::kAlways
                                                                  : PrependScheme::kNever;
    if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
      const std::string s = j["prepend_scheme"].get<std::string>();
      if (s == "always") {
        scheme = PrependScheme::kAlways;
      } else if (s == "first") {
        scheme = PrependScheme::kFirst;
      } else if (s == "never") {
        scheme = PrependScheme::kNever;
      } else {
        return absl::InvalidArgumentError(absl::StrCat(where, ": unknown prepend_scheme ", s));
      }
    }
    SFD_ASSIGN_OR_RETURN(auto split_regex, Regex::Literal(replacement, where));
    return std::make_unique<MetaspacePreTokenizer>(replacement, scheme,
                                                   BoolField(j, "split", true),
                                                   std::move(split_regex));
  }
  if (type == "Digits") {
    const bool individual = BoolField(j, "individual_digits", false);
    SFD_ASSIGN_OR_RETURN(auto regex, Regex::Compile(R"(\p{N})", where));
    return std::make_unique<SplitPreTokenizer>(
        std::move(regex), individual ? Behavior::kIsolated : Behavior::kContiguous, false);
  }
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": missing pretokenizers array"));
    }
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (size_t i = 0; i < j["pretokenizers"].size(); ++i) {
      SFD_ASSIGN_OR_RETURN(auto part, FromJson(j["pretokenizers"][i],
                                               absl::StrCat(what, ".pretokenizers[", i, "]")));
      if (part) parts.push_back(std::move(part));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  return absl::UnimplementedError(absl::StrCat(where, ": pre-tokenizer type not supported"));
}

}  // namespace sfd
