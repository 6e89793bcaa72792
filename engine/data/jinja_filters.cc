// ApplyFilter and ApplyTest of jinja_builtins.h: Jinja2's filters and tests.
#include "engine/data/jinja_builtins.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "engine/common/status.h"
#include "engine/data/jinja_string_ops.h"

namespace sfd::jinja {
namespace {

using internal::Arg;
using internal::Bad;
using internal::DictItems;
using internal::FindKw;
using internal::Lower;
using internal::Replace;
using internal::Strip;
using internal::Title;
using internal::Upper;

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

}  // namespace

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
  if (name == "capitalize") return Value::String(internal::Capitalize(v.Str()));
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
    return DictItems(v);
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
      items = DictItems(v).as_list();
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

}  // namespace sfd::jinja
