// OptimizerStage: runs the CPU AdamW update of one optimizer step on a background thread and
// publishes a version per unit; the next step's forward only waits for the unit it is about to
// load. Two ways to feed it:
//  - Launch (exact clipping): after the backward, with the global-norm clip coefficient known,
//    every unit in forward order (embedding, layers 0..L-1, head). The update of layer i
//    overlaps the next forward up to layer i.
//  - BeginStreaming / MarkReady / FinishStreaming (no clipping, max_grad_norm <= 0): before the
//    backward; each unit is updated as soon as its gradient has landed in its bf16 mirror, so the
//    update overlaps the backward itself (SlideFormer's schedule). While the backward runs,
//    units go in landing order (last layer first); the backlog left when it ends goes in
//    forward order, as the next forward needs it. The arithmetic is the same as Launch with
//    grad_scale 1: the two modes give identical weights.
// Units whose AdamW moments live on the NVMe tier (set_nvme) are updated in a staging buffer of
// the NvmeStore: while one is updated, the next NVMe unit in the expected update order is read
// ahead (lowest ready index, else the first announced, else — streaming — the highest pending
// index, since gradients land from the last layer down) and the previous one is written back;
// after a step's last unit the first NVMe unit of the next step is read ahead, so its read
// overlaps the next forward.
// Units with 8-bit moments (optimizer adamw_8bit) go through the 8-bit kernels, seeded by
// (step, unit): the streamed, row-split and launched forms give the same bits.
// Sliding layers the executor updated on the device itself (engine.device_update_layers) are
// announced with MarkUpdated (streamed steps) or given to Launch with their events (exact
// steps): the stage only waits for their state's copy back before advancing their version.
#pragma once

#include <chrono>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/optim/adamw_8bit.h"
#include "engine/optim/cpu_adamw.h"
#include "engine/runtime/backend.h"
#include "engine/runtime/host_arena.h"
#include "engine/runtime/nvme_store.h"

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
  // `device_updated` (indexed by unit; may be empty): units the executor updates on the device
  // in this step (Executor::ExactDeviceUpdates) have their event here; their version advances
  // once it completes, with no CPU update.
  void Launch(const AdamWStep& hp, bool grads_in_mirror,
              std::vector<std::shared_ptr<Event>> device_updated = {});
  // Streaming form (grads in the mirrors): units are updated as MarkReady announces them.
  // BeginStreaming only arms the step (the previous step's update may still be running: it
  // overlaps this step's forward); the first MarkReady/FinishStreaming/AbortStreaming waits for
  // that update to end and starts this one. `landed` (may be null) completes when the unit's
  // gradient D2H has finished; the update waits for it. FinishStreaming marks every unit not
  // announced yet as ready (call it once all device work of the pass has finished).
  void BeginStreaming(const AdamWStep& hp);
  void MarkReady(int unit, std::shared_ptr<Event> landed);
  // Streaming form for a unit the executor updated on the device itself (a sliding layer of
  // engine.device_update_layers): nothing to compute here; the unit's version advances once
  // `landed` (the D2H of its new state and bf16 weights) completes.
  void MarkUpdated(int unit, std::shared_ptr<Event> landed);
  // Row-split form for a [rows, row_elems] unit (the embedding), whose gradient is final early
  // except for a few rows (the batch's tokens, whose lookup gradient comes at the very end of
  // the backward). MarkPartial: the mirror holds the final gradient of every row but
  // `held_rows` (sorted, unique) — those rows are updated first. MarkRows: the held rows' final
  // gradients are in `staged` (bf16 [held_rows, row_elems], valid once `landed` completes); the
  // stage copies them into the mirror, updates them, writes their new bf16 weights back into
  // `staged` (for the executor's row fix-up; only where the rows split, RowsSplittable) and
  // the unit is done.
  void MarkPartial(int unit, std::shared_ptr<Event> landed, std::vector<int32_t> held_rows,
                   int64_t row_elems);
  void MarkRows(int unit, std::shared_ptr<Event> landed, uint16_t* staged);
  void FinishStreaming();
  // Ends a streaming step whose pass failed: units not announced yet are not updated (their
  // version still advances, so the stage stays consistent; the caller restores their mirrors
  // and treats the model state as invalid).
  void AbortStreaming();

  void WaitUnit(int unit, int64_t version);
  bool UnitDone(int unit, int64_t version);
  void WaitAll();
  // Sets every unit's version (after loading a checkpoint).
  void ResetVersions(int64_t version);
  double last_update_seconds() const { return last_seconds_.load(); }
  // Of that, the time spent updating (waits for gradients to land left out): what the update
  // costs the CPU, whether or not the step waited for it.
  double last_update_busy_seconds() const { return last_busy_seconds_.load(); }
  // Called on the stage's thread after a streaming step's CPU update of a unit, before its
  // version advances (`partial`: the all-rows-but-the-held ones part of a row-split unit;
  // `landed`: the event its gradient's copy completed, so compute's use of the unit in that
  // pass is done). The executor sends the embedding's and the head's new weights up then
  // (Executor::HostUnitUpdated). Set before the first step.
  using UpdatedFn = std::function<void(int unit, int64_t step, bool partial, const std::shared_ptr<Event>& landed)>;
  void set_on_streamed_update(UpdatedFn f) { on_streamed_update_ = std::move(f); }
  // Units [0, n) are updated on the device (DeviceOptimizer): only their version advances here.
  void set_device_units(int n) { device_units_ = n; }
  // Units `store` holds (on_nvme) take their m and v from it (set before the first step).
  void set_nvme(NvmeStore* store) { nvme_ = store; }
  // The first NVMe failure (read, write): the unit it hit was not updated (its version still
  // advanced), so the model state is invalid from then on. OK otherwise.
  absl::Status status();

 private:
  void Loop();
  void UpdateUnit(int unit, const AdamWStep& hp, bool in_mirror);
  // Row-split updates (MarkPartial / MarkRows); grads in the mirror.
  // False when the unit cannot be split (RowsSplittable): nothing was updated yet.
  bool UpdateAllRowsBut(int unit, const AdamWStep& hp);
  void UpdateHeldRows(int unit, const AdamWStep& hp);
  // False for a unit with 8-bit moments whose rows do not tile into kQ8Block blocks: its
  // row-split update becomes one whole-unit update once the held rows arrive.
  bool RowsSplittable(int unit) const;
  // Picks the next piece of work under mu_: while gradients are still being announced the
  // earliest landed item, once all are the lowest-index landed one; else the first announced
  // (to wait on). Returns false if nothing is pending. `partial` says which form it is.
  bool PickLocked(int64_t step, int* unit, bool* partial);
  // NVMe unit expected to be updated next after `current` in step `step` (-1: none).
  int PredictNextNvmeLocked(int current, int64_t step) const;
  // First NVMe unit of the step after `step` (its update order follows this step's mode).
  int FirstNvmeOfNextStepLocked() const;
  void Prefetch(int unit);
  void Fail(const absl::Status& st);
  static bool HasLanded(const std::shared_ptr<Event>& e);
  void StartLocked(const AdamWStep& hp, bool grads_in_mirror, bool streaming);
  // Starts an armed streaming step once the previous update has ended; true if one is running.
  bool StreamingLocked(std::unique_lock<std::mutex>& lock);

  std::vector<HostUnit>* host_;
  CpuAdamW* adam_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int64_t> version_;
  bool pending_ = false;
  bool stop_ = false;
  AdamWStep hp_;
  bool grads_in_mirror_ = false;
  // Streaming mode: which units may be updated, and the event each one waits for.
  bool streaming_ = false;
  bool armed_ = false;
  AdamWStep armed_hp_;
  std::vector<bool> ready_;
  std::vector<bool> skip_;
  std::vector<bool> updated_;  // streaming: announced by MarkUpdated (no CPU update)
  std::vector<std::shared_ptr<Event>> landed_;
  std::vector<int> announced_;  // units in MarkReady order (the device's completion order)
  // Row-split units (streaming only).
  struct RowSplit {
    std::vector<int32_t> held_rows;
    int64_t row_elems = 0;
    std::shared_ptr<Event> landed;  // of the partial gradient
    bool announced = false, done = false;
    uint16_t* staged = nullptr;
  };
  std::vector<RowSplit> split_;
  int device_units_ = 0;
  NvmeStore* nvme_ = nullptr;
  UpdatedFn on_streamed_update_;
  absl::Status error_;  // first NVMe failure
  std::atomic<double> last_seconds_{0};  // written by the optimizer thread, read by the trainer
  std::atomic<double> last_busy_seconds_{0};
  // SFD_STAGE_TRACE=FILE: one CSV line per unit update (step, unit, kind, ms from the step's
  // arming/launch to: picked, gradient landed, done) — how the update overlaps the pass.
  std::FILE* trace_ = nullptr;
  std::chrono::steady_clock::time_point step_start_;
  std::thread thread_;
};

}  // namespace sfd
