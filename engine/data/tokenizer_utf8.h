// UTF-8 helpers for the tokenizers: validation, code point iteration/encoding, lossy decoding
// of arbitrary bytes (U+FFFD per maximal invalid subpart, as Rust's from_utf8_lossy and JS's
// TextDecoder do), and GPT-2's byte-level alphabet (each byte <-> one printable code point).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace sfd {

// Debian's Abseil has its own absl::string_view class: hashed-container lookups with a
// std::string_view key go through this.
inline absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// OK when `s` is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF);
// otherwise InvalidArgument naming `what` and the byte offset of the first bad sequence.
absl::Status ValidateUtf8(std::string_view s, std::string_view what);

// Decodes the code point at s[*pos] (s must be valid UTF-8) and advances *pos past it.
inline char32_t NextCodePoint(std::string_view s, size_t* pos) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + *pos;
  const unsigned char c = p[0];
  if (c < 0x80) {
    *pos += 1;
    return c;
  }
  if (c < 0xE0) {
    *pos += 2;
    return (char32_t(c & 0x1F) << 6) | (p[1] & 0x3F);
  }
  if (c < 0xF0) {
    *pos += 3;
    return (char32_t(c & 0x0F) << 12) | (char32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
  }
  *pos += 4;
  return (char32_t(c & 0x07) << 18) | (char32_t(p[1] & 0x3F) << 12) |
         (char32_t(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
}

// Length in bytes of the UTF-8 sequence starting with lead byte `c` (1 for invalid leads).
inline size_t Utf8SeqLen(unsigned char c) {
  return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

void AppendUtf8(char32_t cp, std::string* out);

// Bytes -> valid UTF-8, each maximal invalid subpart replaced by U+FFFD.
std::string Utf8Lossy(std::string_view bytes);

// True for the code points JS's String.prototype.trim() removes (WhiteSpace + LineTerminator).
bool IsJsWhitespace(char32_t cp);

// GPT-2 byte-level alphabet: byte b <-> code point ByteToCodePoint()[b] (printable bytes map
// to themselves, the others to U+0100..U+0143).
const std::array<char32_t, 256>& ByteToCodePoint();
// Inverse of ByteToCodePoint(); -1 for code points outside the alphabet.
int CodePointToByte(char32_t cp);
// UTF-8 of ByteToCodePoint()[b] for every byte, for fast byte-level mapping.
const std::array<std::string, 256>& ByteLevelUtf8();

}  // namespace sfd
