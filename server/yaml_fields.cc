#include "server/yaml_fields.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace sfd {
namespace {

std::string LineOf(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.line < 0) return "";
  return absl::StrCat(" (line ", mark.line + 1, ")");
}

// Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF): job strings end up in proto3
// string fields and in YAML, both of which require it.
bool IsValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int n;
    uint32_t cp;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xe0) == 0xc0) { n = 1; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { n = 2; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { n = 3; cp = c & 0x07; }
    else return false;
    for (int k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}

}  // namespace

absl::Status YamlMap::Check(const YAML::Node& node, const std::string& path) {
  if (!node.IsDefined() || node.IsNull() || node.IsMap()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(path.empty() ? "document" : path, LineOf(node), ": must be a mapping"));
}

bool YamlMap::Has(const std::string& key) const {
  if (!node_.IsDefined() || !node_.IsMap()) return false;
  for (const auto& kv : node_)
    if (kv.first.IsScalar() && kv.first.Scalar() == key) return true;
  return false;
}

std::string YamlMap::FieldPath(const std::string& key) const {
  return path_.empty() ? key : absl::StrCat(path_, ".", key);
}

YAML::Node YamlMap::Find(const std::string& key) {
  seen_.push_back(key);
  if (!node_.IsDefined() || !node_.IsMap()) return YAML::Node();
  for (const auto& kv : node_)
    if (kv.first.IsScalar() && kv.first.Scalar() == key) return kv.second;
  return YAML::Node();
}

absl::Status YamlMap::Error(const std::string& key, const std::string& message) const {
  std::string line;
  if (node_.IsDefined() && node_.IsMap()) {
    for (const auto& kv : node_)
      if (kv.first.IsScalar() && kv.first.Scalar() == key) line = LineOf(kv.second);
  }
  return absl::InvalidArgumentError(absl::StrCat(FieldPath(key), line, ": ", message));
}

absl::Status YamlMap::GetString(const std::string& key, std::string* out) {
  YAML::Node v = Find(key);
  if (!v.IsDefined() || v.IsNull()) return absl::OkStatus();
  if (!v.IsScalar()) return Error(key, "must be a string");
  if (!IsValidUtf8(v.Scalar())) return Error(key, "must be valid UTF-8");
  *out = v.Scalar();
  return absl::OkStatus();
}

absl::Status YamlMap::GetInt(const std::string& key, int64_t* out) {
  YAML::Node v = Find(key);
  if (!v.IsDefined() || v.IsNull()) return absl::OkStatus();
  int64_t x = 0;
  if (!v.IsScalar() || !absl::SimpleAtoi(v.Scalar(), &x))
    return Error(key, absl::StrCat("must be an integer, got '",
                                   v.IsScalar() ? v.Scalar() : "<non-scalar>", "'"));
  *out = x;
  return absl::OkStatus();
}

absl::Status YamlMap::GetInt(const std::string& key, int32_t* out) {
  int64_t x = *out;
  if (absl::Status s = GetInt(key, &x); !s.ok()) return s;
  if (x < INT32_MIN || x > INT32_MAX) return Error(key, "out of range");
  *out = static_cast<int32_t>(x);
  return absl::OkStatus();
}

absl::Status YamlMap::GetUint(const std::string& key, uint64_t* out) {
  YAML::Node v = Find(key);
  if (!v.IsDefined() || v.IsNull()) return absl::OkStatus();
  uint64_t x = 0;
  if (!v.IsScalar() || !absl::SimpleAtoi(v.Scalar(), &x))
    return Error(key, "must be a non-negative integer");
  *out = x;
  return absl::OkStatus();
}

absl::Status YamlMap::GetDouble(const std::string& key, double* out) {
  YAML::Node v = Find(key);
  if (!v.IsDefined() || v.IsNull()) return absl::OkStatus();
  double x = 0;
  if (!v.IsScalar() || !absl::SimpleAtod(v.Scalar(), &x) || !std::isfinite(x))
    return Error(key, absl::StrCat("must be a finite number, got '",
                                   v.IsScalar() ? v.Scalar() : "<non-scalar>", "'"));
  *out = x;
  return absl::OkStatus();
}

absl::Status YamlMap::GetBool(const std::string& key, bool* out) {
  YAML::Node v = Find(key);
  if (!v.IsDefined() || v.IsNull()) return absl::OkStatus();
  if (!v.IsScalar()) return Error(key, "must be true or false");
  const std::string s = absl::AsciiStrToLower(v.Scalar());
  if (s == "true" || s == "yes" || s == "on") {
    *out = true;
  } else if (s == "false" || s == "no" || s == "off") {
    *out = false;
  } else {
    return Error(key, absl::StrCat("must be true or false, got '", v.Scalar(), "'"));
  }
  return absl::OkStatus();
}

absl::Status ParseBytes(const std::string& text, int64_t* out) {
  std::string s = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  double num = 0;
  if (i == 0 || !absl::SimpleAtod(s.substr(0, i), &num))
    return absl::InvalidArgumentError(absl::StrCat("not a byte size: '", text, "'"));
  std::string unit(absl::StripAsciiWhitespace(s.substr(i)));
  double mul = 1;
  if (unit.empty() || unit == "b") mul = 1;
  else if (unit == "k" || unit == "kb") mul = 1e3;
  else if (unit == "m" || unit == "mb") mul = 1e6;
  else if (unit == "g" || unit == "gb") mul = 1e9;
  else if (unit == "t" || unit == "tb") mul = 1e12;
  else if (unit == "kib") mul = 1024.0;
  else if (unit == "mib") mul = 1024.0 * 1024;
  else if (unit == "gib") mul = 1024.0 * 1024 * 1024;
  else if (unit == "tib") mul = 1024.0 * 1024 * 1024 * 1024;
  else return absl::InvalidArgumentError(absl::StrCat("unknown size unit '", unit, "'"));
  const double bytes = num * mul;
  if (!(bytes >= 0) || bytes > 9.0e18)
    return absl::InvalidArgumentError(absl::StrCat("byte size out of range: '", text, "'"));
  *out = static_cast<int64_t>(bytes);
  return absl::OkStatus();
}

absl::Status YamlMap::GetBytes(const std::string& key, int64_t* out) {
  YAML::Node v = Find(key);
  if (!v.IsDefined() || v.IsNull()) return absl::OkStatus();
  if (!v.IsScalar()) return Error(key, "must be a byte size such as 20GiB");
  int64_t x = 0;
  if (absl::Status s = ParseBytes(v.Scalar(), &x); !s.ok()) return Error(key, std::string(s.message()));
  *out = x;
  return absl::OkStatus();
}

absl::Status YamlMap::GetStringList(const std::string& key, std::vector<std::string>* out) {
  YAML::Node v = Find(key);
  if (!v.IsDefined() || v.IsNull()) return absl::OkStatus();
  std::vector<std::string> items;
  if (v.IsScalar()) {
    if (!IsValidUtf8(v.Scalar())) return Error(key, "must be valid UTF-8");
    items.push_back(v.Scalar());
  } else if (v.IsSequence()) {
    for (const auto& item : v) {
      if (!item.IsScalar() || !IsValidUtf8(item.Scalar()))
        return Error(key, "must be a list of (UTF-8) strings");
      items.push_back(item.Scalar());
    }
  } else {
    return Error(key, "must be a list of strings");
  }
  *out = std::move(items);
  return absl::OkStatus();
}

absl::Status YamlMap::GetMap(const std::string& key, YamlMap* out) {
  YAML::Node v = Find(key);
  if (v.IsDefined() && !v.IsNull() && !v.IsMap()) return Error(key, "must be a mapping");
  *out = YamlMap(v, FieldPath(key));
  return absl::OkStatus();
}

absl::Status YamlMap::RejectUnknownKeys() const {
  if (!node_.IsDefined() || !node_.IsMap()) return absl::OkStatus();
  std::vector<std::string> keys;
  for (const auto& kv : node_) {
    if (!kv.first.IsScalar()) continue;
    if (std::find(keys.begin(), keys.end(), kv.first.Scalar()) != keys.end())
      return absl::InvalidArgumentError(
          absl::StrCat(FieldPath(kv.first.Scalar()), LineOf(kv.first), ": duplicate key"));
    keys.push_back(kv.first.Scalar());
  }
  for (const auto& kv : node_) {
    if (!kv.first.IsScalar())
      return absl::InvalidArgumentError(absl::StrCat(path_.empty() ? "document" : path_,
                                                     LineOf(kv.first), ": keys must be strings"));
    const std::string& k = kv.first.Scalar();
    if (std::find(seen_.begin(), seen_.end(), k) == seen_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(FieldPath(k), LineOf(kv.first), ": unknown key"));
    }
  }
  return absl::OkStatus();
}

}  // namespace sfd
