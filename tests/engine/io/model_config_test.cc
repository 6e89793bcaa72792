// Tests of engine/io/model_config.{h,cc}: real config.json files of the four supported
// architectures (tests/fixtures/io/configs) checked against their published parameter counts,
// transformers 4.x and 5.x spellings, and clear errors for what sfd cannot train.
#include "engine/io/model_config.h"

#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/io/io_test_util.h"

namespace sfd {
namespace {

using ::sfd::testing_io::FixturePath;
using ::sfd::testing_io::ReadAll;
using ::testing::HasSubstr;

ModelConfig MustParse(const std::string& rel) {
  const std::string path = FixturePath(rel);
  absl::StatusOr<ModelConfig> c = ParseModelConfig(ReadAll(path), path);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : ModelConfig{};
}

std::map<std::string, std::vector<int64_t>> ExpectedMap(const ModelConfig& c) {
  std::map<std::string, std::vector<int64_t>> m;
  for (const auto& [name, shape] : ExpectedTensors(c)) {
    EXPECT_TRUE(m.emplace(name, shape).second) << "duplicate " << name;
  }
  return m;
}

std::string ParseError(const std::string& json, const std::string& source = "cfg/config.json") {
  absl::StatusOr<ModelConfig> c = ParseModelConfig(json, source);
  if (c.ok()) return "";
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  std::string msg(c.status().message());
  EXPECT_THAT(msg, HasSubstr(source));
  return msg;
}

TEST(ModelConfigTest, Llama31With8BParamsAndLlama3Rope) {
  ModelConfig c = MustParse("configs/llama-3.1-8b.json");
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.num_layers, 32);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_EQ(c.rope_scaling->rope_type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling->factor, 8.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling->low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling->high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling->original_max_position_embeddings, 8192);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias || c.o_proj_bias || c.mlp_bias || c.qk_norm);
  EXPECT_FALSE(c.sliding_window.has_value());
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_FALSE(c.pad_token_id.has_value());
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_EQ(c.raw["transformers_version"], "4.43.0.dev0");
  EXPECT_EQ(c.NumParams(), 8030261248);
  auto m = ExpectedMap(c);
  EXPECT_EQ(m.at("lm_head.weight"), (std::vector<int64_t>{128256, 4096}));
  EXPECT_EQ(m.at("model.layers.31.self_attn.k_proj.weight"), (std::vector<int64_t>{1024, 4096}));
  EXPECT_EQ(m.at("model.layers.0.mlp.down_proj.weight"), (std::vector<int64_t>{4096, 14336}));
  EXPECT_EQ(m.count("model.layers.0.self_attn.q_proj.bias"), 0u);
  EXPECT_EQ(m.count("model.layers.32.input_layernorm.weight"), 0u);
  EXPECT_EQ(m.size(), 1 + 32 * 9 + 2u);
}

TEST(ModelConfigTest, Qwen25HasQkvBiasesAndTiedEmbeddings) {
  ModelConfig c = MustParse("configs/qwen2.5-0.5b-instruct.json");
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_FALSE(c.sliding_window.has_value()) << "use_sliding_window is false";
  EXPECT_FALSE(c.rope_scaling.has_value());
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{151645}));
  EXPECT_EQ(c.NumParams(), 494032768);
  auto m = ExpectedMap(c);
  EXPECT_EQ(m.at("model.layers.3.self_attn.q_proj.bias"), (std::vector<int64_t>{896}));
  EXPECT_EQ(m.at("model.layers.3.self_attn.k_proj.bias"), (std::vector<int64_t>{128}));
  EXPECT_EQ(m.count("model.layers.3.self_attn.o_proj.bias"), 0u);
  EXPECT_EQ(m.count("lm_head.weight"), 0u);
}

TEST(ModelConfigTest, Qwen3ExplicitHeadDimAndQkNorm) {
  ModelConfig c = MustParse("configs/qwen3-0.6b.json");
  EXPECT_EQ(c.model_type, "qwen3");
  EXPECT_EQ(c.head_dim, 128);  // != hidden_size / num_heads = 64
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);  // an integer in the JSON
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.NumParams(), 596049920);
  auto m = ExpectedMap(c);
  EXPECT_EQ(m.at("model.layers.0.self_attn.q_proj.weight"), (std::vector<int64_t>{2048, 1024}));
  EXPECT_EQ(m.at("model.layers.0.self_attn.o_proj.weight"), (std::vector<int64_t>{1024, 2048}));
  EXPECT_EQ(m.at("model.layers.27.self_attn.q_norm.weight"), (std::vector<int64_t>{128}));
  EXPECT_EQ(m.at("model.layers.27.self_attn.k_norm.weight"), (std::vector<int64_t>{128}));
}

TEST(ModelConfigTest, MistralSlidingWindow) {
  ModelConfig c = MustParse("configs/mistral-7b-v0.1.json");
  EXPECT_EQ(c.architecture, "MistralForCausalLM");
  ASSERT_TRUE(c.sliding_window.has_value());
  EXPECT_EQ(*c.sliding_window, 4096);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias || c.qk_norm);
  EXPECT_EQ(c.NumParams(), 7241732096);
}

TEST(ModelConfigTest, Transformers5Layout) {
  ModelConfig c = MustParse("configs/llama-3.2-1b-tf5.json");
  EXPECT_EQ(c.torch_dtype, "bfloat16");  // from "dtype"
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);  // from rope_parameters
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_DOUBLE_EQ(c.rope_scaling->factor, 32.0);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.NumParams(), 1235814400);
  nlohmann::json j = ModelConfigToJson(c);
  EXPECT_EQ(j["rope_parameters"]["rope_theta"], 500000.0);
  EXPECT_FALSE(j.contains("rope_scaling"));
  EXPECT_EQ(j["dtype"], "bfloat16");
}

TEST(ModelConfigTest, BiasFlagsAndSlidingWindowVariants) {
  absl::StatusOr<ModelConfig> llama = ParseModelConfig(R"({"architectures":["LlamaForCausalLM"],
      "model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":16,
      "num_hidden_layers":1,"num_attention_heads":2,"attention_bias":true,"mlp_bias":true})", "x");
  ASSERT_TRUE(llama.ok()) << llama.status();
  EXPECT_TRUE(llama->attention_bias && llama->o_proj_bias && llama->mlp_bias);
  EXPECT_EQ(llama->num_kv_heads, 2);  // defaults to num_attention_heads
  EXPECT_EQ(llama->max_position_embeddings, 2048);  // LlamaConfig default
  auto m = ExpectedMap(*llama);
  EXPECT_EQ(m.at("model.layers.0.self_attn.o_proj.bias"), (std::vector<int64_t>{8}));
  EXPECT_EQ(m.at("model.layers.0.mlp.gate_proj.bias"), (std::vector<int64_t>{16}));
  EXPECT_EQ(m.at("model.layers.0.mlp.down_proj.bias"), (std::vector<int64_t>{8}));
  // 80 embed + 80 lm_head + 8 norm + layer: 4*(64+8) + 3*(128) + 16 + 8 + 16 + 2*8
  EXPECT_EQ(llama->NumParams(), 80 + 80 + 8 + 4 * 72 + 3 * 128 + 16 + 16 + 8 + 16);

  absl::StatusOr<ModelConfig> qwen = ParseModelConfig(R"({"architectures":["Qwen2ForCausalLM"],
      "model_type":"qwen2","vocab_size":10,"hidden_size":8,"intermediate_size":16,
      "num_hidden_layers":1,"num_attention_heads":2,"use_sliding_window":true,
      "sliding_window":1024})", "x");
  ASSERT_TRUE(qwen.ok()) << qwen.status();
  EXPECT_EQ(qwen->sliding_window, 1024);
}

TEST(ModelConfigTest, JsonRoundTrip) {
  for (const char* rel : {"configs/llama-3.1-8b.json", "configs/qwen2.5-0.5b-instruct.json",
                          "configs/qwen3-0.6b.json", "configs/mistral-7b-v0.1.json",
                          "configs/llama-3.2-1b-tf5.json"}) {
    SCOPED_TRACE(rel);
    ModelConfig a = MustParse(rel);
    for (bool from_raw : {true, false}) {
      ModelConfig src = a;
      if (!from_raw) src.raw = nlohmann::json();  // synthesised from the fields alone
      absl::StatusOr<ModelConfig> b = ParseModelConfig(ModelConfigToJson(src).dump(), "rt");
      ASSERT_TRUE(b.ok()) << b.status();
      EXPECT_EQ(ExpectedTensors(*b), ExpectedTensors(a));
      EXPECT_EQ(b->rope_theta, a.rope_theta);
      EXPECT_EQ(b->rope_scaling.has_value(), a.rope_scaling.has_value());
      if (a.rope_scaling) EXPECT_EQ(b->rope_scaling->factor, a.rope_scaling->factor);
      EXPECT_EQ(b->rms_norm_eps, a.rms_norm_eps);
      EXPECT_EQ(b->sliding_window, a.sliding_window);
      EXPECT_EQ(b->eos_token_ids, a.eos_token_ids);
      EXPECT_EQ(b->bos_token_id, a.bos_token_id);
      EXPECT_EQ(b->max_position_embeddings, a.max_position_embeddings);
      EXPECT_EQ(b->torch_dtype, a.torch_dtype);
    }
  }
}

TEST(ModelConfigTest, ClearErrors) {
  const std::string base = R"("vocab_size":10,"hidden_size":8,"intermediate_size":16,
      "num_hidden_layers":1,"num_attention_heads":2)";
  std::string msg = ParseError(R"({"architectures":["GPT2LMHeadModel"],"model_type":"gpt2",)" + base + "}");
  EXPECT_THAT(msg, HasSubstr("GPT2LMHeadModel"));
  for (const char* arch : {"LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
                           "MistralForCausalLM"}) {
    EXPECT_THAT(msg, HasSubstr(arch));
  }
  EXPECT_THAT(ParseError(R"({"model_type":"llama",)" + base + "}"), HasSubstr("architectures"));
  EXPECT_THAT(ParseError(R"({"architectures":["LlamaForCausalLM"],"model_type":"qwen2",)" + base + "}"),
              HasSubstr("does not match"));
  const std::string llama = R"({"architectures":["LlamaForCausalLM"],"model_type":"llama",)";
  EXPECT_THAT(ParseError(llama + base + R"(,"rope_scaling":{"rope_type":"yarn","factor":4}})"),
              HasSubstr("rope_type \"yarn\" is not supported"));
  EXPECT_THAT(ParseError(llama + base + R"(,"rope_scaling":{"type":"linear","factor":4}})"),
              HasSubstr("\"linear\""));
  EXPECT_THAT(ParseError(llama + base + R"(,"hidden_act":"gelu"})"), HasSubstr("hidden_act"));
  EXPECT_THAT(ParseError(llama + R"("vocab_size":10,"intermediate_size":16,"num_hidden_layers":1,
      "num_attention_heads":2})"), HasSubstr("\"hidden_size\": required"));
  EXPECT_THAT(ParseError(llama + base + R"(,"num_key_value_heads":3})"), HasSubstr("does not divide"));
  EXPECT_THAT(ParseError(llama + R"("vocab_size":10,"hidden_size":"8","intermediate_size":16,
      "num_hidden_layers":1,"num_attention_heads":2})"), HasSubstr("expected an integer"));
  EXPECT_THAT(ParseError(llama + R"("vocab_size":-10,"hidden_size":8,"intermediate_size":16,
      "num_hidden_layers":1,"num_attention_heads":2})"), HasSubstr("must be positive"));
  EXPECT_THAT(ParseError(llama + R"("vocab_size":10,"hidden_size":8,"intermediate_size":16,
      "num_hidden_layers":1,"num_attention_heads":2,"head_dim":4611686018427387904})"),
              HasSubstr("\"head_dim\": 4611686018427387904 exceeds"));
  EXPECT_THAT(ParseError(llama + R"("vocab_size":16000000,"hidden_size":16000000,
      "intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2})"),
              HasSubstr("not a real model"));
  EXPECT_THAT(ParseError(llama + base + R"(,"quantization_config":{"bits":4}})"),
              HasSubstr("quantized"));
  EXPECT_THAT(ParseError("{\"architectures\": [", "broken.json"), HasSubstr("not valid JSON"));
  EXPECT_THAT(ParseError("[]"), HasSubstr("object"));
  absl::StatusOr<ModelConfig> missing = LoadModelConfig("/nonexistent/model");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("/nonexistent/model/config.json"));
}

}  // namespace
}  // namespace sfd
