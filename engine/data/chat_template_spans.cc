#include "engine/data/chat_template_spans.h"

#include "absl/strings/str_cat.h"
#include "engine/common/status.h"

namespace sfd {
namespace {

using json = nlohmann::ordered_json;

bool StartsWith(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(0, p.size(), p) == 0;
}
bool IsWs(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

json Prefix(const json& messages, size_t n) {
  json out = json::array();
  for (size_t i = 0; i < n; ++i) out.push_back(messages[i]);
  return out;
}

// Byte offset in `full` where messages[i]'s content starts, found by rendering it with a marker
// prepended: valid only when the marked render is `full` with exactly the marker inserted.
absl::StatusOr<size_t> ContentStart(const ChatTemplate& tmpl, const json& messages, size_t i,
                                    const std::string& full) {
  static const std::string kMarker = "\x02sfd-turn\x03";
  auto content = messages[i].find("content");
  if (content == messages[i].end() || !content->is_string())
    return absl::NotFoundError("no content");
  json marked = messages;
  marked[i]["content"] = kMarker + content->get<std::string>();
  SFD_ASSIGN_OR_RETURN(std::string m, tmpl.Render(marked, /*add_generation_prompt=*/false));
  size_t p = m.find(kMarker);
  if (p == std::string::npos || m.find(kMarker, p + 1) != std::string::npos)
    return absl::NotFoundError("marker");
  if (m.size() != full.size() + kMarker.size() || m.compare(0, p, full, 0, p) != 0 ||
      m.compare(p + kMarker.size(), std::string::npos, full, p, std::string::npos) != 0)
    return absl::NotFoundError("content not verbatim");
  return p;
}

}  // namespace

absl::StatusOr<RenderedConversation> RenderWithAssistantSpans(
    const ChatTemplate& tmpl, const json& messages, const std::vector<bool>& train_turn,
    const std::vector<std::string>& end_markers) {
  RenderedConversation rc;
  SFD_ASSIGN_OR_RETURN(rc.text, tmpl.Render(messages, /*add_generation_prompt=*/false));
  const std::string& r = rc.text;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (i >= train_turn.size() || !train_turn[i]) continue;
    auto role = messages[i].find("role");
    if (role == messages[i].end() || *role != "assistant") continue;
    auto fail = [&](const std::string& why) {
      return absl::InvalidArgumentError(absl::StrCat("cannot locate assistant message ", i,
                                                     " (messages[", i,
                                                     "]) in the rendered chat template: ", why));
    };
    auto head = tmpl.Render(Prefix(messages, i), /*add_generation_prompt=*/true);
    size_t begin = 0;
    if (head.ok() && StartsWith(r, *head)) {
      begin = head->size();
    } else {
      // Templates that render earlier messages differently depending on what follows (e.g.
      // Mistral-Nemo puts the system prompt into the last user message): find where the
      // content starts by rendering it with a marker in front.
      auto at = ContentStart(tmpl, messages, i, r);
      if (!at.ok()) {
        return fail(head.ok() ? "the conversation up to it with a generation prompt is not a "
                                "prefix of the whole, "
                                "and its content is not rendered verbatim"
                              : absl::StrCat("rendering the messages before it failed: ",
                                             head.status().message()));
      }
      begin = *at;
    }
    auto upto = tmpl.Render(Prefix(messages, i + 1), /*add_generation_prompt=*/false);
    if (!upto.ok())
      return fail(
          absl::StrCat("rendering the messages up to it failed: ", upto.status().message()));
    size_t end = 0;
    if (StartsWith(r, *upto) && upto->size() >= begin) {
      end = upto->size();
    } else {
      // The turn renders differently when it is last: find the longest tail of `upto` that the
      // full render continues with at `begin`.
      const std::string& q = *upto;
      size_t max_m = std::min(r.size() - begin, q.size() > begin ? q.size() - begin : size_t{0});
      size_t m = max_m;
      for (; m > 0; --m)
        if (r.compare(begin, m, q, q.size() - m, m) == 0) break;
      if (m == 0) return fail("its rendered text does not appear at its position");
      end = begin + m;
    }
    // Drop whitespace after a trailing end-of-turn marker.
    size_t trimmed = end;
    while (trimmed > begin && IsWs(r[trimmed - 1])) --trimmed;
    if (trimmed != end) {
      for (const auto& mk : end_markers) {
        if (!mk.empty() && trimmed - begin >= mk.size() &&
            r.compare(trimmed - mk.size(), mk.size(), mk) == 0) {
          end = trimmed;
          break;
        }
      }
    }
    rc.spans.push_back({begin, end});
  }
  return rc;
}

}  // namespace sfd
