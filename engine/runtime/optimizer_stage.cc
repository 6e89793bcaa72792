#include "engine/runtime/optimizer_stage.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "engine/common/status.h"
#include "engine/common/torch_compat.h"

namespace sfd {

OptimizerStage::OptimizerStage(std::vector<HostUnit>* host, CpuAdamW* adam)
    : host_(host), adam_(adam), version_(host->size(), 0), ready_(host->size(), false),
      skip_(host->size(), false), updated_(host->size(), false), landed_(host->size()),
      split_(host->size()) {
  if (const char* path = std::getenv("SFD_STAGE_TRACE")) {
    trace_ = std::fopen(path, "a");
    if (trace_ != nullptr) std::fprintf(trace_, "step,unit,kind,picked_ms,landed_ms,done_ms\n");
  }
  thread_ = std::thread([this] { Loop(); });
}

OptimizerStage::~OptimizerStage() {
  FinishStreaming();
  WaitAll();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  if (trace_ != nullptr) std::fclose(trace_);
}

void OptimizerStage::StartLocked(const AdamWStep& hp, bool grads_in_mirror, bool streaming) {
  SFD_CHECK(!pending_) << "optimizer step launched while the previous one runs";
  for (int64_t v : version_) SFD_CHECK(v == hp.step - 1) << "unit version " << v << " step " << hp.step;
  hp_ = hp;
  grads_in_mirror_ = grads_in_mirror;
  streaming_ = streaming;
  for (size_t u = 0; u < ready_.size(); ++u) {
    ready_[u] = !streaming || static_cast<int>(u) < device_units_;
    skip_[u] = false;
    updated_[u] = false;
    landed_[u].reset();
    split_[u] = RowSplit();
  }
  announced_.clear();
  pending_ = true;
}

void OptimizerStage::Launch(const AdamWStep& hp, bool grads_in_mirror,
                            std::vector<std::shared_ptr<Event>> device_updated) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    step_start_ = std::chrono::steady_clock::now();
    StartLocked(hp, grads_in_mirror, /*streaming=*/false);
    // Picked once landed (lowest index first among the landed), else after every CPU unit.
    for (size_t u = 0; u < device_updated.size() && u < landed_.size(); ++u) {
      if (device_updated[u] == nullptr) continue;
      landed_[u] = std::move(device_updated[u]);
      updated_[u] = true;
    }
  }
  cv_.notify_all();
}

void OptimizerStage::BeginStreaming(const AdamWStep& hp) {
  std::lock_guard<std::mutex> lock(mu_);
  SFD_CHECK(!armed_) << "streaming step armed twice";
  step_start_ = std::chrono::steady_clock::now();
  armed_ = true;
  armed_hp_ = hp;
}

bool OptimizerStage::StreamingLocked(std::unique_lock<std::mutex>& lock) {
  if (armed_) {
    cv_.wait(lock, [&] { return !pending_; });
    StartLocked(armed_hp_, /*grads_in_mirror=*/true, /*streaming=*/true);
    armed_ = false;
    cv_.notify_all();
  }
  return pending_ && streaming_;
}

void OptimizerStage::MarkUpdated(int unit, std::shared_ptr<Event> landed) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!StreamingLocked(lock)) return;
    landed_[unit] = std::move(landed);
    ready_[unit] = true;
    updated_[unit] = true;
    announced_.push_back(unit);
  }
  cv_.notify_all();
}

void OptimizerStage::MarkReady(int unit, std::shared_ptr<Event> landed) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!StreamingLocked(lock)) return;
    landed_[unit] = std::move(landed);
    ready_[unit] = true;
    announced_.push_back(unit);
  }
  cv_.notify_all();
}

void OptimizerStage::MarkPartial(int unit, std::shared_ptr<Event> landed,
                                 std::vector<int32_t> held_rows, int64_t row_elems) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!StreamingLocked(lock)) return;
    RowSplit& r = split_[unit];
    r.held_rows = std::move(held_rows);
    r.row_elems = row_elems;
    r.landed = std::move(landed);
    r.announced = true;
    announced_.push_back(unit);
  }
  cv_.notify_all();
}

void OptimizerStage::MarkRows(int unit, std::shared_ptr<Event> landed, uint16_t* staged) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!StreamingLocked(lock)) return;
    SFD_CHECK(split_[unit].announced) << "MarkRows without MarkPartial, unit " << unit;
    split_[unit].staged = staged;
    landed_[unit] = std::move(landed);
    ready_[unit] = true;
    announced_.push_back(unit);
  }
  cv_.notify_all();
}

void OptimizerStage::FinishStreaming() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!StreamingLocked(lock)) return;
    for (size_t u = 0; u < ready_.size(); ++u) {
      SFD_CHECK(!split_[u].announced || split_[u].staged != nullptr) << "unit " << u << " rows never staged";
      ready_[u] = true;
    }
  }
  cv_.notify_all();
}

void OptimizerStage::AbortStreaming() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!StreamingLocked(lock)) return;
    for (size_t u = 0; u < ready_.size(); ++u) {
      if (!ready_[u]) skip_[u] = true;
      ready_[u] = true;
      split_[u].done = split_[u].done || !split_[u].announced || skip_[u];
    }
  }
  cv_.notify_all();
}

void OptimizerStage::UpdateUnit(int u, const AdamWStep& hp, bool in_mirror) {
  HostUnit& h = (*host_)[u];
  uint16_t* out = h.mirror.defined() ? reinterpret_cast<uint16_t*>(h.mirror.data_ptr()) : nullptr;
  float* m = nullptr;
  float* v = nullptr;
  NvmeStore::Lease lease;
  const bool on_nvme = nvme_ != nullptr && nvme_->on_nvme(u);
  if (on_nvme) {  // m and v in a staging buffer; read the next NVMe unit meanwhile
    absl::StatusOr<NvmeStore::Lease> l = nvme_->Acquire(u);
    if (!l.ok()) {
      Fail(l.status());
      return;
    }
    lease = *l;
    m = lease.m;
    v = lease.v;
    int next;
    {
      std::lock_guard<std::mutex> lock(mu_);
      next = PredictNextNvmeLocked(u, hp.step);
    }
    Prefetch(next);
  } else if (!h.moments_8bit()) {
    m = h.m.data_ptr<float>();
    v = h.v.data_ptr<float>();
  }
  if (h.moments_8bit()) {
    AdamWStep hp8 = hp;
    hp8.seed = Q8Seed(hp.step, u);
    if (in_mirror) {
      adam_->Update8bitBf16Grad(hp8, h.master.data_ptr<float>(), h.q8(), out, out, h.numel());
    } else {
      adam_->Update8bit(hp8, h.master.data_ptr<float>(), h.q8(), h.grad.data_ptr<float>(), out, h.numel());
    }
    return;
  }
  if (in_mirror) {  // bf16 grads in the mirror, new bf16 weights over them
    adam_->UpdateBf16Grad(hp, h.master.data_ptr<float>(), m, v, out, out, h.numel());
  } else {
    adam_->Update(hp, h.master.data_ptr<float>(), m, v, h.grad.data_ptr<float>(), out, h.numel());
  }
  if (on_nvme) {
    const absl::Status st = nvme_->WriteBack(lease);
    if (!st.ok()) Fail(st);
  }
}

int OptimizerStage::PredictNextNvmeLocked(int current, int64_t step) const {
  const int n = static_cast<int>(version_.size());
  auto pending = [&](int i) {
    return i != current && version_[i] < step && i >= device_units_ && !skip_[i] && nvme_->on_nvme(i);
  };
  for (int i = 0; i < n; ++i)  // ready: taken lowest index first
    if (ready_[i] && pending(i)) return i;
  for (int a : announced_)
    if (pending(a)) return a;
  if (streaming_) {  // gradients land from the last layer down
    for (int i = n - 1; i >= 0; --i)
      if (pending(i)) return i;
  }
  return -1;
}

int OptimizerStage::FirstNvmeOfNextStepLocked() const {
  const int n = static_cast<int>(version_.size());
  for (int k = 0; k < n; ++k) {
    const int i = streaming_ ? n - 1 - k : k;
    if (i >= device_units_ && nvme_->on_nvme(i)) return i;
  }
  return -1;
}

void OptimizerStage::Prefetch(int unit) {
  if (unit < 0) return;
  const absl::Status st = nvme_->Prefetch(unit);
  if (!st.ok()) Fail(st);
}

void OptimizerStage::Fail(const absl::Status& st) {
  std::lock_guard<std::mutex> lock(mu_);
  if (error_.ok()) error_ = st;
}

absl::Status OptimizerStage::status() {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

bool OptimizerStage::PickLocked(int64_t step, int* unit, bool* partial) {
  const int n = static_cast<int>(version_.size());
  // A row-split unit's partial update comes before its held rows; the held rows wait for it.
  auto partial_pending = [&](int i) { return split_[i].announced && !split_[i].done; };
  auto full_pending = [&](int i) { return ready_[i] && version_[i] < step && !partial_pending(i); };
  // While the backward is still announcing gradients, the earliest landed goes first (the
  // device's order: high layers first), so that when the backward ends the backlog is the
  // lowest units — which then go in forward order, just ahead of the next forward. (Lowest
  // index first during the backward starved the first-landed high layers until the end and
  // made the next forward wait for them.)
  bool all_announced = true;
  for (int i = 0; i < n && all_announced; ++i) all_announced = ready_[i];
  if (!all_announced) {
    for (int i : announced_) {
      if (partial_pending(i) && HasLanded(split_[i].landed)) {
        *unit = i, *partial = true;
        return true;
      }
      if (full_pending(i) && HasLanded(landed_[i])) {
        *unit = i, *partial = false;
        return true;
      }
    }
  }
  for (int i = 0; i < n; ++i) {
    if (partial_pending(i) && HasLanded(split_[i].landed)) {
      *unit = i, *partial = true;
      return true;
    }
    if (full_pending(i) && HasLanded(landed_[i])) {
      *unit = i, *partial = false;
      return true;
    }
  }
  for (int i : announced_) {  // nothing has landed: wait on the first announced
    if (partial_pending(i)) {
      *unit = i, *partial = true;
      return true;
    }
    if (full_pending(i)) {
      *unit = i, *partial = false;
      return true;
    }
  }
  for (int i = 0; i < n; ++i) {  // ready without an announcement (Launch / FinishStreaming)
    if (full_pending(i)) {
      *unit = i, *partial = false;
      return true;
    }
  }
  return false;
}

bool OptimizerStage::RowsSplittable(int u) const { return (*host_)[u].RowsSplit(split_[u].row_elems); }

bool OptimizerStage::UpdateAllRowsBut(int u, const AdamWStep& hp) {
  HostUnit& h = (*host_)[u];
  const RowSplit& r = split_[u];
  // 8-bit moments share a scale per block of kQ8Block elements: rows that do not tile into
  // blocks wait for the held rows and the unit is updated whole (UpdateHeldRows).
  if (!RowsSplittable(u)) return false;
  SFD_CHECK(nvme_ == nullptr || !nvme_->on_nvme(u)) << "row-split unit " << u << " on NVMe";
  const int64_t rows = h.numel() / r.row_elems;
  // Row ranges between the held rows, cut into pieces of about one AdamW chunk.
  std::vector<std::pair<int64_t, int64_t>> pieces;  // element offset, count
  const int64_t piece = std::max<int64_t>(r.row_elems, adam_->chunk_elems() / r.row_elems * r.row_elems);
  int64_t begin = 0;
  auto add_range = [&](int64_t row_begin, int64_t row_end) {
    for (int64_t off = row_begin * r.row_elems; off < row_end * r.row_elems; off += piece)
      pieces.push_back({off, std::min(piece, row_end * r.row_elems - off)});
  };
  for (int32_t held : r.held_rows) {
    if (held > begin) add_range(begin, held);
    begin = held + 1;
  }
  if (begin < rows) add_range(begin, rows);
  float* master = h.master.data_ptr<float>();
  auto* mirror = reinterpret_cast<uint16_t*>(h.mirror.data_ptr());
  const SimdLevel level = adam_->level();
  if (h.moments_8bit()) {  // pieces are whole rows, so whole blocks
    AdamWStep hp8 = hp;
    hp8.seed = Q8Seed(hp.step, u);
    const Q8Moments q = h.q8();
    adam_->pool()->ParallelFor(static_cast<int64_t>(pieces.size()), [&](int64_t i) {
      const int64_t off = pieces[i].first, cnt = pieces[i].second;
      AdamW8bitKernelBf16Grad(level, hp8, off, master + off, q.At(off), mirror + off, mirror + off, cnt);
    });
    return true;
  }
  float* m = h.m.data_ptr<float>();
  float* v = h.v.data_ptr<float>();
  adam_->pool()->ParallelFor(static_cast<int64_t>(pieces.size()), [&](int64_t i) {
    const int64_t off = pieces[i].first, cnt = pieces[i].second;
    AdamWKernelBf16Grad(level, hp, master + off, m + off, v + off, mirror + off, mirror + off, cnt);
  });
  return true;
}

void OptimizerStage::UpdateHeldRows(int u, const AdamWStep& hp) {
  HostUnit& h = (*host_)[u];
  const RowSplit& r = split_[u];
  float* master = h.master.data_ptr<float>();
  auto* mirror = reinterpret_cast<uint16_t*>(h.mirror.data_ptr());
  const SimdLevel level = adam_->level();
  const int64_t d = r.row_elems;
  if (h.moments_8bit()) {
    adam_->pool()->ParallelFor(static_cast<int64_t>(r.held_rows.size()), [&](int64_t i) {
      std::memcpy(mirror + static_cast<int64_t>(r.held_rows[i]) * d, r.staged + i * d, d * sizeof(uint16_t));
    });
    if (!RowsSplittable(u)) {  // the rest was left for now: the whole unit in one update
      UpdateUnit(u, hp, /*in_mirror=*/true);
      return;
    }
    AdamWStep hp8 = hp;
    hp8.seed = Q8Seed(hp.step, u);
    const Q8Moments q = h.q8();
    adam_->pool()->ParallelFor(static_cast<int64_t>(r.held_rows.size()), [&](int64_t i) {
      const int64_t off = static_cast<int64_t>(r.held_rows[i]) * d;
      AdamW8bitKernelBf16Grad(level, hp8, off, master + off, q.At(off), mirror + off, mirror + off, d);
      std::memcpy(r.staged + i * d, mirror + off, d * sizeof(uint16_t));  // the new row, for the device
    });
    return;
  }
  float* m = h.m.data_ptr<float>();
  float* v = h.v.data_ptr<float>();
  adam_->pool()->ParallelFor(static_cast<int64_t>(r.held_rows.size()), [&](int64_t i) {
    const int64_t off = static_cast<int64_t>(r.held_rows[i]) * d;
    std::memcpy(mirror + off, r.staged + i * d, d * sizeof(uint16_t));
    AdamWKernelBf16Grad(level, hp, master + off, m + off, v + off, mirror + off, mirror + off, d);
    std::memcpy(r.staged + i * d, mirror + off, d * sizeof(uint16_t));  // the new row, for the device
  });
}

bool OptimizerStage::HasLanded(const std::shared_ptr<Event>& e) {
  if (e == nullptr) return true;
  bool done = true;  // a device fault counts as landed: the wait then fails and skips the unit
  (void)compat::CatchTorch("querying a gradient copy", [&] { done = e->Query(); });
  return done;
}

void OptimizerStage::Loop() {
  const int n = static_cast<int>(host_->size());
  while (true) {
    AdamWStep hp;
    bool in_mirror;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || pending_; });
      if (stop_) return;
      hp = hp_;
      in_mirror = grads_in_mirror_;
    }
    const auto t0 = std::chrono::steady_clock::now();
    double busy = 0;
    int done = 0;
    while (done < n) {
      int u = -1;
      bool partial = false;
      std::shared_ptr<Event> landed;
      bool skip, updated, streaming;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return PickLocked(hp.step, &u, &partial); });
        landed = partial ? split_[u].landed : std::move(landed_[u]);
        skip = skip_[u];
        updated = updated_[u];
        streaming = streaming_;
      }
      const auto t_pick = std::chrono::steady_clock::now();
      auto t_landed = t_pick;
      if (u >= device_units_ && !skip) {  // units below device_units_ were updated on the device
        // A device fault fails the pass itself (the trainer reports it); here it only means
        // the gradient never landed, so the unit is left alone.
        const absl::Status landed_ok =
            landed ? compat::CatchTorch("waiting for a gradient copy", [&] { landed->Synchronize(); })
                   : absl::OkStatus();
        t_landed = std::chrono::steady_clock::now();
        if (landed_ok.ok() && updated) {
          // Updated on the device (MarkUpdated): `landed` was its state's return to the host.
        } else if (landed_ok.ok()) {
          bool changed = true;
          if (partial) {
            changed = UpdateAllRowsBut(u, hp);
          } else if (split_[u].announced) {
            UpdateHeldRows(u, hp);
          } else {
            UpdateUnit(u, hp, in_mirror);
          }
          if (changed && streaming && on_streamed_update_) on_streamed_update_(u, hp.step, partial, landed);
        }
      }
      busy += std::chrono::duration<double>(std::chrono::steady_clock::now() - t_landed).count();
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (trace_ != nullptr) {
          auto ms = [&](std::chrono::steady_clock::time_point t) {
            return std::chrono::duration<double, std::milli>(t - step_start_).count();
          };
          std::fprintf(trace_, "%lld,%d,%s,%.2f,%.2f,%.2f\n", static_cast<long long>(hp.step), u,
                       partial ? "rows_but_batch" : split_[u].announced ? "batch_rows" : "unit",
                       ms(t_pick), ms(t_landed), ms(std::chrono::steady_clock::now()));
        }
        if (partial) {
          split_[u].done = true;
        } else {
          version_[u] = hp.step;
          ++done;
        }
      }
      cv_.notify_all();
    }
    if (nvme_ != nullptr) {  // the next step's first NVMe unit: read during its forward
      int first;
      {
        std::lock_guard<std::mutex> lock(mu_);
        first = FirstNvmeOfNextStepLocked();
      }
      Prefetch(first);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      last_busy_seconds_ = busy;
      pending_ = false;
      streaming_ = false;
    }
    cv_.notify_all();
  }
}

void OptimizerStage::WaitUnit(int unit, int64_t version) {
  std::unique_lock<std::mutex> lock(mu_);
  // A unit the device updates in the running step is done when its event is, which may be
  // well before this thread gets to it (while it updates a CPU unit).
  if (version_[unit] < version && pending_ && hp_.step == version && updated_[unit] && landed_[unit] != nullptr) {
    std::shared_ptr<Event> landed = landed_[unit];
    lock.unlock();
    if (compat::CatchTorch("waiting for a device update", [&] { landed->Synchronize(); }).ok()) return;
    lock.lock();
  }
  cv_.wait(lock, [&] { return version_[unit] >= version; });
}

bool OptimizerStage::UnitDone(int unit, int64_t version) {
  std::lock_guard<std::mutex> lock(mu_);
  return version_[unit] >= version;
}

void OptimizerStage::WaitAll() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !pending_; });
}

void OptimizerStage::ResetVersions(int64_t version) {
  FinishStreaming();
  WaitAll();
  std::lock_guard<std::mutex> lock(mu_);
  for (int64_t& v : version_) v = version;
}

}  // namespace sfd
