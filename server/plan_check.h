// PlanCheck: the daemon's CreateJob-time memory check. Runs `sfd-worker --plan-only` (the
// engine's Trainer::Plan: no allocation, no weights read; sfd itself links no libtorch) for a
// job spec with a bounded timeout and turns its answer into the status CreateJob returns: a
// plan that does not fit RAM/GPU/NVMe is RESOURCE_EXHAUSTED with the engine's numbers, a bad
// engine setting INVALID_ARGUMENT naming the field. A check that cannot run (no worker binary,
// crash, timeout) or any other answer accepts the job as before and logs why: the check never
// wedges or blocks the API beyond its timeout.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "sfd/v1/sfd.pb.h"

namespace sfd {

// `spec`: a parsed job spec whose paths are already resolved. `log_path`: the worker's
// stdout/stderr (appended).
absl::Status CheckJobPlan(const std::string& worker_binary, const v1::JobSpec& spec,
                          const std::string& log_path, absl::Duration timeout);

}  // namespace sfd
