// 8-bit AdamW moments (`optimizer.name: adamw_8bit`): the exp_avg / exp_avg_sq of a unit kept
// as one byte per element plus one fp32 scale per block of kQ8Block elements, instead of two
// fp32 values. Host RAM per parameter drops from 14 bytes (fp32 master + m + v, bf16 mirror) to
// 8.125. The master weights stay fp32 and the update itself is computed in fp32; only the
// moments are stored coarsely. Opt-in: it changes the optimizer's math (like bitsandbytes'
// 8-bit Adam), so results are close to, not equal to, torch.optim.AdamW.
//
// Format (per block of kQ8Block consecutive elements of a unit, blocks start at element 0):
//   m  uint8 [n]          bit 7 sign, bits 0-6 a 4-bit-exponent/3-bit-mantissa magnitude code
//   m_scale fp32 [blocks] absmax of the block's exp_avg
//   v  uint8 [n]          a 4-bit-exponent/4-bit-mantissa code of sqrt(exp_avg_sq)
//   v_scale fp32 [blocks] max of the block's sqrt(exp_avg_sq)
// A magnitude code c with k mantissa bits (e = c >> k, f = c & (2^k - 1)) means
//   e == 0: f * 2^(-14-k)           (linear near zero)
//   e  > 0: 2^(e-15) * (1 + f/2^k)  (15 binades up to 1.0)
// times the block's scale. Storing sqrt(v) halves the dynamic range the code must span, and the
// update needs sqrt(v) anyway.
//
// Rounding is stochastic (to one of the two neighbouring codes, with the probability that
// makes the expectation exact; except that a non-zero sqrt(v) never rounds to 0, see
// EncodeQ8Magnitude): with round-to-nearest, v's per-step decay (beta2 = 0.999 moves
// sqrt(v) by 0.05%) is far below half a code step (~3%) and v would never decay. The random
// bits are a hash of (seed, element index within the unit), so results are bitwise independent
// of thread count and chunking; the caller derives the seed from the step and the unit.
//
// One update (per element, fp32): m0 = decode(m), v0 = decode(v)^2, then the fp32 AdamW of
// cpu_adamw.h as its SIMD kernels compute it (times 1/sqrt(bc2) instead of a division; the new
// weights use the fp32 m1, v1), then m1 and sqrt(v1) are encoded against the block's new
// absmax. A non-finite moment makes its whole block non-finite (fp32 AdamW: that element
// only); such a step fails in the trainer either way.
#pragma once

#include <cstdint>

#include "engine/optim/cpu_adamw.h"

namespace sfd {

constexpr int64_t kQ8Block = 64;
constexpr int64_t Q8Blocks(int64_t n) { return (n + kQ8Block - 1) / kQ8Block; }

// A unit's 8-bit moments (host memory, or device memory for runtime/device_adamw_8bit.h), or a
// block-aligned slice of them.
struct Q8Moments {
  uint8_t* m = nullptr;
  float* m_scale = nullptr;
  uint8_t* v = nullptr;
  float* v_scale = nullptr;
  // The slice starting at element `offset` (a multiple of kQ8Block).
  Q8Moments At(int64_t offset) const;
};

// Value of a code (times the block scale gives exp_avg, or sqrt(exp_avg_sq)).
float DecodeQ8M(uint8_t code);
float DecodeQ8V(uint8_t code);
// Code of |y| (clamped to 1; NaN gives the largest code) with k = 3 (m's magnitude) or k = 4
// (sqrt(v); a non-zero value never gives code 0), rounded down or up as the 16 random bits in
// the low half of `r` decide (up with probability = the dropped fraction of a step).
uint32_t EncodeQ8Magnitude(float y, int mantissa_bits, uint32_t r);
// The 16 random bits element `index` rounds with under `seed` (stream 0: m, 1: v; both come from
// one 32-bit hash of index and seed).
uint32_t Q8Random(uint32_t seed, int64_t index, int stream);
// Seed of one unit's update at one step.
uint32_t Q8Seed(int64_t step, int unit);

// The fp32 AdamW of `hp` over n elements with 8-bit moments; `index0` is the element offset of
// `param[0]` within its unit (a multiple of kQ8Block; `q` points at that offset already) and n
// is a multiple of kQ8Block unless the slice ends the unit. Writes the bf16 weights to
// `param_bf16` when not null. Uses hp.seed.
void AdamW8bitKernel(SimdLevel level, const AdamWStep& hp, int64_t index0, float* param, Q8Moments q,
                     const float* grad, uint16_t* param_bf16, int64_t n);
void AdamW8bitKernelBf16Grad(SimdLevel level, const AdamWStep& hp, int64_t index0, float* param,
                             Q8Moments q, const uint16_t* grad_bf16, uint16_t* param_bf16, int64_t n);

// Conversions for checkpoints (single-threaded): fp32 exp_avg / exp_avg_sq from the codes of n
// elements, and codes from fp32 values (stochastic rounding under `seed`, the same as an
// update's; `index0` is the element offset of m[0] within its unit, a multiple of kQ8Block, and
// `q` points at that offset).
void DequantizeQ8(const Q8Moments& q, float* m, float* v, int64_t n);
void QuantizeQ8(const float* m, const float* v, uint32_t seed, Q8Moments q, int64_t n,
                int64_t index0 = 0);

}  // namespace sfd
