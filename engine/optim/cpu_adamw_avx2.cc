// AVX2 + FMA kernels of cpu_adamw.h. Built with -mavx2 -mfma -mf16c; only called after the
// runtime check in cpu_adamw.cc.
//
// Layout of one AdamW call: a head until the bf16 output is 16-byte aligned, a main loop of 8
// elements (unaligned fp32 loads/stores, streaming 16-byte bf16 stores), a tail. Head and tail
// copy their few elements into zero-padded 8-lane stack buffers and run the very same vector
// code, so an element's result does not depend on its position. Contraction is off in this
// file: FMAs appear only where written.
#pragma GCC optimize("fp-contract=off")

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "engine/optim/cpu_adamw_kernels.h"

namespace sfd {
namespace optim_internal {
namespace {

struct Consts8 {
  __m256 grad_scale, decay, lerp_coef, beta2, one_minus_beta2, inv_bc2_sqrt, eps, neg_step_size;
  __m256 base_is_grad;  // all-ones lanes select grad as the lerp base
};

Consts8 Broadcast(const AdamWConsts& c) {
  Consts8 r;
  r.grad_scale = _mm256_set1_ps(c.grad_scale);
  r.decay = _mm256_set1_ps(c.decay);
  r.lerp_coef = _mm256_set1_ps(c.lerp_coef);
  r.beta2 = _mm256_set1_ps(c.beta2);
  r.one_minus_beta2 = _mm256_set1_ps(c.one_minus_beta2);
  r.inv_bc2_sqrt = _mm256_set1_ps(c.inv_bc2_sqrt);
  r.eps = _mm256_set1_ps(c.eps);
  r.neg_step_size = _mm256_set1_ps(c.neg_step_size);
  r.base_is_grad = _mm256_castsi256_ps(_mm256_set1_epi32(c.lerp_from_end ? -1 : 0));
  return r;
}

inline __m256 LoadBf16(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline __m256 LoadGrad(const float* g) { return _mm256_loadu_ps(g); }
inline __m256 LoadGrad(const uint16_t* g) { return LoadBf16(g); }

// fp32 -> bf16 bits, round-to-nearest-even, NaN -> quiet NaN (same as common/half.h).
inline __m128i ToBf16(__m256 x) {
  const __m256i bits = _mm256_castps_si256(x);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_srli_epi32(
      _mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
  const __m256i nan = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
  const __m256i is_nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  const __m256i r = _mm256_blendv_epi8(rounded, nan, is_nan);  // lanes hold 0..0xffff
  // packus works per 128-bit lane: [a0..a3 a0..a3 | a4..a7 a4..a7]; gather qwords 0 and 2.
  const __m256i packed = _mm256_packus_epi32(r, r);
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
}

template <typename G>
inline void AdamW8(const Consts8& c, float* p, float* m, float* v, const G* g, uint16_t* out,
                   bool stream) {
  __m256 gv = _mm256_mul_ps(LoadGrad(g), c.grad_scale);
  __m256 pv = _mm256_mul_ps(_mm256_loadu_ps(p), c.decay);
  __m256 mv = _mm256_loadu_ps(m);
  __m256 vv = _mm256_loadu_ps(v);
  // torch lerp: self + w * (end - self), or end - (end - self) * (1 - w) for w >= 0.5.
  const __m256 base = _mm256_blendv_ps(mv, gv, c.base_is_grad);
  mv = _mm256_fmadd_ps(c.lerp_coef, _mm256_sub_ps(gv, mv), base);
  // v * beta2 + ((1 - beta2) * g) * g
  vv = _mm256_fmadd_ps(_mm256_mul_ps(c.one_minus_beta2, gv), gv, _mm256_mul_ps(vv, c.beta2));
  // denom = sqrt(v) / sqrt(bc2) + eps (multiplying by the reciprocal saves one vdivps).
  const __m256 denom = _mm256_fmadd_ps(_mm256_sqrt_ps(vv), c.inv_bc2_sqrt, c.eps);
  pv = _mm256_add_ps(pv, _mm256_div_ps(_mm256_mul_ps(c.neg_step_size, mv), denom));
  _mm256_storeu_ps(p, pv);
  _mm256_storeu_ps(m, mv);
  _mm256_storeu_ps(v, vv);
  if (out != nullptr) {
    const __m128i h = ToBf16(pv);
    if (stream) {
      _mm_stream_si128(reinterpret_cast<__m128i*>(out), h);
    } else {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out), h);
    }
  }
}

// Runs AdamW8 on count < 8 elements through zero-padded stack buffers.
template <typename G>
void AdamWPartial(const Consts8& c, float* p, float* m, float* v, const G* g, uint16_t* out,
                  int64_t count) {
  alignas(32) float pb[8] = {}, mb[8] = {}, vb[8] = {};
  alignas(32) G gb[8] = {};
  alignas(16) uint16_t ob[8] = {};
  std::memcpy(pb, p, count * sizeof(float));
  std::memcpy(mb, m, count * sizeof(float));
  std::memcpy(vb, v, count * sizeof(float));
  std::memcpy(gb, g, count * sizeof(G));
  AdamW8(c, pb, mb, vb, gb, out ? ob : nullptr, false);
  std::memcpy(p, pb, count * sizeof(float));
  std::memcpy(m, mb, count * sizeof(float));
  std::memcpy(v, vb, count * sizeof(float));
  if (out != nullptr) std::memcpy(out, ob, count * sizeof(uint16_t));
}

template <typename G>
void AdamWImpl(const AdamWConsts& hc, float* p, float* m, float* v, const G* g, uint16_t* out,
               int64_t n) {
  const Consts8 c = Broadcast(hc);
  int64_t i = 0;
  if (out != nullptr) {
    const int64_t misalign = static_cast<int64_t>(reinterpret_cast<uintptr_t>(out) & 15);
    int64_t head = (misalign & 1) ? 0 : ((16 - misalign) & 15) / 2;
    if (head > n) head = n;
    if (head > 0) {
      AdamWPartial(c, p, m, v, g, out, head);
      i = head;
    }
  }
  const bool stream = out != nullptr && (reinterpret_cast<uintptr_t>(out + i) & 15) == 0;
  for (; i + 8 <= n; i += 8) {
    AdamW8(c, p + i, m + i, v + i, g + i, out ? out + i : nullptr, stream);
  }
  if (i < n) AdamWPartial(c, p + i, m + i, v + i, g + i, out ? out + i : nullptr, n - i);
  if (stream) _mm_sfence();
}

void AdamWAvx2(const AdamWConsts& c, float* param, float* m, float* v, const float* grad,
               uint16_t* param_bf16, int64_t n) {
  AdamWImpl(c, param, m, v, grad, param_bf16, n);
}

void AdamWBf16GradAvx2(const AdamWConsts& c, float* param, float* m, float* v, const uint16_t* grad,
                       uint16_t* param_bf16, int64_t n) {
  AdamWImpl(c, param, m, v, grad, param_bf16, n);
}

inline __m256 Load8(const float* x) { return _mm256_loadu_ps(x); }
inline __m256 Load8(const uint16_t* x) { return LoadBf16(x); }

// Squares in double (exact), two 4-lane accumulators per 8 inputs; tail zero-padded.
template <typename T>
double SumSquaresImpl(const T* x, int64_t n) {
  __m256d acc_lo = _mm256_setzero_pd();
  __m256d acc_hi = _mm256_setzero_pd();
  auto accumulate = [&](__m256 f) {
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(f));
    const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1));
    acc_lo = _mm256_fmadd_pd(lo, lo, acc_lo);
    acc_hi = _mm256_fmadd_pd(hi, hi, acc_hi);
  };
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) accumulate(Load8(x + i));
  if (i < n) {
    alignas(32) T buf[8] = {};
    std::memcpy(buf, x + i, (n - i) * sizeof(T));
    accumulate(Load8(buf));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(acc_lo, acc_hi));
  return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}

double SumSquaresAvx2(const float* x, int64_t n) { return SumSquaresImpl(x, n); }
double SumSquaresBf16Avx2(const uint16_t* x, int64_t n) { return SumSquaresImpl(x, n); }

void FloatToBf16Avx2(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), ToBf16(_mm256_loadu_ps(src + i)));
  }
  if (i < n) {
    alignas(32) float in[8] = {};
    alignas(16) uint16_t o[8];
    std::memcpy(in, src + i, (n - i) * sizeof(float));
    _mm_store_si128(reinterpret_cast<__m128i*>(o), ToBf16(_mm256_load_ps(in)));
    std::memcpy(dst + i, o, (n - i) * sizeof(uint16_t));
  }
}

void Bf16ToFloatAvx2(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, LoadBf16(src + i));
  for (; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(src[i]) << 16;
    std::memcpy(dst + i, &bits, 4);
  }
}

void AddBf16ToFloatAvx2(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(dst + i, _mm256_add_ps(_mm256_loadu_ps(dst + i), LoadBf16(src + i)));
  }
  for (; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(src[i]) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    dst[i] += f;
  }
}

}  // namespace

const KernelTable kAvx2Kernels = {
    AdamWAvx2,       AdamWBf16GradAvx2, SumSquaresAvx2,     SumSquaresBf16Avx2,
    FloatToBf16Avx2, Bf16ToFloatAvx2,   AddBf16ToFloatAvx2,
};

}  // namespace optim_internal
}  // namespace sfd
