#include "engine/runtime/executor.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include <ATen/core/grad_mode.h>
#include <spdlog/spdlog.h>

#include "engine/common/status.h"
#include "engine/common/torch_compat.h"
#include "engine/model/lm_head_loss.h"
#include "engine/model/rope.h"

namespace sfd {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

at::Tensor HostLong(const std::vector<int32_t>& v, int64_t rows, int64_t seq) {
  return at::from_blob(const_cast<int32_t*>(v.data()), {rows, seq}, at::kInt).to(at::kLong);
}

}  // namespace

struct Executor::MicroBatch {
  int64_t rows = 0, seq = 0;
  at::Tensor ids;      // int64 [B,S] device
  at::Tensor targets;  // int64 [B*S] device
  AttentionInputs attn;
};

Executor::Executor(const ModelConfig& config, const ModelLayout& layout, Backend* backend,
                   std::vector<HostUnit>* host, CpuAdamW* io, const ExecutorOptions& options)
    : config_(config), layout_(layout), backend_(backend), host_(host), io_(io), options_(options) {}

absl::StatusOr<std::unique_ptr<Executor>> Executor::Create(const ModelConfig& config,
                                                           const ModelLayout& layout,
                                                           Backend* backend,
                                                           std::vector<HostUnit>* host, CpuAdamW* io,
                                                           const ExecutorOptions& options) {
  if (options.num_slots < 1 || options.num_slots > layout.num_layers()) {
    return absl::InvalidArgumentError("engine.window_slots must be in [1, " +
                                      std::to_string(layout.num_layers()) + "], got " +
                                      std::to_string(options.num_slots));
  }
  if (options.compute_dtype != at::kFloat && options.compute_dtype != at::kBFloat16) {
    return absl::InvalidArgumentError("engine.compute_dtype must be bf16 or fp32");
  }
  if (options.device_optimizer_units > 1 && options.num_slots < layout.num_layers()) {
    return absl::InvalidArgumentError(
        "engine.device_optimizer_units > 1 needs every decoder layer resident (window_slots = " +
        std::to_string(layout.num_layers()) + ")");
  }
  std::unique_ptr<Executor> e(new Executor(config, layout, backend, host, io, options));
  SFD_RETURN_IF_ERROR(e->Allocate());
  e->weights_current_.assign(layout.num_units(), false);
  e->unit_slot_.assign(layout.num_units(), -1);
  if (options.device_optimizer_units > 0) {
    e->dev_opt_ = std::make_unique<DeviceOptimizer>(
        backend, std::min(options.device_optimizer_units, layout.num_units()));
    SFD_RETURN_IF_ERROR(e->UploadDeviceState());
  }
  e->stager_ = std::thread([p = e.get()] { p->StagerLoop(); });
  e->drainer_ = std::thread([p = e.get()] { p->DrainLoop(); });
  return e;
}

Executor::~Executor() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (stager_.joinable()) stager_.join();
  if (drainer_.joinable()) drainer_.join();
  backend_->Synchronize();
}

absl::Status Executor::Allocate() {
  const at::ScalarType dt = options_.compute_dtype;
  const int64_t layer_numel = layout_.layout(layout_.layer_unit(0)).numel();
  const int64_t embed_numel = layout_.layout(ModelLayout::kEmbeddingUnit).numel();
  const int64_t head_numel = layout_.layout(layout_.head_unit()).numel();
  auto device = [&](int64_t n, at::ScalarType t) -> absl::StatusOr<at::Tensor> {
    SFD_ASSIGN_OR_RETURN(at::Tensor x, backend_->AllocDevice(n, t));
    device_bytes_ += n * static_cast<int64_t>(c10::elementSize(t));
    return x;
  };
  for (int k = 0; k < options_.num_slots; ++k) {
    Slot s;
    SFD_ASSIGN_OR_RETURN(s.weights, device(layer_numel, dt));
    SFD_ASSIGN_OR_RETURN(s.grads, device(layer_numel, dt));
    s.grads.zero_();  // alignment padding is never written by backward: keep it zero
    s.released = backend_->NewEvent();
    s.grad_copied = backend_->NewEvent();
    slots_.push_back(std::move(s));
  }
  // Inputs in mirrors need bf16 mirrors (direct passes); the planner only asks for it then.
  if (options_.inputs_in_mirrors && dt != at::kBFloat16) {
    return absl::InvalidArgumentError("inputs_in_mirrors needs bf16 compute");
  }
  if (options_.inputs_in_mirrors) reload_pool_ = std::make_unique<ThreadPool>(kReloadThreads);
  for (int k = 0; options_.inputs_in_mirrors && k < 2; ++k) {
    SFD_ASSIGN_OR_RETURN(at::Tensor b, backend_->AllocPinned(std::min(options_.staging_elems, layer_numel), dt));
    reload_ring_.push_back(b);
    reload_sent_.push_back(backend_->NewEvent());
  }
  SFD_ASSIGN_OR_RETURN(embed_w_, device(embed_numel, dt));
  SFD_ASSIGN_OR_RETURN(head_w_, device(head_numel, dt));
  SFD_ASSIGN_OR_RETURN(embed_grad_, device(embed_numel, at::kFloat));
  SFD_ASSIGN_OR_RETURN(head_grad_, device(head_numel, at::kFloat));
  const int64_t staging = std::min(options_.staging_elems, std::max(embed_numel, head_numel));
  for (int r = 0; r < kGradBuffers; ++r) {
    SFD_ASSIGN_OR_RETURN(at::Tensor b, backend_->AllocPinned(layer_numel, dt));
    grad_pinned_.push_back(b);
    grad_pinned_done_.push_back(backend_->NewEvent());
    grad_pinned_busy_.push_back(false);
  }
  SFD_ASSIGN_OR_RETURN(fp32_chunk_, backend_->AllocPinned(staging, at::kFloat));
  embed_early_done_ = backend_->NewEvent();
  head_early_done_ = backend_->NewEvent();
  if (dt == at::kBFloat16) {  // streamed passes' embedding rows (StageDedicated)
    const int64_t rows = options_.max_tokens_per_micro_batch > 0
                             ? std::min<int64_t>(config_.vocab_size, options_.max_tokens_per_micro_batch)
                             : config_.vocab_size;
    SFD_ASSIGN_OR_RETURN(held_idx_pinned_, backend_->AllocPinned(rows, at::kLong));
    SFD_ASSIGN_OR_RETURN(held_idx_dev_, device(rows, at::kLong));
  }
  bool device_update = false;
  for (bool b : options_.device_update_units) device_update = device_update || b;
  device_updated_ = options_.device_update_units;
  for (int k = 0; device_update && k < 2; ++k) {
    StateStage s;
    SFD_ASSIGN_OR_RETURN(s.master, device(layer_numel, at::kFloat));
    SFD_ASSIGN_OR_RETURN(s.m, device(layer_numel, at::kByte));
    SFD_ASSIGN_OR_RETURN(s.v, device(layer_numel, at::kByte));
    SFD_ASSIGN_OR_RETURN(s.m_scale, device(Q8Blocks(layer_numel), at::kFloat));
    SFD_ASSIGN_OR_RETURN(s.v_scale, device(Q8Blocks(layer_numel), at::kFloat));
    if (options_.device_update_grads) {
      SFD_ASSIGN_OR_RETURN(s.grad, device(layer_numel, dt));
    }
    s.loaded = backend_->NewEvent();
    s.returned = backend_->NewEvent();
    state_stages_.push_back(std::move(s));
  }
  return compat::CatchTorch("rope tables", [&] {
    inv_freq_ = RopeInverseFrequencies(config_).to(backend_->device());
  });
}

at::Tensor Executor::DeviceWeights(int unit, int slot) const {
  if (unit == ModelLayout::kEmbeddingUnit) return embed_w_;
  if (unit == layout_.head_unit()) return head_w_;
  return slots_[slot].weights;
}

void Executor::Fail(const absl::Status& s) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (failure_.ok()) failure_ = s;
  }
  cv_.notify_all();
}

absl::Status Executor::failure() {
  std::lock_guard<std::mutex> lock(mu_);
  return failure_;
}

// ---------------------------------------------------------------- main thread

absl::StatusOr<Executor::MicroBatch> Executor::Upload(const TokenBatch& b) {
  MicroBatch mb;
  mb.rows = b.rows;
  mb.seq = b.seq;
  SFD_RETURN_IF_ERROR(compat::CatchTorch("uploading batch", [&] {
    const at::Device dev = backend_->device();
    mb.ids = HostLong(b.input_ids, b.rows, b.seq).to(dev);
    mb.targets = HostLong(b.targets, b.rows, b.seq).reshape({-1}).to(dev);
    at::Tensor pos = HostLong(b.position_ids, b.rows, b.seq).to(dev);
    at::Tensor seg = HostLong(b.segment_ids, b.rows, b.seq).to(dev);
    mb.attn.rope = MakeRopeTables(inv_freq_, pos, options_.compute_dtype);
    mb.attn.keep_mask = MakeKeepMask(seg, b.single_document_rows());
  }));
  return mb;
}

absl::StatusOr<PassStats> Executor::Run(const std::vector<TokenBatch>& batches, Mode mode,
                                        double grad_scale, int64_t version, bool direct,
                                        at::Tensor* logits) {
  SFD_RETURN_IF_ERROR(failure());
  if (batches.empty()) return absl::InvalidArgumentError("no micro-batches given");
  for (size_t i = 0; i < batches.size(); ++i) {
    absl::Status v = Validate(batches[i]);
    if (!v.ok()) return absl::Status(v.code(), "micro-batch " + std::to_string(i) + ": " + std::string(v.message()));
  }
  const bool train = mode == Mode::kTrain;
  const Schedule sched = BuildSchedule(layout_.num_layers(), static_cast<int>(batches.size()),
                                       options_.num_slots, train);
  PassStats stats;
  const bool offload = train && options_.offload_activations;
  // Layers [0, offloaded_layers) send their saved input to pinned host memory; the rest keep it.
  const int offloaded_layers =
      offload ? std::clamp(layout_.num_layers() - options_.device_saved_layers, 0, layout_.num_layers()) : 0;
  // Direct passes may keep those inputs in the layers' mirrors (options_.inputs_in_mirrors).
  const bool in_mirror = offloaded_layers > 0 && direct && options_.inputs_in_mirrors;
  if (offloaded_layers > 0) {
    int64_t most = 0;
    for (const TokenBatch& b : batches) most = std::max(most, b.rows * b.seq);
    SFD_RETURN_IF_ERROR(
        EnsureActivationBuffers(offloaded_layers, PinnedInputElems(most * config_.hidden_size, in_mirror)));
  }
  std::unique_ptr<StreamScope> scope = backend_->Use(StreamId::kCompute);
  // The first micro-batch goes up before the stager starts: a copy from pageable memory waits
  // for every H2D copy already queued (the embedding and the first layers: ~50 ms at 8B).
  absl::StatusOr<MicroBatch> first_mb = Upload(batches[0]);
  SFD_RETURN_IF_ERROR(first_mb.status());
  {
    std::lock_guard<std::mutex> lock(mu_);
    load_events_.clear();
    for (size_t l = 0; l < sched.loads.size(); ++l) load_events_.push_back(backend_->NewEvent());
    schedule_ = &sched;
    version_ = version;
    mirror_input_layers_ = in_mirror ? offloaded_layers : 0;
    uses_done_ = 0;
    loads_issued_ = 0;
    staged_bytes_ = 0;
    ++pass_id_;
  }
  cv_.notify_all();

  const int head = layout_.head_unit();
  const int64_t d = config_.hidden_size, vocab = config_.vocab_size;
  const UnitLayout& head_layout = layout_.layout(head);
  const UnitLayout& layer_layout = layout_.layout(layout_.layer_unit(0));
  auto view = [](const at::Tensor& flat, const ParamEntry* e) {
    return flat.narrow(0, e->offset, e->numel).view(e->shape);
  };

  absl::Status run_status = compat::CatchTorch("executing pass", [&] {
    at::NoGradGuard no_grad;
    at::Tensor ce_total = at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(backend_->device()));
    if (train) {
      embed_grad_.zero_();
      head_grad_.zero_();
      grad_sumsq_ = at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(backend_->device()));
    }
    MicroBatch mb;
    int current_mb = -1;
    int64_t chunk_rows = 1;
    at::Tensor x, dx;
    std::vector<at::Tensor> saved(layout_.num_layers());
    std::vector<bool> prefetched(layout_.num_layers(), false);
    // Which forward uses may keep their graph: training, the layer's slot is not reloaded
    // before its backward use, and among the last keep_graph_layers layers.
    std::vector<bool> keep_use(sched.uses.size(), false);
    if (train && options_.keep_graph_layers > 0) {
      const int first_kept = layout_.num_layers() - options_.keep_graph_layers;
      for (size_t jf = 0; jf < sched.uses.size(); ++jf) {
        const UnitUse& f = sched.uses[jf];
        const UnitRef r = layout_.unit(f.unit);
        if (f.phase != Phase::kForward || r.kind != UnitKind::kDecoderLayer || r.layer < first_kept) continue;
        size_t jb = jf + 1;
        while (jb < sched.uses.size() && !(sched.uses[jb].unit == f.unit && sched.uses[jb].micro_batch == f.micro_batch))
          ++jb;
        bool reloaded = false;
        for (const SlotLoad& l : sched.loads)
          if (l.slot == f.slot && l.first_use > static_cast<int>(jf) && l.first_use <= static_cast<int>(jb)) reloaded = true;
        keep_use[jf] = !reloaded;
      }
    }
    std::vector<LayerGraph> graphs(layout_.num_layers());
    std::vector<int64_t> act_shape;
    std::vector<std::pair<std::unique_ptr<Event>, std::unique_ptr<Event>>> act_waits;
    struct LoadWait {
      bool optimizer_late;  // the unit's update had not finished when the wait began
      std::unique_ptr<Event> before, after;
    };
    std::vector<LoadWait> load_waits;
    auto prefetch = [&](int layer) {  // backward needs saved[layer]: bring it back
      // (not for a layer whose forward kept its graph: it sent no input out)
      if (layer < 0 || layer >= offloaded_layers || prefetched[layer] || graphs[layer].y.defined()) return;
      saved[layer] = PrefetchActivation(layer, act_shape, in_mirror);
      stats.h2d_bytes += saved[layer].nbytes();
      prefetched[layer] = true;
    };
    std::string memory_marks;  // options_.memory_trace: "label in_use/peak/reserved GiB; ..."
    auto mark = [&](const char* label) {
      if (!options_.memory_trace) return;
      const DeviceMemory m = backend_->Memory();
      char buf[96];
      std::snprintf(buf, sizeof(buf), "%s %.2f/%.2f/%.2f; ", label, m.in_use / 1073741824.0,
                    m.peak / 1073741824.0, m.reserved_peak / 1073741824.0);
      memory_marks += buf;
    };
    mark("start");
    bool first_backward = true;
    double phase_start = Now();
    for (int j = 0; j < static_cast<int>(sched.uses.size()); ++j) {
      const UnitUse& use = sched.uses[j];
      if (use.micro_batch != current_mb) {
        current_mb = use.micro_batch;
        absl::StatusOr<MicroBatch> up = current_mb == 0 ? std::move(first_mb) : Upload(batches[current_mb]);
        if (!up.ok()) {
          Fail(up.status());
          return;
        }
        mb = std::move(*up);
        chunk_rows = options_.layer_chunk_tokens > 0
                         ? std::max<int64_t>(1, options_.layer_chunk_tokens / mb.seq)
                         : mb.rows;
        // Balanced chunks: 64 rows at most 12 per chunk run as 6 chunks of 10-11 rows, not
        // five of 12 and a small, less efficient one of 4.
        const int64_t chunks = (mb.rows + chunk_rows - 1) / chunk_rows;
        chunk_rows = (mb.rows + chunks - 1) / chunks;
      }
      if (use.load >= 0) {
        // Timed on the compute stream around the wait for the load's issue and for its copy:
        // the gap is how long the device sat idle for it (none while work queued before the
        // wait still ran, however long the host waited).
        load_waits.push_back({!options_.update_done(use.unit, version), backend_->NewTimingEvent(),
                              backend_->NewTimingEvent()});
        load_waits.back().before->Record(StreamId::kCompute);
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return loads_issued_ > use.load || !failure_.ok(); });
        if (!failure_.ok()) return;
        lock.unlock();
        backend_->StreamWait(StreamId::kCompute, *load_events_[use.load]);
        load_waits.back().after->Record(StreamId::kCompute);
      }
      const UnitRef ref = layout_.unit(use.unit);
      const bool fwd = use.phase == Phase::kForward;
      if (ref.kind == UnitKind::kEmbedding && fwd) {
        x = at::embedding(embed_w_.narrow(0, 0, vocab * d).view({vocab, d}), mb.ids);
      } else if (ref.kind == UnitKind::kDecoderLayer && fwd) {
        if (keep_use[j] && chunk_rows >= mb.rows) {
          // the recorded graph holds the input
        } else if (ref.layer < offloaded_layers) {
          act_shape = x.sizes().vec();
          OffloadActivation(ref.layer, x, in_mirror);
          stats.d2h_bytes += x.nbytes();
          prefetched[ref.layer] = false;
        } else {
          saved[ref.layer] = x;
        }
        const LayerWeights w = LayerWeights::View(slots_[use.slot].weights, layer_layout);
        if (keep_use[j] && chunk_rows >= mb.rows) {
          graphs[ref.layer] = RecordLayer(config_, layer_layout, slots_[use.slot].weights, x, mb.attn);
          x = graphs[ref.layer].y.detach();
        } else if (chunk_rows >= mb.rows) {
          x = DecoderLayerForward(config_, w, x, mb.attn);
        } else {
          at::Tensor y = at::empty_like(x);
          for (int64_t r = 0; r < mb.rows; r += chunk_rows) {
            const int64_t n = std::min(chunk_rows, mb.rows - r);
            y.narrow(0, r, n).copy_(DecoderLayerForward(config_, w, x.narrow(0, r, n), SliceRows(mb.attn, r, n)));
          }
          x = y;
        }
      } else if (ref.kind == UnitKind::kHead && fwd) {
        mark("forward");
        HeadInputs in;
        in.config = &config_;
        in.norm_weight = view(head_w_, head_layout.Find("norm.weight"));
        in.lm_weight = layout_.tied() ? embed_w_.narrow(0, 0, vocab * d).view({vocab, d})
                                      : view(head_w_, head_layout.Find("lm_head.weight"));
        in.targets = mb.targets;
        in.chunk_tokens = options_.lm_head_chunk_tokens;
        at::Tensor hidden = x.reshape({mb.rows * mb.seq, d});
        if (mode == Mode::kTrain) {
          at::Tensor lm_grad = layout_.tied() ? embed_grad_.narrow(0, 0, vocab * d).view({vocab, d})
                                              : view(head_grad_, head_layout.Find("lm_head.weight"));
          at::Tensor norm_grad = view(head_grad_, head_layout.Find("norm.weight"));
          HeadOutputs out = HeadForwardBackward(in, hidden, grad_scale, lm_grad, norm_grad);
          ce_total += out.ce_sum;
          // Streamed update: every embedding row but the batch's tokens is final now (tied:
          // the LM-head part; untied: zero), so its update can start during the backward.
          const bool split_embedding = stream_update_ && options_.grad_partial &&
                                       !OnDevice(ModelLayout::kEmbeddingUnit);
          if (split_embedding) {
            EmbeddingPartialD2H(batches[current_mb]);
            stats.d2h_bytes += vocab * d * static_cast<int64_t>(c10::elementSize(options_.compute_dtype));
            // Those rows' new weights go up once updated (HostUnitUpdated), if they can be
            // updated apart from the batch's rows.
            const HostUnit& e = (*host_)[ModelLayout::kEmbeddingUnit];
            if (options_.early_uploads && e.RowsSplit(d)) stats.h2d_bytes += e.mirror.nbytes();
          }
          if (stream_update_ && !OnDevice(head)) {  // the head's gradient is complete too
            CastD2H(head_grad_, (*host_)[head].mirror);
            stats.d2h_bytes += (*host_)[head].mirror.nbytes();
            if (options_.early_uploads) stats.h2d_bytes += (*host_)[head].mirror.nbytes();  // new weights, early
            AnnounceGrad(head);
          }
          dx = out.dhidden.view({mb.rows, mb.seq, d});
          mark("head");
          const int first_updated = NextDeviceUpdatedLayer(layout_.num_layers());
          if (first_updated >= 0) StateH2D(layout_.layer_unit(first_updated), &stats);
          prefetch(layout_.num_layers() - 1);
          if (options_.profile) backend_->Synchronize();
          stats.forward_seconds += Now() - phase_start;
          phase_start = Now();
        } else if (mode == Mode::kEval) {
          ce_total += HeadForward(in, hidden).ce_sum;
        } else {
          *logits = HeadLogits(in, hidden).to(at::kCPU);
        }
        x = at::Tensor();
      } else if (ref.kind == UnitKind::kDecoderLayer) {  // backward
        Slot& slot = slots_[use.slot];
        backend_->StreamWait(StreamId::kCompute, *slot.grad_copied);
        if (DeviceUpdated(use.unit)) {  // its state goes up during the backward before, the next's now
          if (!StateStaged(use.unit)) StateH2D(use.unit, &stats);
          const int next = NextDeviceUpdatedLayer(ref.layer);
          if (next >= 0) StateH2D(layout_.layer_unit(next), &stats);
        }
        const bool kept = graphs[ref.layer].y.defined();
        if (offloaded_layers > 0) {
          const bool from_host = !kept && ref.layer < offloaded_layers;
          if (from_host) prefetch(ref.layer);
          prefetch(ref.layer - 1);  // one layer ahead
          if (from_host) {
            // Timed: the gap between the two events is how long compute sat waiting.
            act_waits.emplace_back(backend_->NewTimingEvent(), backend_->NewTimingEvent());
            act_waits.back().first->Record(StreamId::kCompute);
            backend_->StreamWait(StreamId::kCompute, *act_h2d_done_[ref.layer]);
            act_waits.back().second->Record(StreamId::kCompute);
          }
        }
        if (kept) {
          dx = BackwardLayer(graphs[ref.layer], dx, slot.grads, /*accumulate=*/false);
        } else if (chunk_rows >= mb.rows) {
          dx = DecoderLayerBackward(config_, layer_layout, slot.weights, saved[ref.layer], dx, mb.attn,
                                    slot.grads);
        } else {
          at::Tensor dxin = at::empty_like(dx);
          for (int64_t r = 0; r < mb.rows; r += chunk_rows) {
            const int64_t n = std::min(chunk_rows, mb.rows - r);
            dxin.narrow(0, r, n).copy_(DecoderLayerBackward(
                config_, layer_layout, slot.weights, saved[ref.layer].narrow(0, r, n),
                dx.narrow(0, r, n), SliceRows(mb.attn, r, n), slot.grads, /*accumulate=*/r > 0));
          }
          dx = dxin;
        }
        saved[ref.layer] = at::Tensor();
        if (first_backward) mark("backward-1");
        first_backward = false;
        unit_slot_[use.unit] = use.slot;
        if (OnDevice(use.unit)) {  // gradient stays on the device for DeviceUpdate
          if (direct) {
            grad_sumsq_ += at::linalg_vector_norm(slot.grads, 2, c10::nullopt, false, at::kFloat).square();
          } else {
            absl::Status st = dev_opt_->Accumulate(use.unit, slot.grads, use.micro_batch == 0);
            if (!st.ok()) {
              Fail(st);
              return;
            }
          }
        } else if (DeviceUpdated(use.unit)) {
          SlidingDeviceUpdate(use.unit, use.slot, &stats);
        } else if (direct) {
          DirectGradD2H(use.unit, use.slot, &stats);
        } else {
          EnqueueGradD2H(use.unit, use.slot, use.micro_batch == 0, &stats);
        }
      } else if (ref.kind == UnitKind::kEmbedding) {  // backward
        embed_grad_.narrow(0, 0, vocab * d).view({vocab, d})
            .index_add_(0, mb.ids.reshape({-1}), dx.reshape({-1, d}).to(at::kFloat));
        dx = at::Tensor();
        mark("backward");
        if (options_.profile) backend_->Synchronize();
        stats.backward_seconds += Now() - phase_start;
        phase_start = Now();
      }
      if (use.slot >= 0) slots_[use.slot].released->Record(StreamId::kCompute);
      {
        std::lock_guard<std::mutex> lock(mu_);
        uses_done_ = j + 1;
      }
      cv_.notify_all();
    }
    if (!train) stats.forward_seconds += Now() - phase_start;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return drains_pending_ == 0 || !failure_.ok(); });
      if (!failure_.ok()) return;
    }
    if (train && direct) {  // embedding/head grads: bf16 into their mirrors, like the layers
      grad_sumsq_ += at::linalg_vector_norm(embed_grad_, 2, c10::nullopt, false, at::kFloat).square() +
                     at::linalg_vector_norm(head_grad_, 2, c10::nullopt, false, at::kFloat).square();
      std::unique_ptr<Event> ready = backend_->NewEvent();
      for (int unit : {static_cast<int>(ModelLayout::kEmbeddingUnit), head}) {
        if (OnDevice(unit)) continue;
        if (unit == head && stream_update_) continue;  // sent right after the head's backward
        if (unit == ModelLayout::kEmbeddingUnit && stream_update_ && options_.grad_partial) {
          absl::Status st = EmbeddingRowsD2H();  // the rest went right after the head
          stats.d2h_bytes += static_cast<int64_t>(held_rows_.size()) * d *
                             static_cast<int64_t>(c10::elementSize(options_.compute_dtype));
          if (!st.ok()) {
            Fail(st);
            return;
          }
          continue;
        }
        at::Tensor bf = (unit == head ? head_grad_ : embed_grad_).to(options_.compute_dtype);
        ready->Record(StreamId::kCompute);
        backend_->StreamWait(StreamId::kD2H, *ready);
        backend_->Copy((*host_)[unit].mirror, bf, StreamId::kD2H);
        backend_->RecordStream(bf, StreamId::kD2H);
        stats.d2h_bytes += bf.nbytes();
        if (stream_update_) AnnounceGrad(unit);
      }
      stats.grad_sumsq = grad_sumsq_.item<double>();
    } else if (train) {  // embedding and head grads: fp32 device accumulators -> host grads
      std::unique_ptr<Event> ready = backend_->NewEvent();
      ready->Record(StreamId::kCompute);
      backend_->StreamWait(StreamId::kD2H, *ready);
      std::unique_ptr<Event> done = backend_->NewEvent();
      if (dev_opt_ != nullptr) {
        at::Tensor sq = at::zeros({}, embed_grad_.options());
        for (int u = 0; u < dev_opt_->num_units(); ++u) sq += DeviceGrad(u, false).square().sum();
        stats.device_grad_sumsq = sq.item<double>();
      }
      for (int unit : {static_cast<int>(ModelLayout::kEmbeddingUnit), head}) {
        if (OnDevice(unit)) continue;
        const at::Tensor& src = unit == head ? head_grad_ : embed_grad_;
        float* dst = (*host_)[unit].grad.data_ptr<float>();
        const int64_t chunk = fp32_chunk_.numel();
        for (int64_t off = 0; off < src.numel(); off += chunk) {
          const int64_t n = std::min(chunk, src.numel() - off);
          backend_->Copy(fp32_chunk_.narrow(0, 0, n), src.narrow(0, off, n), StreamId::kD2H);
          done->Record(StreamId::kD2H);
          done->Synchronize();
          std::memcpy(dst + off, fp32_chunk_.data_ptr<float>(), n * sizeof(float));
        }
        stats.d2h_bytes += src.nbytes();
      }
    }
    stats.ce_sum = ce_total.item<double>();  // synchronises the compute stream
    if (options_.memory_trace) spdlog::info("device memory (in use/peak/reserved peak GiB): {}", memory_marks);
    for (auto& w : act_waits) stats.stall_activations_seconds += w.second->SecondsSince(*w.first);
    for (LoadWait& w : load_waits) {
      (w.optimizer_late ? stats.stall_optimizer_seconds : stats.stall_weights_seconds) += w.after->SecondsSince(*w.before);
    }
  });
  if (!run_status.ok()) Fail(run_status);
  {  // the stager reads `sched` until it has finished (or abandoned) the pass
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !stager_busy_; });
    schedule_ = nullptr;
  }
  stats.h2d_bytes += staged_bytes_;
  if (!failure().ok()) {
    // Copies already queued (into the mirrors too) finish before the caller repairs anything;
    // a device fault may make that throw as well.
    (void)compat::CatchTorch("synchronizing after a failed pass", [&] { backend_->Synchronize(); });
    return failure();
  }
  backend_->Synchronize();
  return stats;
}

absl::StatusOr<PassStats> Executor::Train(const std::vector<TokenBatch>& batches, double grad_scale,
                                          int64_t version, bool direct, bool stream_update) {
  if (direct && (batches.size() != 1 || options_.compute_dtype != at::kBFloat16)) {
    return absl::InternalError("direct gradient mode needs bf16 compute and one micro-batch");
  }
  if (stream_update && (!direct || !options_.grad_landed)) {
    return absl::InternalError("streaming the update needs direct gradient mode and grad_landed");
  }
  stream_update_ = stream_update;
  absl::StatusOr<PassStats> r = Run(batches, Mode::kTrain, grad_scale, version, direct, nullptr);
  stream_update_ = false;
  return r;
}

absl::StatusOr<PassStats> Executor::Evaluate(const std::vector<TokenBatch>& batches,
                                             int64_t version) {
  return Run(batches, Mode::kEval, 0, version, false, nullptr);
}

absl::StatusOr<at::Tensor> Executor::Logits(const TokenBatch& batch, int64_t version) {
  at::Tensor logits;
  SFD_RETURN_IF_ERROR(Run({batch}, Mode::kLogits, 0, version, false, &logits).status());
  return logits;
}

}  // namespace sfd
