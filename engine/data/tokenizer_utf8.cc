// UTF-8 helpers for the tokenizers (see tokenizer_utf8.h).
#include "engine/data/tokenizer_utf8.h"

#include "absl/strings/str_cat.h"

namespace sfd {
namespace {

// Length of the valid UTF-8 sequence at p[0..n), or 0 when it is not valid. For invalid input,
// *subpart gets the length of the maximal subpart (>= 1) that one U+FFFD replaces.
size_t ValidSeqLen(const unsigned char* p, size_t n, size_t* subpart) {
  const unsigned char c = p[0];
  *subpart = 1;
  if (c < 0x80) return 1;
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (size_t i = 1; i < len; ++i) {
    if (i >= n) return 0;
    const unsigned char lo_i = i == 1 ? lo : 0x80, hi_i = i == 1 ? hi : 0xBF;
    if (p[i] < lo_i || p[i] > hi_i) return 0;
    *subpart = i + 1;
  }
  return len;
}

std::array<char32_t, 256> MakeByteToCodePoint() {
  std::array<char32_t, 256> table{};
  bool direct[256] = {};
  for (int b = '!'; b <= '~'; ++b) direct[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) table[b] = direct[b] ? char32_t(b) : next++;
  return table;
}

}  // namespace

absl::Status ValidateUtf8(std::string_view s, std::string_view what) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    size_t subpart;
    const size_t len = ValidSeqLen(p + i, s.size() - i, &subpart);
    if (len == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(ToAbsl(what), ": invalid UTF-8 at byte offset ", i));
    }
    i += len;
  }
  return absl::OkStatus();
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(char(cp));
  } else if (cp < 0x800) {
    out->push_back(char(0xC0 | (cp >> 6)));
    out->push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(char(0xE0 | (cp >> 12)));
    out->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(char(0xF0 | (cp >> 18)));
    out->push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(char(0x80 | (cp & 0x3F)));
  }
}

std::string Utf8Lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t i = 0;
  while (i < bytes.size()) {
    size_t subpart;
    const size_t len = ValidSeqLen(p + i, bytes.size() - i, &subpart);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      i += subpart;
    } else {
      out.append(bytes.data() + i, len);
      i += len;
    }
  }
  return out;
}

bool IsJsWhitespace(char32_t cp) {
  switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
    case 0xFEFF:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

const std::array<char32_t, 256>& ByteToCodePoint() {
  static const std::array<char32_t, 256> table = MakeByteToCodePoint();
  return table;
}

int CodePointToByte(char32_t cp) {
  static const std::array<int, 324> inverse = [] {
    std::array<int, 324> inv;
    inv.fill(-1);
    const auto& fwd = ByteToCodePoint();
    for (int b = 0; b < 256; ++b) inv[fwd[b]] = b;
    return inv;
  }();
  return cp < inverse.size() ? inverse[cp] : -1;
}

const std::array<std::string, 256>& ByteLevelUtf8() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    for (int b = 0; b < 256; ++b) AppendUtf8(ByteToCodePoint()[b], &t[b]);
    return t;
  }();
  return table;
}

}  // namespace sfd
