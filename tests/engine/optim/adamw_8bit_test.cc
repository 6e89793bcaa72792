// Tests engine/optim/adamw_8bit.h: the code format (values, exact round trip of every code,
// stochastic rounding to the two neighbours with an unbiased mean), one update against AdamW
// computed in double from the decoded state, agreement of the SIMD levels bit for bit,
// independence of threads and chunking, partial last blocks, the checkpoint conversions, and
// two properties round-to-nearest would fail: v decays under zero gradients like beta2^t, and
// a noisy quadratic converges like fp32 AdamW.
#include "engine/optim/adamw_8bit.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "engine/common/half.h"
#include "engine/optim/cpu_adamw.h"
#include "gtest/gtest.h"
#include "tests/engine/optim/simd_levels.h"

namespace sfd {
namespace {

// Owns one unit's 8-bit moments.
struct Q8State {
  explicit Q8State(int64_t n)
      : m(n, 0), v(n, 0), m_scale(Q8Blocks(n), 0.f), v_scale(Q8Blocks(n), 0.f) {}
  Q8Moments view() { return {m.data(), m_scale.data(), v.data(), v_scale.data()}; }
  std::vector<uint8_t> m, v;
  std::vector<float> m_scale, v_scale;
  bool operator==(const Q8State& o) const {
    return m == o.m && v == o.v && std::memcmp(m_scale.data(), o.m_scale.data(), m_scale.size() * 4) == 0 &&
           std::memcmp(v_scale.data(), o.v_scale.data(), v_scale.size() * 4) == 0;
  }
};

TEST(Q8Format, CodeValues) {
  EXPECT_EQ(DecodeQ8V(0), 0.f);
  EXPECT_EQ(DecodeQ8V(1), std::ldexp(1.f, -18));          // smallest linear step
  EXPECT_EQ(DecodeQ8V(1 << 4), std::ldexp(1.f, -14));     // e = 1, f = 0
  EXPECT_EQ(DecodeQ8V(15 << 4), 1.f);                     // e = 15, f = 0
  EXPECT_EQ(DecodeQ8V((15 << 4) - 1), 1.f - 1.f / 32.f);  // e = 14, f = 15
  EXPECT_EQ(DecodeQ8M(15 << 3), 1.f);
  EXPECT_EQ(DecodeQ8M(0x80 | (15 << 3)), -1.f);
  EXPECT_EQ(DecodeQ8M(1), std::ldexp(1.f, -17));
  EXPECT_EQ(DecodeQ8M((14 << 3) | 4), 0.75f);  // 2^-1 * 1.5
  for (int c = 1; c <= (15 << 4); ++c) EXPECT_LT(DecodeQ8V(c - 1), DecodeQ8V(c)) << c;
  for (int c = 1; c <= (15 << 3); ++c) EXPECT_LT(DecodeQ8M(c - 1), DecodeQ8M(c)) << c;
}

TEST(Q8Format, EveryCodeRoundTripsExactly) {
  std::mt19937 rng(7);
  for (int k : {3, 4}) {
    for (uint32_t c = 0; c <= (15u << k); ++c) {
      const float y = k == 3 ? DecodeQ8M(static_cast<uint8_t>(c)) : DecodeQ8V(static_cast<uint8_t>(c));
      for (uint32_t r : {0u, 0xffffffffu, 0x80000000u, static_cast<uint32_t>(rng()), static_cast<uint32_t>(rng())})
        EXPECT_EQ(EncodeQ8Magnitude(y, k, r), c) << "k=" << k << " code=" << c << " r=" << r;
    }
  }
}

TEST(Q8Format, ClampsOutOfRangeAndNaN) {
  for (int k : {3, 4}) {
    EXPECT_EQ(EncodeQ8Magnitude(std::nanf(""), k, 0x12345678u), 15u << k);
    EXPECT_EQ(EncodeQ8Magnitude(-0.5f, k, 0u), 14u << k);  // the magnitude
    EXPECT_EQ(EncodeQ8Magnitude(1.5f, k, 0xffffffffu), 15u << k);
    EXPECT_EQ(EncodeQ8Magnitude(INFINITY, k, 0u), 15u << k);
  }
}

// Every value rounds to one of its two neighbouring codes, and the mean of the decoded value over
// the rounding stream is the value itself (unbiased), in the linear and the exponent range.
TEST(Q8Format, StochasticRoundingIsUnbiased) {
  std::mt19937 rng(11);
  for (int k : {3, 4}) {
    // v's codes never round a non-zero value to 0 (tested below): unbiased from its first step.
    std::uniform_real_distribution<float> log_u(k == 3 ? -20.f : -18.f, 0.f);
    for (int trial = 0; trial < 60; ++trial) {
      const float y = std::exp2(log_u(rng));
      const int kDraws = 1 << 15;
      double sum = 0;
      float lo = 2.f, hi = -1.f;
      for (int i = 0; i < kDraws; ++i) {
        const uint32_t c = EncodeQ8Magnitude(y, k, Q8Random(12345u + trial, i, k - 3));
        const float d = k == 3 ? DecodeQ8M(static_cast<uint8_t>(c)) : DecodeQ8V(static_cast<uint8_t>(c));
        lo = std::min(lo, d);
        hi = std::max(hi, d);
        sum += d;
      }
      EXPECT_LE(lo, y) << "k=" << k << " y=" << y;
      EXPECT_GE(hi, y) << "k=" << k << " y=" << y;
      // Adjacent codes: the gap is one code step, at most 2^-k of hi or the linear step.
      EXPECT_LE(hi - lo, std::max(std::ldexp(hi, -k), std::ldexp(1.f, -14 - k)) * 1.0001f) << y;
      // Bernoulli mean: standard error <= (hi - lo) / (2 sqrt(draws)); allow 5 of them.
      EXPECT_NEAR(sum / kDraws, y, 5 * (hi - lo) / (2 * std::sqrt(double(kDraws))) + 1e-12) << "k=" << k;
    }
  }
}

// A non-zero sqrt(v) below the smallest step becomes that step, never 0 (a zero denominator
// next to a non-zero m would make the update m / eps); m's codes may round to 0.
TEST(Q8Format, NonZeroSecondMomentNeverEncodesToZero) {
  for (float y : {1e-30f, 1e-9f, std::ldexp(1.f, -19), std::ldexp(1.f, -18) * 0.999f}) {
    for (uint32_t r : {0u, 0x7fffffffu, 0xffffffffu}) {
      EXPECT_EQ(EncodeQ8Magnitude(y, 4, r), 1u) << y << " " << r;
    }
  }
  EXPECT_EQ(EncodeQ8Magnitude(0.f, 4, 0u), 0u);
  EXPECT_EQ(EncodeQ8Magnitude(1e-9f, 3, 0u), 0u);  // m: rounds down to 0 when the bits say so
}

struct Hyper {
  AdamWStep hp;
  Hyper() {
    hp.lr = 2e-3f;
    hp.beta1 = 0.8f;
    hp.beta2 = 0.95f;
    hp.eps = 1e-6f;
    hp.weight_decay = 0.1f;
    hp.grad_scale = 0.37f;
    hp.step = 3;
    hp.seed = 99;
  }
};

// One update from a state holding codes (made by QuantizeQ8 of random moments): the weights
// match AdamW in double from the decoded state; the new moments decode to within one code step
// of that AdamW's exp_avg and sqrt(exp_avg_sq), against scales that are the blocks' new maxima.
TEST(AdamW8bit, OneUpdateMatchesDecodedAdamW) {
  const Hyper h;
  for (SimdLevel level : SupportedLevels()) {
    for (int64_t n : {int64_t{1}, int64_t{64}, int64_t{1000}, int64_t{65536 + 77}}) {
      for (bool bf16 : {false, true}) {
        SCOPED_TRACE(testing::Message() << SimdLevelName(level) << " n=" << n << " bf16=" << bf16);
        std::mt19937 rng(5 + n);
        std::normal_distribution<float> normal(0.f, 1.f);
        std::vector<float> p(n), m(n), v(n), g(n);
        std::vector<uint16_t> gb(n), out(n);
        for (int64_t i = 0; i < n; ++i) {
          p[i] = 0.02f * normal(rng);
          m[i] = 0.01f * normal(rng) * (i % 7 == 0 ? 1e-3f : 1.f);
          v[i] = 1e-4f * std::fabs(normal(rng)) * (i % 5 == 0 ? 1e-4f : 1.f);
          g[i] = 0.01f * normal(rng);
          gb[i] = FloatToBf16(g[i]);
          if (bf16) g[i] = Bf16ToFloat(gb[i]);
        }
        Q8State q(n);
        QuantizeQ8(m.data(), v.data(), 1, q.view(), n);
        std::vector<float> m0(n), v0(n);
        DequantizeQ8(q.view(), m0.data(), v0.data(), n);
        const std::vector<float> p0 = p;
        if (bf16) {
          AdamW8bitKernelBf16Grad(level, h.hp, 0, p.data(), q.view(), gb.data(), out.data(), n);
        } else {
          AdamW8bitKernel(level, h.hp, 0, p.data(), q.view(), g.data(), out.data(), n);
        }
        std::vector<float> m1(n), v1(n);
        DequantizeQ8(q.view(), m1.data(), v1.data(), n);
        const double b1 = h.hp.beta1, b2 = h.hp.beta2, lr = h.hp.lr;
        const double bc1 = 1 - std::pow(b1, 3.0), bc2 = 1 - std::pow(b2, 3.0);
        std::vector<double> rm(n), ru(n);
        int64_t bad_p = 0, bad_m = 0, bad_v = 0;
        for (int64_t i = 0; i < n; ++i) {
          const double gs = double(g[i]) * double(h.hp.grad_scale);
          rm[i] = b1 * m0[i] + (1 - b1) * gs;
          ru[i] = std::sqrt(b2 * v0[i] + (1 - b2) * gs * gs);
          const double rp = double(p0[i]) * (1 - lr * h.hp.weight_decay) -
                            lr / bc1 * rm[i] / (ru[i] / std::sqrt(bc2) + h.hp.eps);
          // fp32 rounding of p0 * decay + update: relative to the larger of the two terms.
          if (std::fabs(p[i] - rp) > 1e-6 * (std::fabs(rp) + std::fabs(p0[i])) + 1e-9) {
            if (bad_p < 3) ADD_FAILURE() << "p[" << i << "]=" << p[i] << " ref " << rp << " p0 " << p0[i];
            ++bad_p;
          }
          if (out[i] != FloatToBf16(p[i])) ++bad_p;
        }
        for (int64_t b = 0; b < n; b += kQ8Block) {
          double mmax = 0, umax = 0;
          for (int64_t i = b; i < std::min(n, b + kQ8Block); ++i) {
            mmax = std::max(mmax, std::fabs(rm[i]));
            umax = std::max(umax, ru[i]);
          }
          EXPECT_NEAR(q.m_scale[b / kQ8Block], mmax, 1e-6 * mmax);
          EXPECT_NEAR(q.v_scale[b / kQ8Block], umax, 1e-6 * umax);
          for (int64_t i = b; i < std::min(n, b + kQ8Block); ++i) {
            const double tol_m = std::max(std::fabs(rm[i]) / 8, mmax * std::ldexp(1.0, -17)) * 1.001 + 1e-12;
            const double tol_u = std::max(ru[i] / 16, umax * std::ldexp(1.0, -18)) * 1.001 + 1e-12;
            if (std::fabs(m1[i] - rm[i]) > tol_m) ++bad_m;
            if (std::fabs(std::sqrt(double(v1[i])) - ru[i]) > tol_u) ++bad_v;
          }
        }
        EXPECT_EQ(bad_p, 0);
        EXPECT_EQ(bad_m, 0);
        EXPECT_EQ(bad_v, 0);
      }
    }
  }
}

// The kernels decode codes arithmetically (vectorised), DequantizeQ8 from the tables. Every
// m code (next to a fixed v code) and every v code (next to a fixed non-zero m code), under
// several block scales, with zero weights and gradients: the new weight is the update alone,
// -lr/bc1 * m1 / (sqrt(v1)/sqrt(bc2) + eps) with m1 = beta1*m0, v1 = beta2*v0, so it must match
// AdamW in double from the table values to fp32 rounding (one code step off is a 1/16-1/8
// relative error), and is exactly 0 for m = +-0. Both lerp directions (beta1 0.8 and 0.3).
TEST(AdamW8bit, KernelDecodesEveryCodeAsTheTables) {
  const int64_t n = 512;
  for (float beta1 : {0.8f, 0.3f}) {
    Hyper h;
    h.hp.beta1 = beta1;
    for (SimdLevel level : SupportedLevels()) {
      SCOPED_TRACE(testing::Message() << SimdLevelName(level) << " beta1=" << beta1);
      Q8State q(n);
      for (int64_t i = 0; i < 256; ++i) {
        q.m[i] = static_cast<uint8_t>(i);  // every m code
        q.v[i] = 77;
        q.m[256 + i] = 0x80 | 93;          // a negative m
        q.v[256 + i] = static_cast<uint8_t>(i);  // every v code
      }
      const float scales[8] = {0.3f, 1e-3f, 2.0f, 5e-5f, 1.0f, 7e-2f, 3e-6f, 0.5f};
      for (int b = 0; b < 8; ++b) {
        q.m_scale[b] = scales[b];
        q.v_scale[b] = scales[7 - b];
      }
      std::vector<float> m0(n), v0(n), p(n, 0.f), g(n, 0.f);
      DequantizeQ8(q.view(), m0.data(), v0.data(), n);
      AdamW8bitKernel(level, h.hp, 0, p.data(), q.view(), g.data(), nullptr, n);
      const double b1 = h.hp.beta1, b2 = h.hp.beta2, lr = h.hp.lr;
      const double bc1 = 1 - std::pow(b1, 3.0), bc2 = 1 - std::pow(b2, 3.0);
      for (int64_t i = 0; i < n; ++i) {
        const double rp = -lr / bc1 * (b1 * m0[i]) / (std::sqrt(b2 * v0[i]) / std::sqrt(bc2) + h.hp.eps);
        EXPECT_NEAR(p[i], rp, 1e-5 * std::fabs(rp)) << "element " << i;  // codes above
      }
    }
  }
}

TEST(AdamW8bit, LevelsThreadsAndChunksAgreeBitForBit) {
  const Hyper h;
  const int64_t n = 3 * 65536 + 1000;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> p0(n), g(n);
  for (int64_t i = 0; i < n; ++i) p0[i] = normal(rng), g[i] = 0.1f * normal(rng);
  Q8State ref_q(n);
  std::vector<float> ref_p;
  bool first = true;
  auto check = [&](const std::vector<float>& p, const Q8State& q, const char* what) {
    if (first) {
      ref_p = p;
      ref_q = q;
      first = false;
      return;
    }
    EXPECT_EQ(std::memcmp(p.data(), ref_p.data(), n * 4), 0) << what;
    EXPECT_TRUE(q == ref_q) << what;
  };
  for (SimdLevel level : SupportedLevels()) {
    for (int threads : {1, 3}) {
      for (int64_t chunk : {int64_t{64}, int64_t{4096}, int64_t{65536}}) {
        CpuAdamW adam(threads, level);
        adam.set_chunk_elems(chunk);
        std::vector<float> p = p0;
        Q8State q(n);
        for (int step = 1; step <= 3; ++step) {
          AdamWStep hp = h.hp;
          hp.step = step;
          hp.seed = Q8Seed(step, 4);
          adam.Update8bit(hp, p.data(), q.view(), g.data(), nullptr, n);
        }
        check(p, q, SimdLevelName(level));
      }
    }
  }
}

// With zero gradients exp_avg_sq must decay as beta2^t. Each step moves sqrt(v) by ~0.05%, a
// sixtieth of a code step: round-to-nearest would keep v where it started.
TEST(AdamW8bit, SecondMomentDecaysUnderZeroGradients) {
  const int64_t n = 4096;
  std::vector<float> p(n, 0.f), m(n, 0.f), v(n), zero(n, 0.f);
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> uni(0.5f, 1.f);
  double v_start = 0;
  for (auto& x : v) x = uni(rng), v_start += x;
  Q8State q(n);
  QuantizeQ8(m.data(), v.data(), 2, q.view(), n);
  CpuAdamW adam(2);
  AdamWStep hp;
  hp.lr = 0;
  hp.beta2 = 0.999f;
  const int kSteps = 700;
  for (int s = 1; s <= kSteps; ++s) {
    hp.step = s;
    hp.seed = Q8Seed(s, 0);
    adam.Update8bit(hp, p.data(), q.view(), zero.data(), nullptr, n);
  }
  DequantizeQ8(q.view(), m.data(), v.data(), n);
  double v_end = 0;
  for (float x : v) v_end += x;
  EXPECT_NEAR(v_end / v_start, std::pow(0.999, kSteps), 0.03 * std::pow(0.999, kSteps));
}

// Noisy quadratic: 8-bit moments reach the same loss as fp32 AdamW.
TEST(AdamW8bit, ConvergesLikeFp32AdamW) {
  const int64_t n = 20000;
  std::mt19937 rng(21);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> target(n), curv(n);
  for (int64_t i = 0; i < n; ++i) target[i] = normal(rng), curv[i] = std::exp(2.f * normal(rng));
  std::vector<float> p32(n, 0.f), m32(n, 0.f), v32(n, 0.f), p8(n, 0.f), g(n);
  Q8State q(n);
  CpuAdamW adam(2);
  auto loss = [&](const std::vector<float>& p) {
    double l = 0;
    for (int64_t i = 0; i < n; ++i) l += 0.5 * curv[i] * (p[i] - target[i]) * (p[i] - target[i]);
    return l / n;
  };
  const double start = loss(p32);
  AdamWStep hp;
  hp.lr = 0.01f;
  for (int s = 1; s <= 600; ++s) {
    hp.step = s;
    hp.seed = Q8Seed(s, 0);
    for (int64_t i = 0; i < n; ++i) g[i] = curv[i] * (p32[i] - target[i]) + 0.3f * normal(rng);
    adam.Update(hp, p32.data(), m32.data(), v32.data(), g.data(), nullptr, n);
    for (int64_t i = 0; i < n; ++i) g[i] = curv[i] * (p8[i] - target[i]) + 0.3f * normal(rng);
    adam.Update8bit(hp, p8.data(), q.view(), g.data(), nullptr, n);
  }
  const double l32 = loss(p32), l8 = loss(p8);
  EXPECT_LT(l32, 0.05 * start);
  EXPECT_NEAR(l8, l32, 0.1 * l32) << "start " << start;
}

TEST(AdamW8bit, CheckpointConversionRoundTrips) {
  const int64_t n = 1000;
  std::mt19937 rng(4);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> m(n), v(n);
  for (int64_t i = 0; i < n; ++i) m[i] = normal(rng), v[i] = std::fabs(normal(rng));
  Q8State a(n), b(n);
  QuantizeQ8(m.data(), v.data(), 8, a.view(), n);
  std::vector<float> m1(n), v1(n);
  DequantizeQ8(a.view(), m1.data(), v1.data(), n);
  QuantizeQ8(m1.data(), v1.data(), 9, b.view(), n);  // another stream: the codes are exact points
  EXPECT_TRUE(a == b);
}

}  // namespace
}  // namespace sfd
