// Assistant spans of a rendered conversation: which characters of the chat template's output
// are the assistant's turns (what the model generates, incl. the end-of-turn token), for
// loss masks of {"messages"} datasets. Works for any template without markers, by rendering
// prefixes of the conversation:
//   start of turn i = len(render(messages[:i], add_generation_prompt=True)) when that is a
//     prefix of the full render R (template-generated assistant text such as Qwen3's empty
//     <think></think> then counts as assistant output, as at inference); otherwise (templates
//     that render earlier messages differently depending on what follows, e.g. Mistral-Nemo's
//     system prompt) where the content starts, found by rendering it with a marker in front;
//   end of turn i   = len(render(messages[:i+1])) when that is a prefix of R; otherwise (e.g.
//     Qwen3 renders the last turn differently) the longest tail of that render that R continues
//     with at the start of the turn. Whitespace after a trailing end-of-turn marker ("\n" after
//     <|im_end|>) is not part of the turn.
// A template for which a turn cannot be located is an error naming the turn.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/data/chat_template.h"
#include "nlohmann/json.hpp"

namespace sfd {

struct CharSpan {
  size_t begin = 0, end = 0;  // [begin, end) byte offsets
};

struct RenderedConversation {
  std::string text;             // render(messages, add_generation_prompt=False)
  std::vector<CharSpan> spans;  // one per assistant message with train_turn[i], in order
};

// `train_turn[i]`: whether message i's span is wanted (only assistant messages are located).
// `end_markers`: end-of-turn strings (eos_token, <|im_end|>, ...) after which trailing
// whitespace is dropped from a span.
absl::StatusOr<RenderedConversation> RenderWithAssistantSpans(
    const ChatTemplate& tmpl, const nlohmann::ordered_json& messages,
    const std::vector<bool>& train_turn, const std::vector<std::string>& end_markers);

}  // namespace sfd
