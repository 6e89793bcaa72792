// CPU AdamW for the fp32 master weights kept in host RAM (our DeepSpeed-cpu_adam): SIMD
// kernels (scalar / AVX2 / AVX-512, chosen at runtime) that update one contiguous shard of
// param, exp_avg, exp_avg_sq from its gradient and optionally emit the bf16 copy of the updated
// weights that is staged for the next H2D upload; plus the bulk helpers the trainer needs around
// it (sum of squares for the global grad norm, fp32<->bf16 conversion, bf16 grad accumulation).
// CpuAdamW spreads those over a ThreadPool in fixed-size chunks. No torch.
//
// Math: torch.optim.AdamW (single tensor, amsgrad=False, maximize=False), fp32 per element:
//   g = grad * grad_scale
//   p = p * (1 - lr * weight_decay)
//   m = m + (g - m) * (1 - beta1)              (torch's lerp)
//   v = v * beta2 + (1 - beta2) * g * g
//   p = p - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),  bc_k = 1 - beta_k^step
// Results are bitwise independent of where an element sits in the buffer (tails and unaligned
// heads go through the same vector code), of the thread count and of the chunking; they differ
// between SIMD levels only by rounding (FMA, reciprocal instead of division), ~1-2 ulp.
//
// Buffers: all host memory, any alignment; param/m/v/grad are fp32 [n], bf16 buffers are
// raw uint16 [n] (bf16 bit patterns). In-place aliasing is not allowed except where noted.
#pragma once

#include <cstdint>
#include <memory>

#include "engine/common/thread_pool.h"

namespace sfd {

enum class SimdLevel { kScalar, kAvx2, kAvx512 };

// Best level this CPU (and OS) supports: AVX-512 needs F+BW+VL+DQ, AVX2 needs AVX2+FMA+F16C.
SimdLevel DetectSimdLevel();
const char* SimdLevelName(SimdLevel level);
// True when this CPU can run kernels of `level`.
bool SimdLevelSupported(SimdLevel level);

// Hyper-parameters of one update, torch.optim.AdamW semantics.
struct AdamWStep {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  int64_t step = 1;         // 1-based step count AFTER increment (for bias correction)
  float grad_scale = 1.0f;  // grads are multiplied by this first (global-norm clip coefficient)
  uint32_t seed = 0;        // 8-bit moments only: stochastic-rounding stream (adamw_8bit.h)
};

struct Q8Moments;  // adamw_8bit.h

// One contiguous shard: param, m (exp_avg), v (exp_avg_sq), grad all fp32 [n], host.
// If param_bf16 != nullptr, also writes bf16 (round-to-nearest-even) of the updated param
// there ([n] uint16, written with streaming stores: do not read it back from this thread's
// cache expecting it hot). `level` must be supported by this CPU (SFD_CHECK).
void AdamWKernel(SimdLevel level, const AdamWStep& hp, float* param, float* m, float* v,
                 const float* grad, uint16_t* param_bf16, int64_t n);
// Same math, grads arrive as bf16 ([n] uint16).
void AdamWKernelBf16Grad(SimdLevel level, const AdamWStep& hp, float* param, float* m, float* v,
                         const uint16_t* grad_bf16, uint16_t* param_bf16, int64_t n);

// Sum of squares of fp32 / bf16 data accumulated in double (each square is exact in double).
double SumSquares(SimdLevel level, const float* x, int64_t n);
double SumSquaresBf16(SimdLevel level, const uint16_t* x, int64_t n);

// Bulk conversions (round-to-nearest-even, NaN stays NaN), for H2D staging and checkpoints.
void FloatToBf16(SimdLevel level, const float* src, uint16_t* dst, int64_t n);
void Bf16ToFloat(SimdLevel level, const uint16_t* src, float* dst, int64_t n);
// dst += float(src) elementwise (grad accumulation into fp32).
void AddBf16ToFloat(SimdLevel level, const uint16_t* src, float* dst, int64_t n);

// Multithreaded front end: splits every call into chunks of chunk_elems() elements run on a
// thread pool. Results are bitwise identical for any thread count. Not copyable; the methods
// may be called from several threads (calls are serialised by the pool).
class CpuAdamW {
 public:
  // Owns a pool of num_threads (0 = hardware concurrency) threads, the caller included.
  explicit CpuAdamW(int num_threads = 0, SimdLevel level = DetectSimdLevel());
  // Borrows `pool` (must outlive this object), e.g. the trainer's shared pool.
  explicit CpuAdamW(ThreadPool* pool, SimdLevel level = DetectSimdLevel());
  ~CpuAdamW();
  CpuAdamW(const CpuAdamW&) = delete;
  CpuAdamW& operator=(const CpuAdamW&) = delete;

  void Update(const AdamWStep& hp, float* param, float* m, float* v, const float* grad,
              uint16_t* param_bf16, int64_t n);
  void UpdateBf16Grad(const AdamWStep& hp, float* param, float* m, float* v, const uint16_t* grad,
                      uint16_t* param_bf16, int64_t n);
  // 8-bit moments (adamw_8bit.h): `param` etc. start at element 0 of a unit (the chunks are
  // block-aligned and the rounding stream indexes elements from there).
  void Update8bit(const AdamWStep& hp, float* param, const Q8Moments& q, const float* grad,
                  uint16_t* param_bf16, int64_t n);
  void Update8bitBf16Grad(const AdamWStep& hp, float* param, const Q8Moments& q,
                          const uint16_t* grad, uint16_t* param_bf16, int64_t n);
  // Deterministic: per-chunk partial sums are added in chunk order.
  double SumSquares(const float* x, int64_t n);
  double SumSquaresBf16(const uint16_t* x, int64_t n);
  void FloatToBf16(const float* src, uint16_t* dst, int64_t n);
  void Bf16ToFloat(const uint16_t* src, float* dst, int64_t n);
  void AddBf16ToFloat(const uint16_t* src, float* dst, int64_t n);

  int num_threads() const { return pool_->num_threads(); }
  SimdLevel level() const { return level_; }
  ThreadPool* pool() const { return pool_; }
  // Elements per work item (multiple of 64). Default kDefaultChunkElems.
  int64_t chunk_elems() const { return chunk_elems_; }
  void set_chunk_elems(int64_t elems);

  static constexpr int64_t kDefaultChunkElems = int64_t{1} << 16;

 private:
  std::unique_ptr<ThreadPool> owned_pool_;
  ThreadPool* pool_;
  SimdLevel level_;
  int64_t chunk_elems_ = kDefaultChunkElems;
};

}  // namespace sfd
