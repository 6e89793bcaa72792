// ChatTemplate: a model's chat template, resolved and parsed once, rendered per conversation
// byte-identically to HF apply_chat_template(tokenize=False) (oracle tests in
// tests/engine/data/chat_template_test.cc). Resolution order (ForModel):
//   1. DataSpec.chat_template when set: a built-in name (BuiltinNames()) or a .jinja file path;
//   2. <model_dir>/chat_template.jinja;
//   3. tokenizer_config.json "chat_template" (string, or the "default" entry of a list).
// Special tokens (bos_token, eos_token, ...) from tokenizer_config.json go into the context.
// strftime_now() formats a fixed date (ChatTemplateOptions::date) so that renders — and with
// them token counts, packing and resume — are deterministic.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/data/jinja_template.h"
#include "nlohmann/json.hpp"

namespace sfd {

struct ChatTemplateOptions {
  int year = 2024, month = 7, day = 26;  // strftime_now's date (Llama 3.1's default "26 Jul 2024")
};

class ChatTemplate {
 public:
  // `special_tokens`: JSON object {"bos_token": "<s>", ...}. `origin` names the source in errors.
  static absl::StatusOr<std::unique_ptr<ChatTemplate>> FromSource(
      const std::string& source, const std::string& origin,
      const nlohmann::ordered_json& special_tokens, ChatTemplateOptions options = {});
  // See the resolution order above. `name_or_path` may be empty.
  static absl::StatusOr<std::unique_ptr<ChatTemplate>> ForModel(const std::string& model_dir,
                                                                const std::string& name_or_path,
                                                                ChatTemplateOptions options = {});

  // Renders `messages` (a JSON array of {"role", "content", ...}). `extra`: more context
  // variables (e.g. {"enable_thinking": false}); may be null. Errors name the template origin
  // and line:col; a template's raise_exception() comes back as FailedPrecondition.
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& messages,
                                     bool add_generation_prompt,
                                     const nlohmann::ordered_json& extra = nullptr) const;

  const std::string& origin() const { return origin_; }
  const std::string& source() const { return source_; }

  static std::vector<std::string> BuiltinNames();
  // Built-in template text by name or alias (e.g. "llama3.1" -> the Llama 3.2 template).
  static std::optional<std::string> Builtin(const std::string& name);
  // "set data.chat_template to one of: ..." — appended to errors about unusable templates.
  static std::string Suggestion();

 private:
  std::string source_;
  std::string origin_;
  std::unique_ptr<jinja::Template> template_;
  jinja::Value base_context_;  // special tokens + strftime_now
};

}  // namespace sfd
