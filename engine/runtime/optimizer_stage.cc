#include "engine/runtime/optimizer_stage.h"

#include <chrono>

#include "engine/common/status.h"
#include "engine/common/torch_compat.h"

namespace sfd {

OptimizerStage::OptimizerStage(std::vector<HostUnit>* host, CpuAdamW* adam)
    : host_(host), adam_(adam), version_(host->size(), 0), ready_(host->size(), false),
      skip_(host->size(), false), landed_(host->size()) {
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
    landed_[u].reset();
  }
  announced_.clear();
  pending_ = true;
}

void OptimizerStage::Launch(const AdamWStep& hp, bool grads_in_mirror) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    StartLocked(hp, grads_in_mirror, /*streaming=*/false);
  }
  cv_.notify_all();
}

void OptimizerStage::BeginStreaming(const AdamWStep& hp) {
  std::lock_guard<std::mutex> lock(mu_);
  SFD_CHECK(!armed_) << "streaming step armed twice";
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

void OptimizerStage::FinishStreaming() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!StreamingLocked(lock)) return;
    for (size_t u = 0; u < ready_.size(); ++u) ready_[u] = true;
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
  } else {
    m = h.m.data_ptr<float>();
    v = h.v.data_ptr<float>();
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
    for (int done = 0; done < n; ++done) {
      // The lowest forward index whose gradient has landed (in Launch mode every unit has, so
      // this is plain forward order). If no announced gradient has landed yet, the one
      // announced first — the device finishes them in announcement order — so the stage never
      // waits on a late unit while earlier ones are ready.
      int u = -1;
      std::shared_ptr<Event> landed;
      bool skip;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] {
          for (int i = 0; i < n; ++i)
            if (ready_[i] && version_[i] < hp.step) return true;
          return false;
        });
        for (int i = 0; i < n && u < 0; ++i)
          if (ready_[i] && version_[i] < hp.step && HasLanded(landed_[i])) u = i;
        for (size_t k = 0; k < announced_.size() && u < 0; ++k)
          if (version_[announced_[k]] < hp.step) u = announced_[k];
        SFD_CHECK(u >= 0) << "no unit to update";
        landed = std::move(landed_[u]);
        skip = skip_[u];
      }
      if (u >= device_units_ && !skip) {  // units below device_units_ were updated on the device
        // A device fault fails the pass itself (the trainer reports it); here it only means
        // the gradient never landed, so the unit is left alone.
        const absl::Status landed_ok =
            landed ? compat::CatchTorch("waiting for a gradient copy", [&] { landed->Synchronize(); })
                   : absl::OkStatus();
        if (landed_ok.ok()) UpdateUnit(u, hp, in_mirror);
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        version_[u] = hp.step;
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
      pending_ = false;
      streaming_ = false;
    }
    cv_.notify_all();
  }
}

void OptimizerStage::WaitUnit(int unit, int64_t version) {
  std::unique_lock<std::mutex> lock(mu_);
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
