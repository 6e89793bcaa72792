// HostUnit: one unit's flat fp32 arenas in host memory (ordinary, pageable), laid out by the
// unit's UnitLayout: master weights, AdamW first/second moments, and the gradient accumulated
// over the micro-batches of one optimizer step. All fp32 [layout.numel()], tier: host.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "engine/model/model_layout.h"

namespace sfd {

struct HostUnit {
  at::Tensor master;  // fp32 [numel] host
  at::Tensor m;       // fp32 [numel] host (exp_avg)
  at::Tensor v;       // fp32 [numel] host (exp_avg_sq)
  at::Tensor grad;    // fp32 [numel] host
  int64_t numel() const { return master.numel(); }
};

// Allocates zeroed arenas for every unit of `layout` (padding stays zero forever).
absl::StatusOr<std::vector<HostUnit>> AllocateHostUnits(const ModelLayout& layout);

// Bytes AllocateHostUnits will take.
int64_t HostUnitBytes(const ModelLayout& layout);

}  // namespace sfd
