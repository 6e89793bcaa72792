// RandomInit (engine/model/random_init.h): the same bits for any thread count, the layout of
// values by parameter kind, and the distribution a benchmark's random model relies on.
#include "engine/model/random_init.h"

#include <cmath>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

namespace sfd {
namespace {

ParamEntry Entry(const std::string& name, std::vector<int64_t> shape) {
  ParamEntry p;
  p.name = name;
  p.shape = shape;
  p.numel = 1;
  for (int64_t d : shape) p.numel *= d;
  return p;
}

TEST(RandomInitTest, AnyThreadCountGivesTheSameBits) {
  // Three chunks of 2^20 and a short fourth, so every pool size splits the work differently.
  const ParamEntry p = Entry("mlp.up_proj.weight", {3 * 1024 + 7, 1024});
  std::vector<float> one(p.numel), three(p.numel);
  ThreadPool pool1(1), pool3(3);
  RandomInit(p, 0.02, 7, one.data(), &pool1);
  RandomInit(p, 0.02, 7, three.data(), &pool3);
  EXPECT_EQ(std::memcmp(one.data(), three.data(), one.size() * sizeof(float)), 0);
}

TEST(RandomInitTest, MatricesAreUniformInPlusMinusStdSqrt3) {
  const ParamEntry p = Entry("self_attn.q_proj.weight", {512, 512});
  std::vector<float> w(p.numel);
  ThreadPool pool(2);
  const double std = 0.02;
  RandomInit(p, std, 1, w.data(), &pool);
  const double a = std * std::sqrt(3.0);
  double sum = 0, sumsq = 0;
  for (float x : w) {
    ASSERT_LE(std::fabs(x), a);
    sum += x;
    sumsq += static_cast<double>(x) * x;
  }
  const double n = static_cast<double>(w.size());
  EXPECT_NEAR(sum / n, 0.0, 4 * std / std::sqrt(n));  // mean within 4 standard errors
  EXPECT_NEAR(std::sqrt(sumsq / n), std, 0.01 * std);
}

TEST(RandomInitTest, NormsAreOneBiasesZeroAndNamesAndSeedsDiffer) {
  ThreadPool pool(2);
  std::vector<float> norm(64, -1.0f), bias(64, -1.0f);
  RandomInit(Entry("input_layernorm.weight", {64}), 0.02, 1, norm.data(), &pool);
  RandomInit(Entry("self_attn.q_proj.bias", {64}), 0.02, 1, bias.data(), &pool);
  for (int i = 0; i < 64; ++i) {
    EXPECT_EQ(norm[i], 1.0f);
    EXPECT_EQ(bias[i], 0.0f);
  }
  const ParamEntry q = Entry("self_attn.q_proj.weight", {64, 64});
  const ParamEntry k = Entry("self_attn.k_proj.weight", {64, 64});
  std::vector<float> q1(q.numel), q2(q.numel), k1(k.numel);
  RandomInit(q, 0.02, 1, q1.data(), &pool);
  RandomInit(q, 0.02, 2, q2.data(), &pool);
  RandomInit(k, 0.02, 1, k1.data(), &pool);
  EXPECT_NE(q1, q2);
  EXPECT_NE(q1, k1);
}

}  // namespace
}  // namespace sfd
