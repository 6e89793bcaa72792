// HF tokenizer.json normalizers (see tokenizer_normalizer.h).
#include "engine/data/tokenizer_normalizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/common/status.h"
#include "engine/data/pretokenizer_regex.h"
#include "engine/data/tokenizer_utf8.h"

namespace sfd {
namespace {

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(int options) : options_(options) {}
  std::string Normalize(std::string_view text) const override {
    // ASCII is invariant under all four normalization forms.
    if (std::all_of(text.begin(), text.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
      return std::string(text);
    }
    utf8proc_uint8_t* out = nullptr;
    const utf8proc_ssize_t n =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                     static_cast<utf8proc_ssize_t>(text.size()), &out,
                     static_cast<utf8proc_option_t>(options_));
    if (n < 0) return std::string(text);  // cannot happen for valid UTF-8
    std::string result(reinterpret_cast<char*>(out), static_cast<size_t>(n));
    std::free(out);
    return result;
  }

 private:
  int options_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  std::string Normalize(std::string_view text) const override {
    std::string out;
    out.reserve(text.size());
    size_t pos = 0;
    while (pos < text.size()) {
      AppendUtf8(static_cast<char32_t>(utf8proc_tolower(NextCodePoint(text, &pos))), &out);
    }
    return out;
  }
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string Normalize(std::string_view text) const override {
    if (text.empty()) return std::string();
    return absl::StrCat(prefix_, ToAbsl(text));
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(std::unique_ptr<Regex> pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::string Normalize(std::string_view text) const override {
    std::vector<std::pair<size_t, size_t>> matches;
    pattern_->FindAll(text, &matches);
    if (matches.empty()) return std::string(text);
    std::string out;
    size_t prev = 0;
    for (const auto& [b, e] : matches) {
      out.append(text.data() + prev, b - prev);
      out += content_;
      prev = e;
    }
    out.append(text.data() + prev, text.size() - prev);
    return out;
  }

 private:
  std::unique_ptr<Regex> pattern_;
  std::string content_;
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  std::string Normalize(std::string_view text) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      while (begin < end) {
        size_t p = begin;
        if (!utf8proc_category_is_space(NextCodePoint(text, &p))) break;
        begin = p;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        size_t p = start;
        if (!utf8proc_category_is_space(NextCodePoint(text, &p))) break;
        end = start;
      }
    }
    return std::string(text.substr(begin, end - begin));
  }

 private:
  static bool utf8proc_category_is_space(char32_t cp) {
    // Rust's char::is_whitespace: the Unicode White_Space property.
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
  }
  bool left_, right_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  std::string Normalize(std::string_view text) const override {
    std::string s(text);
    for (const auto& p : parts_) s = p->Normalize(s);
    return s;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

// Builds the Regex of an HF "pattern" object: {"String": "..."} or {"Regex": "..."}.
absl::StatusOr<std::unique_ptr<Regex>> PatternFromJson(const nlohmann::json& j,
                                                       const std::string& what) {
  if (j.is_object() && j.contains("String") && j["String"].is_string()) {
    return Regex::Literal(j["String"].get<std::string>(), what);
  }
  if (j.is_object() && j.contains("Regex") && j["Regex"].is_string()) {
    return Regex::Compile(j["Regex"].get<std::string>(), what);
  }
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": pattern must be {\"String\": ...} or {\"Regex\": ...}"));
}

absl::StatusOr<std::unique_ptr<Normalizer>> Normalizer::FromJson(const nlohmann::json& j,
                                                                 const std::string& what) {
  if (j.is_null()) return std::unique_ptr<Normalizer>();
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": expected an object with a type"));
  }
  const std::string type = j["type"].get<std::string>();
  const std::string where = absl::StrCat(what, " (", type, ")");
  auto str = [&](const char* key) -> absl::StatusOr<std::string> {
    if (!j.contains(key) || !j[key].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": missing string field ", key));
    }
    return j[key].get<std::string>();
  };
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
  if (type == "NFKC") {
    return std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
  }
  if (type == "NFKD") {
    return std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE |
                                               UTF8PROC_COMPAT);
  }
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Prepend") {
    SFD_ASSIGN_OR_RETURN(std::string prefix, str("prepend"));
    return std::make_unique<PrependNormalizer>(std::move(prefix));
  }
  if (type == "Replace") {
    SFD_ASSIGN_OR_RETURN(std::string content, str("content"));
    if (!j.contains("pattern")) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": missing pattern"));
    }
    SFD_ASSIGN_OR_RETURN(auto pattern, PatternFromJson(j["pattern"], where));
    return std::make_unique<ReplaceNormalizer>(std::move(pattern), std::move(content));
  }
  if (type == "Strip") {
    const bool left = j.value("strip_left", true), right = j.value("strip_right", true);
    return std::make_unique<StripNormalizer>(left, right);
  }
  if (type == "Sequence") {
    if (!j.contains("normalizers") || !j["normalizers"].is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": missing normalizers array"));
    }
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (size_t i = 0; i < j["normalizers"].size(); ++i) {
      SFD_ASSIGN_OR_RETURN(auto part, FromJson(j["normalizers"][i],
                                               absl::StrCat(what, ".normalizers[", i, "]")));
      if (part) parts.push_back(std::move(part));
    }
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  return absl::UnimplementedError(absl::StrCat(where, ": normalizer type not supported"));
}

}  // namespace sfd
