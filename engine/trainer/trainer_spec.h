// Plain-struct description of a training run as the engine needs it, and the per-step stats
// it reports. No torch, no protobuf: the daemon's worker fills these from the job spec.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace sfd {

enum class LrScheduleKind { kConstant, kLinear, kCosine };

struct OptimizerSpec {
  double lr = 1e-5;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // decoupled (torch.optim.AdamW)
  // "adamw_8bit": exp_avg / exp_avg_sq kept as 8-bit codes with per-block scales
  // (optim/adamw_8bit.h), 6 fewer host bytes per parameter; the update itself stays fp32.
  // Not combined with the NVMe tier (fp32 moments); device-resident units keep the codes too.
  bool moments_8bit = false;
};

struct LrScheduleSpec {
  LrScheduleKind kind = LrScheduleKind::kConstant;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;     // needed by linear/cosine
  double min_lr_ratio = 0.0;   // floor of linear/cosine as a fraction of lr
};

enum class DeviceKind { kAuto, kCpu, kCuda };
enum class ActivationPlacement { kAuto, kDevice, kHost };

struct EngineSpec {
  DeviceKind device = DeviceKind::kAuto;
  int cuda_device = 0;
  // Bytes of device memory the engine may use; 0 = all free memory. Decides how many layers
  // stay resident and where saved activations live.
  int64_t device_memory_budget = 0;
  // Decoder-layer slots streamed through the device; 0 = chosen by the planner.
  int window_slots = 0;
  ActivationPlacement activations = ActivationPlacement::kAuto;
  // Decoder layers whose forward graph (all intermediates) is kept for backward instead of
  // being recomputed; -1 = as many as free device memory allows (0 under a budget or on CPU).
  int keep_graph_layers = -1;
  // With saved activations offloaded to host: the last this-many decoder layers (the first the
  // backward needs) keep their saved input on the device instead; -1 = as many as the device
  // room left under the budget allows (0 on CPU).
  int device_saved_layers = -1;
  // With saved inputs offloaded and every step direct (bf16, max_micro_batches_per_step 1): an
  // offloaded layer's input goes into the layer's own bf16 mirror (free from the forward's load
  // until its gradient lands) instead of a pinned buffer of its own, and the layer's backward
  // reload rounds the fp32 master to bf16 on 4 CPU threads. 1 = on, 0 = off, -1 = when that
  // rounding hides under the layer's backward (micro-batches of ~39k tokens or more, on CUDA).
  int inputs_in_mirrors = -1;
  // Units (forward order: embedding, layers, head) whose AdamW state lives and is updated on
  // the device; -1 = as many as the room left (free memory, or the budget) allows when every
  // layer is resident (0 when layers slide, or on CPU).
  int device_optimizer_units = -1;
  // Decoder layers (spread evenly; those among the device-optimizer units are dropped, so fewer
  // may be picked: the plan says how many) whose AdamW runs on the device in steps whose
  // gradients land in the bf16 mirrors (one bf16 micro-batch; bf16 with more micro-batches per
  // step is refused at creation): their fp32 master and 8-bit codes go H2D through one of two
  // device staging buffers, the update kernel writes the new bf16 weights over the gradient,
  // and all of it returns D2H. Without clipping that happens during the backward, over the
  // slot's gradient; with clipping (exact) after the pass, once the clip coefficient is known,
  // from the gradient in the layer's mirror (which goes up too), while the CPU updates the other
  // units. Takes the CPU update of those layers off the host, which bounds steps under a
  // budget. Needs optimizer adamw_8bit; their host arenas are pinned. Other steps update them
  // on the CPU as usual. 0 = off. -1 = auto: where the device update can run (8-bit moments,
  // such steps, sliding layers) two thirds of the layers are candidates and the count per
  // step is searched on the job's own step times (trainer/device_update_tuner.h).
  int device_update_layers = 0;
  // auto: search the count only when, at count 0, the CPU AdamW is busy for at least this
  // fraction of the step (below it the step is not bound by the update; 0 = always search).
  double device_update_cpu_bound = 0.8;
  // Benchmarks and tests: device-updated layers are the leading ones (0, 1, 2, ... in the order
  // counts take them) instead of spread over the model (DeviceUpdateOrder).
  bool device_update_leading = false;
  // Compute dtype: "bf16", "fp16" or "fp32"; empty = bf16 on CUDA, fp32 on CPU.
  std::string compute_dtype;
  int cpu_threads = 0;        // CPU optimizer threads; 0 = every core with a GPU, all but two on CPU
  // With a GPU on a machine of several NUMA nodes: run the engine's host threads on the GPU's
  // node and allocate its host arenas there (runtime/cpu_placement.h); cpu_threads = 0 then
  // means every CPU of that node. No effect on one node or on the CPU tier.
  bool bind_to_device_node = true;
  // NVMe tier for the AdamW moments (m, v): a directory (created 0700 if missing) on a fast
  // local disk. The run keeps one file per NVMe unit in a private subdirectory, removed at
  // exit; host RAM drops from 14 to 6 bytes/param for those units (fp32 master + bf16 mirror).
  std::string nvme_dir;
  // Fraction (0..1) of the decoder layers whose moments live in nvme_dir; unset = 1 when
  // nvme_dir is set. The layers are spread evenly (every other layer for 0.5), so each NVMe
  // layer's read and write-back overlap the update of RAM layers; embedding and head stay in
  // RAM. Setting it without nvme_dir is an error.
  std::optional<double> nvme_fraction;
  int64_t lm_head_chunk_tokens = 4096;  // tokens per LM-head/cross-entropy chunk
  // Elements per pinned staging chunk (embedding/head fp32 gradients, master reloads with
  // inputs_in_mirrors); 0 = 16M. Small values exist for tests of the chunked paths.
  int64_t staging_elems = 0;
  // Largest rows*seq of a micro-batch the run will feed (plans activation memory; a larger
  // batch is refused). 0 = 8192.
  int64_t max_tokens_per_micro_batch = 0;
  // Most micro-batches a Step will get (gradient accumulation); a Step with more is refused.
  // 1 with bf16 compute tells the planner that device-optimizer layers need no fp32 gradient
  // accumulator (4 B/param). 0 = unknown: the accumulators are planned.
  int max_micro_batches_per_step = 0;
  // Tests: on the CPU tier, copies on the H2D/D2H/state streams run as late as the stream order
  // allows (runtime/cpu_deferred_backend.cc), so a missing wait gives wrong bits instead of
  // passing unnoticed. No effect on CUDA.
  bool cpu_deferred_copies = false;
  // Tests, with cpu_deferred_copies: streams whose bit (1 << StreamId) is set run each copy as
  // soon as it is issued (after what their wait markers wait for) instead of as late as
  // possible, so a missing wait that should keep a copy from running too early shows too.
  int cpu_eager_streams = 0;
};

struct TrainerSpec {
  std::string model_dir;   // HF model directory (config.json + safetensors)
  // Ignore the checkpoint's weights (only config.json is read) and initialise at random:
  // matrices uniform with std `init_std`, norms 1, biases 0, deterministic in `seed`.
  bool random_init = false;
  double init_std = 0.02;
  OptimizerSpec optimizer;
  LrScheduleSpec schedule;
  double max_grad_norm = 1.0;  // <= 0 disables clipping
  uint64_t seed = 0;
  EngineSpec engine;
};

// Bytes per memory tier, as planned or as measured.
struct TierBytes {
  int64_t device = 0;      // GPU memory (or the CPU stand-in tier)
  int64_t pinned = 0;      // page-locked host memory
  int64_t host = 0;        // ordinary host memory (master weights, optimizer state)
  int64_t nvme = 0;        // bytes on the NVMe tier
};

struct StepStats {
  int64_t step = 0;            // 1-based optimizer step just completed
  double loss = 0;             // mean CE over all target tokens of the step
  double lr = 0;               // lr used by this step
  double grad_norm = 0;        // global L2 norm before clipping
  int64_t tokens = 0;          // input tokens processed (all micro-batches)
  int64_t target_tokens = 0;   // tokens that carried loss
  double step_seconds = 0;
  double forward_seconds = 0;
  double backward_seconds = 0;
  double optimizer_seconds = 0;  // CPU AdamW wall time (may overlap compute)
  double optimizer_busy_seconds = 0;  // of that, updating (waits for gradients left out)
  // Time the compute stream waited, by cause (device time, from timing events around each
  // wait). stall_optimizer also counts the host's wait for a free gradient ring buffer in
  // steps that accumulate (host time).
  double stall_weights_seconds = 0;
  double stall_optimizer_seconds = 0;
  double stall_activations_seconds = 0;
  int64_t h2d_bytes = 0;
  int64_t d2h_bytes = 0;
  int64_t nvme_bytes = 0;        // NVMe tier bytes read + written since the previous step
  int device_update_layers = 0;  // sliding layers this step updated on the device
  bool device_update_tuning = false;  // engine.device_update_layers auto was still searching
  TierBytes peak;              // peak use per tier during the step (device: allocated)
  int64_t device_reserved = 0; // peak bytes reserved by the GPU allocator in the step (0 on CPU)
  int64_t host_rss = 0;        // process resident set after the step
  double model_flops = 0;      // 6*N_matmul*tokens + attention term, per step
};

}  // namespace sfd
