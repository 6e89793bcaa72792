// Helpers the trainer tests share (trainer_test_util.h).
#include "tests/engine/trainer/trainer_test_util.h"

#include <filesystem>
#include <fstream>
#include <iterator>

#include "engine/common/remove_tree.h"
#include "gtest/gtest.h"

namespace sfd::testing {

std::unique_ptr<Trainer> Make(const TrainerSpec& spec) {
  auto t = Trainer::Create(spec);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

std::string FreshDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/" + name;
  (void)::sfd::RemoveTree(dir);
  return dir;
}

int ExpectSameOptimizerFiles(const std::string& a, const std::string& b) {
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(a + "/optimizer")) {
    std::ifstream x(e.path(), std::ios::binary), y(b + "/optimizer/" + e.path().filename().string(),
                                                   std::ios::binary);
    const std::string bx((std::istreambuf_iterator<char>(x)), {}), by((std::istreambuf_iterator<char>(y)), {});
    EXPECT_TRUE(bx == by) << e.path();
    ++files;
  }
  return files;
}

TokenBatch LongBatch(int64_t rows, int64_t seq, int vocab, int salt) {
  TokenBatch b;
  b.rows = rows;
  b.seq = seq;
  for (int64_t i = 0; i < rows * seq; ++i) {
    const int32_t id = static_cast<int32_t>((i * 7 + salt * 13 + (i / seq) * 3) % vocab);
    b.input_ids.push_back(id);
    b.targets.push_back((i + 1) % seq == 0 ? kIgnoreLabel : static_cast<int32_t>((id * 5 + 1) % vocab));
    b.position_ids.push_back(static_cast<int32_t>(i % seq));
    b.segment_ids.push_back(0);
  }
  return b;
}

}  // namespace sfd::testing
