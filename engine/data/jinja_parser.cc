#include "engine/data/jinja_parser.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "engine/common/status.h"

namespace sfd::jinja {
namespace {

class Parser {
 public:
  explicit Parser(const std::vector<Token>& toks) : t_(toks) {}

  absl::StatusOr<std::unique_ptr<Program>> Run() {
    auto prog = std::make_unique<Program>();
    std::string end;
    SFD_RETURN_IF_ERROR(ParseBody({}, &prog->body, &end));
    if (Cur().kind != TokKind::kEnd) return Err(Cur(), "unexpected tag");
    return prog;
  }

 private:
  const Token& Cur() const { return t_[p_]; }
  const Token& Peek(int k = 1) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  void Next() {
    if (p_ + 1 < t_.size()) ++p_;
  }
  bool IsOp(const char* op) const { return Cur().kind == TokKind::kOp && Cur().value == op; }
  bool IsName(const char* n) const { return Cur().kind == TokKind::kName && Cur().value == n; }
  bool SkipOp(const char* op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(const char* n) {
    if (!IsName(n)) return false;
    Next();
    return true;
  }
  absl::Status Err(const Token& t, const std::string& msg) const {
    return absl::InvalidArgumentError(absl::StrCat("template ", t.line, ":", t.col, ": ", msg));
  }
  absl::Status ExpectOp(const char* op) {
    if (!SkipOp(op)) return Err(Cur(), absl::StrCat("expected '", op, "'", Describe()));
    return absl::OkStatus();
  }
  absl::Status ExpectBlockEnd() {
    if (Cur().kind != TokKind::kBlockEnd)
      return Err(Cur(), absl::StrCat("expected end of statement block", Describe()));
    Next();
    return absl::OkStatus();
  }
  std::string Describe() const {
    switch (Cur().kind) {
      case TokKind::kEnd:
        return ", got end of template";
      case TokKind::kBlockEnd:
        return ", got '%}'";
      case TokKind::kVarEnd:
        return ", got '}}'";
      default:
        return absl::StrCat(", got '", Cur().value, "'");
    }
  }
  absl::StatusOr<std::string> ExpectNameTok() {
    if (Cur().kind != TokKind::kName)
      return Err(Cur(), absl::StrCat("expected a name", Describe()));
    std::string n = Cur().value;
    Next();
    return n;
  }

  ExprPtr NewExpr(ExprKind k, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = at.line;
    e->col = at.col;
    return e;
  }

  // Parses statements until one of `end_tags` ({% <tag> ...) is reached; *end gets the tag.
  absl::Status ParseBody(const std::vector<std::string>& end_tags, Body* body, std::string* end) {
    while (true) {
      const Token& tok = Cur();
      if (tok.kind == TokKind::kEnd) {
        if (!end_tags.empty())
          return Err(tok, absl::StrCat("unexpected end of template, expected '", end_tags[0], "'"));
        return absl::OkStatus();
      }
      if (tok.kind == TokKind::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kText;
        s->text = tok.value;
        body->push_back(std::move(s));
        Next();
        continue;
      }
      if (tok.kind == TokKind::kVarBegin) {
        Next();
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kOutput;
        s->line = tok.line;
        s->col = tok.col;
        SFD_ASSIGN_OR_RETURN(s->expr, ParseTuple(true));
        if (Cur().kind != TokKind::kVarEnd)
          return Err(Cur(), absl::StrCat("expected '}}'", Describe()));
        Next();
        body->push_back(std::move(s));
        continue;
      }
      if (tok.kind != TokKind::kBlockBegin) return Err(tok, "unexpected token");
      const Token& name_tok = Peek();
      if (name_tok.kind != TokKind::kName) return Err(name_tok, "expected a statement name");
      for (const auto& e : end_tags) {
        if (name_tok.value == e) {
          Next();
          Next();
          *end = e;
          return absl::OkStatus();
        }
      }
      Next();
      SFD_RETURN_IF_ERROR(ParseStatement(body));
    }
  }

  absl::Status ParseStatement(Body* body) {
    const Token tok = Cur();
    const std::string& n = tok.value;
    auto s = std::make_unique<Stmt>();
    s->line = tok.line;
    s->col = tok.col;
    Next();
    std::string end;
    if (n == "if") {
      s->kind = StmtKind::kIf;
      while (true) {
        SFD_ASSIGN_OR_RETURN(auto cond, ParseTuple(false));
        SFD_RETURN_IF_ERROR(ExpectBlockEnd());
        s->conds.push_back(std::move(cond));
        s->bodies.emplace_back();
        SFD_RETURN_IF_ERROR(ParseBody({"elif", "else", "endif"}, &s->bodies.back(), &end));
        if (end == "elif") continue;
        if (end == "else") {
          SFD_RETURN_IF_ERROR(ExpectBlockEnd());
          SFD_RETURN_IF_ERROR(ParseBody({"endif"}, &s->else_body, &end));
        }
        break;
      }
    } else if (n == "for") {
      s->kind = StmtKind::kFor;
      do {
        SFD_ASSIGN_OR_RETURN(auto t, ExpectNameTok());
        s->targets.push_back(t);
      } while (SkipOp(","));
      if (!SkipName("in")) return Err(Cur(), absl::StrCat("expected 'in'", Describe()));
      SFD_ASSIGN_OR_RETURN(s->expr, ParseTuple(false));
      if (SkipName("if")) {
        SFD_ASSIGN_OR_RETURN(s->filter, ParseExpression(true));
      }
      if (IsName("recursive")) return Err(Cur(), "recursive loops are not supported");
      SFD_RETURN_IF_ERROR(ExpectBlockEnd());
      s->bodies.emplace_back();
      SFD_RETURN_IF_ERROR(ParseBody({"endfor", "else"}, &s->bodies[0], &end));
      if (end == "else") {
        SFD_RETURN_IF_ERROR(ExpectBlockEnd());
        SFD_RETURN_IF_ERROR(ParseBody({"endfor"}, &s->else_body, &end));
      }
    } else if (n == "set") {
      SFD_ASSIGN_OR_RETURN(auto first, ExpectNameTok());
      if (SkipOp(".")) {
        SFD_ASSIGN_OR_RETURN(s->attr, ExpectNameTok());
        s->targets.push_back(first);
      } else {
        s->targets.push_back(first);
        while (SkipOp(",")) {
          SFD_ASSIGN_OR_RETURN(auto t, ExpectNameTok());
          s->targets.push_back(t);
        }
      }
      if (SkipOp("=")) {
        s->kind = StmtKind::kSet;
        SFD_ASSIGN_OR_RETURN(s->expr, ParseTuple(true));
      } else {
        if (s->targets.size() != 1 || !s->attr.empty()) return Err(Cur(), "expected '='");
        s->kind = StmtKind::kSetBlock;
        s->name = first;
        SFD_RETURN_IF_ERROR(ExpectBlockEnd());
        s->bodies.emplace_back();
        SFD_RETURN_IF_ERROR(ParseBody({"endset"}, &s->bodies[0], &end));
      }
    } else if (n == "macro") {
      s->kind = StmtKind::kMacro;
      SFD_ASSIGN_OR_RETURN(s->name, ExpectNameTok());
      SFD_RETURN_IF_ERROR(ExpectOp("("));
      while (!IsOp(")")) {
        if (!s->params.empty()) SFD_RETURN_IF_ERROR(ExpectOp(","));
        SFD_ASSIGN_OR_RETURN(auto pn, ExpectNameTok());
        ExprPtr def;
        if (SkipOp("=")) {
          SFD_ASSIGN_OR_RETURN(def, ParseExpression(true));
        }
        s->params.emplace_back(pn, std::move(def));
      }
      Next();
      SFD_RETURN_IF_ERROR(ExpectBlockEnd());
      s->bodies.emplace_back();
      SFD_RETURN_IF_ERROR(ParseBody({"endmacro"}, &s->bodies[0], &end));
    } else if (n == "break" || n == "continue") {
      s->kind = n == "break" ? StmtKind::kBreak : StmtKind::kContinue;
    } else if (n == "generation") {
      // HF transformers' AssistantTracker extension: marks assistant text; renders as-is.
      s->kind = StmtKind::kBlock;
      SFD_RETURN_IF_ERROR(ExpectBlockEnd());
      s->bodies.emplace_back();
      SFD_RETURN_IF_ERROR(ParseBody({"endgeneration"}, &s->bodies[0], &end));
    } else {
      return Err(tok, absl::StrCat("unknown or unsupported statement '", n, "'"));
    }
    SFD_RETURN_IF_ERROR(ExpectBlockEnd());
    body->push_back(std::move(s));
    return absl::OkStatus();
  }

  // parse_tuple: comma-separated expressions; a tuple when a comma appears.
  absl::StatusOr<ExprPtr> ParseTuple(bool with_condexpr) {
    const Token at = Cur();
    SFD_ASSIGN_OR_RETURN(auto first, ParseExpression(with_condexpr));
    if (!IsOp(",")) return first;
    auto tup = NewExpr(ExprKind::kTuple, at);
    tup->args.push_back(std::move(first));
    while (SkipOp(",")) {
      if (Cur().kind == TokKind::kVarEnd || Cur().kind == TokKind::kBlockEnd || IsOp(")")) break;
      SFD_ASSIGN_OR_RETURN(auto e, ParseExpression(with_condexpr));
      tup->args.push_back(std::move(e));
    }
    return tup;
  }

  absl::StatusOr<ExprPtr> ParseExpression(bool with_condexpr) {
    if (!with_condexpr) return ParseOr();
    const Token at = Cur();
    SFD_ASSIGN_OR_RETURN(auto e, ParseOr());
    while (IsName("if")) {
      Next();
      SFD_ASSIGN_OR_RETURN(auto cond, ParseOr());
      ExprPtr other;
      if (SkipName("else")) {
        SFD_ASSIGN_OR_RETURN(other, ParseExpression(true));
      }
      auto c = NewExpr(ExprKind::kCond, at);
      c->args.push_back(std::move(cond));
      c->args.push_back(std::move(e));
      c->args.push_back(std::move(other));
      e = std::move(c);
    }
    return e;
  }

  ExprPtr MakeBinary(const std::string& op, ExprPtr l, ExprPtr r, const Token& at) {
    auto b = NewExpr(ExprKind::kBinary, at);
    b->name = op;
    b->args.push_back(std::move(l));
    b->args.push_back(std::move(r));
    return b;
  }

  absl::StatusOr<ExprPtr> ParseOr() {
    SFD_ASSIGN_OR_RETURN(auto l, ParseAnd());
    while (IsName("or")) {
      const Token at = Cur();
      Next();
      SFD_ASSIGN_OR_RETURN(auto r, ParseAnd());
      l = MakeBinary("or", std::move(l), std::move(r), at);
    }
    return l;
  }
  absl::StatusOr<ExprPtr> ParseAnd() {
    SFD_ASSIGN_OR_RETURN(auto l, ParseNot());
    while (IsName("and")) {
      const Token at = Cur();
      Next();
      SFD_ASSIGN_OR_RETURN(auto r, ParseNot());
      l = MakeBinary("and", std::move(l), std::move(r), at);
    }
    return l;
  }
  absl::StatusOr<ExprPtr> ParseNot() {
    if (IsName("not")) {
      const Token at = Cur();
      Next();
      SFD_ASSIGN_OR_RETURN(auto inner, ParseNot());
      auto u = NewExpr(ExprKind::kUnary, at);
      u->name = "not";
      u->args.push_back(std::move(inner));
      return u;
    }
    return ParseCompare();
  }
  absl::StatusOr<ExprPtr> ParseCompare() {
    const Token at = Cur();
    SFD_ASSIGN_OR_RETURN(auto first, ParseMath1());
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (Cur().kind == TokKind::kOp &&
          (IsOp("==") || IsOp("!=") || IsOp("<") || IsOp("<=") || IsOp(">") || IsOp(">="))) {
        op = Cur().value;
        Next();
      } else if (IsName("in")) {
        op = "in";
        Next();
      } else if (IsName("not") && Peek().kind == TokKind::kName && Peek().value == "in") {
        op = "notin";
        Next();
        Next();
      } else {
        break;
      }
      if (!cmp) {
        cmp = NewExpr(ExprKind::kCompare, at);
        cmp->args.push_back(std::move(first));
      }
      SFD_ASSIGN_OR_RETURN(auto r, ParseMath1());
      cmp->ops.push_back(op);
      cmp->args.push_back(std::move(r));
    }
    return cmp ? std::move(cmp) : std::move(first);
  }
  absl::StatusOr<ExprPtr> ParseMath1() {
    SFD_ASSIGN_OR_RETURN(auto l, ParseConcat());
    while (IsOp("+") || IsOp("-")) {
      const Token at = Cur();
      Next();
      SFD_ASSIGN_OR_RETURN(auto r, ParseConcat());
      l = MakeBinary(at.value, std::move(l), std::move(r), at);
    }
    return l;
  }
  absl::StatusOr<ExprPtr> ParseConcat() {
    SFD_ASSIGN_OR_RETURN(auto l, ParseMath2());
    while (IsOp("~")) {
      const Token at = Cur();
      Next();
      SFD_ASSIGN_OR_RETURN(auto r, ParseMath2());
      l = MakeBinary("~", std::move(l), std::move(r), at);
    }
    return l;
  }
  absl::StatusOr<ExprPtr> ParseMath2() {
    SFD_ASSIGN_OR_RETURN(auto l, ParsePow());
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      const Token at = Cur();
      Next();
      SFD_ASSIGN_OR_RETURN(auto r, ParsePow());
      l = MakeBinary(at.value, std::move(l), std::move(r), at);
    }
    return l;
  }
  absl::StatusOr<ExprPtr> ParsePow() {
    SFD_ASSIGN_OR_RETURN(auto l, ParseUnary(true));
    while (IsOp("**")) {
      const Token at = Cur();
      Next();
      SFD_ASSIGN_OR_RETURN(auto r, ParseUnary(true));
      l = MakeBinary("**", std::move(l), std::move(r), at);
    }
    return l;
  }
  absl::StatusOr<ExprPtr> ParseUnary(bool with_filter) {
    const Token at = Cur();
    ExprPtr node;
    if (IsOp("-") || IsOp("+")) {
      Next();
      SFD_ASSIGN_OR_RETURN(auto inner, ParseUnary(false));
      node = NewExpr(ExprKind::kUnary, at);
      node->name = at.value;
      node->args.push_back(std::move(inner));
    } else {
      SFD_ASSIGN_OR_RETURN(node, ParsePrimary());
    }
    SFD_ASSIGN_OR_RETURN(node, ParsePostfix(std::move(node)));
    if (with_filter) {
      SFD_ASSIGN_OR_RETURN(node, ParseFilterExpr(std::move(node)));
    }
    return node;
  }

  absl::StatusOr<ExprPtr> ParsePrimary() {
    const Token at = Cur();
    switch (at.kind) {
      case TokKind::kName: {
        Next();
        const std::string& v = at.value;
        if (v == "true" || v == "True" || v == "false" || v == "False") {
          auto e = NewExpr(ExprKind::kLiteral, at);
          e->literal = Value::Bool(v[0] == 't' || v[0] == 'T');
          return e;
        }
        if (v == "none" || v == "None") {
          auto e = NewExpr(ExprKind::kLiteral, at);
          e->literal = Value::None();
          return e;
        }
        auto e = NewExpr(ExprKind::kName, at);
        e->name = v;
        return e;
      }
      case TokKind::kString: {
        std::string s;
        while (Cur().kind == TokKind::kString) {
          s += Cur().value;
          Next();
        }
        auto e = NewExpr(ExprKind::kLiteral, at);
        e->literal = Value::String(std::move(s));
        return e;
      }
      case TokKind::kInt: {
        Next();
        auto e = NewExpr(ExprKind::kLiteral, at);
        char* endp = nullptr;
        long long v = std::strtoll(at.value.c_str(), &endp, 10);
        e->literal = Value::Int(v);
        return e;
      }
      case TokKind::kFloat: {
        Next();
        auto e = NewExpr(ExprKind::kLiteral, at);
        e->literal = Value::Float(std::strtod(at.value.c_str(), nullptr));
        return e;
      }
      case TokKind::kOp:
        if (at.value == "(") {
          Next();
          if (SkipOp(")")) return NewExpr(ExprKind::kTuple, at);
          SFD_ASSIGN_OR_RETURN(auto first, ParseExpression(true));
          if (SkipOp(")")) return first;
          auto tup = NewExpr(ExprKind::kTuple, at);
          tup->args.push_back(std::move(first));
          while (SkipOp(",")) {
            if (IsOp(")")) break;
            SFD_ASSIGN_OR_RETURN(auto e, ParseExpression(true));
            tup->args.push_back(std::move(e));
          }
          SFD_RETURN_IF_ERROR(ExpectOp(")"));
          return tup;
        }
        if (at.value == "[") {
          Next();
          auto list = NewExpr(ExprKind::kList, at);
          while (!IsOp("]")) {
            if (!list->args.empty()) {
              SFD_RETURN_IF_ERROR(ExpectOp(","));
              if (IsOp("]")) break;
            }
            SFD_ASSIGN_OR_RETURN(auto e, ParseExpression(true));
            list->args.push_back(std::move(e));
          }
          Next();
          return list;
        }
        if (at.value == "{") {
          Next();
          auto dict = NewExpr(ExprKind::kDict, at);
          while (!IsOp("}")) {
            if (!dict->args.empty()) {
              SFD_RETURN_IF_ERROR(ExpectOp(","));
              if (IsOp("}")) break;
            }
            SFD_ASSIGN_OR_RETURN(auto k, ParseExpression(true));
            SFD_RETURN_IF_ERROR(ExpectOp(":"));
            SFD_ASSIGN_OR_RETURN(auto v, ParseExpression(true));
            dict->args.push_back(std::move(k));
            dict->args.push_back(std::move(v));
          }
          Next();
          return dict;
        }
        break;
      default:
        break;
    }
    return Err(at, absl::StrCat("unexpected token", Describe()));
  }

  absl::StatusOr<ExprPtr> ParsePostfix(ExprPtr node) {
    while (true) {
      const Token at = Cur();
      if (IsOp(".")) {
        Next();
        if (Cur().kind == TokKind::kName) {
          auto e = NewExpr(ExprKind::kGetAttr, at);
          e->name = Cur().value;
          e->args.push_back(std::move(node));
          node = std::move(e);
          Next();
        } else if (Cur().kind == TokKind::kInt) {
          auto e = NewExpr(ExprKind::kGetItem, at);
          auto idx = NewExpr(ExprKind::kLiteral, Cur());
          idx->literal = Value::Int(std::strtoll(Cur().value.c_str(), nullptr, 10));
          e->args.push_back(std::move(node));
          e->args.push_back(std::move(idx));
          node = std::move(e);
          Next();
        } else {
          return Err(Cur(), "expected name or number after '.'");
        }
      } else if (IsOp("[")) {
        Next();
        SFD_ASSIGN_OR_RETURN(node, ParseSubscript(std::move(node), at));
      } else if (IsOp("(")) {
        SFD_ASSIGN_OR_RETURN(node, ParseCall(std::move(node), ExprKind::kCall, ""));
      } else {
        return node;
      }
    }
  }

  absl::StatusOr<ExprPtr> ParseSubscript(ExprPtr node, const Token& at) {
    ExprPtr parts[3];
    bool is_slice = false;
    int part = 0;
    while (!IsOp("]")) {
      if (IsOp(":")) {
        Next();
        is_slice = true;
        if (++part > 2) return Err(Cur(), "bad slice");
        continue;
      }
      if (parts[part]) return Err(Cur(), absl::StrCat("expected ']'", Describe()));
      SFD_ASSIGN_OR_RETURN(parts[part], ParseExpression(true));
    }
    Next();
    if (!is_slice) {
      if (!parts[0]) return Err(at, "empty subscript");
      auto e = NewExpr(ExprKind::kGetItem, at);
      e->args.push_back(std::move(node));
      e->args.push_back(std::move(parts[0]));
      return e;
    }
    auto e = NewExpr(ExprKind::kSlice, at);
    e->args.push_back(std::move(node));
    for (auto& p : parts) e->args.push_back(std::move(p));
    return e;
  }

  // Parses "(args, k=v)" into e (kind kCall/kFilter/kTest) with `node` as args[0].
  absl::StatusOr<ExprPtr> ParseCall(ExprPtr node, ExprKind kind, const std::string& name) {
    const Token at = Cur();
    auto e = NewExpr(kind, at);
    e->name = name;
    e->args.push_back(std::move(node));
    SFD_RETURN_IF_ERROR(ExpectOp("("));
    bool first = true;
    while (!IsOp(")")) {
      if (!first) {
        SFD_RETURN_IF_ERROR(ExpectOp(","));
        if (IsOp(")")) break;
      }
      first = false;
      if (Cur().kind == TokKind::kName && Peek().kind == TokKind::kOp && Peek().value == "=") {
        std::string k = Cur().value;
        Next();
        Next();
        SFD_ASSIGN_OR_RETURN(auto v, ParseExpression(true));
        e->kwargs.emplace_back(k, std::move(v));
      } else {
        if (!e->kwargs.empty()) return Err(Cur(), "positional argument after keyword argument");
        SFD_ASSIGN_OR_RETURN(auto v, ParseExpression(true));
        e->args.push_back(std::move(v));
      }
    }
    Next();
    return e;
  }

  absl::StatusOr<ExprPtr> ParseFilterExpr(ExprPtr node) {
    while (true) {
      if (IsOp("|")) {
        Next();
        const Token at = Cur();
        SFD_ASSIGN_OR_RETURN(auto name, ExpectNameTok());
        while (SkipOp(".")) {
          SFD_ASSIGN_OR_RETURN(auto more, ExpectNameTok());
          name += "." + more;
        }
        if (IsOp("(")) {
          SFD_ASSIGN_OR_RETURN(node, ParseCall(std::move(node), ExprKind::kFilter, name));
        } else {
          auto e = NewExpr(ExprKind::kFilter, at);
          e->name = name;
          e->args.push_back(std::move(node));
          node = std::move(e);
        }
      } else if (IsName("is")) {
        const Token at = Cur();
        Next();
        bool negated = SkipName("not");
        SFD_ASSIGN_OR_RETURN(auto name, ExpectNameTok());
        ExprPtr e;
        if (IsOp("(")) {
          SFD_ASSIGN_OR_RETURN(e, ParseCall(std::move(node), ExprKind::kTest, name));
        } else {
          e = NewExpr(ExprKind::kTest, at);
          e->name = name;
          e->args.push_back(std::move(node));
          const Token& c = Cur();
          bool arg_follows =
              (c.kind == TokKind::kName || c.kind == TokKind::kString || c.kind == TokKind::kInt ||
               c.kind == TokKind::kFloat || IsOp("(") || IsOp("[") || IsOp("{")) &&
              !(IsName("else") || IsName("or") || IsName("and"));
          if (arg_follows) {
            SFD_ASSIGN_OR_RETURN(auto arg, ParsePrimary());
            SFD_ASSIGN_OR_RETURN(arg, ParsePostfix(std::move(arg)));
            e->args.push_back(std::move(arg));
          }
        }
        e->negated = negated;
        node = std::move(e);
      } else if (IsOp("(")) {
        SFD_ASSIGN_OR_RETURN(node, ParseCall(std::move(node), ExprKind::kCall, ""));
      } else {
        return node;
      }
    }
  }

  const std::vector<Token>& t_;
  size_t p_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Program>> Parse(const std::vector<Token>& tokens) {
  return Parser(tokens).Run();
}

}  // namespace sfd::jinja
