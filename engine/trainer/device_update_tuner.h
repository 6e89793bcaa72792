// DeviceUpdateTuner: how many sliding layers a direct step updates on the device
// (engine.device_update_layers: auto), found by measuring steps rather than predicting them.
//
// A budgeted direct step is bound by the CPU AdamW on some hosts and by PCIe on others: each
// device-updated layer takes its update off the CPU but moves its fp32 master and 8-bit state
// (6.1 B/param) both ways over PCIe. On two H100 hosts with the same code 14 of 28 layers gave
// +26% on one and -20% on the other (bench/NOTES.md v20), so no count fits every machine.
// Device-updated layers give the same bits as CPU-updated ones, so the count may change between
// steps without changing the training: the tuner tries counts on the job's own steps.
//
// Search (on seconds per token, so micro-batches of different sizes compare):
//  1. after `warmup_steps`, measure count 0 for `measure_steps` steps;
//  2. stop there unless the CPU AdamW took at least `cpu_bound_fraction` of the step or the
//     device sat waiting for it (a weight load behind the unit's update) for at least
//     `stall_fraction` of it (a step bound by GPU work gains nothing from moving the update).
//     The second catches exact (clipped) steps: their update overlaps only the next forward,
//     so it bounds the step while busy for well under the step (3B bs8 on an H100: busy 62%,
//     device waiting 53%; streamed 3B bs32: 35% and 2%);
//  3. pattern search from max/2: try best +- stride, keep a count only if it beats the best by
//     `min_gain`; a round that moved the best repeats at that stride, one that did not halves
//     it, until it is 0.
// After each change of count the next `settle_steps` are not measured (the step after a change
// still waits for the previous step's update, done with the old count).
// ~2 log2(max) counts are tried, a few more when the best is far from max/2: 19 candidate
// layers take ~25-35 steps. Not thread-safe; the
// trainer calls it between steps.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace sfd {

struct DeviceUpdateTunerOptions {
  int warmup_steps = 2;             // first steps of the job: allocation, first touches
  int settle_steps = 1;             // steps not measured after each change of count
  int measure_steps = 2;            // steps averaged per count
  double min_gain = 0.02;           // a count must be this fraction faster than the best to win
  double cpu_bound_fraction = 0.8;  // at count 0: CPU AdamW seconds / step seconds to search at all
  double stall_fraction = 0.1;      // or: device seconds waiting for the update / step seconds
};

class DeviceUpdateTuner {
 public:
  // Counts 0..max_layers (max_layers: the plan's candidates, whose state is pinned).
  explicit DeviceUpdateTuner(int max_layers, DeviceUpdateTunerOptions options = {});

  // The count the next direct step should use.
  int count() const { return current_; }
  // True once the search has ended (count() is then the chosen one for good).
  bool done() const { return done_; }
  // Reports the direct step just run with count(): its wall seconds, its CPU AdamW seconds,
  // its tokens and the device time it waited for the update (StepStats::stall_optimizer_seconds).
  void Observe(double step_seconds, double optimizer_seconds, int64_t tokens, double stall_seconds = 0);
  // Something other than a step (an evaluation, a checkpoint) waited for the update in flight:
  // the next step would look faster than it is, so it is not measured.
  void Disturbed();
  // "count: ms per 1k tokens" for each count measured, and the choice (for the log).
  std::string Summary() const;

 private:
  void Measured(double seconds_per_token, double optimizer_fraction, double stall_fraction);
  void Next();  // the next count to try, or done

  const int max_;
  const DeviceUpdateTunerOptions options_;
  int current_ = 0;
  int skip_;
  int best_ = 0;
  int stride_ = 0;
  int round_start_ = 0;  // the best when this stride's round began
  bool done_ = false;
  std::string why_;  // why the search ended
  std::vector<int> pending_;  // counts still to try at this stride
  std::vector<double> per_token_, optimizer_fraction_, stall_fraction_;  // samples of the current count
  std::map<int, double> measured_;  // count -> mean seconds per token
};

}  // namespace sfd
