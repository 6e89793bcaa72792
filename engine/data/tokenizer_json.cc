// Tokenizer from HF tokenizer.json (see tokenizer_json.h).
#include "engine/data/tokenizer_json.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/common/status.h"
#include "engine/data/tokenizer_utf8.h"

namespace sfd {
namespace {

bool BoolField(const nlohmann::json& j, const char* key, bool def) {
  return j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : def;
}

// Removes JS whitespace at the end (trimEnd) or start (trimStart) of [*begin, *end) in text.
void TrimEnd(std::string_view text, size_t begin, size_t* end) {
  while (*end > begin) {
    size_t start = *end - 1;
    while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    size_t p = start;
    if (!IsJsWhitespace(NextCodePoint(text, &p))) break;
    *end = start;
  }
}
void TrimStart(std::string_view text, size_t* begin, size_t end) {
  while (*begin < end) {
    size_t p = *begin;
    if (!IsJsWhitespace(NextCodePoint(text, &p))) break;
    *begin = p;
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<JsonTokenizer>> JsonTokenizer::Parse(std::string_view json,
                                                                    const std::string& source) {
  try {
    const nlohmann::json j = nlohmann::json::parse(json.begin(), json.end());
    if (!j.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
    }
    std::unique_ptr<JsonTokenizer> t(new JsonTokenizer());
    if (!j.contains("model")) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": missing \"model\""));
    }
    SFD_ASSIGN_OR_RETURN(t->model_, BpeModel::FromJson(j["model"], source + ": model"));
    const nlohmann::json null_json;
    auto field = [&](const char* key) -> const nlohmann::json& {
      return j.contains(key) ? j[key] : null_json;
    };
    SFD_ASSIGN_OR_RETURN(t->normalizer_,
                         Normalizer::FromJson(field("normalizer"), source + ": normalizer"));
    SFD_ASSIGN_OR_RETURN(t->pre_tokenizer_, PreTokenizer::FromJson(field("pre_tokenizer"),
                                                                   source + ": pre_tokenizer"));
    SFD_ASSIGN_OR_RETURN(t->decoder_, Decoder::FromJson(field("decoder"), source + ": decoder"));
    SFD_RETURN_IF_ERROR(t->LoadAddedTokens(field("added_tokens"), source + ": added_tokens"));
    SFD_RETURN_IF_ERROR(
        t->LoadPostProcessor(field("post_processor"), source + ": post_processor"));
    return t;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", e.what()));
  }
}

absl::Status JsonTokenizer::LoadAddedTokens(const nlohmann::json& j, const std::string& what) {
  vocab_size_ = model_->size();
  if (j.is_null()) return absl::OkStatus();
  if (!j.is_array()) return absl::InvalidArgumentError(absl::StrCat(what, ": not an array"));
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& e = j[i];
    const std::string where = absl::StrCat(what, "[", i, "]");
    if (!e.is_object() || !e.contains("id") || !e["id"].is_number_integer() ||
        !e.contains("content") || !e["content"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": needs integer id and content"));
    }
    const int64_t id = e["id"].get<int64_t>();
    std::string content = e["content"].get<std::string>();
    if (id < 0 || id >= (int64_t{1} << 30)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": id out of range"));
    }
    if (content.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": empty content"));
    SFD_RETURN_IF_ERROR(ValidateUtf8(content, where));
    if (added_by_content_.contains(content) || added_by_id_.contains(int32_t(id))) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": duplicate added token"));
    }
    const int index = static_cast<int>(added_.size());
    added_.push_back(AddedToken{content, static_cast<int32_t>(id),
                                BoolField(e, "special", false), BoolField(e, "lstrip", false),
                                BoolField(e, "rstrip", false)});
    added_by_content_[content] = index;
    added_by_id_[static_cast<int32_t>(id)] = index;
    added_by_first_byte_[static_cast<unsigned char>(content[0])].push_back(index);
    vocab_size_ = std::max<int64_t>(vocab_size_, id + 1);
  }
  for (auto& bucket : added_by_first_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(), [&](int a, int b) {
      return added_[a].content.size() > added_[b].content.size();
    });
  }
  return absl::OkStatus();
}

absl::Status JsonTokenizer::LoadPostProcessor(const nlohmann::json& j, const std::string& what) {
  if (j.is_null()) return absl::OkStatus();
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": expected an object with a type"));
  }
  const std::string type = j["type"].get<std::string>();
  const std::string where = absl::StrCat(what, " (", type, ")");
  if (type == "ByteLevel") return absl::OkStatus();  // offsets only
  if (type == "Sequence") {
    if (!j.contains("processors") || !j["processors"].is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": missing processors array"));
    }
    for (size_t i = 0; i < j["processors"].size(); ++i) {
      SFD_RETURN_IF_ERROR(
          LoadPostProcessor(j["processors"][i], absl::StrCat(what, ".processors[", i, "]")));
    }
    return absl::OkStatus();
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    // "cls": ["[CLS]", 101], "sep": ["[SEP]", 102]
    auto id_of = [&](const char* key) -> absl::StatusOr<int32_t> {
      if (!j.contains(key) || !j[key].is_array() || j[key].size() != 2 ||
          !j[key][1].is_number_integer()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": bad ", key));
      }
      return j[key][1].get<int32_t>();
    };
    SFD_ASSIGN_OR_RETURN(int32_t cls, id_of("cls"));
    SFD_ASSIGN_OR_RETURN(int32_t sep, id_of("sep"));
    templates_.push_back({TemplatePiece{false, {cls}}, TemplatePiece{true, {}},
                          TemplatePiece{false, {sep}}});
    return absl::OkStatus();
  }
  if (type != "TemplateProcessing") {
    return absl::UnimplementedError(absl::StrCat(where, ": post-processor type not supported"));
  }
  if (!j.contains("single") || !j["single"].is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": missing single template"));
  }
  const nlohmann::json specials =
      j.contains("special_tokens") ? j["special_tokens"] : nlohmann::json::object();
  std::vector<TemplatePiece> pieces;
  for (size_t i = 0; i < j["single"].size(); ++i) {
    const auto& p = j["single"][i];
    const std::string pw = absl::StrCat(where, ".single[", i, "]");
    if (p.is_object() && p.contains("Sequence")) {
      const auto& s = p["Sequence"];
      if (!s.is_object() || s.value("id", std::string()) != "A") {
        return absl::InvalidArgumentError(absl::StrCat(pw, ": only sequence A in single"));
      }
      pieces.push_back(TemplatePiece{true, {}});
    } else if (p.is_object() && p.contains("SpecialToken") && p["SpecialToken"].is_object() &&
               p["SpecialToken"].contains("id") && p["SpecialToken"]["id"].is_string()) {
      const std::string name = p["SpecialToken"]["id"].get<std::string>();
      if (!specials.is_object() || !specials.contains(name) || !specials[name].is_object() ||
          !specials[name].contains("ids") || !specials[name]["ids"].is_array()) {
        return absl::InvalidArgumentError(
            absl::StrCat(pw, ": special token '", name, "' has no ids in special_tokens"));
      }
      TemplatePiece piece{false, {}};
      for (const auto& id : specials[name]["ids"]) {
        if (!id.is_number_integer()) {
          return absl::InvalidArgumentError(absl::StrCat(pw, ": non-integer id for ", name));
        }
        piece.ids.push_back(id.get<int32_t>());
      }
      pieces.push_back(std::move(piece));
    } else {
      return absl::InvalidArgumentError(absl::StrCat(pw, ": expected Sequence or SpecialToken"));
    }
  }
  templates_.push_back(std::move(pieces));
  return absl::OkStatus();
}

int JsonTokenizer::FindAddedToken(std::string_view text, size_t from, size_t* at) const {
  if (added_.empty()) return -1;
  for (size_t i = from; i < text.size(); ++i) {
    const auto& bucket = added_by_first_byte_[static_cast<unsigned char>(text[i])];
    for (int index : bucket) {  // longest first: the first hit is the longest match here
      const std::string& c = added_[index].content;
      if (c.size() <= text.size() - i && std::memcmp(text.data() + i, c.data(), c.size()) == 0) {
        *at = i;
        return index;
      }
    }
  }
  return -1;
}

absl::Status JsonTokenizer::EncodeSection(std::string_view section, bool first_section,
                                          std::vector<int32_t>* ids) const {
  if (section.empty()) return absl::OkStatus();
  std::vector<std::string> words;
  words.emplace_back(normalizer_ ? normalizer_->Normalize(section) : std::string(section));
  if (words[0].empty()) return absl::OkStatus();
  if (pre_tokenizer_) pre_tokenizer_->PreTokenize(&words, first_section);
  for (const auto& w : words) SFD_RETURN_IF_ERROR(model_->EncodeWord(w, ids));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> JsonTokenizer::Encode(std::string_view text,
                                                           bool add_special_tokens) const {
  SFD_RETURN_IF_ERROR(ValidateUtf8(text, "Tokenizer::Encode input"));
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  // Split on added tokens; text between them is encoded section by section.
  size_t pos = 0;
  bool trim_next = false;  // rstrip of the previous added token: trim the next section
  while (pos <= text.size()) {
    size_t at = text.size();
    const int index = FindAddedToken(text, pos, &at);
    size_t begin = pos, end = index >= 0 ? at : text.size();
    if (trim_next) TrimStart(text, &begin, end);
    if (index >= 0 && added_[index].lstrip) TrimEnd(text, begin, &end);
    SFD_RETURN_IF_ERROR(EncodeSection(text.substr(begin, end - begin), begin == 0, &ids));
    if (index < 0) break;
    ids.push_back(added_[index].id);
    trim_next = added_[index].rstrip;
    pos = at + added_[index].content.size();
  }
  if (!add_special_tokens) return ids;
  for (const auto& tmpl : templates_) {
    std::vector<int32_t> out;
    out.reserve(ids.size() + 4);
    for (const auto& piece : tmpl) {
      const auto& src = piece.is_sequence ? ids : piece.ids;
      out.insert(out.end(), src.begin(), src.end());
    }
    ids = std::move(out);
  }
  return ids;
}

absl::StatusOr<std::string> JsonTokenizer::Decode(const std::vector<int32_t>& ids,
                                                  bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    auto it = added_by_id_.find(id);
    if (it != added_by_id_.end()) {
      const AddedToken& t = added_[it->second];
      if (!(skip_special_tokens && t.special)) tokens.push_back(t.content);
      continue;
    }
    const std::string* tok = model_->IdToToken(id);
    if (tok == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("Tokenizer::Decode: id ", id, " is not in the vocabulary"));
    }
    tokens.push_back(*tok);
  }
  if (decoder_ == nullptr) return absl::StrJoin(tokens, " ");
  decoder_->DecodeChain(&tokens);
  return absl::StrJoin(tokens, "");
}

std::optional<int32_t> JsonTokenizer::TokenToId(std::string_view token) const {
  auto it = added_by_content_.find(ToAbsl(token));
  if (it != added_by_content_.end()) return added_[it->second].id;
  return model_->TokenToId(token);
}

std::optional<std::string> JsonTokenizer::IdToToken(int32_t id) const {
  auto it = added_by_id_.find(id);
  if (it != added_by_id_.end()) return added_[it->second].content;
  const std::string* tok = model_->IdToToken(id);
  if (tok == nullptr) return std::nullopt;
  return *tok;
}

bool JsonTokenizer::IsSpecial(int32_t id) const {
  auto it = added_by_id_.find(id);
  return it != added_by_id_.end() && added_[it->second].special;
}

}  // namespace sfd
