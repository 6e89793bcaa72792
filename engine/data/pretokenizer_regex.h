// Regex: a PCRE2 pattern (UTF + UCP, JIT-compiled when the platform allows) as the tokenizers
// use it: split patterns of HF pre-tokenizers/normalizers. Thread-safe for matching.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace sfd {

class Regex {
 public:
  // `what` names the pattern's origin (file and field) in errors.
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(std::string_view pattern,
                                                        std::string_view what);
  // A pattern matching `literal` exactly.
  static absl::StatusOr<std::unique_ptr<Regex>> Literal(std::string_view literal,
                                                        std::string_view what);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Byte ranges [begin, end) of the non-empty, non-overlapping matches in `text` (valid
  // UTF-8), left to right; after an empty match the search moves on by one code point.
  void FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* matches) const;

 private:
  explicit Regex(void* code) : code_(code) {}
  void* code_;  // pcre2_code_8*
};

}  // namespace sfd
