// Built-in chat templates, selectable by name through DataSpec.chat_template when a model ships
// none (or a broken one). The texts are verbatim copies of the models' own templates, kept
// identical to tests/fixtures/chat_templates/<name>/template.jinja (the oracle fixtures; a test
// checks they match): llama3 (Llama-3-Instruct), llama3.2 (Llama-3.1/3.2/3.3-Instruct, tools
// and date header), qwen2.5, qwen3, mistral (Mistral-7B-Instruct), mistral-nemo.
#pragma once

#include <vector>

namespace sfd {

struct BuiltinChatTemplate {
  const char* name;
  const char* source;
};

const std::vector<BuiltinChatTemplate>& BuiltinChatTemplates();

}  // namespace sfd
