// libFuzzer target for dataset rows: one JSONL line -> ParseRow (JSON, format detection,
// validation) and, for {"messages"} rows, rendering with built-in chat templates (sfd's Jinja
// interpreter) and locating the assistant spans — everything a dataset line reaches before the
// tokenizer. Must never crash, hang or leak; errors are fine.
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/data/chat_template.h"
#include "engine/data/chat_template_spans.h"
#include "engine/data/dataset_row.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* kTemplates = [] {
    auto* v = new std::vector<std::unique_ptr<sfd::ChatTemplate>>();
    nlohmann::ordered_json tokens = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
    for (const char* name : {"llama3.2", "qwen3", "mistral-nemo"}) {
      auto t = sfd::ChatTemplate::FromSource(*sfd::ChatTemplate::Builtin(name), name, tokens);
      if (t.ok()) v->push_back(std::move(*t));
    }
    return v;
  }();
  const std::string line(reinterpret_cast<const char*>(data), size);
  auto sample = sfd::ParseRow(line, sfd::DatasetFormat::kAuto);
  if (!sample.ok() || sample->format != sfd::DatasetFormat::kMessages) return 0;
  for (const auto& t : *kTemplates) {
    auto rc = sfd::RenderWithAssistantSpans(*t, sample->messages, sample->message_weights,
                                            {"</s>", "<|im_end|>"});
    if (rc.ok()) {
      for (const auto& s : rc->spans)
        if (s.begin > s.end || s.end > rc->text.size()) __builtin_trap();
    }
  }
  return 0;
}
