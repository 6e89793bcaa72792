// Helpers for the JobRunner tests: a tiny random Llama model whose vocabulary is a real
// tokenizer's (the 32,000-piece "llama2" tokenizer.json that tests/oracle/fetch_tokenizers.sh
// fetches), a learnable JSONL dataset, and a CPU/fp32 JobSpec.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "engine/common/remove_tree.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/io/hf_model_dir.h"
#include "engine/io/model_config.h"
#include "engine/job/job_spec.h"
#include "tests/engine/data/data_test_util.h"

namespace sfd::testing_util {

// hidden 32, 2 layers, 4 heads (2 kv), head_dim 8, tied embeddings, fp32, N(0, 0.02) weights.
// Built once per test binary under the test temp dir; "" (with a test failure) on error.
inline std::string TinyModelDir() {
  static const std::string dir = [] {
    const std::string tok = TokenizerModelDir("llama2");
    if (tok.empty()) {
      ADD_FAILURE() << "llama2 tokenizer files unavailable (tests/oracle/fetch_tokenizers.sh)";
      return std::string();
    }
    ModelConfig c;
    c.architecture = "LlamaForCausalLM";
    c.model_type = "llama";
    c.vocab_size = 32000;
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_layers = 2;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 8;
    c.max_position_embeddings = 512;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = true;
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
    c.torch_dtype = "float32";
    std::vector<TensorSource> tensors;
    uint64_t index = 0;
    for (auto& [name, shape] : ExpectedTensors(c)) {
      int64_t numel = 1;
      for (int64_t d : shape) numel *= d;
      const bool norm = absl::EndsWith(name, "norm.weight");
      const uint64_t seed = 7919 + index++;
      tensors.push_back({name, shape, [norm, numel, seed](float* dst) {
                           if (norm) {
                             std::fill(dst, dst + numel, 1.0f);
                             return;
                           }
                           std::mt19937_64 rng(seed);
                           std::normal_distribution<float> dist(0.0f, 0.02f);
                           for (int64_t i = 0; i < numel; ++i) dst[i] = dist(rng);
                         }});
    }
    HfWriteOptions opts;
    opts.dtype = DType::kF32;
    opts.copy_tokenizer_from = tok;
    const std::string out = ::testing::TempDir() + "/job_tiny_llama";
    absl::Status st = WriteHfModelDir(out, c, tensors, opts);
    if (!st.ok()) {
      ADD_FAILURE() << st;
      return std::string();
    }
    return out;
  }();
  return dir;
}

// `distinct` short text samples, each repeated `repeats` times: a model learns them quickly.
inline std::string LearnableDataset(const std::string& name, int distinct = 6, int repeats = 4) {
  static const char* kWords[] = {"apple", "river", "stone", "cloud", "green", "quiet",
                                 "north", "table", "music", "light", "seven", "paper"};
  std::string rows;
  for (int r = 0; r < repeats; ++r)
    for (int i = 0; i < distinct; ++i) {
      std::string text = absl::StrCat("Fact ", i, ":");
      for (int w = 0; w < 6; ++w) absl::StrAppend(&text, " ", kWords[(i * 5 + w * 7) % 12]);
      absl::StrAppend(&rows, "{\"text\": \"", text, ".\"}\n");
    }
  return WriteTempFile(name, rows);
}

// A fresh (empty) directory under the test temp dir.
inline std::string FreshDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/" + name;
  (void)::sfd::RemoveTree(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// CPU, fp32, constant lr 5e-3, micro-batch 2 x accumulation 2, rows of up to 32 tokens.
inline JobSpec TinyJobSpec(const std::string& train_path, const std::string& output_dir) {
  JobSpec s;
  s.name = "tiny";
  s.model_path = TinyModelDir();
  s.data.train_path = train_path;
  s.data.max_seq_len = 32;
  s.epochs = 1;
  s.micro_batch_size = 2;
  s.gradient_accumulation_steps = 2;
  s.optimizer.lr = 5e-3;
  s.lr_scheduler = LrScheduleKind::kConstant;
  s.seed = 11;
  s.output_dir = output_dir;
  s.engine.device = DeviceKind::kCpu;
  s.engine.compute_dtype = "fp32";
  s.engine.cpu_threads = 2;
  return s;
}

}  // namespace sfd::testing_util
