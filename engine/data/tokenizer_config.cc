#include "engine/data/tokenizer_config.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace sfd {

nlohmann::ordered_json TokenizerConfig::ContextTokens() const {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& kv : special_tokens) j[kv.first] = kv.second;
  return j;
}

absl::StatusOr<TokenizerConfig> TokenizerConfig::FromFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << f.rdbuf();
  return FromJsonString(ss.str(), path);
}

absl::StatusOr<TokenizerConfig> TokenizerConfig::FromJsonString(std::string_view json,
                                                                const std::string& source) {
  auto j =
      nlohmann::ordered_json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  TokenizerConfig c;
  static const char* kTokens[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                  "pad_token", "cls_token", "mask_token"};
  for (const char* k : kTokens) {
    auto it = j.find(k);
    if (it == j.end() || it->is_null()) continue;
    if (it->is_string()) {
      if (!it->get<std::string>().empty()) c.special_tokens[k] = it->get<std::string>();
    } else if (it->is_object()) {
      auto content = it->find("content");
      if (content == it->end() || !content->is_string())
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": \"", k, "\" has no string \"content\""));
      if (!content->get<std::string>().empty()) c.special_tokens[k] = content->get<std::string>();
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": \"", k, "\" must be a string or an object"));
    }
  }
  auto ct = j.find("chat_template");
  if (ct != j.end() && !ct->is_null()) {
    if (ct->is_string()) {
      c.chat_template = ct->get<std::string>();
    } else if (ct->is_array()) {
      for (const auto& e : *ct) {
        auto n = e.find("name");
        auto t = e.find("template");
        if (!e.is_object() || n == e.end() || t == e.end() || !n->is_string() || !t->is_string())
          return absl::InvalidArgumentError(absl::StrCat(
              source,
              ": \"chat_template\" list entries must be {\"name\": str, \"template\": str}"));
        c.named_templates[n->get<std::string>()] = t->get<std::string>();
      }
      auto d = c.named_templates.find("default");
      if (d != c.named_templates.end()) c.chat_template = d->second;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": \"chat_template\" must be a string or a list"));
    }
  }
  for (const char* k : {"add_bos_token", "add_eos_token"}) {
    auto it = j.find(k);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_boolean())
      return absl::InvalidArgumentError(absl::StrCat(source, ": \"", k, "\" must be a boolean"));
    (std::string(k) == "add_bos_token" ? c.add_bos_token : c.add_eos_token) = it->get<bool>();
  }
  return c;
}

}  // namespace sfd
