// TokenizerConfig: the parts of a model's tokenizer_config.json the data pipeline needs —
// special token strings for the chat template context (bos/eos/unk/pad/...; a string or an
// AddedToken object {"content": ...}), the chat template(s) (a string, or a list of
// {name, template} where "default" is the one used), add_bos_token / add_eos_token.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace sfd {

struct TokenizerConfig {
  // Special tokens by their tokenizer_config.json key ("bos_token", "eos_token", ...); only
  // the ones that are set to a non-empty string.
  std::map<std::string, std::string> special_tokens;
  std::string chat_template;                           // default chat template, "" if none
  std::map<std::string, std::string> named_templates;  // list form, by name
  std::optional<bool> add_bos_token;
  std::optional<bool> add_eos_token;

  std::optional<std::string> bos_token() const { return Get("bos_token"); }
  std::optional<std::string> eos_token() const { return Get("eos_token"); }
  std::optional<std::string> Get(const std::string& key) const {
    auto it = special_tokens.find(key);
    if (it == special_tokens.end()) return std::nullopt;
    return it->second;
  }
  // The special tokens as a JSON object for the template context.
  nlohmann::ordered_json ContextTokens() const;

  // NotFound when the file does not exist; InvalidArgument naming the file and key when
  // it is malformed.
  static absl::StatusOr<TokenizerConfig> FromFile(const std::string& path);
  static absl::StatusOr<TokenizerConfig> FromJsonString(std::string_view json,
                                                        const std::string& source);
};

}  // namespace sfd
