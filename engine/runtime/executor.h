// Executor: walks a Schedule on a Backend. The main thread issues compute (embedding, decoder
// layers, head) on the compute stream; a stager thread issues each planned load as one async
// H2D copy from the unit's pinned bf16 mirror (fp32 compute: from the master) into the unit's
// device slot, once the optimizer has produced that unit's weights and (device-side) the
// slot's previous occupant has had its last use. Layer gradients go back D2H:
//  - direct mode (bf16, one micro-batch per step): straight into the layer's mirror, which the
//    next update consumes in place; their sum of squares is accumulated on the device.
//  - accumulate mode: into a pinned ring that the drain thread adds into fp32 host grads.
//  - a device_update_units layer in a streaming pass: not its gradient but its new bf16 weights
//    (the 8-bit update runs on the D2H stream over the slot's gradient), followed by its state
//    (SlidingDeviceUpdate); the slot's grad_copied then covers the kernel and both copies.
//    In an exact step its gradient goes into the mirror as any, and ExactDeviceUpdates
//    updates it after the pass.
// The embedding and head have buffers of their own, which remember the version they hold: a
// load of that version sends nothing. In streaming passes their new weights go up as soon as
// the optimizer has them (HostUnitUpdated: the embedding's rows but the batch's, and the head),
// and the next load of the embedding sends only the batch's rows.
// Compute never waits on the host except for loads not yet issued.
// Definitions: executor.cc (the compute side: Run), executor_transfers.cc (stager and drain
// threads, gradient/activation copies) and executor_device_update.cc (device-optimizer units,
// device-updated sliding layers).
//
// Device buffers (tier: device, compute dtype unless noted):
//   slot k: weights [layer numel], grads [layer numel]           (k < num_slots)
//   embedding weights [V*d]; head weights [head numel]
//   embedding grad, head grad: fp32, accumulated over the step's micro-batches
//   bf16 compute: held-row indices int64 [min(V, max tokens per micro-batch)] (the embedding's
//   row fix-up; its rows pass through slot 0's grads buffer)
//   with device_update_units: 2 state stages, each master fp32 [layer numel], codes uint8
//   [layer numel] x 2, scales fp32 [Q8Blocks(layer numel)] x 2 (with device_update_grads also
//   a compute-dtype gradient [layer numel])
// Pinned buffers: grad ring (kGradBuffers x layer numel, compute dtype; accumulate mode only),
// one fp32 chunk [staging_elems] for the embedding/head grads, the held-row indices (int64, as
// on the device; bf16 compute), and per offloaded layer its saved
// input [tokens * d] (with inputs_in_mirrors, only what exceeds the layer's mirror; plus the
// reload ring, 2 x bf16 [min(layer numel, staging_elems)]).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "engine/common/thread_pool.h"
#include "engine/data/token_batch.h"
#include "engine/io/model_config.h"
#include "engine/model/decoder_layer.h"
#include "engine/model/model_layout.h"
#include "engine/optim/cpu_adamw.h"
#include "engine/runtime/backend.h"
#include "engine/runtime/device_optimizer.h"
#include "engine/runtime/host_arena.h"
#include "engine/runtime/schedule.h"

namespace sfd {

struct ExecutorOptions {
  at::ScalarType compute_dtype = at::kFloat;
  int num_slots = 2;
  int64_t staging_elems = int64_t{1} << 24;   // elements of the fp32 chunk for embedding/head grads
  int64_t lm_head_chunk_tokens = 4096;
  // Saved layer inputs go D2H to pinned host buffers during forward and come back one layer
  // ahead during backward.
  bool offload_activations = false;
  // With offload_activations: the last this-many decoder layers keep their saved input on the
  // device (the backward needs them first; no D2H/H2D, no pinned buffer for them).
  int device_saved_layers = 0;
  // With offload_activations, in direct training passes (bf16, one micro-batch): an offloaded
  // layer's saved input goes D2H into the layer's own bf16 mirror, which holds nothing needed
  // from the forward's load until the layer's gradient lands there; only what exceeds the
  // mirror goes to the layer's pinned buffer. That layer's backward reload then reads the fp32
  // master, rounded to bf16 by the stager thread a chunk at a time into a pinned ring and sent
  // from there (the bits the optimizer wrote into the mirror; the same 2 B/param of H2D): saves
  // up to a layer mirror of pinned memory per offloaded layer.
  bool inputs_in_mirrors = false;
  // Decoder layers run over at most this many tokens at a time (whole rows; exact, since
  // attention never crosses rows): bounds the per-layer working set. 0 = whole micro-batch.
  int64_t layer_chunk_tokens = 0;
  // Up to this many decoder layers (the last in forward order whose slot is not reloaded
  // before their backward) keep their forward graph instead of recomputing it.
  int keep_graph_layers = 0;
  // The first this-many units in forward order keep their optimizer state on the device
  // (DeviceOptimizer): no H2D after the first load, no gradient D2H, AdamW on the device.
  // Decoder layers qualify only when every layer has a slot of its own.
  int device_optimizer_units = 0;
  // Sliding decoder layers (indexed by unit; empty = none) updated here in streaming passes
  // (engine.device_update_layers, 8-bit moments, pinned host state): their master and codes go
  // H2D into one of two staging buffers while the layer's backward runs, the kernel writes the
  // new bf16 weights over the slot's gradient, and weights and state return D2H; then
  // grad_updated instead of grad_landed. In exact steps (direct passes that do not stream:
  // clipping on) ExactDeviceUpdates updates them after the pass instead. Other passes treat
  // them as any sliding layer.
  std::vector<bool> device_update_units;
  // The staging buffers also hold one layer's compute-dtype gradient (ExactDeviceUpdates: the
  // trainer sets it when clipping is on).
  bool device_update_grads = false;
  // Refuse micro-batches larger than this many tokens (what the memory plan assumed); 0 = no limit.
  int64_t max_tokens_per_micro_batch = 0;
  // Synchronise at phase ends so forward/backward seconds are device times (diagnostics).
  bool profile = false;
  // Log the device allocator's bytes in use, peak and reserved peak at the pass's phase ends
  // (start, forward, head, first backward layer, backward) to calibrate the memory plan.
  bool memory_trace = false;
  // Blocks until unit u's master weights hold `version` updates (the optimizer stage).
  std::function<void(int unit, int64_t version)> wait_for_update;
  std::function<bool(int unit, int64_t version)> update_done;
  // Streaming update (Train with stream_update): unit's bf16 gradient is in its mirror once
  // `landed` completes (the optimizer stage may update it then).
  std::function<void(int unit, std::shared_ptr<Event> landed)> grad_landed;
  // Streaming update of a device_update_units layer: its new state and bf16 weights are back
  // in its host arenas and mirror once `landed` completes.
  std::function<void(int unit, std::shared_ptr<Event> landed)> grad_updated;
  // Streaming update, embedding only: its gradient is final right after the LM head's backward
  // except for the rows of the batch's tokens (held_rows); those rows follow at the end of the
  // backward as bf16 [held_rows, d] in `staged` (see OptimizerStage::MarkPartial / MarkRows).
  std::function<void(int unit, std::shared_ptr<Event> landed, std::vector<int32_t> held_rows,
                     int64_t row_elems)> grad_partial;
  // The stage writes the held rows' new weights back into `staged` (MarkRows).
  std::function<void(int unit, std::shared_ptr<Event> landed, uint16_t* staged)> grad_rows;
  // The optimizer stage calls HostUnitUpdated after its streamed updates (the trainer wires it):
  // streaming passes count the early uploads, and HostUnitUpdated makes them.
  bool early_uploads = false;
};

struct PassStats {
  double ce_sum = 0;            // sum of CE over target tokens
  int64_t h2d_bytes = 0;
  int64_t d2h_bytes = 0;
  double forward_seconds = 0;
  double backward_seconds = 0;
  // Device time the compute stream sat idle waiting for a weight load (its issue and its copy),
  // measured with timing events around each wait; attributed to the optimizer when the unit's
  // update had not finished as the wait began.
  double stall_weights_seconds = 0;
  double stall_optimizer_seconds = 0;
  double stall_drain_seconds = 0;  // host wait for a free gradient ring buffer (accumulate mode)
  // Device time the compute stream waited for saved layer inputs coming back from pinned host
  // memory (activation offload), measured with timing events around each wait.
  double stall_activations_seconds = 0;
  // Direct mode: sum of squares of the whole step's gradient, computed on the device
  // (-1 when the gradient is in the fp32 host arenas instead).
  double grad_sumsq = -1;
  // Accumulate mode: sum of squares of the device-optimizer units' gradients (the rest are in
  // the fp32 host arenas).
  double device_grad_sumsq = 0;
};

class Executor {
 public:
  static absl::StatusOr<std::unique_ptr<Executor>> Create(const ModelConfig& config,
                                                          const ModelLayout& layout,
                                                          Backend* backend,
                                                          std::vector<HostUnit>* host,
                                                          CpuAdamW* io,
                                                          const ExecutorOptions& options);
  ~Executor();

  // Forward + backward of every micro-batch with weights of `version`. The step's gradient
  // of loss = ce_sum * grad_scale lands in the layers' mirrors when `direct` (bf16 compute,
  // one micro-batch; see the header comment), else in the fp32 host grads (overwritten).
  // `stream_update` (direct only): announce each unit's landed gradient via
  // options.grad_landed as soon as its D2H is queued, so its update can overlap the backward.
  absl::StatusOr<PassStats> Train(const std::vector<TokenBatch>& batches, double grad_scale,
                                  int64_t version, bool direct, bool stream_update = false);
  // Forward only; returns the CE sum over target tokens.
  absl::StatusOr<PassStats> Evaluate(const std::vector<TokenBatch>& batches, int64_t version);
  // Full logits fp32 [rows*seq, vocab] on the host.
  absl::StatusOr<at::Tensor> Logits(const TokenBatch& batch, int64_t version);

  int num_slots() const { return options_.num_slots; }

  // Device-optimizer units (see ExecutorOptions::device_optimizer_units).
  bool OnDevice(int unit) const { return dev_opt_ != nullptr && dev_opt_->has(unit); }
  // AdamW on the device for those units, after a Train pass (`direct` as that pass).
  absl::Status DeviceUpdate(const AdamWStep& hp, bool direct);
  // Host arenas <-> device optimizer state (after loading a checkpoint / before saving one);
  // the upload also marks the embedding and head buffers stale (the next pass reloads them).
  absl::Status UploadDeviceState();
  absl::Status DownloadDeviceState();
  // The AdamW step the next streaming Train pass applies to device_update_units layers.
  void set_stream_update_step(const AdamWStep& hp) { stream_hp_ = hp; }
  // device_update_units in an exact step (a direct pass that did not stream; clipping on), once
  // the pass has ended and hp carries the clip coefficient: each such layer in forward order
  // sends its state and its gradient (in its mirror) up on the state H2D stream into the next
  // staging buffer; the 8-bit kernel runs on the D2H stream and the new bf16 weights (into the
  // mirror) and state come back. Per unit, the event that return completes (null: not updated
  // here), for OptimizerStage::Launch. Adds the bytes to `stats`.
  absl::StatusOr<std::vector<std::shared_ptr<Event>>> ExactDeviceUpdates(const AdamWStep& hp,
                                                                         PassStats* stats);
  // Which device_update_units the next direct passes update here (all of them until set;
  // between passes only): a subset, since only those have pinned state and staging. The
  // others go the CPU's way. Changing it between steps changes no bit (the same update).
  absl::Status SetDeviceUpdated(std::vector<bool> units);
  // Ends the device update of sliding layers for good (engine.device_update_layers auto chose
  // none; between passes, with no unit updated here): frees the staging buffers once their
  // last copies have run. SetDeviceUpdated then accepts no unit.
  absl::Status ReleaseDeviceUpdate();
  // The last this-many layers keep their saved inputs on the device (the plan's
  // device_saved_layers; between passes: e.g. grown into released staging).
  void set_device_saved_layers(int n) { options_.device_saved_layers = n; }
  // Streaming passes (OptimizerStage::set_on_streamed_update, the stage's thread): the CPU has
  // updated `unit` for `step` — the embedding's rows but the batch's (`partial`), or the head.
  // Its new weights go up now on the kEarlyH2D stream after `landed` (compute is done with the unit in
  // this pass), not at the next pass's start: the next load of the embedding then moves only
  // the batch's rows (gathered from the mirror, scattered on the device), and of the head none.
  // Other units: nothing.
  void HostUnitUpdated(int unit, int64_t step, bool partial, const std::shared_ptr<Event>& landed);
  // Device bytes of the buffers this executor allocated up front.
  int64_t device_buffer_bytes() const { return device_bytes_; }

 private:
  Executor(const ModelConfig& config, const ModelLayout& layout, Backend* backend,
           std::vector<HostUnit>* host, CpuAdamW* io, const ExecutorOptions& options);
  absl::Status Allocate();

  static constexpr int kGradBuffers = 2;  // pinned gradient ring (accumulate mode)
  struct Slot {
    at::Tensor weights, grads;
    std::unique_ptr<Event> released;     // compute finished the occupant's last use
    std::unique_ptr<Event> grad_copied;  // D2H of the slot's grads finished
  };
  struct MicroBatch;  // device copies of one TokenBatch + attention inputs

  enum class Mode { kTrain, kEval, kLogits };
  absl::StatusOr<PassStats> Run(const std::vector<TokenBatch>& batches, Mode mode,
                                double grad_scale, int64_t version, bool direct, at::Tensor* logits);
  // Records an event on the D2H stream and hands it to options_.grad_landed (streaming pass).
  void AnnounceGrad(int unit);
  // Streaming pass, after the LM head's backward: the embedding's gradient except the batch's
  // token rows goes D2H into its mirror now; EmbeddingRowsD2H sends those rows at the end.
  void EmbeddingPartialD2H(const TokenBatch& batch);
  // src (fp32, device, flat) -> dst (compute dtype, pinned, flat) on the D2H stream, cast in
  // slices after the compute stream's current work.
  void CastD2H(const at::Tensor& src, const at::Tensor& dst);
  absl::Status EmbeddingRowsD2H();
  std::vector<int32_t> held_rows_;  // sorted unique token ids of the streamed pass's batch
  // bf16 [held rows * d] pinned: their final gradients, then (written by the optimizer stage)
  // their new weights, which the next pass's start sends up (StageDedicated).
  at::Tensor held_rows_pinned_;
  // The held rows' indices for that fix-up: int64 [min(vocab, max tokens per micro-batch)],
  // pinned and device (bf16 compute only).
  at::Tensor held_idx_pinned_, held_idx_dev_;
  // Which weights the dedicated buffers hold (guarded by mu_): embed_w_ / head_w_ hold version
  // embed_version_ / head_version_ (-1: none known); embed_rows_version_: embed_w_ holds that
  // version in every row but held_rows_ (an early upload), which its next load fixes.
  int64_t embed_version_ = -1, head_version_ = -1, embed_rows_version_ = -1;
  // The last early upload of each on the kEarlyH2D stream finished (every load of the unit
  // waits for it).
  std::unique_ptr<Event> embed_early_done_, head_early_done_;
  // Weight bytes the stager sent in the current pass.
  std::atomic<int64_t> staged_bytes_{0};
  bool stream_update_ = false;  // the current pass streams its gradients to the optimizer
  absl::Status Validate(const TokenBatch& batch) const;
  absl::StatusOr<MicroBatch> Upload(const TokenBatch& batch);
  at::Tensor DeviceWeights(int unit, int slot) const;

  // Stager thread.
  void StagerLoop();
  void StageLoad(const SlotLoad& load, int index, Phase first_use_phase);
  // StageLoad of the embedding or the head (not device-optimizer units): nothing when the
  // buffer holds version_ already, the held rows when an early upload left only them, else
  // the whole unit.
  void StageDedicated(int unit);
  // Drain thread.
  void DrainLoop();
  void EnqueueGradD2H(int unit, int slot, bool first_micro_batch, PassStats* stats);
  void DirectGradD2H(int unit, int slot, PassStats* stats);
  // device_update_units in a streaming pass: StateH2D ahead of the layer's backward (into the
  // next staging buffer, on the state H2D stream), SlidingDeviceUpdate after it (kernel on the D2H stream, then the
  // weights and state D2H, then grad_updated).
  bool DeviceUpdated(int unit) const { return stream_update_ && DeviceUpdateOn(unit); }
  bool DeviceUpdateOn(int unit) const {
    return unit < static_cast<int>(device_updated_.size()) && device_updated_[unit];
  }
  // `with_grad`: the unit's gradient (its mirror) goes up too, into the stage's grad buffer.
  void StateH2D(int unit, PassStats* stats, bool with_grad = false);
  // The state goes up one device-updated layer ahead of its backward: the first such layer's
  // at the LM head, the next one's when a device-updated layer's backward is issued (two
  // staging buffers). The highest device-updated layer below `layer` (-1: none).
  int NextDeviceUpdatedLayer(int layer) const;
  bool StateStaged(int unit) const;
  void SlidingDeviceUpdate(int unit, int slot, PassStats* stats);
  struct StateStage;
  // The 8-bit step of `unit` from stage `b` (after its state has landed) on the D2H stream over
  // `grad` (compute dtype [n], device), which then holds the new bf16 weights; they go D2H into
  // the unit's mirror (then `weights_copied` is recorded, if not null), then the state, and b
  // is free. Returns the event that return completes.
  std::shared_ptr<Event> UpdateFromStage(StateStage* b, int unit, const AdamWStep& hp, const at::Tensor& grad,
                                         Event* weights_copied, PassStats* stats);

  void Fail(const absl::Status& s);
  absl::Status failure();

  const ModelConfig& config_;
  const ModelLayout& layout_;
  Backend* backend_;
  std::vector<HostUnit>* host_;
  CpuAdamW* io_;
  ExecutorOptions options_;
  at::Tensor grad_sumsq_;  // fp32 scalar, device: direct-mode gradient sum of squares
  std::unique_ptr<DeviceOptimizer> dev_opt_;
  std::vector<bool> weights_current_;  // device weights of a device-optimizer unit are current
  std::vector<int> unit_slot_;         // slot of each decoder-layer unit in the last pass
  // The gradient of a device-optimizer unit after a pass, [numel] on the device.
  at::Tensor DeviceGrad(int unit, bool direct) const;
  at::Tensor inv_freq_;
  int64_t device_bytes_ = 0;

  std::vector<Slot> slots_;
  // Staging of device_update_units state, device: master fp32, codes uint8, scales fp32, each
  // sized for one decoder layer; used round robin.
  struct StateStage {
    at::Tensor master, m, m_scale, v, v_scale;
    at::Tensor grad;  // device_update_grads: compute dtype [layer numel]
    std::unique_ptr<Event> loaded;    // H2D of the current occupant's state finished
    std::unique_ptr<Event> returned;  // D2H of the previous occupant's state finished
    bool used = false;
    int unit = -1;
  };
  std::vector<StateStage> state_stages_;
  std::vector<bool> device_updated_;  // the device_update_units updated here now
  int state_next_ = 0;
  AdamWStep stream_hp_;
  at::Tensor embed_w_, head_w_, embed_grad_, head_grad_;
  std::vector<at::Tensor> grad_pinned_;
  std::vector<std::unique_ptr<Event>> grad_pinned_done_;
  std::vector<bool> grad_pinned_busy_;
  at::Tensor fp32_chunk_;  // pinned fp32, for embedding/head grads
  // Activation offload: per offloaded layer a pinned [max tokens * d] compute-dtype buffer, and events
  // for its D2H (forward) and H2D (backward prefetch).
  std::vector<at::Tensor> act_pinned_;
  std::vector<std::unique_ptr<Event>> act_d2h_done_, act_h2d_done_;
  // inputs_in_mirrors: the current pass keeps layers [0, mirror_input_layers_) of its saved
  // inputs in their mirrors (set with the schedule, read by the stager). Their backward reload
  // goes through reload_ring_: 2 pinned bf16 [min(layer numel, staging_elems)] buffers the
  // stager fills from the master (with reload_pool_, kReloadThreads threads counting the stager),
  // each free again once its H2D (reload_sent_) has finished.
  static constexpr int kReloadThreads = 4;
  std::unique_ptr<ThreadPool> reload_pool_;
  int mirror_input_layers_ = 0;
  std::vector<at::Tensor> reload_ring_;
  std::vector<std::unique_ptr<Event>> reload_sent_;
  int reload_next_ = 0;
  bool ReloadsFromMaster(const SlotLoad& load, Phase first_use_phase) const {
    const UnitRef r = layout_.unit(load.unit);
    return first_use_phase == Phase::kBackward && r.kind == UnitKind::kDecoderLayer &&
           r.layer < mirror_input_layers_;
  }
  absl::Status EnsureActivationBuffers(int layers, int64_t elems);
  // Pinned elements of a saved input of `elems` beyond what its layer's mirror takes (all of it
  // when the pass does not keep inputs in mirrors).
  int64_t PinnedInputElems(int64_t elems, bool in_mirror) const;
  void OffloadActivation(int layer, const at::Tensor& x, bool in_mirror);
  at::Tensor PrefetchActivation(int layer, at::IntArrayRef shape, bool in_mirror);

  // Shared state of the current pass, guarded by mu_.
  std::mutex mu_;
  std::condition_variable cv_;
  const Schedule* schedule_ = nullptr;
  int64_t version_ = 0;
  int pass_id_ = 0;
  int uses_done_ = 0;
  int loads_issued_ = 0;
  bool stager_busy_ = false;
  std::vector<std::unique_ptr<Event>> load_events_;
  struct DrainItem {
    int unit;
    int buffer;
    bool first;
  };
  std::deque<DrainItem> drain_queue_;
  int drains_pending_ = 0;
  absl::Status failure_;
  bool stop_ = false;
  std::thread stager_, drainer_;
};

}  // namespace sfd
