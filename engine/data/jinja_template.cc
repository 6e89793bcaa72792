#include "engine/data/jinja_template.h"

#include <cmath>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "engine/common/status.h"
#include "engine/data/jinja_builtins.h"
#include "engine/data/jinja_lexer.h"

namespace sfd::jinja {
namespace {

constexpr size_t kMaxOutput = size_t{256} << 20;  // a runaway template is an error, not OOM
constexpr int kMaxDepth = 64;                     // macro recursion

enum class Flow { kNormal, kBreak, kContinue };

class Evaluator {
 public:
  Evaluator(const Value& context, std::string* out) : out_(out) {
    auto globals = std::make_shared<ValueDict>();
    AddGlobals(globals.get());
    scopes_.emplace_back();
    for (const auto& kv : globals->items) scopes_.back()[kv.first] = kv.second;
    if (context.is_dict())
      for (const auto& kv : context.as_dict().items) scopes_.back()[kv.first] = kv.second;
    scopes_.emplace_back();  // template-level sets
  }

  absl::StatusOr<Flow> Exec(const Body& body) {
    for (const auto& s : body) {
      SFD_ASSIGN_OR_RETURN(Flow f, ExecStmt(*s));
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

 private:
  absl::Status ErrAt(int line, int col, const absl::Status& s) const {
    std::string msg(s.message());
    if (msg.rfind("template ", 0) == 0) return s;  // already positioned
    return absl::Status(s.code(), absl::StrCat("template ", line, ":", col, ": ", msg));
  }
  absl::Status Err(const Expr& e, const std::string& msg) const {
    return ErrAt(e.line, e.col, absl::InvalidArgumentError(msg));
  }

  Value Lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    return Value();
  }
  void Assign(const std::string& name, Value v) { scopes_.back()[name] = std::move(v); }

  absl::Status Emit(const std::string& s) {
    out_->append(s);
    if (out_->size() > kMaxOutput)
      return absl::ResourceExhaustedError("template output exceeds 256 MiB");
    return absl::OkStatus();
  }

  absl::Status AssignTargets(const Stmt& s, const std::vector<std::string>& targets,
                             const Value& v) {
    if (targets.size() == 1) {
      Assign(targets[0], v);
      return absl::OkStatus();
    }
    auto items = Iterate(v);
    if (!items.ok()) return ErrAt(s.line, s.col, items.status());
    if (items->size() != targets.size())
      return ErrAt(
          s.line, s.col,
          absl::InvalidArgumentError(absl::StrCat("cannot unpack ", items->size(), " values into ",
                                                  targets.size(), " names")));
    for (size_t i = 0; i < targets.size(); ++i) Assign(targets[i], (*items)[i]);
    return absl::OkStatus();
  }

  absl::StatusOr<Flow> ExecStmt(const Stmt& s) {
    switch (s.kind) {
      case StmtKind::kText:
        SFD_RETURN_IF_ERROR(Emit(s.text));
        return Flow::kNormal;
      case StmtKind::kOutput: {
        SFD_ASSIGN_OR_RETURN(Value v, Eval(*s.expr));
        SFD_RETURN_IF_ERROR(Emit(v.Str()));
        return Flow::kNormal;
      }
      case StmtKind::kIf:
        for (size_t i = 0; i < s.conds.size(); ++i) {
          SFD_ASSIGN_OR_RETURN(Value c, Eval(*s.conds[i]));
          if (c.Truthy()) return Exec(s.bodies[i]);
        }
        return Exec(s.else_body);
      case StmtKind::kFor:
        return ExecFor(s);
      case StmtKind::kSet: {
        SFD_ASSIGN_OR_RETURN(Value v, Eval(*s.expr));
        if (!s.attr.empty()) {
          Value ns = Lookup(s.targets[0]);
          if (!ns.is_dict() || !ns.as_dict().is_namespace)
            return ErrAt(
                s.line, s.col,
                absl::InvalidArgumentError(absl::StrCat(
                    "cannot assign attribute on non-namespace object '", s.targets[0], "'")));
          ns.mutable_dict().Set(s.attr, std::move(v));
          return Flow::kNormal;
        }
        SFD_RETURN_IF_ERROR(AssignTargets(s, s.targets, v));
        return Flow::kNormal;
      }
      case StmtKind::kSetBlock: {
        std::string captured;
        std::string* saved = out_;
        out_ = &captured;
        auto f = Exec(s.bodies[0]);
        out_ = saved;
        if (!f.ok()) return f.status();
        Assign(s.name, Value::String(captured));
        return Flow::kNormal;
      }
      case StmtKind::kMacro: {
        const Stmt* macro = &s;
        Assign(s.name, Value::Func([this, macro](const ValueList& a, const KwArgs& kw) {
                 return CallMacro(*macro, a, kw);
               }));
        return Flow::kNormal;
      }
      case StmtKind::kBreak:
        return Flow::kBreak;
      case StmtKind::kContinue:
        return Flow::kContinue;
      case StmtKind::kBlock:
        return Exec(s.bodies[0]);
    }
    return Flow::kNormal;
  }

  absl::StatusOr<Value> CallMacro(const Stmt& m, const ValueList& a, const KwArgs& kw) {
    if (++depth_ > kMaxDepth) {
      --depth_;
      return absl::InvalidArgumentError("macro recursion too deep");
    }
    if (a.size() > m.params.size())
      return absl::InvalidArgumentError(
          absl::StrCat("macro '", m.name, "' takes ", m.params.size(), " arguments"));
    scopes_.emplace_back();
    absl::Status st;
    for (size_t i = 0; i < m.params.size() && st.ok(); ++i) {
      const auto& p = m.params[i];
      Value v;
      bool found = false;
      if (i < a.size()) {
        v = a[i];
        found = true;
      }
      for (const auto& k : kw)
        if (k.first == p.first) {
          v = k.second;
          found = true;
        }
      if (!found && p.second) {
        auto d = Eval(*p.second);
        if (!d.ok())
          st = d.status();
        else
          v = *d;
      }
      Assign(p.first, v);
    }
    std::string captured;
    std::string* saved = out_;
    out_ = &captured;
    if (st.ok()) {
      auto f = Exec(m.bodies[0]);
      if (!f.ok()) st = f.status();
    }
    out_ = saved;
    scopes_.pop_back();
    --depth_;
    if (!st.ok()) return st;
    return Value::String(captured);
  }

  absl::StatusOr<Flow> ExecFor(const Stmt& s) {
    SFD_ASSIGN_OR_RETURN(Value seq, Eval(*s.expr));
    auto items_or = Iterate(seq);
    if (!items_or.ok()) return ErrAt(s.line, s.col, items_or.status());
    ValueList items = std::move(*items_or);
    if (s.filter) {
      ValueList kept;
      for (const auto& x : items) {
        scopes_.emplace_back();
        absl::Status st = AssignTargets(s, s.targets, x);
        absl::StatusOr<Value> c = st.ok() ? Eval(*s.filter) : absl::StatusOr<Value>(st);
        scopes_.pop_back();
        if (!c.ok()) return c.status();
        if (c->Truthy()) kept.push_back(x);
      }
      items = std::move(kept);
    }
    if (items.empty()) return Exec(s.else_body);
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      auto loop = std::make_shared<ValueDict>();
      loop->Set("index", Value::Int(i + 1));
      loop->Set("index0", Value::Int(i));
      loop->Set("revindex", Value::Int(n - i));
      loop->Set("revindex0", Value::Int(n - i - 1));
      loop->Set("first", Value::Bool(i == 0));
      loop->Set("last", Value::Bool(i == n - 1));
      loop->Set("length", Value::Int(n));
      loop->Set("previtem", i > 0 ? items[i - 1] : Value());
      loop->Set("nextitem", i + 1 < n ? items[i + 1] : Value());
      loop->Set("cycle",
                Value::Func([i](const ValueList& a, const KwArgs&) -> absl::StatusOr<Value> {
                  if (a.empty()) return absl::InvalidArgumentError("loop.cycle() needs arguments");
                  return a[static_cast<size_t>(i) % a.size()];
                }));
      scopes_.emplace_back();
      Assign("loop", Value::Dict(loop));
      absl::Status st = AssignTargets(s, s.targets, items[i]);
      absl::StatusOr<Flow> f = st.ok() ? Exec(s.bodies[0]) : absl::StatusOr<Flow>(st);
      scopes_.pop_back();
      if (!f.ok()) return f.status();
      if (*f == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  absl::StatusOr<Value> EvalArgs(const Expr& e, size_t first, ValueList* args, KwArgs* kwargs) {
    for (size_t i = first; i < e.args.size(); ++i) {
      SFD_ASSIGN_OR_RETURN(Value v, Eval(*e.args[i]));
      args->push_back(std::move(v));
    }
    for (const auto& kv : e.kwargs) {
      SFD_ASSIGN_OR_RETURN(Value v, Eval(*kv.second));
      kwargs->emplace_back(kv.first, std::move(v));
    }
    return Value();
  }

  absl::StatusOr<Value> Arith(const Expr& e, const std::string& op, const Value& a,
                              const Value& b) {
    if (op == "~") return Value::String(a.Str() + b.Str());
    if (a.is_undefined() || b.is_undefined())
      return Err(e, absl::StrCat("unsupported operand '", op, "' on an undefined value"));
    if (op == "+") {
      if (a.is_string() && b.is_string()) return Value::String(a.as_string() + b.as_string());
      if (a.is_list() && b.is_list()) {
        ValueList l = a.as_list();
        l.insert(l.end(), b.as_list().begin(), b.as_list().end());
        return Value::List(std::move(l));
      }
    }
    if (op == "*" && (a.is_string() || a.is_list()) && b.is_int()) {
      if (b.as_int() > 100000) return Err(e, "repetition count too large");
      if (a.is_string()) {
        std::string s;
        for (int64_t i = 0; i < b.as_int(); ++i) s += a.as_string();
        return Value::String(s);
      }
      ValueList l;
      for (int64_t i = 0; i < b.as_int(); ++i)
        l.insert(l.end(), a.as_list().begin(), a.as_list().end());
      return Value::List(std::move(l));
    }
    bool na = a.is_number() || a.is_bool(), nb = b.is_number() || b.is_bool();
    if (!na || !nb)
      return Err(e, absl::StrCat("unsupported operand type(s) for ", op, ": '", a.TypeName(),
                                 "' and '", b.TypeName(), "'"));
    bool ints = !a.is_float() && !b.is_float();
    int64_t x = a.is_bool() ? a.as_bool() : a.is_int() ? a.as_int() : 0;
    int64_t y = b.is_bool() ? b.as_bool() : b.is_int() ? b.as_int() : 0;
    double dx = a.is_bool() ? a.as_bool() : a.as_double(),
           dy = b.is_bool() ? b.as_bool() : b.as_double();
    if (op == "+") return ints ? Value::Int(x + y) : Value::Float(dx + dy);
    if (op == "-") return ints ? Value::Int(x - y) : Value::Float(dx - dy);
    if (op == "*") return ints ? Value::Int(x * y) : Value::Float(dx * dy);
    if (op == "/") {
      if (dy == 0) return Err(e, "division by zero");
      return Value::Float(dx / dy);
    }
    if (op == "//" || op == "%") {
      if (dy == 0) return Err(e, "integer division or modulo by zero");
      if (ints) {
        int64_t q = x / y, r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) {
          --q;
          r += y;
        }
        return Value::Int(op == "//" ? q : r);
      }
      double q = std::floor(dx / dy);
      return Value::Float(op == "//" ? q : dx - q * dy);
    }
    if (op == "**") {
      if (ints && y >= 0) {
        int64_t r = 1;
        for (int64_t i = 0; i < y && i < 64; ++i) r *= x;
        return Value::Int(r);
      }
      return Value::Float(std::pow(dx, dy));
    }
    return Err(e, absl::StrCat("unknown operator ", op));
  }

  absl::StatusOr<Value> Eval(const Expr& e) {
    switch (e.kind) {
      case ExprKind::kLiteral:
        return e.literal;
      case ExprKind::kName:
        return Lookup(e.name);
      case ExprKind::kGetAttr: {
        SFD_ASSIGN_OR_RETURN(Value o, Eval(*e.args[0]));
        auto r = GetAttr(o, e.name);
        if (!r.ok()) return ErrAt(e.line, e.col, r.status());
        return r;
      }
      case ExprKind::kGetItem: {
        SFD_ASSIGN_OR_RETURN(Value o, Eval(*e.args[0]));
        SFD_ASSIGN_OR_RETURN(Value k, Eval(*e.args[1]));
        auto r = GetItem(o, k);
        if (!r.ok()) return ErrAt(e.line, e.col, r.status());
        return r;
      }
      case ExprKind::kSlice: {
        SFD_ASSIGN_OR_RETURN(Value o, Eval(*e.args[0]));
        Value parts[3];
        for (int i = 0; i < 3; ++i) {
          if (e.args[i + 1]) {
            SFD_ASSIGN_OR_RETURN(parts[i], Eval(*e.args[i + 1]));
          }
        }
        auto r = GetSlice(o, parts[0], parts[1], parts[2]);
        if (!r.ok()) return ErrAt(e.line, e.col, r.status());
        return r;
      }
      case ExprKind::kCall: {
        SFD_ASSIGN_OR_RETURN(Value f, Eval(*e.args[0]));
        if (!f.is_function()) {
          std::string what = e.args[0]->kind == ExprKind::kName      ? e.args[0]->name
                             : e.args[0]->kind == ExprKind::kGetAttr ? e.args[0]->name
                                                                     : "value";
          return Err(e, absl::StrCat("'", what, "' is not callable (", f.TypeName(), ")"));
        }
        ValueList args;
        KwArgs kwargs;
        SFD_RETURN_IF_ERROR(EvalArgs(e, 1, &args, &kwargs).status());
        auto r = f.as_function()(args, kwargs);
        if (!r.ok()) return ErrAt(e.line, e.col, r.status());
        return r;
      }
      case ExprKind::kFilter: {
        SFD_ASSIGN_OR_RETURN(Value v, Eval(*e.args[0]));
        ValueList args;
        KwArgs kwargs;
        SFD_RETURN_IF_ERROR(EvalArgs(e, 1, &args, &kwargs).status());
        auto r = ApplyFilter(e.name, v, args, kwargs);
        if (!r.ok()) return ErrAt(e.line, e.col, r.status());
        return r;
      }
      case ExprKind::kTest: {
        SFD_ASSIGN_OR_RETURN(Value v, Eval(*e.args[0]));
        ValueList args;
        KwArgs kwargs;
        SFD_RETURN_IF_ERROR(EvalArgs(e, 1, &args, &kwargs).status());
        auto r = ApplyTest(e.name, v, args);
        if (!r.ok()) return ErrAt(e.line, e.col, r.status());
        return Value::Bool(*r != e.negated);
      }
      case ExprKind::kUnary: {
        SFD_ASSIGN_OR_RETURN(Value v, Eval(*e.args[0]));
        if (e.name == "not") return Value::Bool(!v.Truthy());
        if (v.is_int()) return Value::Int(e.name == "-" ? -v.as_int() : v.as_int());
        if (v.is_float()) return Value::Float(e.name == "-" ? -v.as_double() : v.as_double());
        if (v.is_bool()) return Value::Int(e.name == "-" ? -int64_t{v.as_bool()} : v.as_bool());
        return Err(e,
                   absl::StrCat("bad operand type for unary ", e.name, ": '", v.TypeName(), "'"));
      }
      case ExprKind::kBinary: {
        SFD_ASSIGN_OR_RETURN(Value a, Eval(*e.args[0]));
        if (e.name == "and") return a.Truthy() ? Eval(*e.args[1]) : a;
        if (e.name == "or") return a.Truthy() ? a : Eval(*e.args[1]);
        SFD_ASSIGN_OR_RETURN(Value b, Eval(*e.args[1]));
        return Arith(e, e.name, a, b);
      }
      case ExprKind::kCompare: {
        SFD_ASSIGN_OR_RETURN(Value left, Eval(*e.args[0]));
        for (size_t i = 0; i < e.ops.size(); ++i) {
          SFD_ASSIGN_OR_RETURN(Value right, Eval(*e.args[i + 1]));
          const std::string& op = e.ops[i];
          absl::StatusOr<bool> r;
          if (op == "==")
            r = left.Equals(right);
          else if (op == "!=")
            r = !left.Equals(right);
          else if (op == "<")
            r = LessThan(left, right);
          else if (op == ">")
            r = LessThan(right, left);
          else if (op == "<=") {
            auto g = LessThan(right, left);
            r = g.ok() ? absl::StatusOr<bool>(!*g) : g;
          } else if (op == ">=") {
            auto l = LessThan(left, right);
            r = l.ok() ? absl::StatusOr<bool>(!*l) : l;
          } else if (op == "in")
            r = Contains(right, left);
          else {
            auto c = Contains(right, left);
            r = c.ok() ? absl::StatusOr<bool>(!*c) : c;
          }
          if (!r.ok()) return ErrAt(e.line, e.col, r.status());
          if (!*r) return Value::Bool(false);
          left = std::move(right);
        }
        return Value::Bool(true);
      }
      case ExprKind::kCond: {
        SFD_ASSIGN_OR_RETURN(Value c, Eval(*e.args[0]));
        if (c.Truthy()) return Eval(*e.args[1]);
        if (e.args[2]) return Eval(*e.args[2]);
        return Value();
      }
      case ExprKind::kList:
      case ExprKind::kTuple: {
        ValueList items;
        for (const auto& a : e.args) {
          SFD_ASSIGN_OR_RETURN(Value v, Eval(*a));
          items.push_back(std::move(v));
        }
        return e.kind == ExprKind::kTuple ? Value::Tuple(std::move(items))
                                          : Value::List(std::move(items));
      }
      case ExprKind::kDict: {
        auto d = std::make_shared<ValueDict>();
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          SFD_ASSIGN_OR_RETURN(Value k, Eval(*e.args[i]));
          SFD_ASSIGN_OR_RETURN(Value v, Eval(*e.args[i + 1]));
          d->Set(k.Str(), std::move(v));
        }
        return Value::Dict(d);
      }
    }
    return Err(e, "unknown expression");
  }

  std::string* out_;
  std::vector<std::unordered_map<std::string, Value>> scopes_;
  int depth_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Template>> Template::Parse(const std::string& source) {
  SFD_ASSIGN_OR_RETURN(auto tokens, Lex(source));
  SFD_ASSIGN_OR_RETURN(auto program, jinja::Parse(tokens));
  auto t = std::unique_ptr<Template>(new Template());
  t->program_ = std::move(program);
  return t;
}

absl::StatusOr<std::string> Template::Render(const Value& context) const {
  std::string out;
  Evaluator ev(context, &out);
  SFD_ASSIGN_OR_RETURN(Flow f, ev.Exec(program_->body));
  (void)f;
  return out;
}

}  // namespace sfd::jinja
