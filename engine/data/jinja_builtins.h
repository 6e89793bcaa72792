// Built-ins of sfd's Jinja interpreter with Jinja2/Python semantics: filters (trim, length,
// tojson, default, items, selectattr, map, join, replace, ...), tests (defined, none, string,
// mapping, iterable, equalto, ...), attribute/item/slice access including Python str/dict
// methods (strip, split, startswith, items, get, ...), and the global functions HF exposes to
// chat templates (range, namespace, raise_exception, strftime_now via the caller, dict).
// Errors are plain messages; the evaluator prefixes the template position.
// Implemented in jinja_builtins.cc (access, methods, globals) and jinja_filters.cc (filters,
// tests), over the shared string operations of jinja_string_ops.h.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "engine/data/jinja_value.h"

namespace sfd::jinja {

absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& v, const ValueList& args,
                                  const KwArgs& kwargs);
absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& v, const ValueList& args);

// obj.name: Python attribute first (str/dict/list methods), then item (dict key).
absl::StatusOr<Value> GetAttr(const Value& obj, const std::string& name);
// obj[key]: item first, then attribute. Missing keys / out-of-range indices are undefined.
absl::StatusOr<Value> GetItem(const Value& obj, const Value& key);
// obj[start:stop:step] on strings (by code point) and lists; undefined parts are None.
absl::StatusOr<Value> GetSlice(const Value& obj, const Value& start, const Value& stop,
                               const Value& step);
// Iteration order of `for x in v`: list items, dict keys, string code points.
absl::StatusOr<ValueList> Iterate(const Value& v);
// Python `needle in haystack`.
absl::StatusOr<bool> Contains(const Value& haystack, const Value& needle);
// Python <, with its TypeErrors.
absl::StatusOr<bool> LessThan(const Value& a, const Value& b);

// Globals: range, namespace, raise_exception, dict.
void AddGlobals(ValueDict* globals);

}  // namespace sfd::jinja
