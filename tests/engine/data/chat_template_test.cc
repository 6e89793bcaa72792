// Chat templates rendered by sfd's Jinja interpreter vs the oracle (transformers.js's
// apply_chat_template semantics, tests/oracle/chat_render.mjs): byte-identical text for every
// conversation of every template fixture, the same raised errors, and — with the real
// tokenizer — the same token ids.
#include "engine/common/remove_tree.h"
#include "engine/data/chat_template.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/data/chat_template_builtin.h"
#include "engine/data/tokenizer.h"
#include "tests/engine/data/data_test_util.h"

namespace sfd {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

std::string Fixtures() { return std::string(SFD_FIXTURES_DIR) + "/chat_templates"; }

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class ChatTemplateOracleTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ChatTemplateOracleTest, MatchesOracle) {
  const std::string dir = Fixtures() + "/" + GetParam();
  const std::string source = ReadAll(dir + "/template.jinja");
  json context = json::parse(ReadAll(dir + "/context.json"));
  json tokens = json::object();
  for (auto it = context.begin(); it != context.end(); ++it)
    if (it.key().size() > 6 && it.key().substr(it.key().size() - 6) == "_token")
      tokens[it.key()] = it.value();
  ChatTemplateOptions opts;
  std::string date = context["date"].get<std::string>();
  opts.year = std::stoi(date.substr(0, 4));
  opts.month = std::stoi(date.substr(5, 2));
  opts.day = std::stoi(date.substr(8, 2));
  auto tmpl = ChatTemplate::FromSource(source, GetParam(), tokens, opts);
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();

  // The real tokenizer: rendered text must tokenize to the oracle's ids.
  const std::string model_dir =
      testing_util::TokenizerModelDir(context["tokenizer"].get<std::string>());
  ASSERT_FALSE(model_dir.empty()) << "cannot fetch tokenizer " << context["tokenizer"];
  auto tok_or = Tokenizer::FromModelDir(model_dir);
  ASSERT_TRUE(tok_or.ok()) << tok_or.status();
  std::unique_ptr<Tokenizer> tokenizer = std::move(*tok_or);

  std::ifstream cases(dir + "/cases.jsonl");
  std::string line;
  int n = 0, rendered = 0, ids_checked = 0;
  while (std::getline(cases, line)) {
    ++n;
    json c = json::parse(line);
    json extra = c.contains("kwargs") ? c["kwargs"] : json(nullptr);
    auto out = (*tmpl)->Render(c["messages"], c["add_generation_prompt"].get<bool>(), extra);
    if (c.contains("error")) {
      EXPECT_FALSE(out.ok()) << "case " << n << " should raise: " << c["error"];
      if (!out.ok()) {
        EXPECT_NE(out.status().message().find(c["error"].get<std::string>()), std::string::npos)
            << "case " << n << ": " << out.status();
      }
      continue;
    }
    ASSERT_TRUE(out.ok()) << "case " << n << ": " << out.status();
    EXPECT_EQ(*out, c["text"].get<std::string>()) << "case " << n << ": " << line;
    ++rendered;
    if (c.contains("ids")) {
      auto ids = tokenizer->Encode(*out, /*add_special_tokens=*/false);
      ASSERT_TRUE(ids.ok()) << ids.status();
      EXPECT_EQ(*ids, c["ids"].get<std::vector<int32_t>>()) << "case " << n;
      ++ids_checked;
    }
  }
  EXPECT_GE(n, 50);
  EXPECT_GE(rendered, 50);
  EXPECT_GE(ids_checked, rendered - 1);  // cases where the JS and Python oracles differ have no ids
}

INSTANTIATE_TEST_SUITE_P(Templates, ChatTemplateOracleTest,
                         ::testing::Values("llama3", "llama3.2", "qwen2.5", "qwen3", "mistral",
                                           "mistral-nemo"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& ch : n)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

TEST(ChatTemplateBuiltinTest, BuiltinsAreTheFixtureTemplates) {
  ASSERT_EQ(BuiltinChatTemplates().size(), 6u);
  for (const auto& t : BuiltinChatTemplates()) {
    EXPECT_EQ(std::string(t.source), ReadAll(Fixtures() + "/" + t.name + "/template.jinja"))
        << t.name;
  }
  EXPECT_EQ(ChatTemplate::Builtin("llama3.1"), ChatTemplate::Builtin("llama3.2"));
  EXPECT_EQ(ChatTemplate::Builtin("qwen"), ChatTemplate::Builtin("qwen2.5"));
  EXPECT_FALSE(ChatTemplate::Builtin("no-such-template").has_value());
}

TEST(ChatTemplateTest, ResolutionOrder) {
  const fs::path dir = fs::path(::testing::TempDir()) / "sfd_chat_template_model";
  (void)::sfd::RemoveTree(dir);
  fs::create_directories(dir);
  // No template anywhere: a clear error suggesting a known name.
  auto none = ChatTemplate::ForModel(dir.string(), "");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("data.chat_template"), std::string::npos) << none.status();
  EXPECT_NE(none.status().message().find("llama3"), std::string::npos);

  // tokenizer_config.json: list form, "default" entry; AddedToken-style bos.
  std::ofstream(dir / "tokenizer_config.json")
      << R"({"bos_token": {"content": "<B>", "lstrip": false}, "eos_token": "<E>",
             "chat_template": [{"name": "tool_use", "template": "T"},
                               {"name": "default", "template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}"}]})";
  json msgs = json::parse(R"([{"role": "user", "content": "hi"}])");
  auto from_config = ChatTemplate::ForModel(dir.string(), "");
  ASSERT_TRUE(from_config.ok()) << from_config.status();
  EXPECT_EQ(*(*from_config)->Render(msgs, false), "<B>hi<E>");

  // chat_template.jinja beats tokenizer_config.json.
  std::ofstream(dir / "chat_template.jinja") << "J:{{ messages[0].content }}\n";
  auto from_file = ChatTemplate::ForModel(dir.string(), "");
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  EXPECT_EQ(*(*from_file)->Render(msgs, false), "J:hi");

  // The job's choice beats both: built-in name, then a path.
  auto builtin = ChatTemplate::ForModel(dir.string(), "qwen2.5");
  ASSERT_TRUE(builtin.ok()) << builtin.status();
  EXPECT_EQ(*(*builtin)->Render(msgs, true),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
            "assistant.<|im_end|>\n"
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  std::ofstream(dir / "mine.jinja") << "M:{{ messages|length }}";
  auto path = ChatTemplate::ForModel(dir.string(), (dir / "mine.jinja").string());
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*(*path)->Render(msgs, false), "M:1");
  auto bad = ChatTemplate::ForModel(dir.string(), "llama9");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("llama9"), std::string::npos);
}

TEST(ChatTemplateTest, UnrenderableTemplateIsAClearError) {
  auto t = ChatTemplate::FromSource("{% for m in messages %}{{ m.content }", "model.jinja",
                                    json::object());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("model.jinja"), std::string::npos) << t.status();
  EXPECT_NE(t.status().message().find("1:"), std::string::npos) << t.status();
  EXPECT_NE(t.status().message().find("data.chat_template"), std::string::npos) << t.status();

  auto u = ChatTemplate::FromSource("{% include 'x.jinja' %}", "inc.jinja", json::object());
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.status().message().find("include"), std::string::npos) << u.status();

  // Fails at render time (unknown filter): names origin and position.
  auto r = ChatTemplate::FromSource("a\n{{ messages | frobnicate }}", "f.jinja", json::object());
  ASSERT_TRUE(r.ok()) << r.status();
  auto out = (*r)->Render(json::array(), false);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("f.jinja"), std::string::npos) << out.status();
  EXPECT_NE(out.status().message().find("2:"), std::string::npos) << out.status();
  EXPECT_NE(out.status().message().find("frobnicate"), std::string::npos) << out.status();
}

TEST(ChatTemplateTest, StrftimeNowUsesTheFixedDate) {
  auto t =
      ChatTemplate::FromSource("{{ strftime_now('%d %b %Y') }}", "d", json::object(), {2025, 1, 5});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*(*t)->Render(json::array(), false), "05 Jan 2025");
}

}  // namespace
}  // namespace sfd
