#include "engine/runtime/optimizer_stage.h"

#include <chrono>

#include "engine/common/status.h"

namespace sfd {

OptimizerStage::OptimizerStage(std::vector<HostUnit>* host, CpuAdamW* adam)
    : host_(host), adam_(adam), version_(host->size(), 0) {
  thread_ = std::thread([this] { Loop(); });
}

OptimizerStage::~OptimizerStage() {
  WaitAll();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void OptimizerStage::Launch(const AdamWStep& hp, bool grads_in_mirror) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    SFD_CHECK(!pending_) << "optimizer step launched while the previous one runs";
    for (int64_t v : version_) SFD_CHECK(v == hp.step - 1) << "unit version " << v << " step " << hp.step;
    hp_ = hp;
    grads_in_mirror_ = grads_in_mirror;
    pending_ = true;
  }
  cv_.notify_all();
}

void OptimizerStage::Loop() {
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
    for (size_t u = 0; u < host_->size(); ++u) {
      if (static_cast<int>(u) < device_units_) {  // updated on the device already
        std::lock_guard<std::mutex> lock(mu_);
        version_[u] = hp.step;
        continue;
      }
      HostUnit& h = (*host_)[u];
      uint16_t* out = h.mirror.defined() ? reinterpret_cast<uint16_t*>(h.mirror.data_ptr()) : nullptr;
      if (in_mirror) {  // bf16 grads in the mirror, new bf16 weights over them
        adam_->UpdateBf16Grad(hp, h.master.data_ptr<float>(), h.m.data_ptr<float>(),
                              h.v.data_ptr<float>(), out, out, h.numel());
      } else {
        adam_->Update(hp, h.master.data_ptr<float>(), h.m.data_ptr<float>(), h.v.data_ptr<float>(),
                      h.grad.data_ptr<float>(), out, h.numel());
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        version_[u] = hp.step;
      }
      cv_.notify_all();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      pending_ = false;
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
  WaitAll();
  std::lock_guard<std::mutex> lock(mu_);
  for (int64_t& v : version_) v = version;
}

}  // namespace sfd
