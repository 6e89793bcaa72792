#include "engine/data/jinja_lexer.h"

#include <cctype>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace sfd::jinja {
namespace {

bool IsWs(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Python str.rstrip() for the ASCII whitespace a template can contain around tags.
std::string RStripWs(const std::string& s) {
  size_t e = s.size();
  while (e > 0 && IsWs(s[e - 1])) --e;
  return s.substr(0, e);
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xE0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Lexer {
 public:
  Lexer(std::string src, const LexOptions& o) : src_(std::move(src)), opt_(o) {}

  absl::StatusOr<std::vector<Token>> Run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      size_t tag = FindTagStart(pos_);
      if (tag == std::string::npos) {
        Emit(TokKind::kText, src_.substr(pos_), pos_);
        pos_ = src_.size();
        break;
      }
      char kind = src_[tag + 1];  // '{', '%' or '#'
      char sign = tag + 2 < src_.size() ? src_[tag + 2] : 0;
      std::string text = src_.substr(pos_, tag - pos_);
      if (sign == '-') {
        text = RStripWs(text);
      } else if (sign != '+' && opt_.lstrip_blocks && kind != '{') {
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if (l_pos > 0 || line_starting) {
          bool all_ws = l_pos < text.size();
          for (size_t i = l_pos; i < text.size() && all_ws; ++i) all_ws = IsWs(text[i]);
          if (all_ws) text.resize(l_pos);
        }
      }
      if (!text.empty()) Emit(TokKind::kText, text, pos_);
      size_t body = tag + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      if (kind == '#') {
        size_t end = src_.find("#}", body);
        if (end == std::string::npos) return Err(tag, "missing end of comment tag");
        // Lazy match: "-#}" / "+#}" end the comment at the sign.
        char esign = end > body ? src_[end - 1] : 0;
        pos_ = end + 2;
        if (esign == '-') {
          while (pos_ < src_.size() && IsWs(src_[pos_])) ++pos_;
        } else if (esign != '+' && opt_.trim_blocks && pos_ < src_.size() && src_[pos_] == '\n') {
          ++pos_;
        }
        line_starting = src_[pos_ - 1] == '\n';
        continue;
      }
      bool is_block = kind == '%';
      Emit(is_block ? TokKind::kBlockBegin : TokKind::kVarBegin, "", tag);
      pos_ = body;
      auto st = LexTagBody(is_block);
      if (!st.ok()) return st;
      line_starting = src_[pos_ - 1] == '\n';
    }
    Emit(TokKind::kEnd, "", src_.size());
    return std::move(tokens_);
  }

 private:
  size_t FindTagStart(size_t from) const {
    size_t p = from;
    while (true) {
      p = src_.find('{', p);
      if (p == std::string::npos || p + 1 >= src_.size()) return std::string::npos;
      char c = src_[p + 1];
      if (c == '{' || c == '%' || c == '#') return p;
      ++p;
    }
  }

  void LineCol(size_t off, int* line, int* col) const {
    // Incremental: offsets are requested in increasing order most of the time.
    if (off < lc_off_) {
      lc_off_ = 0;
      lc_line_ = 1;
      lc_col_ = 1;
    }
    for (; lc_off_ < off && lc_off_ < src_.size(); ++lc_off_) {
      if (src_[lc_off_] == '\n') {
        ++lc_line_;
        lc_col_ = 1;
      } else {
        ++lc_col_;
      }
    }
    *line = lc_line_;
    *col = lc_col_;
  }

  void Emit(TokKind k, std::string v, size_t off) {
    Token t{k, std::move(v)};
    LineCol(off, &t.line, &t.col);
    tokens_.push_back(std::move(t));
  }

  absl::Status Err(size_t off, const std::string& msg) const {
    int line, col;
    LineCol(off, &line, &col);
    return absl::InvalidArgumentError(absl::StrCat("template ", line, ":", col, ": ", msg));
  }

  // Lexes expression tokens until the tag's end delimiter (only when brackets are balanced).
  absl::Status LexTagBody(bool is_block) {
    const char* end_delim = is_block ? "%}" : "}}";
    std::vector<char> stack;
    while (true) {
      while (pos_ < src_.size() && IsWs(src_[pos_])) ++pos_;
      if (pos_ >= src_.size())
        return Err(pos_, is_block ? "unexpected end of template, expected '%}'"
                                  : "unexpected end of template, expected '}}'");
      if (stack.empty()) {
        bool minus = src_.compare(pos_, 3, std::string("-") + end_delim) == 0;
        bool plus = is_block && src_.compare(pos_, 3, std::string("+") + end_delim) == 0;
        if (minus || plus || src_.compare(pos_, 2, end_delim) == 0) {
          Emit(is_block ? TokKind::kBlockEnd : TokKind::kVarEnd, "", pos_);
          pos_ += (minus || plus) ? 3 : 2;
          if (minus) {
            while (pos_ < src_.size() && IsWs(src_[pos_])) ++pos_;
          } else if (!plus && is_block && opt_.trim_blocks && pos_ < src_.size() &&
                     src_[pos_] == '\n') {
            ++pos_;
          }
          return absl::OkStatus();
        }
      }
      char c = src_[pos_];
      size_t start = pos_;
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        while (pos_ < src_.size() &&
               (std::isalnum(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_'))
          ++pos_;
        Emit(TokKind::kName, src_.substr(start, pos_ - start), start);
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        auto digits = [&] {
          while (pos_ < src_.size() &&
                 (std::isdigit(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_'))
            ++pos_;
        };
        digits();
        bool is_float = false;
        if (pos_ + 1 < src_.size() && src_[pos_] == '.' &&
            std::isdigit(static_cast<unsigned char>(src_[pos_ + 1]))) {
          is_float = true;
          ++pos_;
          digits();
        }
        if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
          size_t p = pos_ + 1;
          if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
          if (p < src_.size() && std::isdigit(static_cast<unsigned char>(src_[p]))) {
            is_float = true;
            pos_ = p;
            digits();
          }
        }
        std::string v;
        for (size_t i = start; i < pos_; ++i)
          if (src_[i] != '_') v += src_[i];
        Emit(is_float ? TokKind::kFloat : TokKind::kInt, v, start);
      } else if (c == '\'' || c == '"') {
        std::string v;
        auto st = LexString(&v);
        if (!st.ok()) return st;
        Emit(TokKind::kString, std::move(v), start);
      } else {
        static const char* kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*",
                                     "/",  "%",  "~",  "<",  ">",  "=",  "(", ")", "[",
                                     "]",  "{",  "}",  ",",  ".",  ":",  "|"};
        const char* op = nullptr;
        for (const char* o : kOps) {
          if (src_.compare(pos_, std::strlen(o), o) == 0) {
            op = o;
            break;
          }
        }
        if (!op) return Err(pos_, absl::StrCat("unexpected char '", std::string(1, c), "'"));
        if (*op == '(' || *op == '[' || *op == '{') {
          stack.push_back(*op == '(' ? ')' : *op == '[' ? ']' : '}');
        } else if (*op == ')' || *op == ']' || *op == '}') {
          if (stack.empty()) return Err(pos_, absl::StrCat("unexpected '", op, "'"));
          if (stack.back() != *op)
            return Err(pos_, absl::StrCat("unexpected '", op, "', expected '",
                                          std::string(1, stack.back()), "'"));
          stack.pop_back();
        }
        pos_ += std::strlen(op);
        Emit(TokKind::kOp, op, start);
      }
    }
  }

  // Python unicode-escape semantics for the escapes chat templates use.
  absl::Status LexString(std::string* out) {
    char q = src_[pos_];
    size_t start = pos_++;
    while (pos_ < src_.size() && src_[pos_] != q) {
      char c = src_[pos_];
      if (c != '\\') {
        *out += c;
        ++pos_;
        continue;
      }
      if (pos_ + 1 >= src_.size()) break;
      char e = src_[pos_ + 1];
      pos_ += 2;
      switch (e) {
        case 'n':
          *out += '\n';
          break;
        case 't':
          *out += '\t';
          break;
        case 'r':
          *out += '\r';
          break;
        case '\\':
          *out += '\\';
          break;
        case '\'':
          *out += '\'';
          break;
        case '"':
          *out += '"';
          break;
        case 'a':
          *out += '\a';
          break;
        case 'b':
          *out += '\b';
          break;
        case 'f':
          *out += '\f';
          break;
        case 'v':
          *out += '\v';
          break;
        case '\n':
          break;  // line continuation
        case 'x':
        case 'u':
        case 'U': {
          int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (pos_ + n > src_.size()) return Err(start, "truncated escape in string literal");
          uint32_t cp = 0;
          for (int i = 0; i < n; ++i) {
            char h = src_[pos_ + i];
            if (!std::isxdigit(static_cast<unsigned char>(h)))
              return Err(start, "bad escape in string literal");
            cp = cp * 16 + (std::isdigit(static_cast<unsigned char>(h))
                                ? h - '0'
                                : (std::tolower(h) - 'a' + 10));
          }
          pos_ += n;
          if (cp > 0x10FFFF) return Err(start, "bad escape in string literal");
          AppendUtf8(cp, out);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = e - '0';
            for (int i = 0; i < 2 && pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '7';
                 ++i)
              cp = cp * 8 + (src_[pos_++] - '0');
            AppendUtf8(cp, out);
          } else {
            *out += '\\';
            *out += e;
          }
      }
    }
    if (pos_ >= src_.size()) return Err(start, "unterminated string literal");
    ++pos_;
    return absl::OkStatus();
  }

  std::string src_;
  LexOptions opt_;
  size_t pos_ = 0;
  std::vector<Token> tokens_;
  mutable size_t lc_off_ = 0;
  mutable int lc_line_ = 1, lc_col_ = 1;
};

}  // namespace

absl::StatusOr<std::vector<Token>> Lex(const std::string& source, const LexOptions& options) {
  // Newlines normalised to \n; one trailing newline dropped unless keep_trailing_newline.
  std::string src;
  src.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      src += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      src += source[i];
    }
  }
  if (!options.keep_trailing_newline && !src.empty() && src.back() == '\n') src.pop_back();
  return Lexer(std::move(src), options).Run();
}

}  // namespace sfd::jinja
