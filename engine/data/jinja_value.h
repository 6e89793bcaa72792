// jinja::Value: the dynamic value type of sfd's Jinja2-subset interpreter (chat templates).
// Mirrors Python/Jinja2 semantics where chat templates can observe them: undefined vs none,
// int vs float, insertion-ordered dicts, strings indexed by code point, Python str()/repr()
// output, truthiness and equality. Lists, dicts and functions are shared by reference (like
// Python objects), so a namespace() mutated through `{% set ns.x = ... %}` is seen everywhere.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace sfd::jinja {

class Value;
using ValueList = std::vector<Value>;
using KwArgs = std::vector<std::pair<std::string, Value>>;
// Built-in function, bound method or macro. Errors are plain messages; the evaluator adds
// the template position.
using Function = std::function<absl::StatusOr<Value>(const ValueList& args, const KwArgs& kwargs)>;

// Insertion-ordered string-keyed dict (Python dict semantics for what templates do).
struct ValueDict {
  std::vector<std::pair<std::string, Value>> items;
  bool is_namespace = false;  // created by namespace(): attribute assignment allowed
  const Value* Find(const std::string& key) const;
  void Set(const std::string& key, Value v);
};

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kFunction };

  Value() = default;  // undefined
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double d);
  static Value String(std::string s);
  static Value List(ValueList items);
  static Value Tuple(ValueList items);  // a list that prints as Python's (a, b)
  static Value Dict(std::shared_ptr<ValueDict> d);
  static Value EmptyDict();
  static Value Func(Function f);
  // JSON -> Value (objects keep key order when given ordered_json; nlohmann::json sorts them).
  static Value FromJson(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_function() const { return kind_ == Kind::kFunction; }
  bool is_tuple() const { return tuple_; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return i_; }
  double as_double() const { return kind_ == Kind::kFloat ? d_ : static_cast<double>(i_); }
  const std::string& as_string() const { return *s_; }
  const ValueList& as_list() const { return *list_; }
  ValueList& mutable_list() { return *list_; }
  const ValueDict& as_dict() const { return *dict_; }
  ValueDict& mutable_dict() { return *dict_; }
  const std::shared_ptr<ValueDict>& dict_ptr() const { return dict_; }
  const Function& as_function() const { return *fn_; }

  // Python truthiness (undefined is false).
  bool Truthy() const;
  // Python str(): what `{{ x }}` prints. Undefined prints as "".
  std::string Str() const;
  // Python repr() (strings quoted), used inside str() of lists/dicts.
  std::string Repr() const;
  // HF transformers' tojson: json.dumps(x, ensure_ascii=False, indent=indent, sort_keys=...).
  absl::StatusOr<std::string> ToJson(int indent, bool sort_keys) const;
  // Python ==.
  bool Equals(const Value& o) const;
  const char* TypeName() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool tuple_ = false;
  bool b_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  std::shared_ptr<const std::string> s_;
  std::shared_ptr<ValueList> list_;
  std::shared_ptr<ValueDict> dict_;
  std::shared_ptr<const Function> fn_;
};

// UTF-8 helpers with Python code-point semantics (invalid bytes count as one code point).
std::vector<size_t> Utf8Offsets(const std::string& s);  // byte offset of each code point + end
int64_t Utf8Length(const std::string& s);
// Python float repr (shortest round-trip, always with '.', 'e', "inf" or "nan").
std::string PyFloatRepr(double d);
// Python str.isspace() for one code point.
bool IsPyWhitespace(uint32_t cp);

}  // namespace sfd::jinja
