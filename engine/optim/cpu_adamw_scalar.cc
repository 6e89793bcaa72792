// Portable (baseline x86-64 / any CPU) kernels of cpu_adamw.h: the reference implementation
// and the fallback for CPUs without AVX2. Plain fp32 arithmetic in torch's operation order,
// no FMA contraction (the file is built without -mfma).
#include <cmath>
#include <cstdint>

#include "engine/common/half.h"
#include "engine/optim/cpu_adamw_kernels.h"

namespace sfd {
namespace optim_internal {
namespace {

inline void AdamWOne(const AdamWConsts& c, float g, float* p, float* m, float* v, uint16_t* out) {
  g = g * c.grad_scale;
  float pv = *p * c.decay;
  float mv = *m;
  const float base = c.lerp_from_end ? g : mv;
  mv = base + c.lerp_coef * (g - mv);
  float vv = *v * c.beta2 + (c.one_minus_beta2 * g) * g;
  const float denom = std::sqrt(vv) / c.bc2_sqrt + c.eps;
  pv = pv + (c.neg_step_size * mv) / denom;
  *p = pv;
  *m = mv;
  *v = vv;
  if (out != nullptr) *out = FloatToBf16(pv);
}

void AdamWScalar(const AdamWConsts& c, float* param, float* m, float* v, const float* grad,
                 uint16_t* param_bf16, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    AdamWOne(c, grad[i], param + i, m + i, v + i, param_bf16 ? param_bf16 + i : nullptr);
  }
}

void AdamWBf16GradScalar(const AdamWConsts& c, float* param, float* m, float* v,
                         const uint16_t* grad, uint16_t* param_bf16, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    AdamWOne(c, Bf16ToFloat(grad[i]), param + i, m + i, v + i,
             param_bf16 ? param_bf16 + i : nullptr);
  }
}

// Four interleaved accumulators (lane i%4), the same association as the SIMD versions use
// per lane; the squares of fp32 values are exact in double.
double SumSquaresScalar(const float* x, int64_t n) {
  double acc[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int k = 0; k < 4; ++k) {
      const double d = x[i + k];
      acc[k] += d * d;
    }
  }
  for (; i < n; ++i) {
    const double d = x[i];
    acc[0] += d * d;
  }
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

double SumSquaresBf16Scalar(const uint16_t* x, int64_t n) {
  double acc[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int k = 0; k < 4; ++k) {
      const double d = Bf16ToFloat(x[i + k]);
      acc[k] += d * d;
    }
  }
  for (; i < n; ++i) {
    const double d = Bf16ToFloat(x[i]);
    acc[0] += d * d;
  }
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

void FloatToBf16Scalar(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = FloatToBf16(src[i]);
}

void Bf16ToFloatScalar(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToFloat(src[i]);
}

void AddBf16ToFloatScalar(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += Bf16ToFloat(src[i]);
}

}  // namespace

const KernelTable kScalarKernels = {
    AdamWScalar,       AdamWBf16GradScalar, SumSquaresScalar,     SumSquaresBf16Scalar,
    FloatToBf16Scalar, Bf16ToFloatScalar,   AddBf16ToFloatScalar,
};

}  // namespace optim_internal
}  // namespace sfd
