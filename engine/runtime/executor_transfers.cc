// Executor, the threads and copies around the compute stream: batch validation, the stager
// thread (H2D weight loads), the drain thread (accumulate-mode gradient ring -> fp32 host
// grads), gradient D2H (direct mode into the bf16 mirrors, streamed mode announced to the
// optimizer, including the embedding's two-part transfer), activation offload/prefetch (into
// the layers' mirrors with inputs_in_mirrors) and the master reloads that go with it. The
// compute side (Run) is in executor.cc, the device-side optimizer work in
// executor_device_update.cc; the class is declared in executor.h.
#include <algorithm>
#include <chrono>
#include <cstring>

#include "engine/common/status.h"
#include "engine/common/torch_compat.h"
#include "engine/runtime/executor.h"

namespace sfd {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

// ---------------------------------------------------------------- batches

absl::Status Executor::Validate(const TokenBatch& b) const {
  const int64_t n = b.rows * b.seq;
  if (b.rows <= 0 || b.seq <= 0 || static_cast<int64_t>(b.input_ids.size()) != n ||
      static_cast<int64_t>(b.targets.size()) != n ||
      static_cast<int64_t>(b.position_ids.size()) != n ||
      static_cast<int64_t>(b.segment_ids.size()) != n) {
    return absl::InvalidArgumentError("token batch: rows*seq=" + std::to_string(n) +
                                      " but input_ids/targets/position_ids/segment_ids have " +
                                      std::to_string(b.input_ids.size()) + "/" +
                                      std::to_string(b.targets.size()) + "/" +
                                      std::to_string(b.position_ids.size()) + "/" +
                                      std::to_string(b.segment_ids.size()) + " entries");
  }
  if (options_.max_tokens_per_micro_batch > 0 && n > options_.max_tokens_per_micro_batch) {
    return absl::ResourceExhaustedError(
        "micro-batch of " + std::to_string(n) + " tokens exceeds the " +
        std::to_string(options_.max_tokens_per_micro_batch) +
        " tokens per micro-batch the memory plan was made for");
  }
  const int64_t vocab = config_.vocab_size;
  for (int64_t i = 0; i < n; ++i) {
    if (b.input_ids[i] < 0 || b.input_ids[i] >= vocab)
      return absl::InvalidArgumentError("token batch: input id " + std::to_string(b.input_ids[i]) +
                                        " at position " + std::to_string(i) +
                                        " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    if (b.targets[i] != kIgnoreLabel && (b.targets[i] < 0 || b.targets[i] >= vocab))
      return absl::InvalidArgumentError("token batch: target " + std::to_string(b.targets[i]) +
                                        " at position " + std::to_string(i) + " is outside the vocabulary");
    if (b.position_ids[i] < 0 || b.position_ids[i] >= config_.max_position_embeddings * 64)
      return absl::InvalidArgumentError("token batch: position id " + std::to_string(b.position_ids[i]) +
                                        " out of range");
  }
  if (config_.sliding_window && b.seq > *config_.sliding_window) {
    return absl::InvalidArgumentError("sequence length " + std::to_string(b.seq) +
                                      " exceeds the model's sliding_window " +
                                      std::to_string(*config_.sliding_window) +
                                      ", which sfd does not implement; lower data.max_seq_len");
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- stager thread

void Executor::StagerLoop() {
  int seen_pass = 0;
  while (true) {
    const Schedule* sched;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || (schedule_ != nullptr && pass_id_ != seen_pass); });
      if (stop_) return;
      seen_pass = pass_id_;
      sched = schedule_;
      stager_busy_ = true;
    }
    for (int l = 0; l < static_cast<int>(sched->loads.size()); ++l) {
      absl::Status st = compat::CatchTorch("staging weights", [&] {
        StageLoad(sched->loads[l], l, sched->uses[sched->loads[l].first_use].phase);
      });
      if (!st.ok()) {
        Fail(st);
        break;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        loads_issued_ = l + 1;
        if (!failure_.ok()) break;
      }
      cv_.notify_all();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      stager_busy_ = false;
    }
    cv_.notify_all();
  }
}

void Executor::StageLoad(const SlotLoad& load, int index, Phase first_use_phase) {
  options_.wait_for_update(load.unit, version_);
  if (load.slot >= 0 && load.after_use >= 0) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return uses_done_ > load.after_use || !failure_.ok() || stop_; });
    if (!failure_.ok() || stop_) return;
    lock.unlock();
    backend_->StreamWait(StreamId::kH2D, *slots_[load.slot].released);
  }
  if (OnDevice(load.unit) && weights_current_[load.unit]) {  // updated in place on the device
    load_events_[index]->Record(StreamId::kH2D);
    return;
  }
  if (load.slot < 0 && !OnDevice(load.unit)) {  // the embedding or the head
    StageDedicated(load.unit);
    load_events_[index]->Record(StreamId::kH2D);
    return;
  }
  const HostUnit& h = (*host_)[load.unit];
  const at::Tensor dst = DeviceWeights(load.unit, load.slot);
  staged_bytes_ += dst.nbytes();
  if (ReloadsFromMaster(load, first_use_phase)) {
    // The mirror holds the layer's saved input: round the master to bf16 (the bits the optimizer
    // wrote into the mirror) a chunk at a time into the pinned ring, each chunk's H2D overlapping
    // the next one's rounding.
    const int64_t chunk = reload_ring_[0].numel();
    const float* master = h.master.data_ptr<float>();
    for (int64_t off = 0; off < h.numel(); off += chunk) {
      const int64_t n = std::min(chunk, h.numel() - off);
      const int r = reload_next_;
      reload_next_ = (reload_next_ + 1) % static_cast<int>(reload_ring_.size());
      reload_sent_[r]->Synchronize();  // its previous chunk has gone up
      auto* ring = reinterpret_cast<uint16_t*>(reload_ring_[r].data_ptr());
      constexpr int64_t kPiece = int64_t{1} << 20;
      reload_pool_->ParallelFor((n + kPiece - 1) / kPiece, [&](int64_t i) {
        FloatToBf16(io_->level(), master + off + i * kPiece, ring + i * kPiece, std::min(kPiece, n - i * kPiece));
      });
      backend_->Copy(dst.narrow(0, off, n), reload_ring_[r].narrow(0, 0, n), StreamId::kH2D);
      reload_sent_[r]->Record(StreamId::kH2D);
    }
    load_events_[index]->Record(StreamId::kH2D);
    return;
  }
  // bf16: the pinned mirror the optimizer wrote; fp32 compute: the master itself.
  backend_->Copy(dst, h.mirror.defined() ? h.mirror : h.master, StreamId::kH2D);
  load_events_[index]->Record(StreamId::kH2D);
  if (OnDevice(load.unit)) weights_current_[load.unit] = true;
}

void Executor::StageDedicated(int unit) {
  const bool embed = unit == ModelLayout::kEmbeddingUnit;
  const HostUnit& h = (*host_)[unit];
  const at::Tensor dst = embed ? embed_w_ : head_w_;
  int64_t current, rows_current;
  {
    std::lock_guard<std::mutex> lock(mu_);
    current = embed ? embed_version_ : head_version_;
    rows_current = embed ? embed_rows_version_ : -1;
  }
  // An early upload (HostUnitUpdated) may still be on its way: whatever follows comes after it.
  backend_->StreamWait(StreamId::kH2D, embed ? *embed_early_done_ : *head_early_done_);
  if (current == version_) return;  // uploaded early, or by an earlier pass of this version
  const int64_t d = config_.hidden_size, n = static_cast<int64_t>(held_rows_.size());
  const bool fix_rows = rows_current == version_ && held_idx_dev_.defined() &&
                        n <= held_idx_dev_.numel() && n * d <= slots_[0].grads.numel() &&
                        held_rows_pinned_.defined() && held_rows_pinned_.numel() >= n * d;
  if (fix_rows) {
    // Every row but the held ones went up after their early update; the held rows' updates
    // have ended since (wait_for_update) and left their new weights in held_rows_pinned_
    // (OptimizerStage::MarkRows): send them with their indices into slot 0's gradient buffer
    // (free until this pass's backward, once its last D2H is done), scatter them from there
    // and zero it again, all on the H2D stream.
    int64_t* idx = held_idx_pinned_.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) idx[i] = held_rows_[i];
    const at::Tensor scratch = slots_[0].grads.narrow(0, 0, n * d);
    backend_->StreamWait(StreamId::kH2D, *slots_[0].grad_copied);
    backend_->Copy(held_idx_dev_.narrow(0, 0, n), held_idx_pinned_.narrow(0, 0, n), StreamId::kH2D);
    backend_->Copy(scratch, held_rows_pinned_.narrow(0, 0, n * d), StreamId::kH2D);
    {
      std::unique_ptr<StreamScope> scope = backend_->Use(StreamId::kH2D);
      embed_w_.narrow(0, 0, config_.vocab_size * d).view({config_.vocab_size, d})
          .index_copy_(0, held_idx_dev_.narrow(0, 0, n), scratch.view({n, d}));
      scratch.zero_();  // the buffer's alignment padding is never written by a backward
    }
    staged_bytes_ += n * d * static_cast<int64_t>(sizeof(uint16_t)) + n * static_cast<int64_t>(sizeof(int64_t));
  } else {
    // bf16: the pinned mirror the optimizer wrote; fp32 compute: the master itself.
    backend_->Copy(dst, h.mirror.defined() ? h.mirror : h.master, StreamId::kH2D);
    staged_bytes_ += dst.nbytes();
  }
  std::lock_guard<std::mutex> lock(mu_);
  (embed ? embed_version_ : head_version_) = version_;
  if (embed) embed_rows_version_ = -1;
}

void Executor::HostUnitUpdated(int unit, int64_t step, bool partial, const std::shared_ptr<Event>& landed) {
  const bool embed = unit == ModelLayout::kEmbeddingUnit;
  if (!options_.early_uploads || OnDevice(unit) || !(embed ? partial : unit == layout_.head_unit() && !partial)) {
    return;
  }
  const HostUnit& h = (*host_)[unit];
  if (!h.mirror.defined()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (embed) {
      // The copy takes the held rows too, whatever the mirror holds there when it runs (their
      // gradient, or their update in progress): the fix-up overwrites them before any use.
      embed_version_ = -1;
      embed_rows_version_ = step;
    } else {
      head_version_ = -1;
    }
  }
  absl::Status st = compat::CatchTorch("sending updated weights up early", [&] {
    if (landed) backend_->StreamWait(StreamId::kEarlyH2D, *landed);
    backend_->Copy(embed ? embed_w_ : head_w_, h.mirror, StreamId::kEarlyH2D);
    (embed ? embed_early_done_ : head_early_done_)->Record(StreamId::kEarlyH2D);
  });
  if (!st.ok()) {
    Fail(st);
    return;
  }
  if (!embed) {
    std::lock_guard<std::mutex> lock(mu_);
    head_version_ = step;
  }
}

// ---------------------------------------------------------------- drain thread

void Executor::DrainLoop() {
  while (true) {
    DrainItem item;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !drain_queue_.empty(); });
      if (stop_) return;
      item = drain_queue_.front();
      drain_queue_.pop_front();
    }
    absl::Status st = compat::CatchTorch("accumulating gradients", [&] {
      grad_pinned_done_[item.buffer]->Synchronize();
      HostUnit& h = (*host_)[item.unit];
      const int64_t n = h.numel();
      float* dst = h.grad.data_ptr<float>();
      if (options_.compute_dtype == at::kFloat) {
        const float* src = grad_pinned_[item.buffer].data_ptr<float>();
        if (item.first) {
          std::memcpy(dst, src, n * sizeof(float));
        } else {
          h.grad.add_(grad_pinned_[item.buffer].narrow(0, 0, n));
        }
      } else {
        const auto* src = reinterpret_cast<const uint16_t*>(grad_pinned_[item.buffer].data_ptr());
        if (item.first) {
          io_->Bf16ToFloat(src, dst, n);
        } else {
          io_->AddBf16ToFloat(src, dst, n);
        }
      }
    });
    if (!st.ok()) Fail(st);
    {
      std::lock_guard<std::mutex> lock(mu_);
      grad_pinned_busy_[item.buffer] = false;
      --drains_pending_;
    }
    cv_.notify_all();
  }
}

void Executor::EnqueueGradD2H(int unit, int slot, bool first, PassStats* stats) {
  const at::Tensor& device_grads = slots_[slot].grads;
  std::unique_ptr<Event> ready = backend_->NewEvent();
  ready->Record(StreamId::kCompute);
  backend_->StreamWait(StreamId::kD2H, *ready);
  int r = -1;
  {
    const double t0 = Now();
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] {
      for (int i = 0; i < kGradBuffers; ++i)
        if (!grad_pinned_busy_[i]) return true;
      return !failure_.ok();
    });
    if (!failure_.ok()) return;
    for (int i = 0; i < kGradBuffers && r < 0; ++i)
      if (!grad_pinned_busy_[i]) r = i;
    grad_pinned_busy_[r] = true;
    stats->stall_drain_seconds += Now() - t0;
  }
  backend_->Copy(grad_pinned_[r].narrow(0, 0, device_grads.numel()), device_grads, StreamId::kD2H);
  grad_pinned_done_[r]->Record(StreamId::kD2H);
  slots_[slot].grad_copied->Record(StreamId::kD2H);
  stats->d2h_bytes += device_grads.nbytes();
  {
    std::lock_guard<std::mutex> lock(mu_);
    drain_queue_.push_back({unit, r, first});
    ++drains_pending_;
  }
  cv_.notify_all();
}

absl::Status Executor::EnsureActivationBuffers(int layers, int64_t elems) {
  if (static_cast<int>(act_pinned_.size()) >= layers && act_pinned_[0].numel() >= elems) return absl::OkStatus();
  act_pinned_.clear();
  for (int i = 0; i < layers; ++i) {
    SFD_ASSIGN_OR_RETURN(at::Tensor b, backend_->AllocPinned(std::max<int64_t>(elems, 1), options_.compute_dtype));
    act_pinned_.push_back(b);
    if (static_cast<int>(act_d2h_done_.size()) <= i) {
      act_d2h_done_.push_back(backend_->NewEvent());
      act_h2d_done_.push_back(backend_->NewEvent());
    }
  }
  return absl::OkStatus();
}

int64_t Executor::PinnedInputElems(int64_t elems, bool in_mirror) const {
  return in_mirror ? std::max<int64_t>(0, elems - layout_.layout(layout_.layer_unit(0)).numel()) : elems;
}

// A saved input [elems] lives in pinned memory as (in_mirror) the layer's mirror [0, mirror
// numel) followed by its pinned buffer, or (else) the pinned buffer alone.
void Executor::OffloadActivation(int layer, const at::Tensor& x, bool in_mirror) {
  std::unique_ptr<Event> ready = backend_->NewEvent();
  // The compute stream has waited for this layer's forward load (from the mirror) already.
  ready->Record(StreamId::kCompute);
  backend_->StreamWait(StreamId::kD2H, *ready);
  backend_->StreamWait(StreamId::kD2H, *act_h2d_done_[layer]);  // previous micro-batch's prefetch
  const at::Tensor flat = x.reshape({-1});
  const int64_t rest = PinnedInputElems(flat.numel(), in_mirror), head = flat.numel() - rest;
  if (head > 0) {
    backend_->Copy((*host_)[layout_.layer_unit(layer)].mirror.narrow(0, 0, head), flat.narrow(0, 0, head),
                   StreamId::kD2H);
  }
  if (rest > 0) backend_->Copy(act_pinned_[layer].narrow(0, 0, rest), flat.narrow(0, head, rest), StreamId::kD2H);
  backend_->RecordStream(x, StreamId::kD2H);
  act_d2h_done_[layer]->Record(StreamId::kD2H);
}

at::Tensor Executor::PrefetchActivation(int layer, at::IntArrayRef shape, bool in_mirror) {
  at::Tensor dev = at::empty(shape, at::TensorOptions().dtype(options_.compute_dtype).device(backend_->device()));
  std::unique_ptr<Event> allocated = backend_->NewEvent();
  allocated->Record(StreamId::kCompute);
  backend_->StreamWait(StreamId::kH2D, *allocated);
  backend_->StreamWait(StreamId::kH2D, *act_d2h_done_[layer]);
  const at::Tensor flat = dev.view({-1});
  const int64_t rest = PinnedInputElems(flat.numel(), in_mirror), head = flat.numel() - rest;
  if (head > 0) {
    backend_->Copy(flat.narrow(0, 0, head), (*host_)[layout_.layer_unit(layer)].mirror.narrow(0, 0, head),
                   StreamId::kH2D);
  }
  if (rest > 0) backend_->Copy(flat.narrow(0, head, rest), act_pinned_[layer].narrow(0, 0, rest), StreamId::kH2D);
  backend_->RecordStream(dev, StreamId::kH2D);
  act_h2d_done_[layer]->Record(StreamId::kH2D);
  return dev;
}

void Executor::DirectGradD2H(int unit, int slot, PassStats* stats) {
  Slot& s = slots_[slot];
  grad_sumsq_ += at::linalg_vector_norm(s.grads, 2, c10::nullopt, false, at::kFloat).square();
  std::unique_ptr<Event> ready = backend_->NewEvent();
  ready->Record(StreamId::kCompute);
  backend_->StreamWait(StreamId::kD2H, *ready);
  backend_->Copy((*host_)[unit].mirror, s.grads, StreamId::kD2H);
  s.grad_copied->Record(StreamId::kD2H);
  stats->d2h_bytes += s.grads.nbytes();
  if (stream_update_) AnnounceGrad(unit);
}

void Executor::CastD2H(const at::Tensor& src, const at::Tensor& dst) {
  // Mid-pass, so the bf16 copy is made a slice at a time: the device never holds more than a
  // few slices beyond the memory plan.
  constexpr int64_t kSlice = int64_t{1} << 25;
  for (int64_t off = 0; off < src.numel(); off += kSlice) {
    const int64_t n = std::min(kSlice, src.numel() - off);
    at::Tensor bf = src.narrow(0, off, n).to(options_.compute_dtype);
    std::unique_ptr<Event> ready = backend_->NewEvent();
    ready->Record(StreamId::kCompute);
    backend_->StreamWait(StreamId::kD2H, *ready);
    backend_->Copy(dst.narrow(0, off, n), bf, StreamId::kD2H);
    backend_->RecordStream(bf, StreamId::kD2H);
  }
}

void Executor::EmbeddingPartialD2H(const TokenBatch& batch) {
  held_rows_.assign(batch.input_ids.begin(), batch.input_ids.end());
  std::sort(held_rows_.begin(), held_rows_.end());
  held_rows_.erase(std::unique(held_rows_.begin(), held_rows_.end()), held_rows_.end());
  const int64_t d = config_.hidden_size, vd = config_.vocab_size * d;
  CastD2H(embed_grad_.narrow(0, 0, vd), (*host_)[ModelLayout::kEmbeddingUnit].mirror.narrow(0, 0, vd));
  std::shared_ptr<Event> landed(backend_->NewEvent().release());
  landed->Record(StreamId::kD2H);
  options_.grad_partial(ModelLayout::kEmbeddingUnit, std::move(landed), held_rows_, d);
}

absl::Status Executor::EmbeddingRowsD2H() {
  const int64_t d = config_.hidden_size, n = static_cast<int64_t>(held_rows_.size());
  if (!held_rows_pinned_.defined() || held_rows_pinned_.numel() < n * d) {
    // Sized once for the largest micro-batch the plan allows (a page-locked allocation, and
    // freeing the old one, would synchronise the device mid-step), or the vocabulary.
    int64_t rows_cap = std::min<int64_t>(config_.vocab_size, std::max<int64_t>(n, options_.max_tokens_per_micro_batch));
    held_rows_pinned_ = at::Tensor();
    SFD_ASSIGN_OR_RETURN(held_rows_pinned_, backend_->AllocPinned(rows_cap * d, options_.compute_dtype));
  }
  at::Tensor idx = at::from_blob(held_rows_.data(), {n}, at::kInt).to(backend_->device()).to(at::kLong);
  at::Tensor rows = embed_grad_.narrow(0, 0, config_.vocab_size * d).view({config_.vocab_size, d})
                        .index_select(0, idx).to(options_.compute_dtype);
  std::unique_ptr<Event> ready = backend_->NewEvent();
  ready->Record(StreamId::kCompute);
  backend_->StreamWait(StreamId::kD2H, *ready);
  backend_->Copy(held_rows_pinned_.narrow(0, 0, n * d), rows.view({-1}), StreamId::kD2H);
  backend_->RecordStream(rows, StreamId::kD2H);
  std::shared_ptr<Event> landed(backend_->NewEvent().release());
  landed->Record(StreamId::kD2H);
  options_.grad_rows(ModelLayout::kEmbeddingUnit, std::move(landed),
                     reinterpret_cast<uint16_t*>(held_rows_pinned_.data_ptr()));
  return absl::OkStatus();
}

void Executor::AnnounceGrad(int unit) {
  std::shared_ptr<Event> landed(backend_->NewEvent().release());
  landed->Record(StreamId::kD2H);
  options_.grad_landed(unit, std::move(landed));
}

}  // namespace sfd
