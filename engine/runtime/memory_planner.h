// Memory planner: before anything is allocated, decides how many decoder-layer slots the
// device holds and computes the bytes each tier will need (device, pinned, host), then checks
// them against what the machine offers and the user's budget. A plan that cannot fit is
// refused with RESOURCE_EXHAUSTED naming the numbers, so a job never dies of OOM mid-run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/model_layout.h"
#include "engine/trainer/trainer.h"

namespace sfd {

struct PlannerInputs {
  const ModelConfig* config = nullptr;
  const ModelLayout* layout = nullptr;
  int64_t compute_dtype_bytes = 2;
  bool cuda = false;
  // The LM head runs FusedCrossEntropy (CUDA, fused kernels on): a logits chunk costs
  // vocab * compute-dtype bytes per token instead of fp32 logits plus their gradient.
  bool fused_cross_entropy = false;
  std::string device_name;
  int64_t device_free = 0;      // bytes free on the device now (0 = unknown / CPU)
  int64_t host_available = 0;   // MemAvailable (0 = unknown)
  int64_t nvme_available = 0;   // free bytes where engine.nvme_dir lives (0 = unknown)
  const EngineSpec* engine = nullptr;
  // Device-optimizer decoder layers need an fp32 gradient accumulator (4 B/param: steps with
  // several micro-batches, or compute other than bf16); the embedding's and head's are fixed.
  // False means every step is direct (bf16, one micro-batch: gradients land in the mirrors).
  bool grad_accumulators = true;
  bool moments_8bit = false;  // optimizer adamw_8bit: moments 2 bytes/param (+ scales), host and device
  // Steps are direct (bf16, one micro-batch: gradients land in the mirrors): where
  // device-updated sliding layers can run (engine.device_update_layers auto plans candidates
  // only then).
  bool direct_steps = false;
  // Clipping on (exact steps): device-updated layers are updated after the pass, and their
  // staging buffers hold a layer's gradient too.
  bool clipped = false;
  int64_t staging_elems = int64_t{1} << 24;
};

absl::StatusOr<MemoryPlan> PlanMemory(const PlannerInputs& in);

// Units whose AdamW moments live on the NVMe tier: round(fraction * L) decoder layers spread
// evenly over the L layers (layer i when floor((i+1)n/L) > floor(i n/L): with 0.5 every other
// layer starting at layer 1, with 1/L the last one), skipping units below `device_units`
// (their state is on the device). Spreading them lets each NVMe layer's read-ahead and
// write-back overlap the update of RAM layers in both update orders (forward for Launch,
// backward for the streamed update). Indexed by unit; empty when fraction is 0.
std::vector<bool> NvmeUnits(const ModelLayout& layout, double fraction, int device_units);
// Sliding decoder layers updated on the device (engine.device_update_layers), in the order
// they are taken: layer floor(x L) for x = 0, 1/2, 1/4, 3/4, 1/8, ... (van der Corput), so the
// first n of the order are spread over the model for every n and each count's set holds the
// smaller counts' (the auto count changes between steps within the pinned candidates). Units
// below `device_units` (state on the device) are left out.
// `leading` (EngineSpec::device_update_leading, benchmarks and tests): layers in index order.
std::vector<int> DeviceUpdateOrder(const ModelLayout& layout, int device_units, bool leading = false);
// The first `layers` of DeviceUpdateOrder, indexed by unit; empty when layers is 0.
std::vector<bool> DeviceUpdateUnits(const ModelLayout& layout, int layers, int device_units,
                                    bool leading = false);
// Candidate layers of engine.device_update_layers: auto (two thirds of the layers; measured
// best so far 14 of 28, 20 worse on both hosts tried).
int AutoDeviceUpdateLayers(int num_layers);
// auto plans candidates only where their staging leaves the weight window at least this many
// slots (or as many as the plan without it has, if fewer). Measured: 3 slots with the staging
// against 4 without still gained (3B bs8 @8 GiB, session 11).
inline constexpr int kAutoMinSlots = 3;
// engine.device_update_layers auto that chose none: how many of the last layers keep their saved
// inputs on the device once the candidates' staging is released — the plan without the staging
// from the same inputs with `current`'s slots, kept graphs and device-optimizer units, where it
// has the same chunks and keeps more (all L when it keeps every input on the device);
// otherwise `current`'s count.
int DeviceSavedLayersWithoutStaging(const PlannerInputs& in, const MemoryPlan& current);
// The fraction a spec asks for (0 without nvme_dir); InvalidArgument naming
// engine.nvme_fraction when it is outside [0, 1] or set without engine.nvme_dir.
absl::StatusOr<double> NvmeFraction(const EngineSpec& e);
// Free bytes of the filesystem that holds (or would hold) `dir`: its nearest existing ancestor
// must be a writable directory; errors name engine.nvme_dir.
absl::StatusOr<int64_t> NvmeDirFreeBytes(const std::string& dir);

// MemAvailable from /proc/meminfo in bytes (0 if unreadable); resident set of this process.
int64_t HostMemAvailable();
int64_t ProcessRss();

}  // namespace sfd
