// In a binary that links libtorch (this one, like sfd-worker), a SentencePiece tokenizer.model
// loads through the isolated libsfd_spm module and encodes exactly like the same vocabulary's
// tokenizer.json (the oracle-checked path). Before the module existed this crashed or threw.
#include <string>

#include "engine/data/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/engine/data/data_test_util.h"

namespace sfd {
namespace {

TEST(SentencePieceInTorchProcess, EncodesLikeTokenizerJson) {
  ASSERT_FALSE(testing_util::TokenizerModelDir("llama2").empty()) << "tokenizer fetch failed";
  const std::string models = std::string(SFD_BINARY_DIR) + "/tokenizer_models/llama2";
  auto sp = Tokenizer::FromModelDir(models + "/sp");  // tokenizer.model only
  ASSERT_TRUE(sp.ok()) << sp.status();
  auto json = Tokenizer::FromModelDir(testing_util::TokenizerModelDir("llama2"));
  ASSERT_TRUE(json.ok()) << json.status();
  for (const char* text : {"Hello world", "Fine-tune 8B models on one GPU: ünïcödé, 12345!",
                           "  leading spaces\tand tabs\nnew line"}) {
    auto a = (*sp)->Encode(text, /*add_special_tokens=*/true);
    auto b = (*json)->Encode(text, /*add_special_tokens=*/true);
    ASSERT_TRUE(a.ok() && b.ok()) << text;
    EXPECT_EQ(*a, *b) << text;
    EXPECT_GE(a->size(), 3u);  // BOS + at least two pieces
  }
}

}  // namespace
}  // namespace sfd
