#include "engine/data/jinja_builtins.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine/common/status.h"
#include "engine/data/jinja_string_ops.h"

namespace sfd::jinja {
namespace {

using internal::Arg;
using internal::Bad;
using internal::Capitalize;
using internal::Decode;
using internal::DictItems;
using internal::Encode;
using internal::Lower;
using internal::Replace;
using internal::Split;
using internal::Strip;
using internal::Title;
using internal::Upper;

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
  if (name == "capitalize") return Value::String(Capitalize(s));
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
  if (name == "items") return DictItems(d);
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
