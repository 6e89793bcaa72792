// Jinja parser: token stream (jinja_lexer.h) -> AST, following Jinja2's grammar and operator
// precedence (parser.py) for the subset chat templates use: output/if/elif/else/for (with
// loop filter and else)/set (name, ns.attr, tuple, block)/macro/break/continue/generation
// statements; literals, names, attribute/item/slice access, calls with kwargs, filters, tests
// (`is`, `is not`), not/and/or, comparisons incl. (not) in, + - * / // % ** ~, conditional
// expressions, list/tuple/dict literals.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/data/jinja_lexer.h"
#include "engine/data/jinja_value.h"

namespace sfd::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind {
  kLiteral,  // literal
  kName,     // name
  kGetAttr,  // args[0].name
  kGetItem,  // args[0][args[1]]
  kSlice,    // args[0][args[1]:args[2]:args[3]] (missing parts null)
  kCall,     // args[0](args[1..], kwargs)
  kFilter,   // args[0] | name(args[1..], kwargs)
  kTest,     // args[0] is [not] name(args[1..])
  kUnary,    // op args[0]: "-", "+", "not"
  kBinary,   // args[0] op args[1]: + - * / // % ** ~ and or
  kCompare,  // args[0] ops[0] args[1] ops[1] args[2] ...: == != < <= > >= in notin
  kCond,     // args[1] if args[0] else args[2] (args[2] may be null)
  kList,     // [args...]
  kTuple,    // (args...) — evaluated as a list
  kDict,     // {kwargs keys are evaluated exprs: args[2i]: args[2i+1]}
};

struct Expr {
  ExprKind kind;
  int line = 0, col = 0;
  Value literal;
  std::string name;  // name / attribute / filter / test / operator
  bool negated = false;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // kCompare
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class StmtKind {
  kText,      // text
  kOutput,    // {{ expr }}
  kIf,        // conds[i] -> bodies[i]; else_body
  kFor,       // for targets in expr [if filter] body else else_body
  kSet,       // targets (names) or (name, attr) = expr
  kSetBlock,  // {% set name %}body{% endset %}
  kMacro,     // {% macro name(params) %}
  kBreak,
  kContinue,
  kBlock,  // body executed in place ({% generation %}, {% filter %}-less wrappers)
};

struct Stmt {
  StmtKind kind;
  int line = 0, col = 0;
  std::string text;
  ExprPtr expr;                      // output / for iterable / set value
  ExprPtr filter;                    // for ... if filter
  std::vector<ExprPtr> conds;        // if / elif conditions
  std::vector<Body> bodies;          // if/elif bodies; [0] for for/set-block/macro/block
  Body else_body;                    // if / for
  std::vector<std::string> targets;  // for / set target names
  std::string attr;                  // set ns.attr
  std::string name;                  // macro / set-block name
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro params (default may be null)
};

struct Program {
  Body body;
};

absl::StatusOr<std::unique_ptr<Program>> Parse(const std::vector<Token>& tokens);

}  // namespace sfd::jinja
