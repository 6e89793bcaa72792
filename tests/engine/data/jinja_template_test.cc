// sfd's Jinja interpreter feature by feature against Python jinja2 set up like HF transformers
// (tests/oracle/chat_jinja_cases.mjs -> tests/fixtures/chat_templates/jinja_cases.jsonl):
// whitespace control, loops, scoping, expressions, slices, filters, tests, methods, errors.
#include "engine/data/jinja_template.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

namespace sfd::jinja {
namespace {

TEST(JinjaTemplateTest, MatchesPythonJinja2) {
  std::ifstream in(std::string(SFD_FIXTURES_DIR) + "/chat_templates/jinja_cases.jsonl");
  ASSERT_TRUE(in.good());
  std::string line;
  int n = 0, errors = 0;
  while (std::getline(in, line)) {
    ++n;
    auto c = nlohmann::ordered_json::parse(line);
    const std::string src = c["template"].get<std::string>();
    auto t = Template::Parse(src);
    absl::StatusOr<std::string> out =
        t.ok() ? (*t)->Render(Value::FromJson(c["context"])) : t.status();
    if (c.contains("error")) {
      ++errors;
      EXPECT_FALSE(out.ok()) << "case " << n << " should fail: " << src << " -> " << *out;
      if (!out.ok()) {
        EXPECT_NE(out.status().message().find("template "), std::string::npos) << out.status();
      }
      continue;
    }
    ASSERT_TRUE(out.ok()) << "case " << n << ": " << src << ": " << out.status();
    EXPECT_EQ(*out, c["text"].get<std::string>()) << "case " << n << ": " << src;
  }
  EXPECT_GE(n, 45);
  EXPECT_GE(errors, 5);
}

TEST(JinjaTemplateTest, ErrorsCarryLineAndColumn) {
  auto t = Template::Parse("line one\n{{ 1 + }}");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("template 2:"), std::string::npos) << t.status();
  auto r = Template::Parse("a\nb\n   {{ x | nosuchfilter }}");
  ASSERT_TRUE(r.ok());
  auto out = (*r)->Render(Value::EmptyDict());
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("template 3:"), std::string::npos) << out.status();
  auto raised = Template::Parse("{{ raise_exception('bad roles') }}");
  ASSERT_TRUE(raised.ok());
  auto ro = (*raised)->Render(Value::EmptyDict());
  ASSERT_FALSE(ro.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(ro.status()));
  EXPECT_NE(ro.status().message().find("bad roles"), std::string::npos);
}

TEST(JinjaTemplateTest, RunawayTemplatesAreBounded) {
  auto big = Template::Parse(
      "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxx{% endfor %}{% endfor %}");
  ASSERT_TRUE(big.ok());
  auto out = (*big)->Render(Value::EmptyDict());
  ASSERT_FALSE(out.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(out.status())) << out.status();
  auto rec = Template::Parse("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}");
  ASSERT_TRUE(rec.ok());
  EXPECT_FALSE((*rec)->Render(Value::EmptyDict()).ok());
}

}  // namespace
}  // namespace sfd::jinja
