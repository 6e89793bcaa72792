// Normalizer: the "normalizer" stage of an HF tokenizer.json, applied to each piece of text
// between added tokens before pre-tokenization. Supported types: NFC, NFD, NFKC, NFKD
// (utf8proc), Lowercase, Prepend, Replace (String or Regex pattern), Strip, Sequence.
// Others (BertNormalizer, Precompiled, ...) are Unimplemented errors at load time.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace sfd {

class Regex;

// The Regex of an HF "pattern" object: {"String": literal} or {"Regex": PCRE-compatible}.
absl::StatusOr<std::unique_ptr<Regex>> PatternFromJson(const nlohmann::json& j,
                                                       const std::string& what);

class Normalizer {
 public:
  // `what` names the file/field for errors. A JSON null gives nullptr (no normalizer).
  static absl::StatusOr<std::unique_ptr<Normalizer>> FromJson(const nlohmann::json& j,
                                                              const std::string& what);
  virtual ~Normalizer() = default;
  // `text` is valid UTF-8; the result is valid UTF-8.
  virtual std::string Normalize(std::string_view text) const = 0;
};

}  // namespace sfd
