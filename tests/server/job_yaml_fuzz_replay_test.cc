// Replays the job.yaml fuzz corpus (tests/fixtures/job_yaml/) through the libFuzzer entry
// point in a normal build, so every input that once mattered keeps being checked.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

TEST(JobYamlFuzzReplayTest, CorpusInputsNeitherCrashNorBreakRoundTrips) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::string(SFD_FIXTURES_DIR) + "/job_yaml")) {
    std::ifstream f(e.path());
    std::stringstream ss;
    ss << f.rdbuf();
    const std::string s = ss.str();
    EXPECT_EQ(LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size()), 0)
        << e.path();
    ++n;
  }
  EXPECT_GE(n, 5);
}

}  // namespace
