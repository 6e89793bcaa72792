// Helpers shared by the engine/io tests: fresh temp dirs, fixture paths, reading JSON files,
// and hand-building safetensors images byte by byte (independent of sfd's writer).
#pragma once

#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/common/remove_tree.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace sfd::testing_io {

inline std::string FixturePath(const std::string& rel) {
  return std::string(SFD_FIXTURES_DIR) + "/io/" + rel;
}

// A new empty directory under the gtest temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "sfd_io_XXXXXX";
    path_ = ::mkdtemp(tmpl.data()) ? tmpl : std::string();
    EXPECT_FALSE(path_.empty());
  }
  ~TempDir() {
    std::error_code ec;
    (void)::sfd::RemoveTree(path_);
  }
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteAll(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

inline nlohmann::json ReadJson(const std::string& path) {
  return nlohmann::json::parse(ReadAll(path));
}

// 8-byte little-endian length + header text + data: a safetensors image built by hand.
inline std::string Image(const std::string& header, const std::string& data = "") {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// Image whose length prefix is `declared` regardless of what follows.
inline std::string ImageWithLength(uint64_t declared, const std::string& rest) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((declared >> (8 * i)) & 0xff);
  return out + rest;
}

}  // namespace sfd::testing_io
