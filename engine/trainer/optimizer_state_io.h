// Optimizer-state checkpoints: the fp32 master weights and AdamW moments of every unit, one
// safetensors file per unit (optimizer/unit-00007.safetensors with tensors master, exp_avg,
// exp_avg_sq, each fp32 [unit numel]) plus optimizer/state.json (step, unit sizes). Enough to
// continue training bit-for-bit where a run stopped.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/model_layout.h"
#include "engine/runtime/host_arena.h"

namespace sfd {

absl::Status WriteOptimizerState(const std::string& dir, const ModelLayout& layout,
                                 const std::vector<HostUnit>& host, int64_t step);
// Reads into `host` (master, m, v); returns the step. Errors name the file and what mismatched.
absl::StatusOr<int64_t> ReadOptimizerState(const std::string& dir, const ModelLayout& layout,
                                           std::vector<HostUnit>* host);

}  // namespace sfd
