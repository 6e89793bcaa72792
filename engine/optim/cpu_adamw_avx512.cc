// AVX-512 (F/BW/VL/DQ) kernels of cpu_adamw.h. Built with -mavx512f -mavx512bw -mavx512vl
// -mavx512dq -mfma -mf16c; only called after the runtime check in cpu_adamw.cc.
//
// Layout of one AdamW call: a masked head until the bf16 output is 32-byte aligned, a main
// loop of 16 elements (unaligned fp32 loads/stores, streaming 32-byte bf16 stores), a masked
// tail. Head and tail run the very same arithmetic as the body (masked loads/stores), so an
// element's result does not depend on its position. Contraction is off in this file: FMAs
// appear only where written.
// torch's two divisions become a multiply by 1/sqrt(bc2) and an rcp14 + Newton reciprocal of
// the denominator (with the divisions the loop was compute-bound, not memory-bound).
#pragma GCC optimize("fp-contract=off")

#include <immintrin.h>

#include <cstdint>

#include "engine/optim/cpu_adamw_kernels.h"

namespace sfd {
namespace optim_internal {
namespace {

struct Consts16 {
  __m512 grad_scale, decay, lerp_coef, beta2, one_minus_beta2, inv_bc2_sqrt, eps, neg_step_size;
  __mmask16 base_is_grad;
};

Consts16 Broadcast(const AdamWConsts& c) {
  Consts16 r;
  r.grad_scale = _mm512_set1_ps(c.grad_scale);
  r.decay = _mm512_set1_ps(c.decay);
  r.lerp_coef = _mm512_set1_ps(c.lerp_coef);
  r.beta2 = _mm512_set1_ps(c.beta2);
  r.one_minus_beta2 = _mm512_set1_ps(c.one_minus_beta2);
  r.inv_bc2_sqrt = _mm512_set1_ps(c.inv_bc2_sqrt);
  r.eps = _mm512_set1_ps(c.eps);
  r.neg_step_size = _mm512_set1_ps(c.neg_step_size);
  r.base_is_grad = c.lerp_from_end ? 0xffff : 0;
  return r;
}

inline __m512 LoadF32(const float* p, __mmask16 k, bool masked) {
  return masked ? _mm512_maskz_loadu_ps(k, p) : _mm512_loadu_ps(p);
}
inline void StoreF32(float* p, __m512 x, __mmask16 k, bool masked) {
  if (masked) {
    _mm512_mask_storeu_ps(p, k, x);
  } else {
    _mm512_storeu_ps(p, x);
  }
}
inline __m512 LoadBf16(const uint16_t* p, __mmask16 k, bool masked) {
  const __m256i h = masked ? _mm256_maskz_loadu_epi16(k, p)
                           : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
inline __m512 LoadGrad(const float* g, __mmask16 k, bool masked) { return LoadF32(g, k, masked); }
inline __m512 LoadGrad(const uint16_t* g, __mmask16 k, bool masked) {
  return LoadBf16(g, k, masked);
}

// fp32 -> bf16 bits, round-to-nearest-even, NaN -> quiet NaN (same as common/half.h).
inline __m256i ToBf16(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_srli_epi32(
      _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __m512i nan = _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
  const __mmask16 is_nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(is_nan, rounded, nan));
}

template <typename G>
inline void AdamW16(const Consts16& c, float* p, float* m, float* v, const G* g, uint16_t* out,
                    __mmask16 k, bool masked, bool stream) {
  __m512 gv = _mm512_mul_ps(LoadGrad(g, k, masked), c.grad_scale);
  __m512 pv = _mm512_mul_ps(LoadF32(p, k, masked), c.decay);
  __m512 mv = LoadF32(m, k, masked);
  __m512 vv = LoadF32(v, k, masked);
  // torch lerp: self + w * (end - self), or end - (end - self) * (1 - w) for w >= 0.5.
  const __m512 base = _mm512_mask_blend_ps(c.base_is_grad, mv, gv);
  mv = _mm512_fmadd_ps(c.lerp_coef, _mm512_sub_ps(gv, mv), base);
  // v * beta2 + ((1 - beta2) * g) * g
  vv = _mm512_fmadd_ps(_mm512_mul_ps(c.one_minus_beta2, gv), gv, _mm512_mul_ps(vv, c.beta2));
  // denom = sqrt(v) / sqrt(bc2) + eps; 1 / denom from rcp14 plus one Newton step (relative
  // error ~2^-28, below fp32 rounding): the two vdivps would make the loop compute-bound.
  const __m512 denom = _mm512_fmadd_ps(_mm512_sqrt_ps(vv), c.inv_bc2_sqrt, c.eps);
  __m512 r = _mm512_rcp14_ps(denom);
  r = _mm512_fmadd_ps(r, _mm512_fnmadd_ps(denom, r, _mm512_set1_ps(1.0f)), r);
  pv = _mm512_fmadd_ps(_mm512_mul_ps(c.neg_step_size, mv), r, pv);
  StoreF32(p, pv, k, masked);
  StoreF32(m, mv, k, masked);
  StoreF32(v, vv, k, masked);
  if (out != nullptr) {
    const __m256i h = ToBf16(pv);
    if (masked) {
      _mm256_mask_storeu_epi16(out, k, h);
    } else if (stream) {
      _mm256_stream_si256(reinterpret_cast<__m256i*>(out), h);
    } else {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), h);
    }
  }
}

inline __mmask16 FirstLanes(int64_t count) { return static_cast<__mmask16>((1u << count) - 1u); }

template <typename G>
void AdamWImpl(const AdamWConsts& hc, float* p, float* m, float* v, const G* g, uint16_t* out,
               int64_t n) {
  const Consts16 c = Broadcast(hc);
  int64_t i = 0;
  if (out != nullptr) {
    const int64_t misalign = static_cast<int64_t>(reinterpret_cast<uintptr_t>(out) & 31);
    int64_t head = ((32 - misalign) & 31) / 2;  // elements until out is 32-byte aligned
    if ((misalign & 1) != 0) head = 0;          // odd address: no streaming possible, see below
    if (head > n) head = n;
    if (head > 0) {
      AdamW16(c, p, m, v, g, out, FirstLanes(head), true, false);
      i = head;
    }
  }
  const bool stream = out != nullptr && (reinterpret_cast<uintptr_t>(out + i) & 31) == 0;
  for (; i + 16 <= n; i += 16) {
    AdamW16(c, p + i, m + i, v + i, g + i, out ? out + i : nullptr, 0xffff, false, stream);
  }
  if (i < n) {
    AdamW16(c, p + i, m + i, v + i, g + i, out ? out + i : nullptr, FirstLanes(n - i), true, false);
  }
  if (stream) _mm_sfence();
}

void AdamWAvx512(const AdamWConsts& c, float* param, float* m, float* v, const float* grad,
                 uint16_t* param_bf16, int64_t n) {
  AdamWImpl(c, param, m, v, grad, param_bf16, n);
}

void AdamWBf16GradAvx512(const AdamWConsts& c, float* param, float* m, float* v,
                         const uint16_t* grad, uint16_t* param_bf16, int64_t n) {
  AdamWImpl(c, param, m, v, grad, param_bf16, n);
}

// Squares in double (exact), two 8-lane accumulators per 16 inputs.
template <typename T>
double SumSquaresImpl(const T* x, int64_t n) {
  __m512d acc_lo = _mm512_setzero_pd();
  __m512d acc_hi = _mm512_setzero_pd();
  int64_t i = 0;
  for (; i < n; i += 16) {
    const bool masked = i + 16 > n;
    const __mmask16 k = masked ? FirstLanes(n - i) : static_cast<__mmask16>(0xffff);
    __m512 f;
    if constexpr (sizeof(T) == 4) {
      f = LoadF32(reinterpret_cast<const float*>(x + i), k, masked);
    } else {
      f = LoadBf16(reinterpret_cast<const uint16_t*>(x + i), k, masked);
    }
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(f));
    const __m512d hi =
        _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1)));
    acc_lo = _mm512_fmadd_pd(lo, lo, acc_lo);
    acc_hi = _mm512_fmadd_pd(hi, hi, acc_hi);
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(acc_lo, acc_hi));
}

double SumSquaresAvx512(const float* x, int64_t n) { return SumSquaresImpl(x, n); }
double SumSquaresBf16Avx512(const uint16_t* x, int64_t n) { return SumSquaresImpl(x, n); }

void FloatToBf16Avx512(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const bool masked = i + 16 > n;
    const __mmask16 k = masked ? FirstLanes(n - i) : static_cast<__mmask16>(0xffff);
    const __m256i h = ToBf16(LoadF32(src + i, k, masked));
    if (masked) {
      _mm256_mask_storeu_epi16(dst + i, k, h);
    } else {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), h);
    }
  }
}

void Bf16ToFloatAvx512(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const bool masked = i + 16 > n;
    const __mmask16 k = masked ? FirstLanes(n - i) : static_cast<__mmask16>(0xffff);
    StoreF32(dst + i, LoadBf16(src + i, k, masked), k, masked);
  }
}

void AddBf16ToFloatAvx512(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const bool masked = i + 16 > n;
    const __mmask16 k = masked ? FirstLanes(n - i) : static_cast<__mmask16>(0xffff);
    const __m512 sum = _mm512_add_ps(LoadF32(dst + i, k, masked), LoadBf16(src + i, k, masked));
    StoreF32(dst + i, sum, k, masked);
  }
}

}  // namespace

const KernelTable kAvx512Kernels = {
    AdamWAvx512,       AdamWBf16GradAvx512, SumSquaresAvx512,     SumSquaresBf16Avx512,
    FloatToBf16Avx512, Bf16ToFloatAvx512,   AddBf16ToFloatAvx512,
};

}  // namespace optim_internal
}  // namespace sfd
