// Tests engine/optim/cpu_adamw.h without torch: position independence of every element's
// result (heads, tails, misaligned bf16 output), thread-count independence of CpuAdamW,
// SumSquares against a long-double reference, bf16 conversions against common/half.h, and
// runtime SIMD detection against /proc/cpuinfo. torch parity is in cpu_adamw_torch_test.cc.
#include "engine/optim/cpu_adamw.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/common/half.h"
#include "gtest/gtest.h"
#include "tests/engine/optim/simd_levels.h"

namespace sfd {
namespace {

bool BitEqual(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }

struct State {
  std::vector<float> p, m, v, g;
  std::vector<uint16_t> gb, out;
};

State RandomState(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  State s;
  s.p.resize(n);
  s.m.resize(n);
  s.v.resize(n);
  s.g.resize(n);
  s.gb.resize(n);
  s.out.assign(n, 0);
  for (int64_t i = 0; i < n; ++i) {
    s.p[i] = normal(rng);
    s.m[i] = 0.1f * normal(rng);
    s.v[i] = 0.01f * std::fabs(normal(rng));
    s.g[i] = normal(rng);
    s.gb[i] = FloatToBf16(s.g[i]);
  }
  return s;
}

AdamWStep Hp() {
  AdamWStep hp;
  hp.lr = 3e-3f;
  hp.beta1 = 0.85f;
  hp.beta2 = 0.99f;
  hp.eps = 1e-7f;
  hp.weight_decay = 0.05f;
  hp.step = 4;
  hp.grad_scale = 0.6f;
  return hp;
}

void ExpectStatesBitEqual(const State& a, const State& b, int64_t n, bool check_out) {
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    bad += !BitEqual(a.p[i], b.p[i]) || !BitEqual(a.m[i], b.m[i]) || !BitEqual(a.v[i], b.v[i]) ||
           (check_out && a.out[i] != b.out[i]);
  }
  EXPECT_EQ(bad, 0);
}

// Every sub-range [begin, begin + len) computed on its own (head peel, tails, misaligned bf16
// output) must give bit-identical results to the same elements computed in one long call.
TEST(CpuAdamWTest, ResultsDoNotDependOnPositionOrLength) {
  const int64_t n = 256;
  for (SimdLevel level : SupportedLevels()) {
    SCOPED_TRACE(SimdLevelName(level));
    const State init = RandomState(n, 99);
    for (bool bf16_grad : {false, true}) {
      State whole = init;
      if (bf16_grad) {
        AdamWKernelBf16Grad(level, Hp(), whole.p.data(), whole.m.data(), whole.v.data(),
                            whole.gb.data(), whole.out.data(), n);
      } else {
        AdamWKernel(level, Hp(), whole.p.data(), whole.m.data(), whole.v.data(), whole.g.data(),
                    whole.out.data(), n);
      }
      for (int64_t begin : {0, 1, 3, 7, 8, 15, 17, 33}) {
        for (int64_t len : {1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 100, 200}) {
          if (begin + len > n) continue;
          SCOPED_TRACE(testing::Message() << "begin=" << begin << " len=" << len);
          State part = init;
          for (bool with_out : {true, false}) {
            part = init;
            uint16_t* out = with_out ? part.out.data() + begin : nullptr;
            if (bf16_grad) {
              AdamWKernelBf16Grad(level, Hp(), part.p.data() + begin, part.m.data() + begin,
                                  part.v.data() + begin, part.gb.data() + begin, out, len);
            } else {
              AdamWKernel(level, Hp(), part.p.data() + begin, part.m.data() + begin,
                          part.v.data() + begin, part.g.data() + begin, out, len);
            }
            for (int64_t i = 0; i < n; ++i) {
              const bool inside = i >= begin && i < begin + len;
              const State& want = inside ? whole : init;
              ASSERT_TRUE(BitEqual(part.p[i], want.p[i])) << "i=" << i << " with_out=" << with_out;
              ASSERT_TRUE(BitEqual(part.m[i], want.m[i])) << "i=" << i;
              ASSERT_TRUE(BitEqual(part.v[i], want.v[i])) << "i=" << i;
              if (with_out) ASSERT_EQ(part.out[i], inside ? whole.out[i] : 0) << "i=" << i;
            }
          }
        }
      }
    }
  }
}

TEST(CpuAdamWTest, Bf16GradVariantEqualsFp32KernelOnWidenedGrads) {
  const int64_t n = 1001;
  for (SimdLevel level : SupportedLevels()) {
    SCOPED_TRACE(SimdLevelName(level));
    State a = RandomState(n, 5), b = a;
    std::vector<float> widened(n);
    for (int64_t i = 0; i < n; ++i) widened[i] = Bf16ToFloat(a.gb[i]);
    AdamWKernelBf16Grad(level, Hp(), a.p.data(), a.m.data(), a.v.data(), a.gb.data(), a.out.data(),
                        n);
    AdamWKernel(level, Hp(), b.p.data(), b.m.data(), b.v.data(), widened.data(), b.out.data(), n);
    ExpectStatesBitEqual(a, b, n, true);
  }
}

TEST(CpuAdamWTest, LevelsAgreeToRounding) {
  const int64_t n = 4099;
  const State init = RandomState(n, 11);
  State ref = init;
  AdamWKernel(SimdLevel::kScalar, Hp(), ref.p.data(), ref.m.data(), ref.v.data(), ref.g.data(),
              nullptr, n);
  for (SimdLevel level : SupportedLevels()) {
    State s = init;
    AdamWKernel(level, Hp(), s.p.data(), s.m.data(), s.v.data(), s.g.data(), nullptr, n);
    for (int64_t i = 0; i < n; ++i) {
      // exp_avg's rounding is relative to its inputs (beta1 * m and (1 - beta1) * g may cancel).
      const double m_scale = std::fabs(init.m[i]) + std::fabs(init.g[i] * Hp().grad_scale);
      ASSERT_NEAR(s.p[i], ref.p[i], 1e-6 * std::fabs(ref.p[i]) + 1e-6 * Hp().lr)
          << SimdLevelName(level);
      ASSERT_NEAR(s.m[i], ref.m[i], 1e-6 * m_scale) << SimdLevelName(level);
      ASSERT_NEAR(s.v[i], ref.v[i], 1e-6 * std::fabs(ref.v[i])) << SimdLevelName(level);
    }
  }
}

TEST(CpuAdamWTest, ThreadedUpdateIsBitwiseIndependentOfThreadsAndChunks) {
  const int64_t n = 100003;
  const State init = RandomState(n, 3);
  for (SimdLevel level : SupportedLevels()) {
    State direct = init;
    AdamWKernel(level, Hp(), direct.p.data(), direct.m.data(), direct.v.data(), direct.g.data(),
                direct.out.data(), n);
    for (int threads : {1, 2, 5}) {
      for (int64_t chunk : {int64_t{64}, int64_t{1000}, CpuAdamW::kDefaultChunkElems}) {
        SCOPED_TRACE(testing::Message()
                     << SimdLevelName(level) << " threads=" << threads << " chunk=" << chunk);
        CpuAdamW adam(threads, level);
        adam.set_chunk_elems(chunk);
        EXPECT_EQ(adam.num_threads(), threads);
        EXPECT_EQ(adam.level(), level);
        EXPECT_EQ(adam.chunk_elems() % 64, 0);
        State s = init;
        adam.Update(Hp(), s.p.data(), s.m.data(), s.v.data(), s.g.data(), s.out.data(), n);
        ExpectStatesBitEqual(s, direct, n, true);
        State sb = init;
        State db = init;
        adam.UpdateBf16Grad(Hp(), sb.p.data(), sb.m.data(), sb.v.data(), sb.gb.data(), nullptr, n);
        AdamWKernelBf16Grad(level, Hp(), db.p.data(), db.m.data(), db.v.data(), db.gb.data(),
                            nullptr, n);
        ExpectStatesBitEqual(sb, db, n, false);
      }
    }
  }
}

TEST(CpuAdamWTest, SumSquaresMatchesLongDoubleReference) {
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.f, 3.f);
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{17}, int64_t{1000003}}) {
    std::vector<float> x(n);
    std::vector<uint16_t> xb(n);
    for (int64_t i = 0; i < n; ++i) {
      x[i] = normal(rng);
      xb[i] = FloatToBf16(x[i]);
    }
    long double ref = 0, ref_b = 0;
    for (int64_t i = 0; i < n; ++i) {
      ref += static_cast<long double>(x[i]) * x[i];
      const long double b = Bf16ToFloat(xb[i]);
      ref_b += b * b;
    }
    for (SimdLevel level : SupportedLevels()) {
      SCOPED_TRACE(testing::Message() << SimdLevelName(level) << " n=" << n);
      // Squares are exact in double; only the n additions round (bound ~ n * 2^-53 / lanes).
      // An fp32 accumulator would be off by ~1e-4 here.
      EXPECT_NEAR(SumSquares(level, x.data(), n), static_cast<double>(ref), 1e-11 * ref);
      EXPECT_NEAR(SumSquaresBf16(level, xb.data(), n), static_cast<double>(ref_b), 1e-11 * ref_b);
      CpuAdamW adam(3, level);
      adam.set_chunk_elems(4096);
      const double threaded = adam.SumSquares(x.data(), n);
      EXPECT_NEAR(threaded, static_cast<double>(ref), 1e-11 * ref);
      CpuAdamW adam1(1, level);
      adam1.set_chunk_elems(4096);
      EXPECT_EQ(adam1.SumSquares(x.data(), n), threaded);  // deterministic across threads
      EXPECT_NEAR(adam.SumSquaresBf16(xb.data(), n), static_cast<double>(ref_b), 1e-11 * ref_b);
    }
  }
}

std::vector<float> SpecialFloats() {
  std::vector<float> v = {0.f,
                          -0.f,
                          1.f,
                          -1.f,
                          1e-40f,
                          -1e-40f,
                          3.4e38f,
                          -3.4e38f,
                          std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::denorm_min()};
  // Rounding ties: mantissa low half exactly 0x8000 with even / odd kept bit.
  for (uint32_t bits : {0x3f808000u, 0x3f818000u, 0x3f807fffu, 0x3f808001u, 0x7f7fffffu,
                        0xff800001u, 0x7fc00001u, 0x7f800001u}) {
    float f;
    std::memcpy(&f, &bits, 4);
    v.push_back(f);
  }
  std::mt19937 rng(8);
  std::uniform_int_distribution<uint32_t> any;
  for (int i = 0; i < 1000; ++i) {
    const uint32_t bits = any(rng);
    float f;
    std::memcpy(&f, &bits, 4);
    v.push_back(f);
  }
  return v;
}

TEST(CpuAdamWTest, Bf16ConversionsMatchScalarReference) {
  const std::vector<float> src = SpecialFloats();
  const int64_t n = static_cast<int64_t>(src.size());
  for (SimdLevel level : SupportedLevels()) {
    SCOPED_TRACE(SimdLevelName(level));
    for (int64_t len : {n, n - 1, int64_t{5}}) {
      std::vector<uint16_t> h(len + 1, 0xabcd);
      FloatToBf16(level, src.data(), h.data(), len);
      for (int64_t i = 0; i < len; ++i) ASSERT_EQ(h[i], FloatToBf16(src[i])) << "i=" << i;
      EXPECT_EQ(h[len], 0xabcd);  // nothing written past the end

      std::vector<float> back(len + 1, 42.f);
      Bf16ToFloat(level, h.data(), back.data(), len);
      for (int64_t i = 0; i < len; ++i) ASSERT_TRUE(BitEqual(back[i], Bf16ToFloat(h[i])));
      EXPECT_EQ(back[len], 42.f);

      std::vector<float> acc(len + 1), want(len);
      for (int64_t i = 0; i < len; ++i) acc[i] = want[i] = 0.25f * static_cast<float>(i % 13);
      acc[len] = 42.f;
      const std::vector<uint16_t> finite(len, FloatToBf16(1.5f));
      AddBf16ToFloat(level, finite.data(), acc.data(), len);
      for (int64_t i = 0; i < len; ++i) ASSERT_EQ(acc[i], want[i] + 1.5f);
      EXPECT_EQ(acc[len], 42.f);
    }
    CpuAdamW adam(2, level);
    adam.set_chunk_elems(64);
    std::vector<uint16_t> h(n);
    adam.FloatToBf16(src.data(), h.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(h[i], FloatToBf16(src[i]));
    std::vector<float> f(n, 0.f);
    adam.AddBf16ToFloat(h.data(), f.data(), n);
    std::vector<float> g(n);
    adam.Bf16ToFloat(h.data(), g.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_TRUE(BitEqual(g[i], Bf16ToFloat(h[i])));
      if (!std::isnan(g[i])) ASSERT_TRUE(BitEqual(f[i], 0.f + g[i]));
    }
  }
}

TEST(CpuAdamWTest, DetectionMatchesProcCpuinfo) {
  std::ifstream in("/proc/cpuinfo");
  std::string line, flags;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0) {
      flags = " " + line.substr(line.find(':') + 1) + " ";
      break;
    }
  }
  if (flags.empty()) GTEST_SKIP() << "no /proc/cpuinfo flags";
  auto has = [&](const char* f) {
    return flags.find(std::string(" ") + f + " ") != std::string::npos;
  };
  const bool avx512 = has("avx512f") && has("avx512bw") && has("avx512vl") && has("avx512dq");
  const bool avx2 = has("avx2") && has("fma") && has("f16c");
  EXPECT_EQ(SimdLevelSupported(SimdLevel::kAvx512), avx512);
  EXPECT_EQ(SimdLevelSupported(SimdLevel::kAvx2), avx2);
  EXPECT_TRUE(SimdLevelSupported(SimdLevel::kScalar));
  if (std::getenv("SFD_SIMD") == nullptr) {
    const SimdLevel want =
        avx512 ? SimdLevel::kAvx512 : (avx2 ? SimdLevel::kAvx2 : SimdLevel::kScalar);
    EXPECT_EQ(DetectSimdLevel(), want) << SimdLevelName(DetectSimdLevel());
  }
  std::printf("[ info ] SIMD level: %s\n", SimdLevelName(DetectSimdLevel()));
}

}  // namespace
}  // namespace sfd
