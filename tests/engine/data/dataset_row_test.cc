// Dataset rows: format detection by keys, ambiguity and partial-format errors, validation
// messages, per-message weights.
#include "engine/data/dataset_row.h"

#include <gtest/gtest.h>

#include <string>

namespace sfd {
namespace {

std::string Err(const std::string& line, DatasetFormat f = DatasetFormat::kAuto) {
  auto r = ParseRow(line, f);
  EXPECT_FALSE(r.ok()) << line;
  return r.ok() ? "" : std::string(r.status().message());
}

TEST(DatasetRowTest, DetectsEachFormatByKeys) {
  auto t = ParseRow(R"({"text": "hello", "id": 7})", DatasetFormat::kAuto);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->format, DatasetFormat::kText);
  EXPECT_EQ(t->text, "hello");

  auto c = ParseRow(R"({"prompt": "2+2=", "completion": " 4", "meta": {"src": "x"}})",
                    DatasetFormat::kAuto);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->format, DatasetFormat::kCompletion);
  EXPECT_EQ(c->prompt, "2+2=");
  EXPECT_EQ(c->completion, " 4");

  auto a = ParseRow(R"({"instruction": "Add.", "input": "2 and 2", "output": "4"})",
                    DatasetFormat::kAuto);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->format, DatasetFormat::kAlpaca);
  EXPECT_EQ(a->input, "2 and 2");
  auto a2 = ParseRow(R"({"instruction": "Say hi.", "output": "hi", "input": null})",
                     DatasetFormat::kAuto);
  ASSERT_TRUE(a2.ok()) << a2.status();
  EXPECT_EQ(a2->input, "");

  auto m = ParseRow(R"({"messages": [{"role": "user", "content": "hi"},
                                     {"role": "assistant", "content": "yo", "weight": 0},
                                     {"role": "user", "content": "again"},
                                     {"role": "assistant", "content": "yo!", "weight": 1}]})",
                    DatasetFormat::kAuto);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->format, DatasetFormat::kMessages);
  EXPECT_EQ(m->message_weights, (std::vector<bool>{true, false, true, true}));
  EXPECT_FALSE(m->messages[1].contains("weight"));  // the template never sees it
  EXPECT_EQ(m->messages[3]["content"], "yo!");
}

TEST(DatasetRowTest, AmbiguousAndPartialFormatsAreErrors) {
  EXPECT_NE(Err(R"({"text": "a", "messages": []})").find("ambiguous"), std::string::npos);
  EXPECT_NE(Err(R"({"text": "a", "prompt": "p", "completion": "c"})").find("ambiguous"),
            std::string::npos);
  EXPECT_NE(Err(R"({"prompt": "p"})").find("no \"completion\""), std::string::npos);
  EXPECT_NE(Err(R"({"output": "o"})").find("no \"instruction\""), std::string::npos);
  EXPECT_NE(Err(R"({"question": "q", "answer": "a"})").find("no known format"), std::string::npos);
}

TEST(DatasetRowTest, ValidationMessages) {
  EXPECT_NE(Err("{\"text\": \"a\"").find("invalid JSON"), std::string::npos);
  EXPECT_NE(Err("not json at all").find("invalid JSON"), std::string::npos);
  EXPECT_NE(Err("[1, 2]").find("must be a JSON object"), std::string::npos);
  EXPECT_NE(Err(R"({"text": 5})").find("\"text\" must be a string, got number"), std::string::npos);
  EXPECT_NE(Err(R"({"prompt": "p", "completion": null})").find("missing \"completion\""),
            std::string::npos);
  EXPECT_NE(Err(R"({"messages": {}})").find("must be a list"), std::string::npos);
  EXPECT_NE(Err(R"({"messages": []})").find("empty"), std::string::npos);
  EXPECT_NE(Err(R"({"messages": ["hi"]})").find("messages[0] must be an object"),
            std::string::npos);
  EXPECT_NE(Err(R"({"messages": [{"content": "hi"}]})")
                .find("messages[0] needs a non-empty string \"role\""),
            std::string::npos);
  EXPECT_NE(Err(R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant"}]})")
                .find("messages[1] has no \"content\""),
            std::string::npos);
  EXPECT_NE(Err(R"({"messages": [{"role": "user", "content": [1]}]})")
                .find("messages[0].content must be a string"),
            std::string::npos);
  EXPECT_NE(Err(R"({"messages": [{"role": "assistant", "content": "a", "weight": 2}]})")
                .find("weight must be 0 or 1"),
            std::string::npos);
  EXPECT_NE(Err(R"({"messages": [{"role": "assistant", "content": "a", "weight": "1"}]})")
                .find("weight must be 0 or 1"),
            std::string::npos);
  EXPECT_NE(Err(R"({"messages": [{"role": "user", "content": "a", "weight": 0}]})")
                .find("only allowed on assistant"),
            std::string::npos);
  std::string deep =
      "{\"text\": \"a\", \"x\": " + std::string(100, '[') + std::string(100, ']') + "}";
  EXPECT_NE(Err(deep).find("nested deeper"), std::string::npos);
  // Invalid UTF-8 inside a string is a JSON error, never reaches the tokenizer.
  EXPECT_NE(Err("{\"text\": \"a\xff\"}").find("invalid JSON"), std::string::npos);
}

TEST(DatasetRowTest, ExpectedFormatMustMatch) {
  auto ok = ParseRow(R"({"text": "a"})", DatasetFormat::kText);
  EXPECT_TRUE(ok.ok());
  EXPECT_NE(Err(R"({"prompt": "p", "completion": "c"})", DatasetFormat::kText)
                .find("prompt/completion format"),
            std::string::npos);
  EXPECT_NE(Err(R"({"foo": 1})", DatasetFormat::kText).find("missing \"text\""), std::string::npos);
  // Assistant tool calls without content are accepted.
  EXPECT_TRUE(ParseRow(R"({"messages": [{"role": "user", "content": "x"},
      {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}]})",
                       DatasetFormat::kMessages)
                  .ok());
}

}  // namespace
}  // namespace sfd
