// DeviceOptimizer: AdamW state and update on the device for the units whose optimizer state
// fits there (the planner picks the first units in forward order, so the next step's forward
// never waits for them). Per unit, tier device: master fp32 [unit numel]; the moments as the
// host keeps them (HostUnit): exp_avg, exp_avg_sq fp32 [numel], or with 8-bit moments their
// codes uint8 [numel] and scales fp32 [Q8Blocks(numel)]; and — only for steps with several
// micro-batches — an fp32 gradient accumulator [numel]. fp32 moments: torch.optim.AdamW's
// single-tensor semantics in torch ops (as the CPU kernel); 8-bit moments: the CPU kernel's
// bits (device_adamw_8bit.h on CUDA; the CPU kernel itself when the device is the CPU). The
// update writes the new weights, cast to the compute dtype, straight into the unit's device
// weight buffer.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/status.h"
#include "engine/optim/cpu_adamw.h"
#include "engine/runtime/backend.h"
#include "engine/runtime/host_arena.h"

namespace sfd {

class DeviceOptimizer {
 public:
  // Units [0, num_units) are on the device.
  DeviceOptimizer(Backend* backend, int num_units) : backend_(backend), state_(num_units) {}

  int num_units() const { return static_cast<int>(state_.size()); }
  bool has(int unit) const { return unit < num_units(); }

  // host master/m/v (and scales) -> device (allocates on first use).
  absl::Status Upload(const std::vector<HostUnit>& host);
  // device master/m/v (and scales) -> host arenas (for checkpoints), synchronously.
  absl::Status Download(std::vector<HostUnit>* host);
  // Gradient accumulation over micro-batches: acc = grad (first) or acc += grad, fp32.
  absl::Status Accumulate(int unit, const at::Tensor& grad, bool first);
  const at::Tensor& accumulator(int unit) const { return state_[unit].acc; }
  // One AdamW step of `unit` from `grad` (any float dtype, [numel]); writes the updated weights
  // into `weights` (compute dtype, [numel], device). Runs on the current (compute) stream.
  void Update(int unit, const AdamWStep& hp, const at::Tensor& grad, const at::Tensor& weights);

 private:
  struct State {
    at::Tensor master, m, v, acc;
    at::Tensor m_scale, v_scale;  // 8-bit moments only
  };
  void Update8bit(int unit, const AdamWStep& hp, const at::Tensor& grad, const at::Tensor& weights);

  Backend* backend_;
  std::vector<State> state_;
};

// One 8-bit AdamW step (optim/adamw_8bit.h) of a whole unit whose state lives on the backend's
// device — master fp32, codes uint8 [n] and scales fp32 [Q8Blocks(n)] — seeded as the CPU
// update of `unit` (the same bits). CUDA: the device kernel on the current stream; CPU backend:
// the CPU kernel. `grad` [n] bf16 or another float dtype; the new weights go to `weights`
// (compute dtype, [n]), which may be the bf16 `grad` buffer itself (read before written).
void DeviceAdamW8bitStep(const AdamWStep& hp, int unit, const at::Tensor& master, const at::Tensor& m,
                         const at::Tensor& m_scale, const at::Tensor& v, const at::Tensor& v_scale,
                         const at::Tensor& grad, const at::Tensor& weights);

}  // namespace sfd
