// CUDA kernels behind fused_ops_cuda.h: RMSNorm (one warp per row; dweight from per-chunk fp32
// partial sums plus one reduction), SwiGLU and RoPE (element-wise, 16-byte vector accesses
// when sizes and pointers allow). Everything is computed in fp32 and rounded once to the
// storage dtype. No torch here (keeps nvcc fast); fused_ops.cc launches these on torch's
// current stream.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "engine/model/fused_ops_cuda.h"
#include "engine/model/kernel_util.cuh"

namespace sfd::fused {
namespace {
using namespace kernel;  // NOLINT: ToF/FromF/Vec/... of kernel_util.cuh

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// ---------------------------------------------------------------- RMSNorm

template <typename T, int N>
__global__ void RmsNormForwardKernel(const T* __restrict__ x, const T* __restrict__ w,
                                     T* __restrict__ out, float* __restrict__ rstd, int64_t rows,
                                     int64_t cols, float eps) {
  const int lane = threadIdx.x & 31;
  const int64_t nvec = cols / N;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32; row < rows;
       row += static_cast<int64_t>(gridDim.x) * kWarps) {
    const T* xr = x + row * cols;
    float ss = 0.f;
    for (int64_t i = lane; i < nvec; i += 32) {
      Vec<T, N> a = Load<T, N>(xr + i * N);
#pragma unroll
      for (int k = 0; k < N; ++k) {
        const float f = ToF(a.v[k]);
        ss += f * f;
      }
    }
    ss = WarpSum(ss);
    const float r = rsqrtf(ss / static_cast<float>(cols) + eps);
    if (lane == 0) rstd[row] = r;
    T* orow = out + row * cols;
    for (int64_t i = lane; i < nvec; i += 32) {
      Vec<T, N> a = Load<T, N>(xr + i * N), b = Load<T, N>(w + i * N), o;
#pragma unroll
      for (int k = 0; k < N; ++k) o.v[k] = FromF<T>(ToF(b.v[k]) * ToF(FromF<T>(ToF(a.v[k]) * r)));
      Store<T, N>(orow + i * N, o);
    }
  }
}

template <typename T, int N>
__global__ void RmsNormDxKernel(const T* __restrict__ dy, const T* __restrict__ x,
                                const T* __restrict__ w, const float* __restrict__ rstd,
                                T* __restrict__ dx, int64_t rows, int64_t cols) {
  const int lane = threadIdx.x & 31;
  const int64_t nvec = cols / N;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32; row < rows;
       row += static_cast<int64_t>(gridDim.x) * kWarps) {
    const T* xr = x + row * cols;
    const T* gr = dy + row * cols;
    float dot = 0.f;
    for (int64_t i = lane; i < nvec; i += 32) {
      Vec<T, N> a = Load<T, N>(xr + i * N), g = Load<T, N>(gr + i * N), b = Load<T, N>(w + i * N);
#pragma unroll
      for (int k = 0; k < N; ++k) dot += ToF(g.v[k]) * ToF(b.v[k]) * ToF(a.v[k]);
    }
    dot = WarpSum(dot);
    const float r = rstd[row];
    const float c = dot * r * r * r / static_cast<float>(cols);
    T* dr = dx + row * cols;
    for (int64_t i = lane; i < nvec; i += 32) {
      Vec<T, N> a = Load<T, N>(xr + i * N), g = Load<T, N>(gr + i * N), b = Load<T, N>(w + i * N), o;
#pragma unroll
      for (int k = 0; k < N; ++k) o.v[k] = FromF<T>(r * ToF(g.v[k]) * ToF(b.v[k]) - c * ToF(a.v[k]));
      Store<T, N>(dr + i * N, o);
    }
  }
}

// Block (32, 8): 32 columns x 8 row lanes over one chunk of rows; writes the chunk's partial
// sums of dy * T(x * rstd) to workspace[chunk, col].
constexpr int kDwCols = 32, kDwRows = 8;

template <typename T>
__global__ void RmsNormDwPartialKernel(const T* __restrict__ dy, const T* __restrict__ x,
                                       const float* __restrict__ rstd, float* __restrict__ ws,
                                       int64_t rows, int64_t cols, int64_t rows_per_chunk) {
  __shared__ float part[kDwRows][kDwCols + 1];
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kDwCols + threadIdx.x;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
  float acc = 0.f;
  if (col < cols) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kDwRows) {
      const int64_t i = r * cols + col;
      acc += ToF(dy[i]) * ToF(FromF<T>(ToF(x[i]) * rstd[r]));
    }
  }
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < kDwRows; ++k) s += part[k][threadIdx.x];
    ws[static_cast<int64_t>(blockIdx.y) * cols + col] = s;
  }
}

template <typename T>
__global__ void RmsNormDwReduceKernel(const float* __restrict__ ws, T* __restrict__ dw,
                                      int64_t chunks, int64_t cols) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= cols) return;
  float s = 0.f;
  for (int64_t c = 0; c < chunks; ++c) s += ws[c * cols + col];
  dw[col] = FromF<T>(s);
}

int64_t DwChunks(int64_t rows, int64_t cols) {
  const int64_t col_tiles = CeilDiv(cols, kDwCols);
  return std::max<int64_t>(1, std::min<int64_t>(CeilDiv(rows, 64), std::max<int64_t>(1, 2048 / col_tiles)));
}

template <typename T>
int RmsNormForwardT(const void* x, const void* w, void* out, float* rstd, int64_t rows,
                    int64_t cols, float eps, cudaStream_t st) {
  constexpr int kVec = 16 / sizeof(T);
  const unsigned blocks = Blocks(rows, kWarps);
  if (cols % kVec == 0 && Aligned(x) && Aligned(w) && Aligned(out)) {
    RmsNormForwardKernel<T, kVec><<<blocks, kThreads, 0, st>>>(
        static_cast<const T*>(x), static_cast<const T*>(w), static_cast<T*>(out), rstd, rows, cols, eps);
  } else {
    RmsNormForwardKernel<T, 1><<<blocks, kThreads, 0, st>>>(
        static_cast<const T*>(x), static_cast<const T*>(w), static_cast<T*>(out), rstd, rows, cols, eps);
  }
  return LastError();
}

template <typename T>
int RmsNormBackwardT(const void* dy, const void* x, const void* w, const float* rstd, void* dx,
                     void* dw, float* ws, int64_t rows, int64_t cols, cudaStream_t st) {
  constexpr int kVec = 16 / sizeof(T);
  const T* g = static_cast<const T*>(dy);
  const T* xx = static_cast<const T*>(x);
  const T* ww = static_cast<const T*>(w);
  const unsigned blocks = Blocks(rows, kWarps);
  if (cols % kVec == 0 && Aligned(dy) && Aligned(x) && Aligned(w) && Aligned(dx)) {
    RmsNormDxKernel<T, kVec><<<blocks, kThreads, 0, st>>>(g, xx, ww, rstd, static_cast<T*>(dx), rows, cols);
  } else {
    RmsNormDxKernel<T, 1><<<blocks, kThreads, 0, st>>>(g, xx, ww, rstd, static_cast<T*>(dx), rows, cols);
  }
  const int64_t chunks = DwChunks(rows, cols);
  const dim3 grid(static_cast<unsigned>(CeilDiv(cols, kDwCols)), static_cast<unsigned>(chunks));
  RmsNormDwPartialKernel<T><<<grid, dim3(kDwCols, kDwRows), 0, st>>>(g, xx, rstd, ws, rows, cols,
                                                                     CeilDiv(rows, chunks));
  RmsNormDwReduceKernel<T><<<Blocks(cols, kThreads), kThreads, 0, st>>>(ws, static_cast<T*>(dw), chunks, cols);
  return LastError();
}

// ---------------------------------------------------------------- SwiGLU

template <typename T, int N>
__global__ void SwiGluForwardKernel(const T* __restrict__ gate, const T* __restrict__ up,
                                    int64_t in_stride, T* __restrict__ out, int64_t rows,
                                    int64_t inter) {
  const int64_t nvec = inter / N, total = rows * nvec;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = idx / nvec, c = (idx - r * nvec) * N;
    Vec<T, N> g = Load<T, N>(gate + r * in_stride + c), u = Load<T, N>(up + r * in_stride + c), o;
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const float gf = ToF(g.v[k]);
      o.v[k] = FromF<T>(gf / (1.f + expf(-gf)) * ToF(u.v[k]));
    }
    Store<T, N>(out + r * inter + c, o);
  }
}

template <typename T, int N>
__global__ void SwiGluBackwardKernel(const T* __restrict__ dout, const T* __restrict__ gate,
                                     const T* __restrict__ up, int64_t in_stride,
                                     T* __restrict__ dgate, T* __restrict__ dup,
                                     int64_t grad_stride, int64_t rows, int64_t inter) {
  const int64_t nvec = inter / N, total = rows * nvec;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = idx / nvec, c = (idx - r * nvec) * N;
    Vec<T, N> d = Load<T, N>(dout + r * inter + c), g = Load<T, N>(gate + r * in_stride + c),
              u = Load<T, N>(up + r * in_stride + c), dg, du;
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const float gf = ToF(g.v[k]), df = ToF(d.v[k]);
      const float sig = 1.f / (1.f + expf(-gf));
      du.v[k] = FromF<T>(df * gf * sig);
      dg.v[k] = FromF<T>(df * ToF(u.v[k]) * sig * (1.f + gf * (1.f - sig)));
    }
    Store<T, N>(dgate + r * grad_stride + c, dg);
    Store<T, N>(dup + r * grad_stride + c, du);
  }
}

template <typename T>
int SwiGluForwardT(const void* gate, const void* up, int64_t in_stride, void* out, int64_t rows,
                   int64_t inter, cudaStream_t st) {
  constexpr int kVec = 16 / sizeof(T);
  const T* g = static_cast<const T*>(gate);
  const T* u = static_cast<const T*>(up);
  if (inter % kVec == 0 && in_stride % kVec == 0 && Aligned(gate) && Aligned(up) && Aligned(out)) {
    SwiGluForwardKernel<T, kVec><<<Blocks(rows * (inter / kVec), kThreads), kThreads, 0, st>>>(
        g, u, in_stride, static_cast<T*>(out), rows, inter);
  } else {
    SwiGluForwardKernel<T, 1><<<Blocks(rows * inter, kThreads), kThreads, 0, st>>>(
        g, u, in_stride, static_cast<T*>(out), rows, inter);
  }
  return LastError();
}

template <typename T>
int SwiGluBackwardT(const void* dout, const void* gate, const void* up, int64_t in_stride,
                    void* dgate, void* dup, int64_t grad_stride, int64_t rows, int64_t inter,
                    cudaStream_t st) {
  constexpr int kVec = 16 / sizeof(T);
  const T* d = static_cast<const T*>(dout);
  const T* g = static_cast<const T*>(gate);
  const T* u = static_cast<const T*>(up);
  if (inter % kVec == 0 && in_stride % kVec == 0 && grad_stride % kVec == 0 && Aligned(dout) &&
      Aligned(gate) && Aligned(up) && Aligned(dgate) && Aligned(dup)) {
    SwiGluBackwardKernel<T, kVec><<<Blocks(rows * (inter / kVec), kThreads), kThreads, 0, st>>>(
        d, g, u, in_stride, static_cast<T*>(dgate), static_cast<T*>(dup), grad_stride, rows, inter);
  } else {
    SwiGluBackwardKernel<T, 1><<<Blocks(rows * inter, kThreads), kThreads, 0, st>>>(
        d, g, u, in_stride, static_cast<T*>(dgate), static_cast<T*>(dup), grad_stride, rows, inter);
  }
  return LastError();
}

// ---------------------------------------------------------------- RoPE

// One work item = N consecutive elements of the first half of one (b, s, h) head vector and
// their partners in the second half; items run fastest over the half, then heads, positions.
// kForward: src = x [b,s,h,d] (strided) -> dst [b,h,s,d] contiguous; else src = dy
// [b,h,s,d] contiguous -> dst = dx [b,s,h,d] contiguous.
template <typename T, int N, bool kForward>
__global__ void RopeKernel(const T* __restrict__ src, const T* __restrict__ cos,
                           const T* __restrict__ sin, T* __restrict__ dst, RopeShape p) {
  const int64_t half = p.d / 2, nvec = half / N;
  const int64_t total = p.b * p.s * p.h * nvec;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t t = idx;
    const int64_t j = (t % nvec) * N;
    t /= nvec;
    const int64_t h = t % p.h;
    t /= p.h;
    const int64_t s = t % p.s;
    const int64_t b = t / p.s;
    const int64_t bshd = ((b * p.s + s) * p.h + h) * p.d;  // [b,s,h,d] contiguous
    const int64_t bhsd = ((b * p.h + h) * p.s + s) * p.d;  // [b,h,s,d] contiguous
    const int64_t src_off = kForward ? b * p.x_sb + s * p.x_ss + h * p.x_sh : bhsd;
    const int64_t dst_off = kForward ? bhsd : bshd;
    const int64_t tab = b * p.t_sb + s * p.t_ss;
    Vec<T, N> x1 = Load<T, N>(src + src_off + j), x2 = Load<T, N>(src + src_off + half + j);
    Vec<T, N> c1 = Load<T, N>(cos + tab + j), c2 = Load<T, N>(cos + tab + half + j);
    Vec<T, N> s1 = Load<T, N>(sin + tab + j), s2 = Load<T, N>(sin + tab + half + j);
    Vec<T, N> o1, o2;
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const float a = ToF(x1.v[k]), bb = ToF(x2.v[k]);
      if (kForward) {  // out = x*cos + rotate_half(x)*sin, rotate_half = [-x2, x1]
        o1.v[k] = FromF<T>(a * ToF(c1.v[k]) - bb * ToF(s1.v[k]));
        o2.v[k] = FromF<T>(bb * ToF(c2.v[k]) + a * ToF(s2.v[k]));
      } else {  // the transpose: dx1 = g1*cos1 + g2*sin2, dx2 = g2*cos2 - g1*sin1
        o1.v[k] = FromF<T>(a * ToF(c1.v[k]) + bb * ToF(s2.v[k]));
        o2.v[k] = FromF<T>(bb * ToF(c2.v[k]) - a * ToF(s1.v[k]));
      }
    }
    Store<T, N>(dst + dst_off + j, o1);
    Store<T, N>(dst + dst_off + half + j, o2);
  }
}

template <typename T, bool kForward>
int RopeT(const void* src, const void* cos, const void* sin, void* dst, const RopeShape& p,
          cudaStream_t st) {
  constexpr int kVec = 16 / sizeof(T);
  const int64_t half = p.d / 2;
  bool vec = half % kVec == 0 && p.t_sb % kVec == 0 && p.t_ss % kVec == 0 && Aligned(src) &&
             Aligned(cos) && Aligned(sin) && Aligned(dst);
  if (kForward) vec = vec && p.x_sb % kVec == 0 && p.x_ss % kVec == 0 && p.x_sh % kVec == 0;
  const T* a = static_cast<const T*>(src);
  const T* c = static_cast<const T*>(cos);
  const T* s = static_cast<const T*>(sin);
  T* o = static_cast<T*>(dst);
  const int64_t heads = p.b * p.s * p.h;
  if (vec) {
    RopeKernel<T, kVec, kForward><<<Blocks(heads * (half / kVec), kThreads), kThreads, 0, st>>>(a, c, s, o, p);
  } else {
    RopeKernel<T, 1, kForward><<<Blocks(heads * half, kThreads), kThreads, 0, st>>>(a, c, s, o, p);
  }
  return LastError();
}


}  // namespace

const char* FusedOpsErrorString(int error) {
  return cudaGetErrorString(static_cast<cudaError_t>(error));
}

int RmsNormForward(DType dtype, const void* x, const void* w, void* out, float* rstd,
                   int64_t rows, int64_t cols, float eps, void* stream) {
  if (rows == 0) return 0;
  SFD_FUSED_DISPATCH(dtype, RmsNormForwardT, x, w, out, rstd, rows, cols, eps,
                     static_cast<cudaStream_t>(stream));
}

int64_t RmsNormBackwardWorkspace(int64_t rows, int64_t cols) { return DwChunks(rows, cols) * cols; }

int RmsNormBackward(DType dtype, const void* dy, const void* x, const void* w, const float* rstd,
                    void* dx, void* dw, float* workspace, int64_t rows, int64_t cols,
                    void* stream) {
  SFD_FUSED_DISPATCH(dtype, RmsNormBackwardT, dy, x, w, rstd, dx, dw, workspace, rows, cols,
                     static_cast<cudaStream_t>(stream));
}

int SwiGluForward(DType dtype, const void* gate, const void* up, int64_t in_stride, void* out,
                  int64_t rows, int64_t inter, void* stream) {
  if (rows * inter == 0) return 0;
  SFD_FUSED_DISPATCH(dtype, SwiGluForwardT, gate, up, in_stride, out, rows, inter,
                     static_cast<cudaStream_t>(stream));
}

int SwiGluBackward(DType dtype, const void* dout, const void* gate, const void* up,
                   int64_t in_stride, void* dgate, void* dup, int64_t grad_stride, int64_t rows,
                   int64_t inter, void* stream) {
  if (rows * inter == 0) return 0;
  SFD_FUSED_DISPATCH(dtype, SwiGluBackwardT, dout, gate, up, in_stride, dgate, dup, grad_stride,
                     rows, inter, static_cast<cudaStream_t>(stream));
}

namespace {
template <typename T>
int RopeForwardT(const void* x, const void* cos, const void* sin, void* out, const RopeShape& p,
                 cudaStream_t st) {
  return RopeT<T, true>(x, cos, sin, out, p, st);
}
template <typename T>
int RopeBackwardT(const void* dy, const void* cos, const void* sin, void* dx, const RopeShape& p,
                  cudaStream_t st) {
  return RopeT<T, false>(dy, cos, sin, dx, p, st);
}
}  // namespace

int RopeForward(DType dtype, const void* x, const void* cos, const void* sin, void* out,
                const RopeShape& shape, void* stream) {
  if (shape.b * shape.s * shape.h * shape.d == 0) return 0;
  SFD_FUSED_DISPATCH(dtype, RopeForwardT, x, cos, sin, out, shape, static_cast<cudaStream_t>(stream));
}

int RopeBackward(DType dtype, const void* dy, const void* cos, const void* sin, void* dx,
                 const RopeShape& shape, void* stream) {
  if (shape.b * shape.s * shape.h * shape.d == 0) return 0;
  SFD_FUSED_DISPATCH(dtype, RopeBackwardT, dy, cos, sin, dx, shape, static_cast<cudaStream_t>(stream));
}

}  // namespace sfd::fused
