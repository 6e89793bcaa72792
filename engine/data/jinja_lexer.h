// Jinja lexer: template source -> flat token stream (text, tag delimiters, expression tokens),
// applying Jinja2's whitespace rules the way HF transformers configures them for chat
// templates (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False, `-`/`+`
// modifiers on tags). Every token carries its 1-based line:col for error messages.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sfd::jinja {

enum class TokKind {
  kText,        // raw template text (value)
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,        // identifier / keyword
  kString,      // string literal, escapes resolved (value)
  kInt,         // integer literal (value = digits)
  kFloat,       // float literal
  kOp,          // operator / punctuation (value)
  kEnd,         // end of template
};

struct Token {
  TokKind kind;
  std::string value;
  int line = 1;
  int col = 1;
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;
};

absl::StatusOr<std::vector<Token>> Lex(const std::string& source, const LexOptions& options = {});

}  // namespace sfd::jinja
