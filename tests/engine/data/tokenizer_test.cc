// Unit tests of the tokenizer.json machinery on small hand-written tokenizers: merge formats,
// ignore_merges, tie-breaking, byte fallback / unk, added tokens, Split behaviors (the examples
// of HF's documentation), Metaspace, ByteLevel, post-processors, decoders, UTF-8 handling and
// error reporting. Real tokenizers are checked against transformers.js in
// tokenizer_oracle_test.cc.
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/common/remove_tree.h"
#include "engine/data/pretokenizer.h"
#include "engine/data/tokenizer.h"
#include "engine/data/tokenizer_utf8.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace sfd {
namespace {

using json = nlohmann::json;
using Ids = std::vector<int32_t>;

// A character-level BPE tokenizer.json: vocab = given tokens (ids in order), merges as given.
json TinyBpe(const std::vector<std::string>& vocab, const json& merges) {
  json v = json::object();
  for (size_t i = 0; i < vocab.size(); ++i) v[vocab[i]] = i;
  return json{{"version", "1.0"},
              {"added_tokens", json::array()},
              {"normalizer", nullptr},
              {"pre_tokenizer", nullptr},
              {"post_processor", nullptr},
              {"decoder", nullptr},
              {"model", {{"type", "BPE"}, {"vocab", v}, {"merges", merges}}}};
}

std::unique_ptr<Tokenizer> Make(const json& j) {
  auto t = Tokenizer::FromTokenizerJsonString(j.dump(), "test.json");
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

Ids Enc(const Tokenizer& t, const std::string& s, bool special = false) {
  auto r = t.Encode(s, special);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : Ids{};
}

TEST(TokenizerTest, MergesAsStringsOrPairsAgree) {
  const std::vector<std::string> vocab = {"a", "b", "c", "ab", "abc", "bc"};
  auto s = Make(TinyBpe(vocab, json{"a b", "ab c"}));
  auto p = Make(TinyBpe(vocab, json::array({json::array({"a", "b"}), json::array({"ab", "c"})})));
  ASSERT_TRUE(s && p);
  EXPECT_EQ(Enc(*s, "abc"), (Ids{4}));
  EXPECT_EQ(Enc(*p, "abc"), (Ids{4}));
  EXPECT_EQ(Enc(*s, "cab"), (Ids{2, 3}));
  EXPECT_EQ(Enc(*p, "bca"), (Ids{1, 2, 0}));  // "b c" is not a merge
}

TEST(TokenizerTest, MergeRankOrderAndLeftmostTieBreak) {
  // "b c" outranks "a b": "abc" -> a + bc.
  auto t = Make(TinyBpe({"a", "b", "c", "ab", "bc"}, json{"b c", "a b"}));
  ASSERT_TRUE(t);
  EXPECT_EQ(Enc(*t, "abc"), (Ids{0, 4}));
  // Equal ranks: the leftmost pair merges first: "aaa" -> aa + a.
  auto u = Make(TinyBpe({"a", "aa"}, json{"a a"}));
  ASSERT_TRUE(u);
  EXPECT_EQ(Enc(*u, "aaa"), (Ids{1, 0}));
  EXPECT_EQ(Enc(*u, "aaaaa"), (Ids{1, 1, 0}));
}

TEST(TokenizerTest, IgnoreMergesTakesWholeWordFromVocab) {
  json j = TinyBpe({"a", "b", "c", "bc", "abc"}, json{"b c"});
  auto plain = Make(j);
  j["model"]["ignore_merges"] = true;
  auto ignore = Make(j);
  ASSERT_TRUE(plain && ignore);
  EXPECT_EQ(Enc(*plain, "abc"), (Ids{0, 3}));
  EXPECT_EQ(Enc(*ignore, "abc"), (Ids{4}));
  EXPECT_EQ(Enc(*ignore, "abcc"), (Ids{0, 3, 2}));
}

TEST(TokenizerTest, ByteFallbackAndUnk) {
  std::vector<std::string> vocab = {"<unk>", "a"};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    vocab.push_back(buf);
  }
  json j = TinyBpe(vocab, json::array());
  j["model"]["byte_fallback"] = true;
  j["model"]["unk_token"] = "<unk>";
  auto bf = Make(j);
  ASSERT_TRUE(bf);
  // "é" = C3 A9 -> <0xC3> <0xA9>; ids are 2 + byte.
  EXPECT_EQ(Enc(*bf, "a\xC3\xA9"), (Ids{1, 2 + 0xC3, 2 + 0xA9}));
  EXPECT_EQ(*bf->Decode({1, 2 + 0xC3, 2 + 0xA9}, false), "a <0xC3> <0xA9>");  // no decoder
  json k = TinyBpe({"<unk>", "a"}, json::array());
  k["model"]["unk_token"] = "<unk>";
  k["model"]["fuse_unk"] = true;
  auto unk = Make(k);
  ASSERT_TRUE(unk);
  EXPECT_EQ(Enc(*unk, "xya"), (Ids{0, 1}));
  json n = TinyBpe({"a"}, json::array());
  auto none = Make(n);
  ASSERT_TRUE(none);
  auto r = none->Encode("ab", false);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("U+0062"), std::string::npos) << r.status();
}

TEST(TokenizerTest, AddedTokensLeftmostLongestStripAndSpecial) {
  json j = TinyBpe({"a", "b", " "}, json::array());
  j["added_tokens"] = json::array({
      {{"id", 10}, {"content", "<x>"}, {"special", true}},
      {{"id", 11}, {"content", "<x>y"}, {"special", false}},
      {{"id", 12}, {"content", "<l>"}, {"special", true}, {"lstrip", true}},
      {{"id", 13}, {"content", "<r>"}, {"special", true}, {"rstrip", true}},
  });
  auto t = Make(j);
  ASSERT_TRUE(t);
  EXPECT_EQ(Enc(*t, "a<x>b"), (Ids{0, 10, 1}));
  EXPECT_EQ(Enc(*t, "a<x>yb"), (Ids{0, 11, 1}));  // longest match wins
  EXPECT_EQ(Enc(*t, "a  <l>b"), (Ids{0, 12, 1}));  // lstrip eats the spaces before
  EXPECT_EQ(Enc(*t, "a<r>  b"), (Ids{0, 13, 1}));  // rstrip eats the spaces after
  EXPECT_EQ(Enc(*t, "a <r>"), (Ids{0, 2, 13}));
  EXPECT_EQ(t->vocab_size(), 14);
  EXPECT_TRUE(t->IsSpecial(10));
  EXPECT_FALSE(t->IsSpecial(11));
  EXPECT_FALSE(t->IsSpecial(0));
  EXPECT_EQ(t->TokenToId("<x>y"), 11);
  EXPECT_EQ(t->TokenToId("b"), 1);
  EXPECT_EQ(t->TokenToId("zz"), std::nullopt);
  EXPECT_EQ(t->IdToToken(13), "<r>");
  EXPECT_EQ(t->IdToToken(5), std::nullopt);
  EXPECT_EQ(*t->Decode({0, 10, 11, 1}, /*skip_special_tokens=*/false), "a <x> <x>y b");
  EXPECT_EQ(*t->Decode({0, 10, 11, 1}, /*skip_special_tokens=*/true), "a <x>y b");
  EXPECT_EQ(t->Decode({0, 99}, false).status().code(), absl::StatusCode::kInvalidArgument);
}

std::vector<std::string> PreTok(const json& j, const std::string& text, bool first = true) {
  auto p = PreTokenizer::FromJson(j, "test");
  EXPECT_TRUE(p.ok()) << p.status();
  std::vector<std::string> words = {text};
  if (p.ok()) (*p)->PreTokenize(&words, first);
  return words;
}

TEST(PreTokenizerTest, SplitBehaviorsMatchHfDocumentation) {
  // Examples of tokenizers' SplitDelimiterBehavior documentation, delimiter "-".
  auto split = [](const char* behavior) {
    return json{{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior},
                {"invert", false}};
  };
  using V = std::vector<std::string>;
  const std::string s = "the-final--countdown";
  EXPECT_EQ(PreTok(split("Removed"), s), (V{"the", "final", "countdown"}));
  EXPECT_EQ(PreTok(split("Isolated"), s), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(PreTok(split("MergedWithPrevious"), s), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(PreTok(split("MergedWithNext"), s), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(PreTok(split("Contiguous"), s), (V{"the", "-", "final", "--", "countdown"}));
  json inv = {{"type", "Split"}, {"pattern", {{"Regex", "\\p{L}+"}}}, {"behavior", "Removed"},
              {"invert", true}};
  EXPECT_EQ(PreTok(inv, "ab, cd!"), (V{"ab", "cd"}));
}

TEST(PreTokenizerTest, ByteLevelMetaspaceDigitsSequence) {
  using V = std::vector<std::string>;
  json bl = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  EXPECT_EQ(PreTok(bl, "Hello world"), (V{"\xC4\xA0Hello", "\xC4\xA0world"}));  // ĠHello Ġworld
  json bl2 = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
  EXPECT_EQ(PreTok(bl2, "a\n\xC3\xA9"), (V{"a\xC4\x8A\xC3\x83\xC2\xA9"}));  // aĊÃ©
  json ms = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "first"},
             {"split", true}};
  EXPECT_EQ(PreTok(ms, "Hey friend"), (V{"\xE2\x96\x81Hey", "\xE2\x96\x81" "friend"}));
  EXPECT_EQ(PreTok(ms, "Hey friend", /*first=*/false), (V{"Hey", "\xE2\x96\x81" "friend"}));
  json dg = {{"type", "Digits"}, {"individual_digits", true}};
  EXPECT_EQ(PreTok(dg, "a123b"), (V{"a", "1", "2", "3", "b"}));
  json seq = {{"type", "Sequence"},
              {"pretokenizers", json::array({json{{"type", "Digits"}}, bl2})}};
  EXPECT_EQ(PreTok(seq, "x12 y"), (V{"x", "12", "\xC4\xA0y"}));
}

TEST(TokenizerTest, ByteLevelPipelineWithTemplateAndDecoder) {
  // Byte-level vocab: all 256 byte characters, a merge "Ġ a" -> "Ġa".
  std::vector<std::string> vocab(ByteLevelUtf8().begin(), ByteLevelUtf8().end());
  vocab.push_back("\xC4\xA0" "a");  // id 256
  json j = TinyBpe(vocab, json{"\xC4\xA0 a"});
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  j["decoder"] = {{"type", "ByteLevel"}};
  j["added_tokens"] = json::array({{{"id", 300}, {"content", "<bos>"}, {"special", true}}});
  j["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       json::array({json{{"type", "ByteLevel"}},
                    json{{"type", "TemplateProcessing"},
                         {"single", json::array({json{{"SpecialToken", {{"id", "<bos>"}}}},
                                                 json{{"Sequence", {{"id", "A"}}}}})},
                         {"special_tokens", {{"<bos>", {{"id", "<bos>"}, {"ids", {300}}}}}}}})}};
  auto t = Make(j);
  ASSERT_TRUE(t);
  // Byte-level characters are the vocab's first 256 ids in byte order.
  EXPECT_EQ(Enc(*t, "b a"), (Ids{'b', 256}));
  EXPECT_EQ(Enc(*t, "b a", /*special=*/true), (Ids{300, 'b', 256}));
  EXPECT_EQ(Enc(*t, "\xC3\xA9"), (Ids{0xC3, 0xA9}));
  EXPECT_EQ(*t->Decode({300, 'b', 256, 0xC3, 0xA9}, false), "<bos>b a\xC3\xA9");
  EXPECT_EQ(*t->Decode({300, 'b', 256, 0xC3, 0xA9}, true), "b a\xC3\xA9");
  // A cut multi-byte character decodes to U+FFFD.
  EXPECT_EQ(*t->Decode({'x', 0xE2, 0x82}, true), "x\xEF\xBF\xBD");
}

TEST(TokenizerTest, ConcurrentEncodeIsConsistent) {
  auto t = Make(TinyBpe({"a", "b", "ab", "abab"}, json{"a b", "ab ab"}));
  ASSERT_TRUE(t);
  const Ids want = Enc(*t, "abababa");
  ASSERT_EQ(want, (Ids{3, 2, 0}));
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int i = 0; i < 2000; ++i) bad[k] += *t->Encode("abababa", false) != want;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, std::vector<int>(4, 0));
}

TEST(TokenizerTest, FuzzSeedsLoadAndRoundTrip) {
  // The fuzzer's seeds (tests/fixtures/tokenizers/fuzz_seeds) are valid tokenizers.
  const std::string dir = std::string(SFD_FIXTURES_DIR) + "/tokenizers/fuzz_seeds";
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto t = Tokenizer::FromTokenizerJsonString(data.substr(0, data.find('\0')), e.path());
    ASSERT_TRUE(t.ok()) << t.status();
    ++n;
  }
  EXPECT_EQ(n, 3);
  std::ifstream in(dir + "/byte_level.json");
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto t = Make(json::parse(data));
  ASSERT_TRUE(t);
  // NFC + Llama-3 split + byte-level: "the" merges to "Ġthe" (258) after a space; BOS 300.
  EXPECT_EQ(Enc(*t, "<|begin_of_text|> the", true), (Ids{300, 300, 258}));
  const std::string text = "Caf\x65\xCC\x81 12345 the\r\n\xF0\x9F\x98\x80";
  const Ids ids = Enc(*t, text);
  EXPECT_EQ(*t->Decode(ids, false), "Caf\xC3\xA9 12345 the\r\n\xF0\x9F\x98\x80");  // NFC
}

TEST(Utf8Test, ValidationAndLossyDecoding) {
  EXPECT_TRUE(ValidateUtf8("h\xC3\xA9llo \xF0\x9F\x98\x80", "x").ok());
  EXPECT_FALSE(ValidateUtf8("\xC0\xAF", "x").ok());          // overlong
  EXPECT_FALSE(ValidateUtf8("\xED\xA0\x80", "x").ok());      // surrogate
  EXPECT_FALSE(ValidateUtf8("\xF4\x90\x80\x80", "x").ok());  // > U+10FFFF
  EXPECT_FALSE(ValidateUtf8("ab\xE2\x82", "input").ok());
  EXPECT_NE(ValidateUtf8("ab\xE2\x82", "input").message().find("offset 2"), std::string::npos);
  // One U+FFFD per maximal invalid subpart (WHATWG / Rust from_utf8_lossy).
  EXPECT_EQ(Utf8Lossy("a\xE2\x82" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(Utf8Lossy("\xFF\xFE"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(Utf8Lossy("\xF0\x9F\x98"), "\xEF\xBF\xBD");
}

TEST(TokenizerTest, ErrorsNameTheProblem) {
  auto bad_json = Tokenizer::FromTokenizerJsonString("{not json", "x/tokenizer.json");
  EXPECT_EQ(bad_json.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_json.status().message().find("x/tokenizer.json"), std::string::npos);

  EXPECT_FALSE(Tokenizer::FromTokenizerJsonString("{}", "t.json").ok());
  json j = TinyBpe({"a"}, json::array());
  j["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  EXPECT_EQ(Tokenizer::FromTokenizerJsonString(j.dump(), "t.json").status().code(),
            absl::StatusCode::kUnimplemented);
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}},
                        {"behavior", "Isolated"}};
  auto bad_regex = Tokenizer::FromTokenizerJsonString(j.dump(), "t.json");
  EXPECT_EQ(bad_regex.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_regex.status().message().find("pre_tokenizer"), std::string::npos);
  auto bad_merge = Tokenizer::FromTokenizerJsonString(TinyBpe({"a"}, json{"a z"}).dump(), "t.json");
  EXPECT_NE(bad_merge.status().message().find("merges[0]"), std::string::npos) << bad_merge.status();
  json k = TinyBpe({"a"}, json::array());
  k["model"]["vocab"]["b"] = "one";
  EXPECT_FALSE(Tokenizer::FromTokenizerJsonString(k.dump(), "t.json").ok());

  auto t = Make(TinyBpe({"a"}, json::array()));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->Encode("a\xFF", false).status().code(), absl::StatusCode::kInvalidArgument);

  const auto dir = std::filesystem::temp_directory_path() / "sfd_tokenizer_test_empty";
  std::filesystem::create_directories(dir);
  EXPECT_EQ(Tokenizer::FromModelDir(dir.string()).status().code(), absl::StatusCode::kNotFound);
  {
    std::ofstream(dir / "tokenizer.model") << "not a sentencepiece model";
  }
  auto sp = Tokenizer::FromModelDir(dir.string());
  EXPECT_FALSE(sp.ok());
  EXPECT_NE(sp.status().message().find("tokenizer.model"), std::string::npos) << sp.status();
  (void)::sfd::RemoveTree(dir);
  EXPECT_EQ(Tokenizer::FromTokenizerJson("/nonexistent/tokenizer.json").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace sfd
