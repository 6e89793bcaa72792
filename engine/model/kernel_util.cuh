// Helpers shared by the CUDA kernels of engine/model (fused_ops_cuda.cu, cross_entropy_cuda.cu):
// fp32 <-> storage-dtype conversion, 16-byte vector loads/stores, warp reductions, grid sizing
// and the dtype dispatch of the raw launchers. nvcc only; no torch.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "engine/model/fused_ops_cuda.h"

namespace sfd::fused::kernel {

template <typename T> __device__ __forceinline__ float ToF(T v);
template <> __device__ __forceinline__ float ToF<float>(float v) { return v; }
template <> __device__ __forceinline__ float ToF<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <> __device__ __forceinline__ float ToF<__half>(__half v) { return __half2float(v); }

template <typename T> __device__ __forceinline__ T FromF(float v);
template <> __device__ __forceinline__ float FromF<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 FromF<__nv_bfloat16>(float v) {
  return __float2bfloat16(v);  // round to nearest even, as c10::BFloat16
}
template <> __device__ __forceinline__ __half FromF<__half>(float v) { return __float2half(v); }

// N elements loaded / stored as one access (16 bytes for the vector widths chosen below).
template <typename T, int N>
struct alignas(sizeof(T) * N) Vec {
  T v[N];
};
template <typename T, int N>
__device__ __forceinline__ Vec<T, N> Load(const T* p) {
  return *reinterpret_cast<const Vec<T, N>*>(p);
}
template <typename T, int N>
__device__ __forceinline__ void Store(T* p, const Vec<T, N>& v) {
  *reinterpret_cast<Vec<T, N>*>(p) = v;
}

__device__ __forceinline__ float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline unsigned Blocks(int64_t work, int64_t per_block) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(CeilDiv(work, per_block), 1 << 20)));
}
inline bool Aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

inline int LastError() { return static_cast<int>(cudaGetLastError()); }

// Calls FN<T>(args...) for the storage type of `dtype` (returns its int error code).
#define SFD_FUSED_DISPATCH(dtype, FN, ...)                                   \
  switch (dtype) {                                                           \
    case DType::kF32: return FN<float>(__VA_ARGS__);                         \
    case DType::kBF16: return FN<__nv_bfloat16>(__VA_ARGS__);                \
    case DType::kF16: return FN<__half>(__VA_ARGS__);                        \
  }                                                                          \
  return static_cast<int>(cudaErrorInvalidValue)

}  // namespace sfd::fused::kernel
