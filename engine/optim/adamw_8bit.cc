// 8-bit AdamW moments: runtime dispatch of the kernels, the format's scalar helpers and the
// checkpoint conversions (adamw_8bit.h). The helpers compile the same kernel body
// (adamw_8bit_kernel.inc) with baseline flags, so they round exactly as the kernels do.
#include "engine/optim/adamw_8bit.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "engine/common/status.h"
#include "engine/optim/cpu_adamw_kernels.h"

namespace sfd {
namespace optim_internal {
namespace q8_helpers {

#include "engine/optim/adamw_8bit_kernel.inc"

}  // namespace q8_helpers
}  // namespace optim_internal

namespace {

namespace h = optim_internal::q8_helpers;


const optim_internal::Q8KernelTable& Q8Kernels(SimdLevel level) {
  SFD_CHECK(SimdLevelSupported(level))
      << "SIMD level " << SimdLevelName(level) << " is not supported by this CPU";
  switch (level) {
    case SimdLevel::kAvx512:
      return optim_internal::kQ8Avx512Kernels;
    case SimdLevel::kAvx2:
      return optim_internal::kQ8Avx2Kernels;
    case SimdLevel::kScalar:
      break;
  }
  return optim_internal::kQ8ScalarKernels;
}

}  // namespace

Q8Moments Q8Moments::At(int64_t offset) const {
  SFD_CHECK(offset % kQ8Block == 0) << "8-bit moments sliced at " << offset;
  return {m + offset, m_scale + offset / kQ8Block, v + offset, v_scale + offset / kQ8Block};
}

float DecodeQ8M(uint8_t code) { return h::kDecode.m[code]; }
float DecodeQ8V(uint8_t code) { return h::kDecode.v[code]; }

uint32_t EncodeQ8Magnitude(float y, int mantissa_bits, uint32_t r) {
  SFD_CHECK(mantissa_bits == 3 || mantissa_bits == 4) << mantissa_bits;
  r &= 0xffffu;
  return mantissa_bits == 3 ? h::EncodeMag<3, false>(y, r) : h::EncodeMag<4, true>(y, r);
}

uint32_t Q8Random(uint32_t seed, int64_t index, int stream) {
  const uint32_t r = h::RandomBits(seed, static_cast<uint32_t>(index));
  return stream == 0 ? r & 0xffffu : r >> 16;
}

uint32_t Q8Seed(int64_t step, int unit) {
  return h::Mix32(h::Mix32(static_cast<uint32_t>(step) * 0x9e3779b9u) ^
                  (static_cast<uint32_t>(unit) * 0x85ebca6bu + 0x165667b1u));
}

void AdamW8bitKernel(SimdLevel level, const AdamWStep& hp, int64_t index0, float* param, Q8Moments q,
                     const float* grad, uint16_t* param_bf16, int64_t n) {
  if (n <= 0) return;
  SFD_CHECK(index0 % kQ8Block == 0) << "8-bit AdamW slice starts at " << index0;
  Q8Kernels(level).adamw8(optim_internal::MakeAdamWConsts(hp), hp.seed, index0, param, q, grad,
                          param_bf16, n);
}

void AdamW8bitKernelBf16Grad(SimdLevel level, const AdamWStep& hp, int64_t index0, float* param,
                             Q8Moments q, const uint16_t* grad_bf16, uint16_t* param_bf16, int64_t n) {
  if (n <= 0) return;
  SFD_CHECK(index0 % kQ8Block == 0) << "8-bit AdamW slice starts at " << index0;
  Q8Kernels(level).adamw8_bf16_grad(optim_internal::MakeAdamWConsts(hp), hp.seed, index0, param, q,
                                    grad_bf16, param_bf16, n);
}

void DequantizeQ8(const Q8Moments& q, float* m, float* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t blk = i / kQ8Block;
    m[i] = h::kDecode.m[q.m[i]] * q.m_scale[blk];
    const float u = h::kDecode.v[q.v[i]] * q.v_scale[blk];
    v[i] = u * u;
  }
}

void QuantizeQ8(const float* m, const float* v, uint32_t seed, Q8Moments q, int64_t n,
                int64_t index0) {
  SFD_CHECK(index0 % kQ8Block == 0) << "8-bit moments quantized from " << index0;
  for (int64_t b = 0; b < n; b += kQ8Block) {
    const int64_t cnt = std::min(kQ8Block, n - b), blk = b / kQ8Block;
    float mmax = 0, umax = 0;
    for (int64_t i = b; i < b + cnt; ++i) {
      mmax = std::max(mmax, std::fabs(m[i]));
      umax = std::max(umax, std::sqrt(std::max(v[i], 0.0f)));
    }
    const float inv_m = mmax > 0 ? 1.0f / mmax : 0.0f, inv_u = umax > 0 ? 1.0f / umax : 0.0f;
    for (int64_t i = b; i < b + cnt; ++i) {
      const uint32_t sign = std::signbit(m[i]) ? 0x80u : 0u;
      q.m[i] = static_cast<uint8_t>(sign | h::EncodeMag<3, false>(std::fabs(m[i]) * inv_m,
                                                           Q8Random(seed, index0 + i, 0)));
      q.v[i] = static_cast<uint8_t>(h::EncodeMag<4, true>(std::sqrt(std::max(v[i], 0.0f)) * inv_u,
                                                    Q8Random(seed, index0 + i, 1)));
    }
    q.m_scale[blk] = mmax;
    q.v_scale[blk] = umax;
  }
}

}  // namespace sfd
