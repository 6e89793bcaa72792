// Internal to engine/optim: the per-SIMD-level kernel tables behind cpu_adamw.h. Each of
// cpu_adamw_scalar.cc, cpu_adamw_avx2.cc (-mavx2 -mfma -mf16c) and cpu_adamw_avx512.cc
// (-mavx512f/bw/vl/dq) defines one table; cpu_adamw.cc picks one at runtime. Nothing here may
// be called on a CPU that lacks the level's instructions. This header deliberately includes no
// inline code: an inline function emitted by a -mavx512 TU could be picked by the linker for
// every caller.
#pragma once

#include <cstdint>

namespace sfd {

struct AdamWStep;  // cpu_adamw.h
struct Q8Moments;  // adamw_8bit.h

namespace optim_internal {

// Per-call constants of the AdamW update, rounded to fp32 the way torch does (computed in
// double from the hyper-parameters, then used as fp32 scalars by the elementwise kernels).
struct AdamWConsts {
  float grad_scale;
  float decay;         // 1 - lr * weight_decay
  float lerp_weight;   // 1 - beta1
  bool lerp_from_end;  // torch's lerp: weight >= 0.5 computes end - (end - self) * (1 - weight)
  float lerp_coef;     // weight, or -(1 - weight) when lerp_from_end
  float beta2;
  float one_minus_beta2;
  float bc2_sqrt;      // sqrt(1 - beta2^step)
  float inv_bc2_sqrt;  // 1 / sqrt(1 - beta2^step) (SIMD kernels multiply instead of divide)
  float eps;
  float neg_step_size;  // -lr / (1 - beta1^step)
};

struct KernelTable {
  void (*adamw)(const AdamWConsts& c, float* param, float* m, float* v, const float* grad,
                uint16_t* param_bf16, int64_t n);
  void (*adamw_bf16_grad)(const AdamWConsts& c, float* param, float* m, float* v,
                          const uint16_t* grad, uint16_t* param_bf16, int64_t n);
  double (*sum_squares)(const float* x, int64_t n);
  double (*sum_squares_bf16)(const uint16_t* x, int64_t n);
  void (*float_to_bf16)(const float* src, uint16_t* dst, int64_t n);
  void (*bf16_to_float)(const uint16_t* src, float* dst, int64_t n);
  void (*add_bf16_to_float)(const uint16_t* src, float* dst, int64_t n);
};

// adamw_8bit.h's kernels (adamw_8bit_{scalar,avx2,avx512}.cc, body in adamw_8bit_kernel.inc).
struct Q8KernelTable {
  void (*adamw8)(const AdamWConsts& c, uint32_t seed, int64_t index0, float* param,
                 const Q8Moments& q, const float* grad, uint16_t* param_bf16, int64_t n);
  void (*adamw8_bf16_grad)(const AdamWConsts& c, uint32_t seed, int64_t index0, float* param,
                           const Q8Moments& q, const uint16_t* grad, uint16_t* param_bf16, int64_t n);
};

// The fp32 constants of one update (cpu_adamw.cc).
AdamWConsts MakeAdamWConsts(const AdamWStep& hp);

extern const KernelTable kScalarKernels;
extern const KernelTable kAvx2Kernels;
extern const KernelTable kAvx512Kernels;
extern const Q8KernelTable kQ8ScalarKernels;
extern const Q8KernelTable kQ8Avx2Kernels;
extern const Q8KernelTable kQ8Avx512Kernels;

}  // namespace optim_internal
}  // namespace sfd
