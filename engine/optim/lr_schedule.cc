// transformers' warmup schedules (see lr_schedule.h), computed in double like Python does.
#include "engine/optim/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace sfd {

const char* LrScheduleKindName(LrScheduleKind kind) {
  switch (kind) {
    case LrScheduleKind::kConstant:
      return "constant";
    case LrScheduleKind::kLinear:
      return "linear";
    case LrScheduleKind::kCosine:
      return "cosine";
  }
  return "unknown";
}

double LrFactorAt(const LrScheduleSpec& spec, int64_t step) {
  const int64_t current = std::max<int64_t>(step, 0);
  const int64_t warmup = std::max<int64_t>(spec.warmup_steps, 0);
  if (current < warmup) {
    return static_cast<double>(current) / static_cast<double>(std::max<int64_t>(1, warmup));
  }
  const double min_ratio = spec.min_lr_ratio;
  switch (spec.kind) {
    case LrScheduleKind::kConstant:
      return 1.0;
    case LrScheduleKind::kLinear: {
      // max(0, (total - step) / max(1, total - warmup))
      const double f =
          std::max(0.0, static_cast<double>(spec.total_steps - current) /
                            static_cast<double>(std::max<int64_t>(1, spec.total_steps - warmup)));
      return min_ratio == 0.0 ? f : f * (1.0 - min_ratio) + min_ratio;
    }
    case LrScheduleKind::kCosine: {
      // progress = (step - warmup) / max(1, total - warmup);
      // max(0, 0.5 * (1 + cos(pi * num_cycles * 2 * progress))), num_cycles = 0.5
      const double progress = static_cast<double>(current - warmup) /
                              static_cast<double>(std::max<int64_t>(1, spec.total_steps - warmup));
      const double num_cycles = 0.5;
      double f = 0.5 * (1.0 + std::cos(M_PI * num_cycles * 2.0 * progress));
      if (min_ratio != 0.0) f = f * (1.0 - min_ratio) + min_ratio;
      return std::max(0.0, f);
    }
  }
  return 1.0;
}

double LrAt(const LrScheduleSpec& spec, double base_lr, int64_t step) {
  return base_lr * LrFactorAt(spec, step);
}

absl::Status ValidateLrSchedule(const LrScheduleSpec& spec) {
  const char* kind = LrScheduleKindName(spec.kind);
  if (spec.warmup_steps < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("lr schedule: warmup_steps must be >= 0, got ", spec.warmup_steps));
  }
  if (spec.total_steps < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("lr schedule: total_steps must be >= 0, got ", spec.total_steps));
  }
  if (spec.kind != LrScheduleKind::kConstant && spec.total_steps == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("lr schedule: ", kind, " schedule needs total_steps > 0"));
  }
  if (spec.total_steps > 0 && spec.warmup_steps > spec.total_steps) {
    return absl::InvalidArgumentError(absl::StrCat("lr schedule: warmup_steps (", spec.warmup_steps,
                                                   ") must be <= total_steps (", spec.total_steps,
                                                   ")"));
  }
  if (!(spec.min_lr_ratio >= 0.0 && spec.min_lr_ratio <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("lr schedule: min_lr_ratio must be in [0, 1], got ", spec.min_lr_ratio));
  }
  if (spec.kind == LrScheduleKind::kConstant && spec.min_lr_ratio != 0.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("lr schedule: min_lr_ratio (", spec.min_lr_ratio,
                     ") has no effect on a constant schedule; use linear or cosine"));
  }
  return absl::OkStatus();
}

}  // namespace sfd
