// HostUnit: one unit's flat arenas in host memory, laid out by the unit's UnitLayout:
//   master  fp32 [numel]  host     master weights
//   m, v    fp32 [numel]  host     AdamW exp_avg / exp_avg_sq; undefined for units whose
//                                  moments live on the NVMe tier (runtime/nvme_store.h)
//   mirror  bf16 [numel]  pinned   (bf16 compute only) the weights as the device needs them:
//                                  written by the AdamW update, read by every H2D load. In a
//                                  step without gradient accumulation it also receives the
//                                  unit's bf16 gradient by D2H after the unit's last load of
//                                  the step, and the next update consumes it in place (grad
//                                  in, new bf16 weights out).
//   grad    fp32 [numel]  host     gradient accumulated over a step's micro-batches; only for
//                                  fp32 compute or once a step with several micro-batches
//                                  needs it (allocated then).
// With 8-bit moments (optimizer adamw_8bit, optim/adamw_8bit.h) m and v hold codes instead:
//   m, v    uint8 [numel]  host    codes of exp_avg and sqrt(exp_avg_sq)
//   m_scale, v_scale fp32 [Q8Blocks(numel)] host  per-block scales
// Layers updated on the device (engine.device_update_layers) have master,
// m, v and the scales in pinned memory instead, and in those steps their mirror receives the
// new bf16 weights from the device, not the gradient.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "engine/model/model_layout.h"
#include "engine/optim/adamw_8bit.h"
#include "engine/runtime/backend.h"

namespace sfd {

struct HostUnit {
  at::Tensor master, m, v, mirror, grad;
  at::Tensor m_scale, v_scale;  // 8-bit moments only
  int64_t numel() const { return master.numel(); }
  bool moments_8bit() const { return m_scale.defined(); }
  Q8Moments q8() const;  // the 8-bit moments (moments_8bit() only)
  // Whether rows of `row_elems` can be updated apart from the rest (OptimizerStage's row-split
  // update): 8-bit moments share a scale per kQ8Block elements, so rows must tile into blocks.
  bool RowsSplit(int64_t row_elems) const { return !moments_8bit() || row_elems % kQ8Block == 0; }
};

// Allocates zeroed master/m/v for every unit (no m/v where `moments_on_nvme[u]`; 8-bit codes
// and scales when `moments_8bit`), a pinned bf16 mirror per unit when `bf16_mirror`, and fp32
// grads when `all_grads`. Units with `pinned_state[u]` get their master/m/v (and scales) in
// pinned memory (they are copied to and from the device asynchronously).
absl::StatusOr<std::vector<HostUnit>> AllocateHostUnits(const ModelLayout& layout, Backend* backend,
                                                        bool bf16_mirror, bool all_grads,
                                                        const std::vector<bool>& moments_on_nvme = {},
                                                        bool moments_8bit = false,
                                                        const std::vector<bool>& pinned_state = {});
// Allocates the fp32 grad arena of every unit that lacks one.
absl::Status EnsureGradArenas(std::vector<HostUnit>* units);

// Host bytes (pageable, pinned) AllocateHostUnits will take.
int64_t HostUnitBytes(const ModelLayout& layout, bool bf16_mirror, bool all_grads,
                      const std::vector<bool>& moments_on_nvme = {}, bool moments_8bit = false);
int64_t MirrorBytes(const ModelLayout& layout);
// Bytes of n elements' optimizer state with 8-bit moments: fp32 master, m and v codes, and their
// per-block scales (what a device-optimizer unit or a device-updated layer moves or holds).
int64_t Q8StateBytes(int64_t n);

}  // namespace sfd
