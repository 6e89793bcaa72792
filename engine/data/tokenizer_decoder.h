// Decoder: the "decoder" stage of an HF tokenizer.json, turning token strings back into text.
// Supported types: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence.
// Invalid UTF-8 produced by byte tokens becomes U+FFFD per maximal invalid subpart
// (transformers.js' TextDecoder; HF's ByteFallback writes one U+FFFD per byte instead).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace sfd {

class Decoder {
 public:
  // `what` names the file/field for errors. A JSON null gives nullptr (tokens are joined).
  static absl::StatusOr<std::unique_ptr<Decoder>> FromJson(const nlohmann::json& j,
                                                           const std::string& what);
  virtual ~Decoder() = default;
  // Rewrites the token strings in place (the result is joined by the caller).
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
};

}  // namespace sfd
