// Runtime SIMD dispatch for the kernels of cpu_adamw.h and the multithreaded CpuAdamW.
#include "engine/optim/cpu_adamw.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "engine/common/status.h"
#include "engine/optim/adamw_8bit.h"
#include "engine/optim/cpu_adamw_kernels.h"

namespace sfd {
namespace optim_internal {

AdamWConsts MakeAdamWConsts(const AdamWStep& hp) {
  const double lr = hp.lr, beta1 = hp.beta1, beta2 = hp.beta2;
  const double step = static_cast<double>(hp.step);
  const double bc1 = 1.0 - std::pow(beta1, step);
  const double bc2 = 1.0 - std::pow(beta2, step);
  AdamWConsts c;
  c.grad_scale = hp.grad_scale;
  c.decay = static_cast<float>(1.0 - lr * static_cast<double>(hp.weight_decay));
  c.lerp_weight = static_cast<float>(1.0 - beta1);
  c.lerp_from_end = c.lerp_weight >= 0.5f;
  c.lerp_coef = c.lerp_from_end ? -(1.0f - c.lerp_weight) : c.lerp_weight;
  c.beta2 = hp.beta2;
  c.one_minus_beta2 = static_cast<float>(1.0 - beta2);
  c.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  c.inv_bc2_sqrt = static_cast<float>(1.0 / std::sqrt(bc2));
  c.eps = hp.eps;
  c.neg_step_size = static_cast<float>(-(lr / bc1));
  return c;
}

}  // namespace optim_internal

namespace {

using optim_internal::AdamWConsts;
using optim_internal::KernelTable;
using optim_internal::MakeAdamWConsts;

bool CpuHasAvx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("fma");
}

bool CpuHasAvx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
}

const KernelTable& Kernels(SimdLevel level) {
  SFD_CHECK(SimdLevelSupported(level))
      << "SIMD level " << SimdLevelName(level) << " is not supported by this CPU";
  switch (level) {
    case SimdLevel::kAvx512:
      return optim_internal::kAvx512Kernels;
    case SimdLevel::kAvx2:
      return optim_internal::kAvx2Kernels;
    case SimdLevel::kScalar:
      break;
  }
  return optim_internal::kScalarKernels;
}

}  // namespace

bool SimdLevelSupported(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512:
      return CpuHasAvx512();
    case SimdLevel::kAvx2:
      return CpuHasAvx2();
    case SimdLevel::kScalar:
      return true;
  }
  return false;
}

SimdLevel DetectSimdLevel() {
  static const SimdLevel level = [] {
    SimdLevel best = SimdLevel::kScalar;
    if (CpuHasAvx512()) {
      best = SimdLevel::kAvx512;
    } else if (CpuHasAvx2()) {
      best = SimdLevel::kAvx2;
    }
    // SFD_SIMD=scalar|avx2 caps the level (debugging, A/B timing); it never raises it.
    if (const char* env = std::getenv("SFD_SIMD")) {
      if (std::strcmp(env, "scalar") == 0) best = SimdLevel::kScalar;
      if (std::strcmp(env, "avx2") == 0 && best == SimdLevel::kAvx512) best = SimdLevel::kAvx2;
    }
    return best;
  }();
  return level;
}

const char* SimdLevelName(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512:
      return "avx512";
    case SimdLevel::kAvx2:
      return "avx2";
    case SimdLevel::kScalar:
      return "scalar";
  }
  return "unknown";
}

void AdamWKernel(SimdLevel level, const AdamWStep& hp, float* param, float* m, float* v,
                 const float* grad, uint16_t* param_bf16, int64_t n) {
  if (n <= 0) return;
  Kernels(level).adamw(MakeAdamWConsts(hp), param, m, v, grad, param_bf16, n);
}

void AdamWKernelBf16Grad(SimdLevel level, const AdamWStep& hp, float* param, float* m, float* v,
                         const uint16_t* grad_bf16, uint16_t* param_bf16, int64_t n) {
  if (n <= 0) return;
  Kernels(level).adamw_bf16_grad(MakeAdamWConsts(hp), param, m, v, grad_bf16, param_bf16, n);
}

double SumSquares(SimdLevel level, const float* x, int64_t n) {
  return n <= 0 ? 0.0 : Kernels(level).sum_squares(x, n);
}

double SumSquaresBf16(SimdLevel level, const uint16_t* x, int64_t n) {
  return n <= 0 ? 0.0 : Kernels(level).sum_squares_bf16(x, n);
}

void FloatToBf16(SimdLevel level, const float* src, uint16_t* dst, int64_t n) {
  if (n > 0) Kernels(level).float_to_bf16(src, dst, n);
}

void Bf16ToFloat(SimdLevel level, const uint16_t* src, float* dst, int64_t n) {
  if (n > 0) Kernels(level).bf16_to_float(src, dst, n);
}

void AddBf16ToFloat(SimdLevel level, const uint16_t* src, float* dst, int64_t n) {
  if (n > 0) Kernels(level).add_bf16_to_float(src, dst, n);
}

// ---------------------------------------------------------------------------------------------
// CpuAdamW

CpuAdamW::CpuAdamW(int num_threads, SimdLevel level)
    : owned_pool_(std::make_unique<ThreadPool>(num_threads)),
      pool_(owned_pool_.get()),
      level_(level) {
  Kernels(level_);  // checks support once, up front
}

CpuAdamW::CpuAdamW(ThreadPool* pool, SimdLevel level) : pool_(pool), level_(level) {
  SFD_CHECK(pool_ != nullptr);
  Kernels(level_);
}

CpuAdamW::~CpuAdamW() = default;

void CpuAdamW::set_chunk_elems(int64_t elems) {
  SFD_CHECK(elems > 0) << "chunk_elems=" << elems;
  chunk_elems_ = (elems + 63) / 64 * 64;  // keeps every chunk's pointers 256-byte congruent
}

namespace {

// Runs fn(begin, count) over [0, n) in chunks of `chunk` elements on `pool`.
template <typename Fn>
void ForChunks(ThreadPool* pool, int64_t n, int64_t chunk, const Fn& fn) {
  if (n <= 0) return;
  const int64_t num_chunks = (n + chunk - 1) / chunk;
  pool->ParallelFor(num_chunks, [&](int64_t c) {
    const int64_t begin = c * chunk;
    fn(begin, std::min(chunk, n - begin));
  });
}

}  // namespace

void CpuAdamW::Update(const AdamWStep& hp, float* param, float* m, float* v, const float* grad,
                      uint16_t* param_bf16, int64_t n) {
  const AdamWConsts c = MakeAdamWConsts(hp);
  const auto kernel = Kernels(level_).adamw;
  ForChunks(pool_, n, chunk_elems_, [&](int64_t b, int64_t count) {
    kernel(c, param + b, m + b, v + b, grad + b, param_bf16 ? param_bf16 + b : nullptr, count);
  });
}

void CpuAdamW::UpdateBf16Grad(const AdamWStep& hp, float* param, float* m, float* v,
                              const uint16_t* grad, uint16_t* param_bf16, int64_t n) {
  const AdamWConsts c = MakeAdamWConsts(hp);
  const auto kernel = Kernels(level_).adamw_bf16_grad;
  ForChunks(pool_, n, chunk_elems_, [&](int64_t b, int64_t count) {
    kernel(c, param + b, m + b, v + b, grad + b, param_bf16 ? param_bf16 + b : nullptr, count);
  });
}

void CpuAdamW::Update8bit(const AdamWStep& hp, float* param, const Q8Moments& q, const float* grad,
                          uint16_t* param_bf16, int64_t n) {
  SFD_CHECK(chunk_elems_ % kQ8Block == 0);
  ForChunks(pool_, n, chunk_elems_, [&](int64_t b, int64_t count) {
    AdamW8bitKernel(level_, hp, b, param + b, q.At(b), grad + b, param_bf16 ? param_bf16 + b : nullptr,
                    count);
  });
}

void CpuAdamW::Update8bitBf16Grad(const AdamWStep& hp, float* param, const Q8Moments& q,
                                  const uint16_t* grad, uint16_t* param_bf16, int64_t n) {
  SFD_CHECK(chunk_elems_ % kQ8Block == 0);
  ForChunks(pool_, n, chunk_elems_, [&](int64_t b, int64_t count) {
    AdamW8bitKernelBf16Grad(level_, hp, b, param + b, q.At(b), grad + b,
                            param_bf16 ? param_bf16 + b : nullptr, count);
  });
}

double CpuAdamW::SumSquares(const float* x, int64_t n) {
  if (n <= 0) return 0.0;
  const auto kernel = Kernels(level_).sum_squares;
  std::vector<double> partial((n + chunk_elems_ - 1) / chunk_elems_);
  ForChunks(pool_, n, chunk_elems_,
            [&](int64_t b, int64_t count) { partial[b / chunk_elems_] = kernel(x + b, count); });
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

double CpuAdamW::SumSquaresBf16(const uint16_t* x, int64_t n) {
  if (n <= 0) return 0.0;
  const auto kernel = Kernels(level_).sum_squares_bf16;
  std::vector<double> partial((n + chunk_elems_ - 1) / chunk_elems_);
  ForChunks(pool_, n, chunk_elems_,
            [&](int64_t b, int64_t count) { partial[b / chunk_elems_] = kernel(x + b, count); });
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

void CpuAdamW::FloatToBf16(const float* src, uint16_t* dst, int64_t n) {
  const auto kernel = Kernels(level_).float_to_bf16;
  ForChunks(pool_, n, chunk_elems_,
            [&](int64_t b, int64_t count) { kernel(src + b, dst + b, count); });
}

void CpuAdamW::Bf16ToFloat(const uint16_t* src, float* dst, int64_t n) {
  const auto kernel = Kernels(level_).bf16_to_float;
  ForChunks(pool_, n, chunk_elems_,
            [&](int64_t b, int64_t count) { kernel(src + b, dst + b, count); });
}

void CpuAdamW::AddBf16ToFloat(const uint16_t* src, float* dst, int64_t n) {
  const auto kernel = Kernels(level_).add_bf16_to_float;
  ForChunks(pool_, n, chunk_elems_,
            [&](int64_t b, int64_t count) { kernel(src + b, dst + b, count); });
}

}  // namespace sfd
