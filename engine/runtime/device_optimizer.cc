#include "engine/runtime/device_optimizer.h"

#include <cmath>

#include "engine/common/status.h"
#include "engine/common/torch_compat.h"
#include "engine/optim/adamw_8bit.h"
#include "engine/runtime/device_adamw_8bit.h"

#if SFD_WITH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

namespace sfd {
namespace {

// Elements per update chunk: bounds the fp32 temporaries (grad copy, denominator). A multiple
// of kQ8Block, so 8-bit chunks start on block boundaries.
constexpr int64_t kChunk = int64_t{1} << 25;
static_assert(kChunk % kQ8Block == 0);

// A device copy of a host arena (same dtype and shape).
at::Tensor DeviceLike(const at::Tensor& host, at::Device device) {
  return at::empty(host.sizes(), host.options().device(device).pinned_memory(false));
}

}  // namespace

absl::Status DeviceOptimizer::Upload(const std::vector<HostUnit>& host) {
  return compat::CatchTorch("uploading optimizer state to the device", [&] {
    const at::TensorOptions opts = at::TensorOptions().dtype(at::kFloat).device(backend_->device());
    for (int u = 0; u < num_units(); ++u) {
      State& s = state_[u];
      const int64_t n = host[u].numel();
      const HostUnit& h = host[u];
      if (!s.master.defined()) {
        s.master = at::empty({n}, opts);
        s.m = DeviceLike(h.m, backend_->device());
        s.v = DeviceLike(h.v, backend_->device());
        if (h.moments_8bit()) {
          s.m_scale = DeviceLike(h.m_scale, backend_->device());
          s.v_scale = DeviceLike(h.v_scale, backend_->device());
        }
      }
      s.master.copy_(h.master);
      s.m.copy_(h.m);
      s.v.copy_(h.v);
      if (h.moments_8bit()) {
        s.m_scale.copy_(h.m_scale);
        s.v_scale.copy_(h.v_scale);
      }
    }
    backend_->Synchronize();
  });
}

absl::Status DeviceOptimizer::Download(std::vector<HostUnit>* host) {
  return compat::CatchTorch("downloading optimizer state", [&] {
    backend_->Synchronize();
    for (int u = 0; u < num_units(); ++u) {
      HostUnit& h = (*host)[u];
      h.master.copy_(state_[u].master);
      h.m.copy_(state_[u].m);
      h.v.copy_(state_[u].v);
      if (h.moments_8bit()) {
        h.m_scale.copy_(state_[u].m_scale);
        h.v_scale.copy_(state_[u].v_scale);
      }
    }
  });
}

absl::Status DeviceOptimizer::Accumulate(int unit, const at::Tensor& grad, bool first) {
  return compat::CatchTorch("accumulating device gradients", [&] {
    State& s = state_[unit];
    if (!s.acc.defined()) s.acc = at::empty({grad.numel()}, s.master.options());
    if (first) {
      s.acc.copy_(grad);
    } else {
      s.acc.add_(grad);
    }
  });
}

void DeviceOptimizer::Update(int unit, const AdamWStep& hp, const at::Tensor& grad,
                             const at::Tensor& weights) {
  State& s = state_[unit];
  if (s.m_scale.defined()) {
    Update8bit(unit, hp, grad, weights);
    return;
  }
  const double bc1 = 1.0 - std::pow(static_cast<double>(hp.beta1), static_cast<double>(hp.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(hp.beta2), static_cast<double>(hp.step));
  const double step_size = hp.lr / bc1;
  const double bc2_sqrt = std::sqrt(bc2);
  const int64_t n = s.master.numel();
  for (int64_t off = 0; off < n; off += kChunk) {
    const int64_t c = std::min(kChunk, n - off);
    at::Tensor p = s.master.narrow(0, off, c), m = s.m.narrow(0, off, c), v = s.v.narrow(0, off, c);
    at::Tensor g = grad.narrow(0, off, c).to(at::kFloat);
    if (hp.grad_scale != 1.0f) g = g.mul(hp.grad_scale);
    // torch.optim.AdamW, single tensor: decoupled decay, lerp first moment, bias corrections.
    p.mul_(1.0 - static_cast<double>(hp.lr) * hp.weight_decay);
    m.lerp_(g, 1.0 - hp.beta1);
    v.mul_(hp.beta2).addcmul_(g, g, 1.0 - hp.beta2);
    at::Tensor denom = v.sqrt().div_(bc2_sqrt).add_(hp.eps);
    p.addcdiv_(m, denom, -step_size);
    weights.narrow(0, off, c).copy_(p);
  }
}

void DeviceOptimizer::Update8bit(int unit, const AdamWStep& hp, const at::Tensor& grad,
                                 const at::Tensor& weights) {
  const State& s = state_[unit];
  DeviceAdamW8bitStep(hp, unit, s.master, s.m, s.m_scale, s.v, s.v_scale, grad, weights);
}

void DeviceAdamW8bitStep(const AdamWStep& hp, int unit, const at::Tensor& master, const at::Tensor& m,
                         const at::Tensor& m_scale, const at::Tensor& v, const at::Tensor& v_scale,
                         const at::Tensor& grad, const at::Tensor& weights) {
  AdamWStep hp8 = hp;
  hp8.seed = Q8Seed(hp.step, unit);  // as the CPU update of this unit (optimizer_stage.cc)
  const Q8Moments q{m.data_ptr<uint8_t>(), m_scale.data_ptr<float>(), v.data_ptr<uint8_t>(),
                    v_scale.data_ptr<float>()};
  // bf16 weights are written by the kernel; other compute dtypes are cast from the master.
  const bool bf16_out = weights.scalar_type() == at::kBFloat16 && weights.is_contiguous();
  const int64_t n = weights.numel();
  TORCH_CHECK(grad.numel() == n && master.numel() >= n, "8-bit device AdamW of unit ", unit,
              ": sizes differ");
  for (int64_t off = 0; off < n; off += kChunk) {
    const int64_t c = std::min(kChunk, n - off);
    at::Tensor g = grad.narrow(0, off, c);
    if (g.scalar_type() != at::kBFloat16) g = g.to(at::kFloat);
    g = g.contiguous();
    const bool g_bf16 = g.scalar_type() == at::kBFloat16;
    float* p = master.data_ptr<float>() + off;
    uint16_t* out = bf16_out ? static_cast<uint16_t*>(weights.data_ptr()) + off : nullptr;
    if (master.is_cuda()) {
#if SFD_WITH_CUDA
      const int err = DeviceAdamW8bit(hp8, off, p, q.At(off), g.data_ptr(), g_bf16, out, c,
                                      c10::cuda::getCurrentCUDAStream(master.device().index()).stream());
      TORCH_CHECK(err == 0, "8-bit device AdamW of unit ", unit, ": ", DeviceAdamW8bitErrorString(err));
#else
      TORCH_CHECK(false, "8-bit device AdamW: CUDA tensors in a build without CUDA");
#endif
    } else if (g_bf16) {  // the CPU backend stands in for the device: the CPU kernel itself
      AdamW8bitKernelBf16Grad(DetectSimdLevel(), hp8, off, p, q.At(off),
                              static_cast<const uint16_t*>(g.data_ptr()), out, c);
    } else {
      AdamW8bitKernel(DetectSimdLevel(), hp8, off, p, q.At(off), g.data_ptr<float>(), out, c);
    }
    if (!bf16_out) weights.narrow(0, off, c).copy_(master.narrow(0, off, c));
  }
}

}  // namespace sfd
