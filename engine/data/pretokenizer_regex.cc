// Regex over PCRE2 (see pretokenizer_regex.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "engine/data/pretokenizer_regex.h"

#include <pcre2.h>

#include "absl/strings/str_cat.h"
#include "engine/data/tokenizer_utf8.h"

namespace sfd {
namespace {

// One match-data block per thread (only the whole-match offsets are read, so one pair is
// enough: PCRE2 fills what fits).
struct MatchData {
  MatchData() : md(pcre2_match_data_create(1, nullptr)) {}
  ~MatchData() { pcre2_match_data_free(md); }
  pcre2_match_data* md;
};

std::string EscapeLiteral(std::string_view s) {
  // \Q...\E quoting, with any "\E" inside the literal split out.
  std::string out = "\\Q";
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == 'E') {
      out += "\\E\\\\\\QE";
      ++i;
    } else {
      out += s[i];
    }
  }
  out += "\\E";
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Regex>> Regex::Compile(std::string_view pattern,
                                                      std::string_view what) {
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    PCRE2_UTF | PCRE2_UCP, &err, &err_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    return absl::InvalidArgumentError(absl::StrCat(ToAbsl(what), ": bad regex at offset ", err_offset,
                                                   ": ", reinterpret_cast<char*>(msg)));
  }
  // JIT is an optimisation only: without it (unsupported platform) matching still works.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return std::unique_ptr<Regex>(new Regex(code));
}

absl::StatusOr<std::unique_ptr<Regex>> Regex::Literal(std::string_view literal,
                                                      std::string_view what) {
  return Compile(EscapeLiteral(literal), what);
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void Regex::FindAll(std::string_view text,
                    std::vector<std::pair<size_t, size_t>>* matches) const {
  thread_local MatchData data;
  auto* code = static_cast<pcre2_code*>(code_);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos <= text.size()) {
    const int rc = pcre2_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, data.md,
                               nullptr);
    if (rc < 0) break;  // PCRE2_ERROR_NOMATCH, or a resource limit: no further matches.
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data.md);
    const size_t begin = ov[0], end = ov[1];
    if (end > begin) {
      matches->emplace_back(begin, end);
      pos = end;
    } else {
      if (begin >= text.size()) break;
      pos = begin + Utf8SeqLen(static_cast<unsigned char>(text[begin]));
    }
  }
}

}  // namespace sfd
