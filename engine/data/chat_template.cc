#include "engine/data/chat_template.h"

#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/common/status.h"
#include "engine/data/chat_template_builtin.h"
#include "engine/data/tokenizer_config.h"

namespace sfd {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

jinja::Value StrftimeNow(const ChatTemplateOptions& o) {
  return jinja::Value::Func(
      [o](const jinja::ValueList& a, const jinja::KwArgs&) -> absl::StatusOr<jinja::Value> {
        if (a.size() != 1 || !a[0].is_string())
          return absl::InvalidArgumentError("strftime_now() expects one format string");
        std::tm tm{};
        tm.tm_year = o.year - 1900;
        tm.tm_mon = o.month - 1;
        tm.tm_mday = o.day;
        tm.tm_hour = 12;
        std::mktime(&tm);  // fills weekday / yearday
        char buf[256];
        size_t n = std::strftime(buf, sizeof(buf), a[0].as_string().c_str(), &tm);
        if (n == 0 && !a[0].as_string().empty())
          return absl::InvalidArgumentError("strftime_now(): bad format");
        return jinja::Value::String(std::string(buf, n));
      });
}

}  // namespace

std::vector<std::string> ChatTemplate::BuiltinNames() {
  std::vector<std::string> names;
  for (const auto& t : BuiltinChatTemplates()) names.push_back(t.name);
  return names;
}

std::optional<std::string> ChatTemplate::Builtin(const std::string& name) {
  static const std::pair<const char*, const char*> kAliases[] = {
      {"llama3.1", "llama3.2"}, {"llama3.3", "llama3.2"}, {"llama-3", "llama3"},
      {"qwen", "qwen2.5"},      {"qwen2", "qwen2.5"},     {"mistral-7b", "mistral"}};
  std::string n = name;
  for (const auto& a : kAliases)
    if (n == a.first) n = a.second;
  for (const auto& t : BuiltinChatTemplates())
    if (n == t.name) return std::string(t.source);
  return std::nullopt;
}

std::string ChatTemplate::Suggestion() {
  return absl::StrCat("set data.chat_template in the job to a known template name (",
                      absl::StrJoin(BuiltinNames(), ", "), ") or to a .jinja file");
}

absl::StatusOr<std::unique_ptr<ChatTemplate>> ChatTemplate::FromSource(
    const std::string& source, const std::string& origin,
    const nlohmann::ordered_json& special_tokens, ChatTemplateOptions options) {
  auto parsed = jinja::Template::Parse(source);
  if (!parsed.ok())
    return absl::InvalidArgumentError(
        absl::StrCat("chat template ", origin,
                     " cannot be parsed by sfd: ", parsed.status().message(), "; ", Suggestion()));
  auto t = std::unique_ptr<ChatTemplate>(new ChatTemplate());
  t->source_ = source;
  t->origin_ = origin;
  t->template_ = std::move(*parsed);
  jinja::Value ctx = jinja::Value::FromJson(
      special_tokens.is_object() ? special_tokens : nlohmann::ordered_json::object());
  ctx.mutable_dict().Set("strftime_now", StrftimeNow(options));
  t->base_context_ = ctx;
  return t;
}

absl::StatusOr<std::unique_ptr<ChatTemplate>> ChatTemplate::ForModel(
    const std::string& model_dir, const std::string& name_or_path, ChatTemplateOptions options) {
  namespace fs = std::filesystem;
  nlohmann::ordered_json tokens = nlohmann::ordered_json::object();
  TokenizerConfig config;
  const std::string config_path = (fs::path(model_dir) / "tokenizer_config.json").string();
  auto cfg = TokenizerConfig::FromFile(config_path);
  if (cfg.ok()) {
    config = *cfg;
    tokens = config.ContextTokens();
  } else if (!absl::IsNotFound(cfg.status())) {
    return cfg.status();
  }
  if (!name_or_path.empty()) {
    if (auto b = Builtin(name_or_path))
      return FromSource(*b, absl::StrCat("built-in '", name_or_path, "'"), tokens, options);
    std::error_code ec;
    if (!fs::is_regular_file(name_or_path, ec))
      return absl::InvalidArgumentError(
          absl::StrCat("data.chat_template '", name_or_path, "' is neither a known template name (",
                       absl::StrJoin(BuiltinNames(), ", "), ") nor a file"));
    SFD_ASSIGN_OR_RETURN(auto src, ReadFile(name_or_path));
    return FromSource(src, name_or_path, tokens, options);
  }
  const std::string jinja_path = (fs::path(model_dir) / "chat_template.jinja").string();
  std::error_code ec;
  if (fs::is_regular_file(jinja_path, ec)) {
    SFD_ASSIGN_OR_RETURN(auto src, ReadFile(jinja_path));
    return FromSource(src, jinja_path, tokens, options);
  }
  if (!config.chat_template.empty())
    return FromSource(config.chat_template, absl::StrCat(config_path, " \"chat_template\""), tokens,
                      options);
  return absl::InvalidArgumentError(
      absl::StrCat("model ", model_dir,
                   " has no chat template (no chat_template.jinja, no \"chat_template\" in "
                   "tokenizer_config.json); ",
                   Suggestion()));
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::ordered_json& messages,
                                                 bool add_generation_prompt,
                                                 const nlohmann::ordered_json& extra) const {
  if (!messages.is_array()) return absl::InvalidArgumentError("messages must be a JSON array");
  auto ctx = std::make_shared<jinja::ValueDict>(base_context_.as_dict());
  ctx->is_namespace = false;
  ctx->Set("messages", jinja::Value::FromJson(messages));
  ctx->Set("add_generation_prompt", jinja::Value::Bool(add_generation_prompt));
  if (extra.is_object())
    for (auto it = extra.begin(); it != extra.end(); ++it)
      ctx->Set(it.key(), jinja::Value::FromJson(it.value()));
  auto out = template_->Render(jinja::Value::Dict(ctx));
  if (!out.ok()) {
    if (absl::IsFailedPrecondition(out.status()))
      return out.status();  // raise_exception(): bad conversation
    return absl::Status(out.status().code(),
                        absl::StrCat("chat template ", origin_, " failed: ", out.status().message(),
                                     "; ", Suggestion()));
  }
  return out;
}

}  // namespace sfd
