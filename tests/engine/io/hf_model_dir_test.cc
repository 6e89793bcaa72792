// Tests of engine/io/hf_model_dir.{h,cc} and hf_model_writer.cc: opening the Python-made
// fixture dirs (single file BF16 Llama, sharded F32 Qwen3), sharded write -> reopen round trips,
// atomic replacement, and errors for inconsistent directories.
#include "engine/io/hf_model_dir.h"

#include <cmath>
#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/io/io_test_util.h"

namespace sfd {
namespace {

namespace fs = std::filesystem;
using ::sfd::testing_io::FixturePath;
using ::sfd::testing_io::ReadAll;
using ::sfd::testing_io::ReadJson;
using ::sfd::testing_io::TempDir;
using ::sfd::testing_io::WriteAll;
using ::testing::HasSubstr;

std::unique_ptr<HfModelDir> MustOpen(const std::string& dir) {
  auto m = HfModelDir::Open(dir);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? std::move(*m) : nullptr;
}

std::vector<float> MustRead(const HfModelDir& m, const std::string& name) {
  const TensorInfo* t = m.Find(name);
  EXPECT_NE(t, nullptr) << name;
  if (t == nullptr) return {};
  std::vector<float> out(t->numel());
  absl::Status st = m.ReadFloat(name, absl::MakeSpan(out));
  EXPECT_TRUE(st.ok()) << st;
  return out;
}

// Compares every tensor against the sums/first values Python computed.
void CheckAgainstPython(const HfModelDir& m, const std::string& expected_json) {
  nlohmann::json expected = ReadJson(FixturePath(expected_json));
  EXPECT_EQ(m.TensorNames().size(), expected.size());
  for (auto it = expected.begin(); it != expected.end(); ++it) {
    SCOPED_TRACE(it.key());
    std::vector<float> v = MustRead(m, it.key());
    EXPECT_EQ(m.Find(it.key())->shape, it.value()["shape"].get<std::vector<int64_t>>());
    double sum = 0;
    for (float x : v) sum += x;
    EXPECT_DOUBLE_EQ(sum, it.value()["sum"].get<double>());
    std::vector<float> first = it.value()["first"].get<std::vector<float>>();
    for (size_t i = 0; i < first.size(); ++i) EXPECT_EQ(v[i], first[i]);
  }
}

// Sources that replay a model dir's tensors (fp32) in ExpectedTensors order.
std::vector<TensorSource> SourcesFrom(const HfModelDir& m) {
  std::vector<TensorSource> out;
  for (const auto& [name, shape] : ExpectedTensors(m.config())) {
    const HfModelDir* mp = &m;
    std::string n = name;
    size_t numel = 1;
    for (int64_t d : shape) numel *= d;
    out.push_back({name, shape, [mp, n, numel](float* dst) {
                     absl::Status st = mp->ReadFloat(n, absl::MakeSpan(dst, numel));
                     ASSERT_TRUE(st.ok()) << st;
                   }});
  }
  return out;
}

void ExpectSameTensors(const HfModelDir& a, const HfModelDir& b) {
  for (const auto& [name, shape] : ExpectedTensors(a.config())) {
    EXPECT_EQ(MustRead(a, name), MustRead(b, name)) << name;
  }
}

void CopyDir(const std::string& from, const std::string& to) {
  fs::copy(from, to, fs::copy_options::recursive);
}

TEST(HfModelDirTest, OpensPythonWrittenLlama) {
  auto m = MustOpen(FixturePath("tiny_llama"));
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->config().architecture, "LlamaForCausalLM");
  EXPECT_EQ(m->shards().size(), 1u);
  EXPECT_EQ(m->Find("model.embed_tokens.weight")->dtype, DType::kBF16);
  CheckAgainstPython(*m, "tiny_llama.expected.json");
}

TEST(HfModelDirTest, OpensPythonWrittenShardedQwen3) {
  auto m = MustOpen(FixturePath("tiny_qwen3_sharded") + "/");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->dir(), FixturePath("tiny_qwen3_sharded"));
  EXPECT_EQ(m->shards().size(), 2u);
  EXPECT_TRUE(m->config().tie_word_embeddings);
  EXPECT_EQ(m->config().head_dim, 6);
  EXPECT_EQ(m->Find("lm_head.weight"), nullptr);
  EXPECT_NE(m->FileOf("model.layers.0.self_attn.q_norm.weight"), nullptr);
  CheckAgainstPython(*m, "tiny_qwen3_sharded.expected.json");
  std::vector<float> out(3);
  absl::Status st = m->ReadFloat("lm_head.weight", absl::MakeSpan(out));
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(st.message()), HasSubstr("lm_head.weight"));
  st = m->ReadFloat("model.norm.weight", absl::MakeSpan(out));
  EXPECT_THAT(std::string(st.message()), HasSubstr("model.norm.weight"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("model-0000"));
}

TEST(HfModelDirTest, ShardedWriteRoundTrip) {
  auto src = MustOpen(FixturePath("tiny_llama"));
  ASSERT_NE(src, nullptr);
  TempDir tmp;
  // A fake tokenizer dir to copy from.
  const std::string tok = tmp.Sub("tok");
  fs::create_directories(tok);
  WriteAll(tok + "/tokenizer.json", R"({"model":{"type":"BPE"}})");
  WriteAll(tok + "/chat_template.jinja", "{{ messages }}");
  WriteAll(tok + "/unrelated.bin", "x");

  const std::string out = tmp.Sub("out/model");
  HfWriteOptions opt;
  opt.dtype = DType::kF32;
  opt.max_shard_bytes = 1000;  // tiny: forces many shards
  opt.copy_tokenizer_from = tok;
  ASSERT_TRUE(WriteHfModelDir(out, src->config(), SourcesFrom(*src), opt).ok());

  auto back = MustOpen(out);
  ASSERT_NE(back, nullptr);
  EXPECT_GT(back->shards().size(), 3u);
  ExpectSameTensors(*src, *back);  // bf16 values are exact in f32
  for (const auto& shard : back->shards()) {
    EXPECT_EQ(shard->metadata().at("format"), "pt");
    EXPECT_THAT(shard->path(), HasSubstr("-of-0000"));
    // Every shard respects the limit unless it holds a single oversized tensor.
    if (shard->tensors().size() > 1) EXPECT_LE(shard->data_size(), 1000u);
  }
  nlohmann::json index = ReadJson(out + "/model.safetensors.index.json");
  uint64_t total = 0;
  for (const auto& [name, shape] : ExpectedTensors(src->config())) {
    total += back->Find(name)->nbytes();
    EXPECT_TRUE(index["weight_map"].contains(name)) << name;
  }
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  nlohmann::json cfg = ReadJson(out + "/config.json");
  EXPECT_EQ(cfg["torch_dtype"], "float32");
  EXPECT_EQ(cfg["rope_scaling"]["rope_type"], "llama3");
  EXPECT_EQ(cfg["eos_token_id"], nlohmann::json({2, 3}));
  EXPECT_EQ(ReadAll(out + "/tokenizer.json"), R"({"model":{"type":"BPE"}})");
  EXPECT_TRUE(fs::exists(out + "/chat_template.jinja"));
  EXPECT_FALSE(fs::exists(out + "/unrelated.bin"));
  // Only the model dir is left in its parent: no temp dirs.
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(tmp.Sub("out"))) entries.push_back(e.path().filename());
  EXPECT_EQ(entries, std::vector<std::string>{"model"});
}

TEST(HfModelDirTest, SingleFileBf16WriteAndAtomicReplace) {
  auto src = MustOpen(FixturePath("tiny_qwen3_sharded"));
  ASSERT_NE(src, nullptr);
  TempDir tmp;
  const std::string out = tmp.Sub("model");
  ASSERT_TRUE(WriteHfModelDir(out, src->config(), SourcesFrom(*src), HfWriteOptions{}).ok());
  EXPECT_TRUE(fs::exists(out + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(out + "/model.safetensors.index.json"));
  auto first = MustOpen(out);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->Find("model.embed_tokens.weight")->dtype, DType::kBF16);
  ExpectSameTensors(*src, *first);  // the fixture's values are exact in bf16
  nlohmann::json cfg = ReadJson(out + "/config.json");
  EXPECT_EQ(cfg["torch_dtype"], "bfloat16");
  EXPECT_EQ(cfg["dtype"], "bfloat16");  // the source used the transformers 5 key

  // Overwrite with different weights; a file from the old version must disappear and the
  // opened old version stays readable (its files are mmapped).
  WriteAll(out + "/stale.txt", "old");
  std::vector<TensorSource> sources = SourcesFrom(*src);
  for (auto& s : sources) {
    auto inner = s.fill;
    s.fill = [inner, n = s.shape](float* dst) {
      inner(dst);
      size_t numel = 1;
      for (int64_t d : n) numel *= d;
      for (size_t i = 0; i < numel; ++i) dst[i] *= 2;
    };
  }
  ASSERT_TRUE(WriteHfModelDir(out, src->config(), sources, HfWriteOptions{}).ok());
  EXPECT_FALSE(fs::exists(out + "/stale.txt"));
  auto second = MustOpen(out);
  ASSERT_NE(second, nullptr);
  std::vector<float> a = MustRead(*first, "model.norm.weight");
  std::vector<float> b = MustRead(*second, "model.norm.weight");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(b[i], 2 * a[i]);
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(tmp.path())) entries.push_back(e.path().filename());
  EXPECT_EQ(entries, std::vector<std::string>{"model"});
}

TEST(HfModelDirTest, FailedWriteLeavesExistingDirUntouched) {
  auto src = MustOpen(FixturePath("tiny_qwen3_sharded"));
  ASSERT_NE(src, nullptr);
  TempDir tmp;
  const std::string out = tmp.Sub("model");
  ASSERT_TRUE(WriteHfModelDir(out, src->config(), SourcesFrom(*src), HfWriteOptions{}).ok());
  std::string before = ReadAll(out + "/model.safetensors");
  HfWriteOptions bad;
  bad.copy_tokenizer_from = tmp.Sub("no_such_dir");
  absl::Status st = WriteHfModelDir(out, src->config(), SourcesFrom(*src), bad);
  EXPECT_FALSE(st.ok());
  EXPECT_THAT(std::string(st.message()), HasSubstr("no_such_dir"));
  EXPECT_EQ(ReadAll(out + "/model.safetensors"), before);
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(tmp.path())) entries.push_back(e.path().filename());
  EXPECT_EQ(entries, std::vector<std::string>{"model"});

  std::vector<TensorSource> dup = SourcesFrom(*src);
  dup.push_back(dup[0]);
  EXPECT_THAT(std::string(WriteHfModelDir(out, src->config(), dup, {}).message()),
              HasSubstr("given twice"));
  HfWriteOptions int_dtype;
  int_dtype.dtype = DType::kI32;
  EXPECT_FALSE(WriteHfModelDir(out, src->config(), SourcesFrom(*src), int_dtype).ok());
  WriteAll(tmp.Sub("file"), "x");
  EXPECT_THAT(std::string(WriteHfModelDir(tmp.Sub("file"), src->config(), SourcesFrom(*src), {}).message()),
              HasSubstr("not a directory"));
  EXPECT_EQ(ReadAll(tmp.Sub("file")), "x");
}

TEST(HfModelDirTest, MissingTensorErrorNamesIt) {
  TempDir tmp;
  const std::string dir = tmp.Sub("m");
  CopyDir(FixturePath("tiny_llama"), dir);
  auto src = MustOpen(FixturePath("tiny_llama"));
  ASSERT_NE(src, nullptr);
  // Rewrite model.safetensors without one tensor and with another of the wrong shape.
  std::vector<std::vector<float>> keep;
  std::vector<TensorToWrite> tensors;
  for (const auto& [name, shape] : ExpectedTensors(src->config())) {
    if (name == "model.layers.1.mlp.up_proj.weight") continue;
    keep.push_back(MustRead(*src, name));
    std::vector<int64_t> s = shape;
    if (name == "model.layers.0.self_attn.k_proj.weight") s = {shape[1], shape[0]};
    tensors.push_back({name, DType::kF32, s, keep.back().data()});
  }
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", tensors, {}).ok());
  auto m = HfModelDir::Open(dir);
  ASSERT_FALSE(m.ok());
  std::string msg(m.status().message());
  EXPECT_THAT(msg, HasSubstr(dir));
  EXPECT_THAT(msg, HasSubstr("1 missing tensors: model.layers.1.mlp.up_proj.weight"));
  EXPECT_THAT(msg, HasSubstr("model.layers.0.self_attn.k_proj.weight is [8, 4], expected [4, 8]"));
  EXPECT_THAT(msg, HasSubstr("Supported architectures: LlamaForCausalLM"));
}

TEST(HfModelDirTest, InconsistentIndexErrors) {
  TempDir tmp;
  const std::string dir = tmp.Sub("m");
  CopyDir(FixturePath("tiny_qwen3_sharded"), dir);
  const std::string index_path = dir + "/model.safetensors.index.json";
  nlohmann::json index = ReadJson(index_path);

  nlohmann::json missing_shard = index;
  missing_shard["weight_map"]["model.norm.weight"] = "model-00009-of-00009.safetensors";
  WriteAll(index_path, missing_shard.dump());
  auto m = HfModelDir::Open(dir);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("model-00009-of-00009.safetensors"));
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("does not exist"));

  nlohmann::json wrong_shard = index;
  std::string where = index["weight_map"]["model.norm.weight"];
  std::string other = where == "model-00001-of-00002.safetensors" ? "model-00002-of-00002.safetensors"
                                                                  : "model-00001-of-00002.safetensors";
  wrong_shard["weight_map"]["model.norm.weight"] = other;
  WriteAll(index_path, wrong_shard.dump());
  m = HfModelDir::Open(dir);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("\"model.norm.weight\""));
  EXPECT_THAT(std::string(m.status().message()), HasSubstr(other));

  nlohmann::json escape = index;
  escape["weight_map"]["model.norm.weight"] = "../m/model-00001-of-00002.safetensors";
  WriteAll(index_path, escape.dump());
  EXPECT_FALSE(HfModelDir::Open(dir).ok());

  WriteAll(index_path, "{not json");
  m = HfModelDir::Open(dir);
  EXPECT_THAT(std::string(m.status().message()), HasSubstr(index_path));

  // A corrupt shard is reported with its path.
  WriteAll(index_path, index.dump());
  WriteAll(dir + "/model-00002-of-00002.safetensors", "short");
  m = HfModelDir::Open(dir);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("model-00002-of-00002.safetensors"));
}

TEST(HfModelDirTest, DirectoryLevelErrors) {
  TempDir tmp;
  auto none = HfModelDir::Open(tmp.Sub("nope"));
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  const std::string dir = tmp.Sub("m");
  fs::create_directories(dir);
  fs::copy(FixturePath("tiny_llama/config.json"), dir + "/config.json");
  WriteAll(dir + "/pytorch_model.bin", "x");
  auto no_weights = HfModelDir::Open(dir);
  ASSERT_FALSE(no_weights.ok());
  EXPECT_THAT(std::string(no_weights.status().message()), HasSubstr("pytorch_model.bin"));
  WriteAll(dir + "/config.json", R"({"architectures":["BertModel"],"model_type":"bert"})");
  auto bad_arch = HfModelDir::Open(dir);
  EXPECT_THAT(std::string(bad_arch.status().message()), HasSubstr("Qwen3ForCausalLM"));
}

}  // namespace
}  // namespace sfd
