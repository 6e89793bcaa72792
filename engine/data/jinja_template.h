// jinja::Template: a parsed Jinja2 template and its evaluator — the compact Jinja2-subset
// interpreter sfd uses to render HF chat templates (there is no C++ Jinja library in Debian).
// Whitespace handling follows HF transformers' environment (trim_blocks, lstrip_blocks,
// loopcontrols). Scoping follows Jinja2: a for-loop iteration and a macro call get their own
// scope; `set` inside `if` writes the enclosing scope; namespace() objects are shared.
// Errors carry the template line:col ("template 12:7: ...").
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/data/jinja_parser.h"
#include "engine/data/jinja_value.h"

namespace sfd::jinja {

class Template {
 public:
  static absl::StatusOr<std::unique_ptr<Template>> Parse(const std::string& source);

  // Renders with `context` (a dict: template variables) over the built-in globals.
  absl::StatusOr<std::string> Render(const Value& context) const;

 private:
  std::unique_ptr<Program> program_;
};

}  // namespace sfd::jinja
