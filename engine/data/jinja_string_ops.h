// Internal helpers of sfd's Jinja built-ins, shared by jinja_builtins.cc (attribute access,
// str/dict methods) and jinja_filters.cc (filters, tests): Python str semantics on UTF-8 text
// (code points, strip/split/replace/title/capitalize, ASCII case mapping), dict.items(), and
// the lookup of positional/keyword call arguments. Not part of the interpreter's API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/data/jinja_value.h"

namespace sfd::jinja::internal {

// The plain error every built-in returns; the evaluator prefixes the template position.
absl::Status Bad(const std::string& msg);

// UTF-8 <-> code points; Encode takes code points [b, e).
std::vector<uint32_t> Decode(const std::string& s);
std::string Encode(const std::vector<uint32_t>& cps, size_t b = 0, size_t e = SIZE_MAX);

// ASCII-only case mapping, as the templates need it.
char AsciiUpper(char c);
char AsciiLower(char c);
std::string Upper(std::string s);
std::string Lower(std::string s);

// Python str.strip/lstrip/rstrip with chars=None (whitespace) or a set of code points.
std::string Strip(const std::string& s, const Value& chars, bool left, bool right);
// Python str.split(sep=None, maxsplit=-1).
absl::StatusOr<Value> Split(const std::string& s, const Value& sep, int64_t maxsplit);
// Python str.replace(old, new, count=-1).
std::string Replace(const std::string& s, const std::string& from, const std::string& to,
                    int64_t count);
// Python str.title() and str.capitalize().
std::string Title(const std::string& s);
std::string Capitalize(const std::string& s);

// Python dict.items() of a dict value: a list of (key, value) tuples.
Value DictItems(const Value& d);

// Keyword argument `name`, or null.
const Value* FindKw(const KwArgs& kw, const char* name);
// Positional arg i, else keyword `name`, else undefined.
Value Arg(const ValueList& args, size_t i, const KwArgs& kw, const char* name);

}  // namespace sfd::jinja::internal
