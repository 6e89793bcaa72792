// Learning-rate schedules of a training run: exactly transformers'
// get_constant_schedule_with_warmup, get_linear_schedule_with_warmup and
// get_cosine_schedule_with_warmup (num_cycles = 0.5), extended with a min_lr_ratio floor the
// way transformers' get_cosine_with_min_lr_schedule_with_warmup does it (after warmup the decay
// factor f becomes f * (1 - min_lr_ratio) + min_lr_ratio; 0 = identical to transformers).
// The spec (LrScheduleSpec) lives in engine/trainer/trainer_spec.h. No torch.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "engine/trainer/trainer_spec.h"

namespace sfd {

// Multiplier of the base lr for the optimizer step with 0-based index `step` (the step about to
// run; transformers' LambdaLR lambda(current_step)). Negative steps are treated as 0.
// Call ValidateLrSchedule first; on an invalid spec the result is unspecified but finite.
double LrFactorAt(const LrScheduleSpec& spec, int64_t step);

// base_lr * LrFactorAt(spec, step).
double LrAt(const LrScheduleSpec& spec, double base_lr, int64_t step);

// InvalidArgument naming the field when: warmup_steps < 0, total_steps < 0, linear/cosine
// without total_steps > 0, warmup_steps > total_steps (when total_steps is set), or
// min_lr_ratio outside [0, 1] (or set on a constant schedule).
absl::Status ValidateLrSchedule(const LrScheduleSpec& spec);

const char* LrScheduleKindName(LrScheduleKind kind);

}  // namespace sfd
