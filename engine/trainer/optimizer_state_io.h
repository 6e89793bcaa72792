// Optimizer-state checkpoints: the fp32 master weights and AdamW moments of every unit, one
// safetensors file per unit (optimizer/unit-00007.safetensors with tensors master, exp_avg,
// exp_avg_sq, each fp32 [unit numel]) plus optimizer/state.json (step, unit sizes). Enough to
// continue training bit-for-bit where a run stopped. Units whose moments live on the NVMe tier
// (`nvme` non-null and on_nvme) are written from / read into one of its staging buffers, one
// unit at a time: never more than one unit's m+v in RAM on their behalf.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/model_layout.h"
#include "engine/runtime/host_arena.h"
#include "engine/runtime/nvme_store.h"

namespace sfd {

absl::Status WriteOptimizerState(const std::string& dir, const ModelLayout& layout,
                                 const std::vector<HostUnit>& host, int64_t step,
                                 NvmeStore* nvme = nullptr);
// Reads into `host` (master, m, v) and the NVMe tier; returns the step. Errors name the file and
// what mismatched. Every file is opened and checked (sizes, tensors, dtypes) before any unit is
// read, so a bad checkpoint changes nothing; `modified` (may be null) says whether reading had
// begun when an error came (then the units are partly overwritten).
absl::StatusOr<int64_t> ReadOptimizerState(const std::string& dir, const ModelLayout& layout,
                                           std::vector<HostUnit>* host, NvmeStore* nvme = nullptr,
                                           bool* modified = nullptr);

}  // namespace sfd
