// The LM head's cross-entropy kernel (launcher in fused_ops_cuda.h): one block per logits row.
// Pass 1 reads the row once with 16-byte loads and keeps an online (max, sum of exp) per
// thread, merged across the block; pass 2 (training) rewrites the row in place with its
// gradient. So a [chunk, vocab] logits buffer in the compute dtype is the only per-token
// memory the head needs, instead of the fp32 logits, softmax and gradient copies of the ATen
// composition, and the row is read twice and written once.
#include <cmath>

#include "engine/model/fused_ops_cuda.h"
#include "engine/model/kernel_util.cuh"

namespace sfd::fused {
namespace {
using namespace kernel;  // NOLINT: ToF/FromF/Vec/... of kernel_util.cuh

constexpr int kCeThreads = 512;

// (max, sum of exp(x - max)) pairs: the merge of two partial softmax denominators.
struct MaxSum {
  float m, s;
};
__device__ __forceinline__ MaxSum Merge(MaxSum a, MaxSum b) {
  if (a.m == -INFINITY) return b;
  if (b.m == -INFINITY) return a;
  const float m = fmaxf(a.m, b.m);
  return {m, a.s * __expf(a.m - m) + b.s * __expf(b.m - m)};
}
__device__ __forceinline__ MaxSum Add(MaxSum a, float x) {
  if (x == -INFINITY) return a;
  if (x > a.m) return {x, a.s * __expf(a.m - x) + 1.f};  // a.m = -inf: 0 * 0 + 1
  return {a.m, a.s + __expf(x - a.m)};
}

template <typename T, int N>
__global__ void __launch_bounds__(kCeThreads)
    CrossEntropyKernel(T* __restrict__ logits, int64_t ld, const int64_t* __restrict__ targets,
                       int64_t vocab, float grad_scale, float* __restrict__ row_ce) {
  __shared__ MaxSum warp_part[kCeThreads / 32];
  __shared__ float lse_shared;
  const int64_t row = blockIdx.x;
  T* x = logits + row * ld;
  const int64_t target = targets[row];
  const bool ignored = target < 0;
  float picked = 0.f;
  if (threadIdx.x == 0 && !ignored) picked = target < vocab ? ToF(x[target]) : NAN;

  MaxSum acc{-INFINITY, 0.f};
  for (int64_t i = static_cast<int64_t>(threadIdx.x) * N; i < vocab; i += kCeThreads * N) {
    Vec<T, N> v = Load<T, N>(x + i);
#pragma unroll
    for (int k = 0; k < N; ++k) acc = Add(acc, ToF(v.v[k]));
  }
  for (int o = 16; o > 0; o >>= 1) {
    MaxSum other{__shfl_xor_sync(0xffffffffu, acc.m, o), __shfl_xor_sync(0xffffffffu, acc.s, o)};
    acc = Merge(acc, other);
  }
  if (threadIdx.x % 32 == 0) warp_part[threadIdx.x / 32] = acc;
  __syncthreads();  // also orders thread 0's read of x[target] before any write below
  if (threadIdx.x == 0) {
    MaxSum all = warp_part[0];
    for (int w = 1; w < kCeThreads / 32; ++w) all = Merge(all, warp_part[w]);
    const float lse = all.m + logf(all.s);
    lse_shared = lse;
    row_ce[row] = ignored ? 0.f : lse - picked;
  }
  if (grad_scale == 0.f) return;
  __syncthreads();
  const float lse = ignored ? 0.f : lse_shared + (target < vocab ? 0.f : NAN);
  for (int64_t i = static_cast<int64_t>(threadIdx.x) * N; i < vocab; i += kCeThreads * N) {
    Vec<T, N> v = Load<T, N>(x + i);
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const float p = __expf(ToF(v.v[k]) - lse) - (i + k == target ? 1.f : 0.f);
      v.v[k] = FromF<T>(ignored ? 0.f : p * grad_scale);
    }
    Store<T, N>(x + i, v);
  }
}

template <typename T>
int CrossEntropyT(void* logits, int64_t ld, const int64_t* targets, int64_t rows, int64_t vocab,
                  float grad_scale, float* row_ce, cudaStream_t st) {
  constexpr int kVec = 16 / sizeof(T);
  T* x = static_cast<T*>(logits);
  if (rows > (int64_t{1} << 31) - 1) return static_cast<int>(cudaErrorInvalidValue);
  const unsigned blocks = static_cast<unsigned>(rows);
  if (vocab % kVec == 0 && ld % kVec == 0 && Aligned(logits)) {
    CrossEntropyKernel<T, kVec><<<blocks, kCeThreads, 0, st>>>(x, ld, targets, vocab, grad_scale, row_ce);
  } else {
    CrossEntropyKernel<T, 1><<<blocks, kCeThreads, 0, st>>>(x, ld, targets, vocab, grad_scale, row_ce);
  }
  return LastError();
}

}  // namespace

int CrossEntropy(DType dtype, void* logits, int64_t ld, const int64_t* targets, int64_t rows,
                 int64_t vocab, float grad_scale, float* row_ce, void* stream) {
  if (rows == 0) return 0;
  SFD_FUSED_DISPATCH(dtype, CrossEntropyT, logits, ld, targets, rows, vocab, grad_scale, row_ce,
                     static_cast<cudaStream_t>(stream));
}

}  // namespace sfd::fused
