// CUDA kernel of the 8-bit-moment AdamW (device_adamw_8bit.h): one warp per block of
// kQ8Block = 64 elements (two per lane), the block maxima reduced with warp shuffles, then the
// codes encoded against them. Compiled with --fmad=false (engine/CMakeLists.txt) so that the
// shared element math rounds exactly as the CPU kernels' (-ffp-contract=off).
#include "engine/runtime/device_adamw_8bit.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include <cuda_runtime.h>

#include "engine/optim/cpu_adamw_kernels.h"

#if defined(__USE_FAST_MATH__)
#error "device_adamw_8bit.cu must not be built with --use_fast_math: its bits must equal the CPU kernels'"
#endif

namespace sfd {
namespace optim_internal {
namespace {

#define SFD_Q8_FN __host__ __device__ inline
#include "engine/optim/adamw_8bit_math.inc"
#undef SFD_Q8_FN

static_assert(kQ8Block == 64, "one warp covers a block with two elements per lane");
constexpr int kWarpsPerCta = 8;

template <typename G>
__global__ void AdamW8Kernel(Q8ElementConsts k, uint32_t seed, uint32_t index0, float* param,
                             uint8_t* mq, float* m_scale, uint8_t* vq, float* v_scale, const G* grad,
                             uint16_t* out, int64_t n) {
  const int lane = threadIdx.x & 31;
  const int64_t blk = static_cast<int64_t>(blockIdx.x) * kWarpsPerCta + threadIdx.x / 32;
  const int64_t b0 = blk * kQ8Block;
  if (b0 >= n) return;  // the whole warp leaves together
  const float ms = m_scale[blk], vs = v_scale[blk];
  float m1[2] = {0.0f, 0.0f}, u1[2] = {0.0f, 0.0f};
  uint32_t mmax = 0, umax = 0;
  for (int j = 0; j < 2; ++j) {
    const int64_t i = b0 + lane + 32 * j;
    if (i >= n) continue;
    const float p = AdamW8Element(k, GradValue(grad[i]), mq[i], vq[i], ms, vs, param[i], &m1[j], &u1[j]);
    param[i] = p;
    if (out != nullptr) out[i] = ToBf16Bits(p);
    const uint32_t ma = AsBits(m1[j]) & 0x7fffffffu, ua = AsBits(u1[j]);
    mmax = ma > mmax ? ma : mmax;
    umax = ua > umax ? ua : umax;
  }
  for (int off = 16; off > 0; off >>= 1) {
    const uint32_t om = __shfl_xor_sync(0xffffffffu, mmax, off);
    const uint32_t ou = __shfl_xor_sync(0xffffffffu, umax, off);
    mmax = om > mmax ? om : mmax;
    umax = ou > umax ? ou : umax;
  }
  const float ms1 = AsFloat(mmax), vs1 = AsFloat(umax);
  const float inv_m = ms1 > 0.0f ? 1.0f / ms1 : 0.0f;
  const float inv_u = vs1 > 0.0f ? 1.0f / vs1 : 0.0f;
  for (int j = 0; j < 2; ++j) {
    const int64_t i = b0 + lane + 32 * j;
    if (i >= n) continue;
    const uint32_t r = RandomBits(seed, index0 + static_cast<uint32_t>(i));
    mq[i] = static_cast<uint8_t>(EncodeQ8M(m1[j], inv_m, r));
    vq[i] = static_cast<uint8_t>(EncodeQ8V(u1[j], inv_u, r));
  }
  if (lane == 0) {
    m_scale[blk] = ms1;
    v_scale[blk] = vs1;
  }
}

}  // namespace
}  // namespace optim_internal

int DeviceAdamW8bit(const AdamWStep& hp, int64_t index0, float* param, Q8Moments q, const void* grad,
                    bool grad_bf16, uint16_t* param_bf16, int64_t n, void* stream) {
  namespace oi = optim_internal;
  if (n <= 0) return 0;
  if (index0 % kQ8Block != 0) return static_cast<int>(cudaErrorInvalidValue);
  const oi::Q8ElementConsts k = oi::MakeQ8ElementConsts(oi::MakeAdamWConsts(hp));
  const int64_t blocks = Q8Blocks(n);
  const dim3 grid(static_cast<unsigned>((blocks + oi::kWarpsPerCta - 1) / oi::kWarpsPerCta));
  const dim3 cta(32 * oi::kWarpsPerCta);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const uint32_t i0 = static_cast<uint32_t>(index0);
  if (grad_bf16) {
    oi::AdamW8Kernel<uint16_t><<<grid, cta, 0, s>>>(k, hp.seed, i0, param, q.m, q.m_scale, q.v, q.v_scale,
                                                     static_cast<const uint16_t*>(grad), param_bf16, n);
  } else {
    oi::AdamW8Kernel<float><<<grid, cta, 0, s>>>(k, hp.seed, i0, param, q.m, q.m_scale, q.v, q.v_scale,
                                                  static_cast<const float*>(grad), param_bf16, n);
  }
  return static_cast<int>(cudaGetLastError());
}

const char* DeviceAdamW8bitErrorString(int error) {
  return cudaGetErrorString(static_cast<cudaError_t>(error));
}

}  // namespace sfd
