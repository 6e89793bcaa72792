#include "engine/data/jinja_builtins.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "engine/common/status.h"

namespace sfd::jinja {
namespace {

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

std::string Encode(const std::vector<uint32_t>& cps, size_t b = 0, size_t e = SIZE_MAX) {
  std::string out;
  e = std::min(e, cps.size());
  for (size_t i = b; i < e; ++i) {
    uint32_t cp = cps[i];
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
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
bool IsAlpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (static_cast<unsigned char>(c) >= 0x80);
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

absl::StatusOr<Value> Length(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kString:
      return Value::Int(Utf8Length(v.as_string()));
    case Value::Kind::kList:
      return Value::Int(static_cast<int64_t>(v.as_list().size()));
    case Value::Kind::kDict:
      return Value::Int(static_cast<int64_t>(v.as_dict().items.size()));
    case Value::Kind::kUndefined:
      return Value::Int(0);
    default:
      return Bad(absl::StrCat("object of type '", v.TypeName(), "' has no len()"));
  }
}

// Dotted attribute path lookup as Jinja2's make_attrgetter does (item first).
absl::StatusOr<Value> AttrPath(const Value& v, const std::string& path) {
  Value cur = v;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    SFD_ASSIGN_OR_RETURN(
        cur, GetItem(cur, numeric ? Value::Int(std::stoll(part)) : Value::String(part)));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

absl::StatusOr<Value> SelectReject(const Value& v, const ValueList& args, bool by_attr,
                                   bool select) {
  SFD_ASSIGN_OR_RETURN(auto items, Iterate(v));
  size_t ai = 0;
  std::string attr;
  if (by_attr) {
    if (args.empty() || !args[0].is_string())
      return Bad("selectattr/rejectattr: expected an attribute name");
    attr = args[0].as_string();
    ai = 1;
  }
  std::string test = ai < args.size() ? args[ai].Str() : "";
  ValueList test_args(args.begin() + std::min(args.size(), ai + 1), args.end());
  ValueList out;
  for (const auto& item : items) {
    Value x = item;
    if (by_attr) {
      SFD_ASSIGN_OR_RETURN(x, AttrPath(item, attr));
    }
    bool ok;
    if (test.empty()) {
      ok = x.Truthy();
    } else {
      SFD_ASSIGN_OR_RETURN(ok, ApplyTest(test, x, test_args));
    }
    if (ok == select) out.push_back(item);
  }
  return Value::List(std::move(out));
}

absl::StatusOr<Value> StrMethod(const std::string& s, const std::string& name, const ValueList& a,
                                const KwArgs& kw) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    return Value::String(Strip(s, Arg(a, 0, kw, "chars"), name != "rstrip", name != "lstrip"));
  }
  if (name == "split") {
    Value ms = Arg(a, 1, kw, "maxsplit");
    return Split(s, Arg(a, 0, kw, "sep"), ms.is_int() ? ms.as_int() : -1);
  }
  if (name == "startswith" || name == "endswith") {
    Value p = Arg(a, 0, kw, "prefix");
    ValueList cands = p.is_list() ? p.as_list() : ValueList{p};
    for (const auto& c : cands) {
      if (!c.is_string()) return Bad(absl::StrCat(name, "(): argument must be str"));
      const std::string& x = c.as_string();
      bool hit = name == "startswith"
                     ? s.compare(0, x.size(), x) == 0
                     : (s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0);
      if (hit) return Value::Bool(true);
    }
    return Value::Bool(false);
  }
  if (name == "upper") return Value::String(Upper(s));
  if (name == "lower") return Value::String(Lower(s));
  if (name == "title") return Value::String(Title(s));
  if (name == "capitalize") {
    std::string out = Lower(s);
    if (!out.empty()) out[0] = AsciiUpper(out[0]);
    return Value::String(out);
  }
  if (name == "replace") {
    Value c = Arg(a, 2, kw, "count");
    return Value::String(Replace(s, Arg(a, 0, kw, "old").Str(), Arg(a, 1, kw, "new").Str(),
                                 c.is_int() ? c.as_int() : -1));
  }
  if (name == "find" || name == "rfind" || name == "count" || name == "index") {
    std::string sub = Arg(a, 0, kw, "sub").Str();
    if (name == "count") {
      if (sub.empty()) return Value::Int(Utf8Length(s) + 1);
      int64_t n = 0;
      for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      return Value::Int(n);
    }
    size_t p = name == "rfind" ? s.rfind(sub) : s.find(sub);
    if (p == std::string::npos) {
      if (name == "index") return Bad("substring not found");
      return Value::Int(-1);
    }
    return Value::Int(Utf8Length(s.substr(0, p)));
  }
  if (name == "join") {
    SFD_ASSIGN_OR_RETURN(auto items, Iterate(Arg(a, 0, kw, "iterable")));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out += s;
      out += items[i].Str();
    }
    return Value::String(out);
  }
  if (name == "splitlines") {
    ValueList out;
    size_t start = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\n' || s[i] == '\r') {
        out.push_back(Value::String(s.substr(start, i - start)));
        if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
        start = i + 1;
      }
    }
    if (start < s.size()) out.push_back(Value::String(s.substr(start)));
    return Value::List(std::move(out));
  }
  if (name == "isdigit" || name == "isalpha" || name == "isspace" || name == "isalnum") {
    if (s.empty()) return Value::Bool(false);
    for (uint32_t cp : Decode(s)) {
      bool ok = name == "isdigit"   ? (cp >= '0' && cp <= '9')
                : name == "isspace" ? IsPyWhitespace(cp)
                : name == "isalpha"
                    ? ((cp | 32) >= 'a' && (cp | 32) <= 'z')
                    : (((cp | 32) >= 'a' && (cp | 32) <= 'z') || (cp >= '0' && cp <= '9'));
      if (!ok) return Value::Bool(false);
    }
    return Value::Bool(true);
  }
  return Bad(absl::StrCat("'str' object has no attribute '", name, "'"));
}

bool IsStrMethod(const std::string& n) {
  static const char* kNames[] = {
      "strip", "lstrip", "rstrip",     "split",   "startswith", "endswith", "upper",
      "lower", "title",  "capitalize", "replace", "find",       "rfind",    "count",
      "index", "join",   "splitlines", "isdigit", "isalpha",    "isspace",  "isalnum"};
  for (const char* k : kNames)
    if (n == k) return true;
  return false;
}

absl::StatusOr<Value> DictMethod(const Value& d, const std::string& name, const ValueList& a,
                                 const KwArgs& kw) {
  const auto& items = d.as_dict().items;
  if (name == "items") {
    ValueList out;
    for (const auto& kv : items) out.push_back(Value::Tuple({Value::String(kv.first), kv.second}));
    return Value::List(std::move(out));
  }
  if (name == "keys") {
    ValueList out;
    for (const auto& kv : items) out.push_back(Value::String(kv.first));
    return Value::List(std::move(out));
  }
  if (name == "values") {
    ValueList out;
    for (const auto& kv : items) out.push_back(kv.second);
    return Value::List(std::move(out));
  }
  if (name == "get") {
    Value k = Arg(a, 0, kw, "key");
    const Value* v = k.is_string() ? d.as_dict().Find(k.as_string()) : nullptr;
    if (v) return *v;
    Value def = Arg(a, 1, kw, "default");
    return def.is_undefined() ? Value::None() : def;
  }
  return Bad(absl::StrCat("'dict' object has no attribute '", name, "'"));
}

}  // namespace

absl::StatusOr<ValueList> Iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kList:
      return v.as_list();
    case Value::Kind::kUndefined:
      return ValueList{};
    case Value::Kind::kDict: {
      ValueList out;
      for (const auto& kv : v.as_dict().items) out.push_back(Value::String(kv.first));
      return out;
    }
    case Value::Kind::kString: {
      ValueList out;
      auto offs = Utf8Offsets(v.as_string());
      for (size_t i = 0; i + 1 < offs.size(); ++i)
        out.push_back(Value::String(v.as_string().substr(offs[i], offs[i + 1] - offs[i])));
      return out;
    }
    default:
      return Bad(absl::StrCat("'", v.TypeName(), "' object is not iterable"));
  }
}

absl::StatusOr<bool> Contains(const Value& h, const Value& n) {
  if (h.is_string()) {
    if (!n.is_string())
      return Bad(absl::StrCat("'in <string>' requires string as left operand, not ", n.TypeName()));
    return h.as_string().find(n.as_string()) != std::string::npos;
  }
  if (h.is_dict()) return n.is_string() && h.as_dict().Find(n.as_string()) != nullptr;
  if (h.is_list()) {
    for (const auto& x : h.as_list())
      if (x.Equals(n)) return true;
    return false;
  }
  if (h.is_undefined()) return false;
  return Bad(absl::StrCat("argument of type '", h.TypeName(), "' is not iterable"));
}

absl::StatusOr<bool> LessThan(const Value& a, const Value& b) {
  if ((a.is_number() || a.is_bool()) && (b.is_number() || b.is_bool())) {
    double x = a.is_bool() ? a.as_bool() : a.as_double(),
           y = b.is_bool() ? b.as_bool() : b.as_double();
    if (a.is_int() && b.is_int()) return a.as_int() < b.as_int();
    return x < y;
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
  if (a.is_list() && b.is_list()) {
    const auto &x = a.as_list(), &y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (x[i].Equals(y[i])) continue;
      return LessThan(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  return Bad(absl::StrCat("'<' not supported between instances of '", a.TypeName(), "' and '",
                          b.TypeName(), "'"));
}

absl::StatusOr<Value> GetItem(const Value& obj, const Value& key) {
  if (obj.is_dict()) {
    if (key.is_string()) {
      if (const Value* v = obj.as_dict().Find(key.as_string())) return *v;
      return Value();
    }
    return Value();
  }
  if (obj.is_list() || obj.is_string()) {
    if (!key.is_int() && !key.is_bool()) {
      if (key.is_string()) return GetAttr(obj, key.as_string());
      return Bad(absl::StrCat("indices must be integers, not ", key.TypeName()));
    }
    int64_t i = key.is_bool() ? key.as_bool() : key.as_int();
    if (obj.is_list()) {
      int64_t n = static_cast<int64_t>(obj.as_list().size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value();
      return obj.as_list()[i];
    }
    auto offs = Utf8Offsets(obj.as_string());
    int64_t n = static_cast<int64_t>(offs.size()) - 1;
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value();
    return Value::String(obj.as_string().substr(offs[i], offs[i + 1] - offs[i]));
  }
  if (obj.is_undefined()) return Bad("cannot index an undefined value");
  if (obj.is_none()) return Bad("'NoneType' object is not subscriptable");
  if (key.is_string()) return GetAttr(obj, key.as_string());
  return Value();
}

absl::StatusOr<Value> GetAttr(const Value& obj, const std::string& name) {
  if (obj.is_string()) {
    if (!IsStrMethod(name)) return Value();
    std::string s = obj.as_string();
    return Value::Func(
        [s, name](const ValueList& a, const KwArgs& kw) { return StrMethod(s, name, a, kw); });
  }
  if (obj.is_dict()) {
    if (!obj.as_dict().is_namespace &&
        (name == "items" || name == "keys" || name == "values" || name == "get")) {
      Value d = obj;
      return Value::Func(
          [d, name](const ValueList& a, const KwArgs& kw) { return DictMethod(d, name, a, kw); });
    }
    if (const Value* v = obj.as_dict().Find(name)) return *v;
    return Value();
  }
  if (obj.is_undefined()) return Bad(absl::StrCat("'", name, "' of an undefined value"));
  if (obj.is_none()) return Bad(absl::StrCat("'None' has no attribute '", name, "'"));
  return Value();
}

absl::StatusOr<Value> GetSlice(const Value& obj, const Value& start, const Value& stop,
                               const Value& step) {
  if (!obj.is_list() && !obj.is_string())
    return Bad(absl::StrCat("'", obj.TypeName(), "' object is not subscriptable"));
  auto idx = [](const Value& v, int64_t* out) -> absl::Status {
    if (v.is_undefined() || v.is_none()) return absl::NotFoundError("");
    if (!v.is_int()) return Bad("slice indices must be integers or None");
    *out = v.as_int();
    return absl::OkStatus();
  };
  std::vector<uint32_t> cps;
  int64_t n;
  if (obj.is_string()) {
    cps = Decode(obj.as_string());
    n = static_cast<int64_t>(cps.size());
  } else {
    n = static_cast<int64_t>(obj.as_list().size());
  }
  int64_t st = 1, b, e;
  absl::Status s = idx(step, &st);
  if (!s.ok() && !absl::IsNotFound(s)) return s;
  if (st == 0) return Bad("slice step cannot be zero");
  s = idx(start, &b);
  if (absl::IsNotFound(s))
    b = st > 0 ? 0 : n - 1;
  else if (!s.ok())
    return s;
  else {
    if (b < 0) b += n;
    b = st > 0 ? std::clamp<int64_t>(b, 0, n) : std::clamp<int64_t>(b, -1, n - 1);
  }
  s = idx(stop, &e);
  if (absl::IsNotFound(s))
    e = st > 0 ? n : -1;
  else if (!s.ok())
    return s;
  else {
    if (e < 0) e += n;
    e = st > 0 ? std::clamp<int64_t>(e, 0, n) : std::clamp<int64_t>(e, -1, n - 1);
  }
  std::vector<int64_t> picks;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) picks.push_back(i);
  if (obj.is_string()) {
    std::vector<uint32_t> out;
    for (int64_t i : picks) out.push_back(cps[i]);
    return Value::String(Encode(out));
  }
  ValueList out;
  for (int64_t i : picks) out.push_back(obj.as_list()[i]);
  return Value::List(std::move(out));
}

absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& v, const ValueList& a) {
  auto need = [&](size_t n) -> absl::Status {
    if (a.size() < n) return Bad(absl::StrCat("test '", name, "' needs an argument"));
    return absl::OkStatus();
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number() || v.is_bool();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "sequence") return v.is_list() || v.is_dict() || v.is_string();
  if (name == "callable") return v.is_function();
  if (name == "lower") return v.is_string() && Lower(v.as_string()) == v.as_string();
  if (name == "upper") return v.is_string() && Upper(v.as_string()) == v.as_string();
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") {
    SFD_RETURN_IF_ERROR(need(1));
    return v.Equals(a[0]);
  }
  if (name == "ne" || name == "!=") {
    SFD_RETURN_IF_ERROR(need(1));
    return !v.Equals(a[0]);
  }
  if (name == "lt" || name == "<" || name == "lessthan") {
    SFD_RETURN_IF_ERROR(need(1));
    return LessThan(v, a[0]);
  }
  if (name == "gt" || name == ">" || name == "greaterthan") {
    SFD_RETURN_IF_ERROR(need(1));
    return LessThan(a[0], v);
  }
  if (name == "le" || name == "<=") {
    SFD_RETURN_IF_ERROR(need(1));
    SFD_ASSIGN_OR_RETURN(bool gt, LessThan(a[0], v));
    return !gt;
  }
  if (name == "ge" || name == ">=") {
    SFD_RETURN_IF_ERROR(need(1));
    SFD_ASSIGN_OR_RETURN(bool lt, LessThan(v, a[0]));
    return !lt;
  }
  if (name == "in") {
    SFD_RETURN_IF_ERROR(need(1));
    return Contains(a[0], v);
  }
  if (name == "divisibleby" || name == "even" || name == "odd") {
    if (!v.is_int()) return Bad(absl::StrCat("test '", name, "' needs an integer"));
    if (name == "even") return v.as_int() % 2 == 0;
    if (name == "odd") return v.as_int() % 2 != 0;
    SFD_RETURN_IF_ERROR(need(1));
    if (!a[0].is_int() || a[0].as_int() == 0) return Bad("divisibleby needs a non-zero integer");
    return v.as_int() % a[0].as_int() == 0;
  }
  return Bad(absl::StrCat("unknown test '", name, "'"));
}

absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& v, const ValueList& a,
                                  const KwArgs& kw) {
  auto need_str = [&]() -> absl::Status {
    if (!v.is_string())
      return Bad(absl::StrCat("filter '", name, "' expects a string, got ", v.TypeName()));
    return absl::OkStatus();
  };
  if (name == "length" || name == "count") return Length(v);
  if (name == "trim") {
    if (v.is_undefined()) return Value::String("");
    return Value::String(Strip(v.Str(), Arg(a, 0, kw, "chars"), true, true));
  }
  if (name == "upper") return Value::String(Upper(v.Str()));
  if (name == "lower") return Value::String(Lower(v.Str()));
  if (name == "title") return Value::String(Title(v.Str()));
  if (name == "capitalize") return StrMethod(v.Str(), "capitalize", {}, {});
  if (name == "string") return Value::String(v.Str());
  if (name == "safe" || name == "e" || name == "escape") {
    if (name == "safe") return v;
    std::string out;
    for (char c : v.Str()) {
      switch (c) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&#34;";
          break;
        case '\'':
          out += "&#39;";
          break;
        default:
          out += c;
      }
    }
    return Value::String(out);
  }
  if (name == "default" || name == "d") {
    Value def = Arg(a, 0, kw, "default_value");
    if (def.is_undefined()) def = Value::String("");
    bool boolean = Arg(a, 1, kw, "boolean").Truthy();
    if (v.is_undefined() || (boolean && !v.Truthy())) return def;
    return v;
  }
  if (name == "tojson") {
    Value ind = Arg(a, 0, kw, "indent");
    bool sort_keys = Arg(a, 3, kw, "sort_keys").Truthy();
    SFD_ASSIGN_OR_RETURN(auto s,
                         v.ToJson(ind.is_int() ? static_cast<int>(ind.as_int()) : -1, sort_keys));
    return Value::String(s);
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::List({});
    if (!v.is_dict())
      return Bad(absl::StrCat("filter 'items' expects a mapping, got ", v.TypeName()));
    return DictMethod(v, "items", {}, {});
  }
  if (name == "list") {
    SFD_ASSIGN_OR_RETURN(auto items, Iterate(v));
    return Value::List(std::move(items));
  }
  if (name == "first" || name == "last") {
    SFD_ASSIGN_OR_RETURN(auto items, Iterate(v));
    if (items.empty()) return Value();
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    if (v.is_string()) return GetSlice(v, Value(), Value(), Value::Int(-1));
    SFD_ASSIGN_OR_RETURN(auto items, Iterate(v));
    std::reverse(items.begin(), items.end());
    return Value::List(std::move(items));
  }
  if (name == "join") {
    SFD_ASSIGN_OR_RETURN(auto items, Iterate(v));
    std::string sep = Arg(a, 0, kw, "d").Str();
    Value attr = Arg(a, 1, kw, "attribute");
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out += sep;
      Value x = items[i];
      if (attr.is_string()) {
        SFD_ASSIGN_OR_RETURN(x, AttrPath(x, attr.as_string()));
      }
      out += x.Str();
    }
    return Value::String(out);
  }
  if (name == "replace") {
    SFD_RETURN_IF_ERROR(need_str());
    Value c = Arg(a, 2, kw, "count");
    return Value::String(Replace(v.as_string(), Arg(a, 0, kw, "old").Str(),
                                 Arg(a, 1, kw, "new").Str(), c.is_int() ? c.as_int() : -1));
  }
  if (name == "selectattr" || name == "rejectattr")
    return SelectReject(v, a, true, name == "selectattr");
  if (name == "select" || name == "reject") return SelectReject(v, a, false, name == "select");
  if (name == "map") {
    SFD_ASSIGN_OR_RETURN(auto items, Iterate(v));
    ValueList out;
    const Value* attr = FindKw(kw, "attribute");
    for (const auto& x : items) {
      if (attr) {
        SFD_ASSIGN_OR_RETURN(auto y, AttrPath(x, attr->Str()));
        if (y.is_undefined()) {
          if (const Value* d = FindKw(kw, "default")) y = *d;
        }
        out.push_back(y);
      } else {
        if (a.empty()) return Bad("map: expected a filter name or attribute=");
        ValueList rest(a.begin() + 1, a.end());
        SFD_ASSIGN_OR_RETURN(auto y, ApplyFilter(a[0].Str(), x, rest, {}));
        out.push_back(y);
      }
    }
    return Value::List(std::move(out));
  }
  if (name == "unique") {
    SFD_ASSIGN_OR_RETURN(auto items, Iterate(v));
    ValueList out;
    for (const auto& x : items) {
      bool seen = false;
      for (const auto& y : out) seen = seen || y.Equals(x);
      if (!seen) out.push_back(x);
    }
    return Value::List(std::move(out));
  }
  if (name == "sort" || name == "dictsort") {
    ValueList items;
    if (name == "dictsort") {
      if (!v.is_dict()) return Bad("dictsort expects a mapping");
      SFD_ASSIGN_OR_RETURN(Value it, DictMethod(v, "items", {}, {}));
      items = it.as_list();
    } else {
      SFD_ASSIGN_OR_RETURN(items, Iterate(v));
    }
    bool reverse = Arg(a, 0, kw, "reverse").Truthy();
    Value attr = FindKw(kw, "attribute") ? *FindKw(kw, "attribute") : Value();
    absl::Status err;
    std::vector<Value> keys;
    for (auto& x : items) {
      Value k = x;
      if (name == "dictsort")
        k = x.as_list()[0];
      else if (attr.is_string()) {
        auto r = AttrPath(x, attr.as_string());
        if (!r.ok()) return r.status();
        k = *r;
      }
      if (k.is_string()) k = Value::String(Lower(k.as_string()));
      keys.push_back(k);
    }
    std::vector<size_t> order(items.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
      auto r = reverse ? LessThan(keys[y], keys[x]) : LessThan(keys[x], keys[y]);
      if (!r.ok()) {
        err = r.status();
        return false;
      }
      return *r;
    });
    if (!err.ok()) return err;
    ValueList out;
    for (size_t i : order) out.push_back(items[i]);
    return Value::List(std::move(out));
  }
  if (name == "int") {
    if (v.is_int()) return v;
    if (v.is_float()) return Value::Int(static_cast<int64_t>(v.as_double()));
    if (v.is_bool()) return Value::Int(v.as_bool());
    if (v.is_string()) {
      char* end = nullptr;
      long long x = std::strtoll(v.as_string().c_str(), &end, 10);
      if (end && *end == 0 && !v.as_string().empty()) return Value::Int(x);
    }
    Value def = Arg(a, 0, kw, "default");
    return def.is_undefined() ? Value::Int(0) : def;
  }
  if (name == "float") {
    if (v.is_number()) return Value::Float(v.as_double());
    if (v.is_string()) {
      char* end = nullptr;
      double x = std::strtod(v.as_string().c_str(), &end);
      if (end && *end == 0 && !v.as_string().empty()) return Value::Float(x);
    }
    Value def = Arg(a, 0, kw, "default");
    return def.is_undefined() ? Value::Float(0.0) : def;
  }
  if (name == "abs") {
    if (v.is_int()) return Value::Int(v.as_int() < 0 ? -v.as_int() : v.as_int());
    if (v.is_float()) return Value::Float(std::fabs(v.as_double()));
    return Bad("abs expects a number");
  }
  if (name == "round") {
    if (!v.is_number()) return Bad("round expects a number");
    Value p = Arg(a, 0, kw, "precision");
    double m = std::pow(10.0, p.is_int() ? static_cast<double>(p.as_int()) : 0.0);
    return Value::Float(std::nearbyint(v.as_double() * m) / m);
  }
  if (name == "sum" || name == "min" || name == "max") {
    SFD_ASSIGN_OR_RETURN(auto items, Iterate(v));
    if (name == "sum") {
      bool is_float = false;
      int64_t is = 0;
      double ds = 0;
      for (const auto& x : items) {
        if (!x.is_number() && !x.is_bool()) return Bad("sum expects numbers");
        is_float = is_float || x.is_float();
        is += x.is_bool() ? x.as_bool() : x.as_int();
        ds += x.is_bool() ? x.as_bool() : x.as_double();
      }
      return is_float ? Value::Float(ds) : Value::Int(is);
    }
    if (items.empty()) return Value();
    Value best = items[0];
    for (const auto& x : items) {
      SFD_ASSIGN_OR_RETURN(bool lt, name == "min" ? LessThan(x, best) : LessThan(best, x));
      if (lt) best = x;
    }
    return best;
  }
  if (name == "indent") {
    SFD_RETURN_IF_ERROR(need_str());
    Value w = Arg(a, 0, kw, "width");
    std::string pad = w.is_string() ? w.as_string() : std::string(w.is_int() ? w.as_int() : 4, ' ');
    bool first = Arg(a, 1, kw, "first").Truthy(), blank = Arg(a, 2, kw, "blank").Truthy();
    std::string out;
    const std::string& s = v.as_string();
    size_t start = 0;
    bool is_first = true;
    while (start <= s.size()) {
      size_t nl = s.find('\n', start);
      std::string line = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
      if ((!is_first || first) && (blank || !line.empty())) out += pad;
      out += line;
      if (nl == std::string::npos) break;
      out += '\n';
      start = nl + 1;
      is_first = false;
    }
    return Value::String(out);
  }
  return Bad(absl::StrCat("unknown filter '", name, "'"));
}

void AddGlobals(ValueDict* g) {
  g->Set("range", Value::Func([](const ValueList& a, const KwArgs&) -> absl::StatusOr<Value> {
           int64_t start = 0, stop = 0, step = 1;
           for (const auto& x : a)
             if (!x.is_int()) return Bad("range() arguments must be integers");
           if (a.size() == 1) {
             stop = a[0].as_int();
           } else if (a.size() == 2 || a.size() == 3) {
             start = a[0].as_int();
             stop = a[1].as_int();
             if (a.size() == 3) step = a[2].as_int();
           } else {
             return Bad("range() expects 1 to 3 arguments");
           }
           if (step == 0) return Bad("range() step must not be zero");
           ValueList out;
           for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
             if (out.size() >= 100000) return Bad("range() too big (more than 100000 items)");
             out.push_back(Value::Int(i));
           }
           return Value::List(std::move(out));
         }));
  g->Set("namespace",
         Value::Func([](const ValueList& a, const KwArgs& kw) -> absl::StatusOr<Value> {
           auto d = std::make_shared<ValueDict>();
           d->is_namespace = true;
           for (const auto& x : a) {
             if (!x.is_dict()) return Bad("namespace() positional argument must be a mapping");
             for (const auto& kv : x.as_dict().items) d->Set(kv.first, kv.second);
           }
           for (const auto& kv : kw) d->Set(kv.first, kv.second);
           return Value::Dict(d);
         }));
  g->Set("dict", Value::Func([](const ValueList& a, const KwArgs& kw) -> absl::StatusOr<Value> {
           auto d = std::make_shared<ValueDict>();
           for (const auto& x : a) {
             if (!x.is_dict()) return Bad("dict() positional argument must be a mapping");
             for (const auto& kv : x.as_dict().items) d->Set(kv.first, kv.second);
           }
           for (const auto& kv : kw) d->Set(kv.first, kv.second);
           return Value::Dict(d);
         }));
  g->Set("raise_exception",
         Value::Func([](const ValueList& a, const KwArgs&) -> absl::StatusOr<Value> {
           return absl::FailedPreconditionError(absl::StrCat(
               "template raised an exception: ", a.empty() ? std::string() : a[0].Str()));
         }));
}

}  // namespace sfd::jinja
