#include "engine/runtime/device_optimizer.h"

#include <cmath>

#include "engine/common/status.h"
#include "engine/common/torch_compat.h"

namespace sfd {
namespace {

// Elements per update chunk: bounds the fp32 temporaries (grad copy, denominator).
constexpr int64_t kChunk = int64_t{1} << 25;

}  // namespace

absl::Status DeviceOptimizer::Upload(const std::vector<HostUnit>& host) {
  return compat::CatchTorch("uploading optimizer state to the device", [&] {
    const at::TensorOptions opts = at::TensorOptions().dtype(at::kFloat).device(backend_->device());
    for (int u = 0; u < num_units(); ++u) {
      State& s = state_[u];
      const int64_t n = host[u].numel();
      if (!s.master.defined()) {
        s.master = at::empty({n}, opts);
        s.m = at::empty({n}, opts);
        s.v = at::empty({n}, opts);
      }
      s.master.copy_(host[u].master);
      s.m.copy_(host[u].m);
      s.v.copy_(host[u].v);
    }
    backend_->Synchronize();
  });
}

absl::Status DeviceOptimizer::Download(std::vector<HostUnit>* host) {
  return compat::CatchTorch("downloading optimizer state", [&] {
    backend_->Synchronize();
    for (int u = 0; u < num_units(); ++u) {
      (*host)[u].master.copy_(state_[u].master);
      (*host)[u].m.copy_(state_[u].m);
      (*host)[u].v.copy_(state_[u].v);
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

}  // namespace sfd
