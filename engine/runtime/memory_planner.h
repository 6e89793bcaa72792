// Memory planner: before anything is allocated, decides how many decoder-layer slots the
// device holds and computes the bytes each tier will need (device, pinned, host), then checks
// them against what the machine offers and the user's budget. A plan that cannot fit is
// refused with RESOURCE_EXHAUSTED naming the numbers, so a job never dies of OOM mid-run.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "engine/model/model_layout.h"
#include "engine/trainer/trainer.h"

namespace sfd {

struct PlannerInputs {
  const ModelConfig* config = nullptr;
  const ModelLayout* layout = nullptr;
  int64_t compute_dtype_bytes = 2;
  bool cuda = false;
  std::string device_name;
  int64_t device_free = 0;      // bytes free on the device now (0 = unknown / CPU)
  int64_t host_available = 0;   // MemAvailable (0 = unknown)
  const EngineSpec* engine = nullptr;
  int64_t staging_elems = int64_t{1} << 24;
};

absl::StatusOr<MemoryPlan> PlanMemory(const PlannerInputs& in);

// MemAvailable from /proc/meminfo in bytes (0 if unreadable); resident set of this process.
int64_t HostMemAvailable();
int64_t ProcessRss();

}  // namespace sfd
