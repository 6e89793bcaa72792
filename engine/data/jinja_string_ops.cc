#include "engine/data/jinja_string_ops.h"

#include <algorithm>

#include "engine/data/tokenizer_utf8.h"

namespace sfd::jinja::internal {
namespace {

bool IsAlpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (static_cast<unsigned char>(c) >= 0x80);
}

}  // namespace

absl::Status Bad(const std::string& msg) { return absl::InvalidArgumentError(msg); }

std::vector<uint32_t> Decode(const std::string& s) {
  std::vector<uint32_t> cps;
  cps.reserve(s.size());
  auto offs = Utf8Offsets(s);
  for (size_t i = 0; i + 1 < offs.size(); ++i) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data()) + offs[i];
    size_t n = offs[i + 1] - offs[i];
    uint32_t cp = n == 1 ? p[0] : n == 2 ? (p[0] & 0x1F) : n == 3 ? (p[0] & 0x0F) : (p[0] & 0x07);
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (p[k] & 0x3F);
    cps.push_back(cp);
  }
  return cps;
}

std::string Encode(const std::vector<uint32_t>& cps, size_t b, size_t e) {
  std::string out;
  e = std::min(e, cps.size());
  for (size_t i = b; i < e; ++i) AppendUtf8(cps[i], &out);
  return out;
}

char AsciiUpper(char c) { return (c >= 'a' && c <= 'z') ? c - 32 : c; }
char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }
std::string Upper(std::string s) {
  for (auto& c : s) c = AsciiUpper(c);
  return s;
}
std::string Lower(std::string s) {
  for (auto& c : s) c = AsciiLower(c);
  return s;
}

// Python str.strip/lstrip/rstrip with chars=None (whitespace) or a set of code points.
std::string Strip(const std::string& s, const Value& chars, bool left, bool right) {
  auto cps = Decode(s);
  std::vector<uint32_t> set;
  bool ws = chars.is_none() || chars.is_undefined();
  if (!ws) set = Decode(chars.Str());
  auto strip_it = [&](uint32_t cp) {
    return ws ? IsPyWhitespace(cp) : std::find(set.begin(), set.end(), cp) != set.end();
  };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && strip_it(cps[b])) ++b;
  if (right)
    while (e > b && strip_it(cps[e - 1])) --e;
  return Encode(cps, b, e);
}

absl::StatusOr<Value> Split(const std::string& s, const Value& sep, int64_t maxsplit) {
  ValueList out;
  if (sep.is_none() || sep.is_undefined()) {
    auto cps = Decode(s);
    size_t i = 0;
    while (true) {
      while (i < cps.size() && IsPyWhitespace(cps[i])) ++i;
      if (i >= cps.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        size_t e = cps.size();
        while (e > i && IsPyWhitespace(cps[e - 1])) --e;
        out.push_back(Value::String(Encode(cps, i, e)));
        break;
      }
      size_t j = i;
      while (j < cps.size() && !IsPyWhitespace(cps[j])) ++j;
      out.push_back(Value::String(Encode(cps, i, j)));
      i = j;
    }
    return Value::List(std::move(out));
  }
  if (!sep.is_string()) return Bad("split(): separator must be a string or None");
  const std::string& d = sep.as_string();
  if (d.empty()) return Bad("split(): empty separator");
  size_t start = 0;
  while (true) {
    size_t p = s.find(d, start);
    if (p == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit)) {
      out.push_back(Value::String(s.substr(start)));
      break;
    }
    out.push_back(Value::String(s.substr(start, p - start)));
    start = p + d.size();
  }
  return Value::List(std::move(out));
}

std::string Replace(const std::string& s, const std::string& from, const std::string& to,
                    int64_t count) {
  std::string out;
  if (from.empty()) {
    // Python inserts `to` between code points (and at both ends).
    auto offs = Utf8Offsets(s);
    int64_t n = 0;
    for (size_t i = 0; i + 1 < offs.size(); ++i) {
      if (count < 0 || n < count) {
        out += to;
        ++n;
      }
      out.append(s, offs[i], offs[i + 1] - offs[i]);
    }
    if (count < 0 || n < count) out += to;
    return out;
  }
  size_t start = 0;
  int64_t n = 0;
  while (true) {
    size_t p = s.find(from, start);
    if (p == std::string::npos || (count >= 0 && n >= count)) break;
    out.append(s, start, p - start);
    out += to;
    start = p + from.size();
    ++n;
  }
  out.append(s, start, std::string::npos);
  return out;
}

std::string Title(const std::string& s) {
  std::string out = s;
  bool prev_cased = false;
  for (auto& c : out) {
    if (IsAlpha(c)) {
      c = prev_cased ? AsciiLower(c) : AsciiUpper(c);
      prev_cased = true;
    } else {
      prev_cased = false;
    }
  }
  return out;
}

std::string Capitalize(const std::string& s) {
  std::string out = Lower(s);
  if (!out.empty()) out[0] = AsciiUpper(out[0]);
  return out;
}

Value DictItems(const Value& d) {
  ValueList out;
  for (const auto& kv : d.as_dict().items)
    out.push_back(Value::Tuple({Value::String(kv.first), kv.second}));
  return Value::List(std::move(out));
}

const Value* FindKw(const KwArgs& kw, const char* name) {
  for (const auto& kv : kw)
    if (kv.first == name) return &kv.second;
  return nullptr;
}
// Positional arg i, else keyword `name`, else undefined.
Value Arg(const ValueList& args, size_t i, const KwArgs& kw, const char* name) {
  if (i < args.size()) return args[i];
  if (const Value* v = FindKw(kw, name)) return *v;
  return Value();
}

}  // namespace sfd::jinja::internal
