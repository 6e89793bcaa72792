// Loss masks with the real tokenizers: which tokens of text / prompt-completion / alpaca /
// messages samples carry loss, checked against the oracle conversations of every chat
// template fixture (ids identical to the oracle's tokenization, each assistant turn trained
// exactly: its content plus the end-of-turn token, nothing else), weights, train_on=all,
// truncation and span-to-token mapping at straddling boundaries.
#include "engine/data/dataset_encoder.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "engine/data/chat_template_spans.h"
#include "tests/engine/data/data_test_util.h"

namespace sfd {
namespace {

using json = nlohmann::ordered_json;

struct Loaded {
  std::unique_ptr<Tokenizer> tok;
  TokenizerConfig config;
};

Loaded Load(const std::string& name) {
  Loaded l;
  const std::string dir = testing_util::TokenizerModelDir(name);
  EXPECT_FALSE(dir.empty()) << "cannot fetch tokenizer " << name;
  if (dir.empty()) return l;
  auto t = Tokenizer::FromModelDir(dir);
  EXPECT_TRUE(t.ok()) << t.status();
  if (t.ok()) l.tok = std::move(*t);
  auto c = TokenizerConfig::FromFile(dir + "/tokenizer_config.json");
  EXPECT_TRUE(c.ok()) << c.status();
  if (c.ok()) l.config = *c;
  return l;
}

// Maximal runs of trained tokens, decoded.
std::vector<std::string> TrainedRuns(const Tokenizer& tok, const Document& d) {
  std::vector<std::string> runs;
  std::vector<int32_t> cur;
  for (size_t t = 0; t <= d.ids.size(); ++t) {
    if (t < d.ids.size() && d.trained[t]) {
      cur.push_back(d.ids[t]);
    } else if (!cur.empty()) {
      runs.push_back(*tok.Decode(cur, /*skip_special_tokens=*/false));
      cur.clear();
    }
  }
  return runs;
}

std::string Strip(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\n\r"), e = s.find_last_not_of(" \t\n\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

Sample Parse(const std::string& line) {
  auto s = ParseRow(line, DatasetFormat::kAuto);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : Sample();
}

TEST(DatasetEncoderTest, TextTrainsEverythingAndAppendsEos) {
  Loaded l = Load("llama3_1");
  ASSERT_TRUE(l.tok);
  DatasetEncoder enc(l.tok.get(), nullptr, l.config, TrainOn::kCompletions, 2048);
  auto d = enc.Encode(Parse(R"({"text": "The quick brown fox."})"));
  ASSERT_TRUE(d.ok()) << d.status();
  auto plain = *l.tok->Encode("The quick brown fox.", /*add_special_tokens=*/true);
  ASSERT_EQ(d->ids.size(), plain.size() + 1);
  EXPECT_TRUE(std::equal(plain.begin(), plain.end(), d->ids.begin()));
  EXPECT_EQ(d->ids.front(), *l.tok->TokenToId("<|begin_of_text|>"));
  EXPECT_EQ(d->ids.back(), *l.tok->TokenToId(*l.config.eos_token()));
  for (uint8_t t : d->trained) EXPECT_EQ(t, 1);
  EXPECT_FALSE(d->truncated);
}

TEST(DatasetEncoderTest, CompletionAndAlpacaTrainOnlyTheAnswerAndEos) {
  Loaded l = Load("qwen3");
  ASSERT_TRUE(l.tok);
  DatasetEncoder enc(l.tok.get(), nullptr, l.config, TrainOn::kCompletions, 2048);
  auto d = enc.Encode(Parse(R"({"prompt": "Capital of France?", "completion": " Paris."})"));
  ASSERT_TRUE(d.ok()) << d.status();
  auto runs = TrainedRuns(*l.tok, *d);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0], " Paris.<|im_end|>");
  auto prompt = *l.tok->Encode("Capital of France?", true);
  for (size_t t = 0; t < prompt.size(); ++t) EXPECT_EQ(d->trained[t], 0);

  auto a =
      enc.Encode(Parse(R"({"instruction": "Add the numbers.", "input": "2, 2", "output": "4"})"));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(TrainedRuns(*l.tok, *a), std::vector<std::string>{"4<|im_end|>"});
  std::vector<int32_t> prompt_ids(a->ids.begin(), a->ids.end() - 2);
  EXPECT_EQ(*l.tok->Decode(prompt_ids, false),
            "Below is an instruction that describes a task, paired with an input that provides "
            "further context. "
            "Write a response that appropriately completes the request.\n\n### Instruction:\nAdd "
            "the numbers.\n\n"
            "### Input:\n2, 2\n\n### Response:\n");
  EXPECT_EQ(AlpacaPrompt("Say hi.", ""),
            "Below is an instruction that describes a task. Write a response that appropriately "
            "completes the "
            "request.\n\n### Instruction:\nSay hi.\n\n### Response:\n");

  DatasetEncoder all(l.tok.get(), nullptr, l.config, TrainOn::kAll, 2048);
  auto d_all = all.Encode(Parse(R"({"prompt": "Capital of France?", "completion": " Paris."})"));
  ASSERT_TRUE(d_all.ok());
  EXPECT_EQ(d_all->ids, d->ids);
  for (uint8_t t : d_all->trained) EXPECT_EQ(t, 1);
}

TEST(DatasetEncoderTest, TruncationAndNoTarget) {
  Loaded l = Load("qwen3");
  ASSERT_TRUE(l.tok);
  DatasetEncoder enc(l.tok.get(), nullptr, l.config, TrainOn::kCompletions, 6);
  auto d = enc.Encode(
      Parse(R"({"prompt": "one two three four five six seven eight", "completion": "nine"})"));
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->truncated);
  EXPECT_EQ(d->ids.size(), 6u);
  EXPECT_FALSE(d->HasTarget());  // the completion was cut off
  auto empty = DatasetEncoder(l.tok.get(), nullptr, l.config, TrainOn::kCompletions, 64)
                   .Encode(Parse(R"({"text": ""})"));
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->HasTarget());  // only EOS: nothing predicts it
}

TEST(DatasetEncoderTest, StraddlingTokensBelongToTheSpan) {
  Loaded l = Load("llama3_1");
  ASSERT_TRUE(l.tok);
  DatasetEncoder enc(l.tok.get(), nullptr, l.config, TrainOn::kCompletions, 2048);
  auto whole = *l.tok->Encode("hello", false);
  ASSERT_EQ(whole.size(), 1u);
  auto inner = enc.EncodeWithSpans("hello", {{2, 5}});
  ASSERT_TRUE(inner.ok());
  EXPECT_EQ(inner->ids, whole);
  EXPECT_EQ(inner->trained, std::vector<uint8_t>{1});
  auto head = enc.EncodeWithSpans("hello world", {{0, 2}});
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->trained[0], 1);
  for (size_t t = 1; t < head->trained.size(); ++t) EXPECT_EQ(head->trained[t], 0);
  // Clean boundaries: exact.
  auto clean = enc.EncodeWithSpans("hello world", {{5, 11}});
  ASSERT_TRUE(clean.ok());
  EXPECT_EQ(clean->trained, (std::vector<uint8_t>{0, 1}));
}

// Per template: every oracle conversation that ends with the assistant (no generation
// prompt) — ids equal the oracle's, and the trained tokens are exactly the assistant turns.
struct TemplateCase {
  const char* name;
  const char* tokenizer;
};

class MessagesMaskTest : public ::testing::TestWithParam<TemplateCase> {};

std::string ExpectedTurn(const std::string& tmpl, const std::string& content) {
  const std::string n(tmpl);
  if (n == "llama3" || n == "llama3.2") return Strip(content) + "<|eot_id|>";
  if (n == "qwen2.5") return content + "<|im_end|>";
  return content + "</s>";  // mistral, mistral-nemo
}

TEST_P(MessagesMaskTest, AssistantTurnsExactly) {
  const TemplateCase tc = GetParam();
  Loaded l = Load(tc.tokenizer);
  ASSERT_TRUE(l.tok);
  const std::string dir = std::string(SFD_FIXTURES_DIR) + "/chat_templates/" + tc.name;
  std::stringstream src;
  src << std::ifstream(dir + "/template.jinja").rdbuf();
  json context = json::parse(std::ifstream(dir + "/context.json"));
  json tokens = json::object();
  for (auto it = context.begin(); it != context.end(); ++it)
    if (it.key().find("_token") != std::string::npos) tokens[it.key()] = it.value();
  ChatTemplateOptions opts;
  opts.year = 2025, opts.month = 3, opts.day = 14;
  ASSERT_EQ(context["date"], "2025-03-14");
  auto tmpl = ChatTemplate::FromSource(src.str(), tc.name, tokens, opts);
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  DatasetEncoder enc(l.tok.get(), tmpl->get(), l.config, TrainOn::kCompletions, 1 << 20);

  std::ifstream cases(dir + "/cases.jsonl");
  std::string line;
  int checked = 0, n = 0;
  while (std::getline(cases, line)) {
    ++n;
    json c = json::parse(line);
    if (c.contains("error") || c["add_generation_prompt"].get<bool>() || c.contains("kwargs") ||
        !c.contains("ids"))
      continue;
    const json& msgs = c["messages"];
    if (msgs.back()["role"] != "assistant") continue;
    json row = {{"messages", msgs}};
    auto sample = ParseRow(row.dump(), DatasetFormat::kAuto);
    ASSERT_TRUE(sample.ok()) << sample.status();
    auto d = enc.Encode(*sample);
    ASSERT_TRUE(d.ok()) << "case " << n << ": " << d.status();
    ASSERT_EQ(d->ids, c["ids"].get<std::vector<int32_t>>()) << "case " << n;
    std::vector<std::string> contents;
    for (const auto& m : msgs)
      if (m["role"] == "assistant") contents.push_back(m["content"].get<std::string>());
    auto runs = TrainedRuns(*l.tok, *d);
    ASSERT_EQ(runs.size(), contents.size()) << "case " << n << ": " << line;
    for (size_t i = 0; i < runs.size(); ++i) {
      if (std::string(tc.name) == "qwen3") {
        // Turns after the last user query keep their (possibly empty) <think> block.
        const std::string& c_i = contents[i];
        size_t think_end = c_i.rfind("</think>");
        std::string answer = think_end == std::string::npos ? c_i : c_i.substr(think_end + 8);
        answer.erase(0, answer.find_first_not_of('\n') == std::string::npos
                            ? answer.size()
                            : answer.find_first_not_of('\n'));
        const std::string suffix = answer + "<|im_end|>";
        ASSERT_GE(runs[i].size(), suffix.size()) << "case " << n;
        EXPECT_EQ(runs[i].substr(runs[i].size() - suffix.size()), suffix)
            << "case " << n << " turn " << i;
        if (i + 1 == runs.size())
          EXPECT_EQ(runs[i].rfind("<think>\n", 0), 0u) << "case " << n << ": " << runs[i];
      } else if (std::string(tc.tokenizer) == "llama2") {
        // SentencePiece decode drops the leading space of a run's first piece, and a piece that
        // straddles "[/INST]" and the content (e.g. "]<") belongs to the turn.
        const std::string got = Strip(runs[i]), want = Strip(ExpectedTurn(tc.name, contents[i]));
        ASSERT_GE(got.size(), want.size()) << "case " << n << " turn " << i << ": " << got;
        EXPECT_EQ(got.substr(got.size() - want.size()), want) << "case " << n << " turn " << i;
        EXPECT_LE(got.size() - want.size(), 2u) << "case " << n << " turn " << i << ": " << got;
      } else {
        EXPECT_EQ(runs[i], ExpectedTurn(tc.name, contents[i])) << "case " << n << " turn " << i;
      }
    }
    ++checked;
  }
  EXPECT_GE(checked, 8) << tc.name;
}

INSTANTIATE_TEST_SUITE_P(
    Templates, MessagesMaskTest,
    ::testing::Values(TemplateCase{"llama3", "llama3_1"}, TemplateCase{"llama3.2", "llama3_1"},
                      TemplateCase{"qwen2.5", "qwen3"}, TemplateCase{"qwen3", "qwen3"},
                      TemplateCase{"mistral", "llama2"}, TemplateCase{"mistral-nemo", "llama2"}),
    [](const auto& info) {
      std::string n = info.param.name;
      for (auto& ch : n)
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return n;
    });

TEST(MessagesMaskTest, WeightZeroAndTrainOnAll) {
  Loaded l = Load("qwen3");
  ASSERT_TRUE(l.tok);
  auto tmpl = ChatTemplate::FromSource(*ChatTemplate::Builtin("qwen2.5"), "qwen2.5",
                                       l.config.ContextTokens());
  ASSERT_TRUE(tmpl.ok());
  const std::string row = R"({"messages": [{"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Bad answer.", "weight": 0},
      {"role": "user", "content": "Try again"}, {"role": "assistant", "content": "Good answer."}]})";
  DatasetEncoder enc(l.tok.get(), tmpl->get(), l.config, TrainOn::kCompletions, 4096);
  auto d = enc.Encode(Parse(row));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(TrainedRuns(*l.tok, *d), std::vector<std::string>{"Good answer.<|im_end|>"});

  DatasetEncoder all(l.tok.get(), tmpl->get(), l.config, TrainOn::kAll, 4096);
  auto a = all.Encode(Parse(row));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->ids, d->ids);
  for (uint8_t t : a->trained) EXPECT_EQ(t, 1);

  // No assistant turn: nothing to train.
  auto u = enc.Encode(Parse(R"({"messages": [{"role": "user", "content": "Hi"}]})"));
  ASSERT_TRUE(u.ok());
  EXPECT_FALSE(u->HasTarget());
}

TEST(MessagesMaskTest, TemplateErrorsAreReported) {
  Loaded l = Load("llama2");
  ASSERT_TRUE(l.tok);
  auto tmpl = ChatTemplate::FromSource(*ChatTemplate::Builtin("mistral"), "mistral",
                                       l.config.ContextTokens());
  ASSERT_TRUE(tmpl.ok());
  DatasetEncoder enc(l.tok.get(), tmpl->get(), l.config, TrainOn::kCompletions, 4096);
  auto d = enc.Encode(
      Parse(R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
                                             {"role": "assistant", "content": "A"}]})"));
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("alternate"), std::string::npos) << d.status();
}

}  // namespace
}  // namespace sfd
