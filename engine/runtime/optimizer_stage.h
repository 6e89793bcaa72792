// OptimizerStage: runs the CPU AdamW update of one optimizer step on a background thread,
// unit by unit in forward order (embedding, layers 0..L-1, head), and publishes a version per
// unit. The next step's forward only waits for the unit it is about to load, so the update of
// layer i overlaps the next forward up to layer i — with the exact global-norm clip
// coefficient, which is known before the first update starts.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/optim/cpu_adamw.h"
#include "engine/runtime/host_arena.h"

namespace sfd {

class OptimizerStage {
 public:
  OptimizerStage(std::vector<HostUnit>* host, CpuAdamW* adam);
  ~OptimizerStage();
  OptimizerStage(const OptimizerStage&) = delete;
  OptimizerStage& operator=(const OptimizerStage&) = delete;

  // Starts updating every unit with `hp`; each unit's version becomes hp.step when done.
  // Gradients come from the fp32 `grad` arenas, or — when `grads_in_mirror` — from the bf16
  // `mirror` of every unit, which the update then overwrites in place with the new bf16
  // weights. Units with a mirror always get their bf16 weights there.
  void Launch(const AdamWStep& hp, bool grads_in_mirror);
  void WaitUnit(int unit, int64_t version);
  bool UnitDone(int unit, int64_t version);
  void WaitAll();
  // Sets every unit's version (after loading a checkpoint).
  void ResetVersions(int64_t version);
  double last_update_seconds() const { return last_seconds_; }
  // Units [0, n) are updated on the device (DeviceOptimizer): only their version advances here.
  void set_device_units(int n) { device_units_ = n; }

 private:
  void Loop();

  std::vector<HostUnit>* host_;
  CpuAdamW* adam_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int64_t> version_;
  bool pending_ = false;
  bool stop_ = false;
  AdamWStep hp_;
  bool grads_in_mirror_ = false;
  int device_units_ = 0;
  double last_seconds_ = 0;
  std::thread thread_;
};

}  // namespace sfd
