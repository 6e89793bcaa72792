// DeviceUpdateTuner (device_update_tuner.h): the search over device-updated layer counts.
#include "engine/trainer/device_update_tuner.h"

#include <algorithm>
#include <cstdio>
#include <numeric>

namespace sfd {

DeviceUpdateTuner::DeviceUpdateTuner(int max_layers, DeviceUpdateTunerOptions options)
    : max_(std::max(0, max_layers)), options_(options), skip_(std::max(0, options.warmup_steps)) {
  if (max_ == 0) {
    done_ = true;
    why_ = "no candidate layers";
  }
}

void DeviceUpdateTuner::Observe(double step_seconds, double optimizer_seconds, int64_t tokens,
                                double stall_seconds) {
  if (done_) return;
  if (skip_ > 0) {
    --skip_;
    return;
  }
  if (!(step_seconds > 0) || tokens <= 0) return;  // nothing to learn from
  per_token_.push_back(step_seconds / static_cast<double>(tokens));
  optimizer_fraction_.push_back(optimizer_seconds / step_seconds);
  stall_fraction_.push_back(stall_seconds / step_seconds);
  if (static_cast<int>(per_token_.size()) < std::max(1, options_.measure_steps)) return;
  auto mean = [](const std::vector<double>& v) {
    return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  };
  const double per_token = mean(per_token_), frac = mean(optimizer_fraction_), stall = mean(stall_fraction_);
  per_token_.clear();
  optimizer_fraction_.clear();
  stall_fraction_.clear();
  Measured(per_token, frac, stall);
}

void DeviceUpdateTuner::Disturbed() {
  if (!done_) skip_ = std::max(skip_, 1);
}

void DeviceUpdateTuner::Measured(double seconds_per_token, double optimizer_fraction, double stall_fraction) {
  measured_[current_] = seconds_per_token;
  if (measured_.size() == 1) {  // count 0, the first measurement
    if (optimizer_fraction < options_.cpu_bound_fraction && stall_fraction < options_.stall_fraction) {
      done_ = true;
      char buf[192];
      std::snprintf(buf, sizeof buf,
                    "the CPU AdamW took %.0f%% of the step (under %.0f%%) and the device waited for it "
                    "%.0f%% (under %.0f%%): not bound by the update",
                    100 * optimizer_fraction, 100 * options_.cpu_bound_fraction, 100 * stall_fraction,
                    100 * options_.stall_fraction);
      why_ = buf;
      return;
    }
    stride_ = (max_ + 1) / 2;
    round_start_ = 0;
    pending_ = {stride_};
  } else if (seconds_per_token < measured_[best_] * (1 - options_.min_gain)) {
    best_ = current_;
  }
  Next();
}

void DeviceUpdateTuner::Next() {
  while (true) {
    while (!pending_.empty()) {
      const int c = pending_.front();
      pending_.erase(pending_.begin());
      if (c < 0 || c > max_ || measured_.count(c)) continue;
      if (c != current_) skip_ = std::max(0, options_.settle_steps);
      current_ = c;
      return;
    }
    // A round that moved the best tries the same stride around it again (a pattern search:
    // the best may lie further that way); one that did not halves the stride.
    if (best_ == round_start_) stride_ /= 2;
    if (stride_ == 0) break;
    round_start_ = best_;
    pending_ = {best_ + stride_, best_ - stride_};
  }
  done_ = true;
  why_ = "search ended";
  current_ = best_;
}

std::string DeviceUpdateTuner::Summary() const {
  std::string s;
  for (const auto& [c, spt] : measured_) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%d: %.3f ms/1k tokens", s.empty() ? "" : ", ", c, 1e6 * spt);
    s += buf;
  }
  if (s.empty()) s = "nothing measured";
  s += done_ ? "; chose " + std::to_string(current_) + " (" + why_ + ")"
             : "; searching, next " + std::to_string(current_);
  return s;
}

}  // namespace sfd
