// PreTokenizer: the "pre_tokenizer" stage of an HF tokenizer.json. Splits one normalized
// section of text (the text between added tokens) into the words the model encodes one by
// one. Supported types: Split (Regex/String pattern; behaviors Removed, Isolated,
// MergedWithPrevious, MergedWithNext, Contiguous; invert), ByteLevel (add_prefix_space,
// use_regex with GPT-2's pattern; maps bytes to the byte-level alphabet), Metaspace
// (replacement, prepend_scheme always/first/never, split), Digits, Sequence.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace sfd {

class PreTokenizer {
 public:
  // `what` names the file/field for errors. A JSON null gives nullptr (no pre-tokenizer).
  static absl::StatusOr<std::unique_ptr<PreTokenizer>> FromJson(const nlohmann::json& j,
                                                                const std::string& what);
  virtual ~PreTokenizer() = default;
  // Replaces each of *words (valid UTF-8) by its sub-words. `first_section`: the text is the
  // first section of the input (Metaspace's prepend_scheme "first").
  virtual void PreTokenize(std::vector<std::string>* words, bool first_section) const = 0;
};

}  // namespace sfd
