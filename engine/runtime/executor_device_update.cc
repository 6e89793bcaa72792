// Executor, the optimizer work it does on the device: units whose AdamW state lives there
// (DeviceOptimizer: DeviceUpdate after a pass, state upload/download around checkpoints) and
// sliding layers updated there in streamed passes (engine.device_update_layers: their state
// goes H2D on its own stream one such layer ahead of its backward, the 8-bit kernel runs on
// the D2H stream over the slot's gradient, and weights and state return D2H; in exact steps
// after the pass, from the gradient in the layer's mirror: ExactDeviceUpdates). The class is
// declared in executor.h; the compute side is executor.cc, the copies executor_transfers.cc.
#include <memory>

#include <ATen/core/grad_mode.h>

#include "engine/common/status.h"
#include "engine/common/torch_compat.h"
#include "engine/runtime/executor.h"

namespace sfd {

at::Tensor Executor::DeviceGrad(int unit, bool direct) const {
  if (unit == ModelLayout::kEmbeddingUnit) return embed_grad_;
  if (unit == layout_.head_unit()) return head_grad_;
  return direct ? slots_[unit_slot_[unit]].grads : dev_opt_->accumulator(unit);
}

absl::Status Executor::DeviceUpdate(const AdamWStep& hp, bool direct) {
  if (dev_opt_ == nullptr) return absl::OkStatus();
  SFD_RETURN_IF_ERROR(failure());
  std::unique_ptr<StreamScope> scope = backend_->Use(StreamId::kCompute);
  return compat::CatchTorch("device AdamW", [&] {
    at::NoGradGuard no_grad;
    for (int u = 0; u < dev_opt_->num_units(); ++u) {
      const int slot = layout_.unit(u).kind == UnitKind::kDecoderLayer ? unit_slot_[u] : -1;
      SFD_CHECK(layout_.unit(u).kind != UnitKind::kDecoderLayer || slot >= 0) << "unit " << u;
      dev_opt_->Update(u, hp, DeviceGrad(u, direct), DeviceWeights(u, slot));
      weights_current_[u] = true;
    }
  });
}

absl::Status Executor::UploadDeviceState() {
  {  // the host weights changed under the same versions: the dedicated buffers are stale
    std::lock_guard<std::mutex> lock(mu_);
    embed_version_ = head_version_ = embed_rows_version_ = -1;
  }
  if (dev_opt_ == nullptr) return absl::OkStatus();
  for (int u = 0; u < dev_opt_->num_units(); ++u) weights_current_[u] = false;  // reload weights
  return dev_opt_->Upload(*host_);
}

absl::Status Executor::DownloadDeviceState() {
  if (dev_opt_ == nullptr) return absl::OkStatus();
  return dev_opt_->Download(host_);
}

// ---------------------------------------------------------------- sliding layers

absl::Status Executor::SetDeviceUpdated(std::vector<bool> units) {
  SFD_RETURN_IF_ERROR(failure());
  for (size_t u = 0; u < units.size(); ++u) {
    if (units[u] && !(u < options_.device_update_units.size() && options_.device_update_units[u])) {
      return absl::InvalidArgumentError("unit " + std::to_string(u) +
                                        " cannot be updated on the device: its state is not pinned");
    }
  }
  for (const StateStage& b : state_stages_) {
    if (b.unit >= 0) return absl::FailedPreconditionError("device update of unit " + std::to_string(b.unit) + " in flight");
  }
  device_updated_ = std::move(units);
  return absl::OkStatus();
}

absl::Status Executor::ReleaseDeviceUpdate() {
  SFD_RETURN_IF_ERROR(failure());
  for (size_t u = 0; u < device_updated_.size(); ++u) {
    if (device_updated_[u]) {
      return absl::FailedPreconditionError("unit " + std::to_string(u) + " is still updated on the device");
    }
  }
  for (const StateStage& b : state_stages_) {
    if (b.unit >= 0) return absl::FailedPreconditionError("device update of unit " + std::to_string(b.unit) + " in flight");
  }
  SFD_RETURN_IF_ERROR(compat::CatchTorch("releasing the state staging", [&] {
    for (StateStage& b : state_stages_) {
      if (b.used) b.returned->Synchronize();  // its last copies read the buffers
      for (const at::Tensor* t : {&b.master, &b.m, &b.m_scale, &b.v, &b.v_scale, &b.grad}) {
        if (t->defined()) device_bytes_ -= t->nbytes();
      }
    }
    state_stages_.clear();
  }));
  options_.device_update_units.clear();
  device_updated_.clear();
  return absl::OkStatus();
}

void Executor::StateH2D(int unit, PassStats* stats, bool with_grad) {
  StateStage& b = state_stages_[state_next_];
  state_next_ = (state_next_ + 1) % static_cast<int>(state_stages_.size());
  SFD_CHECK(b.unit < 0) << "state staging buffer of unit " << b.unit << " reused before its update";
  const HostUnit& h = (*host_)[unit];
  const int64_t n = h.numel(), blocks = Q8Blocks(n);
  // On a stream of its own: waiting for the previous occupant's return holds up no weight load.
  if (b.used) backend_->StreamWait(StreamId::kStateH2D, *b.returned);  // its last occupant went home
  backend_->Copy(b.master.narrow(0, 0, n), h.master, StreamId::kStateH2D);
  backend_->Copy(b.m.narrow(0, 0, n), h.m, StreamId::kStateH2D);
  backend_->Copy(b.v.narrow(0, 0, n), h.v, StreamId::kStateH2D);
  backend_->Copy(b.m_scale.narrow(0, 0, blocks), h.m_scale, StreamId::kStateH2D);
  backend_->Copy(b.v_scale.narrow(0, 0, blocks), h.v_scale, StreamId::kStateH2D);
  if (with_grad) {
    SFD_CHECK(b.grad.defined()) << "unit " << unit << ": no gradient staging (device_update_grads)";
    backend_->Copy(b.grad.narrow(0, 0, n), h.mirror, StreamId::kStateH2D);
    stats->h2d_bytes += h.mirror.nbytes();
  }
  b.loaded->Record(StreamId::kStateH2D);
  b.used = true;
  b.unit = unit;
  stats->h2d_bytes += Q8StateBytes(n);
}

int Executor::NextDeviceUpdatedLayer(int layer) const {
  for (int i = layer - 1; i >= 0; --i) {
    if (DeviceUpdated(layout_.layer_unit(i))) return i;
  }
  return -1;
}

bool Executor::StateStaged(int unit) const {
  for (const StateStage& b : state_stages_) {
    if (b.unit == unit) return true;
  }
  return false;
}

void Executor::SlidingDeviceUpdate(int unit, int slot, PassStats* stats) {
  Slot& s = slots_[slot];
  StateStage* b = nullptr;
  for (StateStage& x : state_stages_) {
    if (x.unit == unit) b = &x;
  }
  SFD_CHECK(b != nullptr) << "unit " << unit << " has no staged state";
  // The norm reads the gradient before the update overwrites it with the new weights.
  grad_sumsq_ += at::linalg_vector_norm(s.grads, 2, c10::nullopt, false, at::kFloat).square();
  std::unique_ptr<Event> ready = backend_->NewEvent();
  ready->Record(StreamId::kCompute);
  backend_->StreamWait(StreamId::kD2H, *ready);
  // The slot's grad_copied covers the kernel and the weights' copy.
  options_.grad_updated(unit, UpdateFromStage(b, unit, stream_hp_, s.grads, s.grad_copied.get(), stats));
}

std::shared_ptr<Event> Executor::UpdateFromStage(StateStage* b, int unit, const AdamWStep& hp,
                                                 const at::Tensor& grad, Event* weights_copied,
                                                 PassStats* stats) {
  const HostUnit& h = (*host_)[unit];
  const int64_t n = h.numel(), blocks = Q8Blocks(n);
  backend_->StreamWait(StreamId::kD2H, *b->loaded);
  at::Tensor g = grad.narrow(0, 0, n);
  {
    std::unique_ptr<StreamScope> scope = backend_->Use(StreamId::kD2H);
    DeviceAdamW8bitStep(hp, unit, b->master.narrow(0, 0, n), b->m.narrow(0, 0, n),
                        b->m_scale.narrow(0, 0, blocks), b->v.narrow(0, 0, n),
                        b->v_scale.narrow(0, 0, blocks), g, g);
  }
  backend_->Copy(h.mirror, g, StreamId::kD2H);  // the new bf16 weights
  if (weights_copied != nullptr) weights_copied->Record(StreamId::kD2H);
  backend_->Copy(h.master, b->master.narrow(0, 0, n), StreamId::kD2H);
  backend_->Copy(h.m, b->m.narrow(0, 0, n), StreamId::kD2H);
  backend_->Copy(h.v, b->v.narrow(0, 0, n), StreamId::kD2H);
  backend_->Copy(h.m_scale, b->m_scale.narrow(0, 0, blocks), StreamId::kD2H);
  backend_->Copy(h.v_scale, b->v_scale.narrow(0, 0, blocks), StreamId::kD2H);
  b->returned->Record(StreamId::kD2H);
  b->unit = -1;
  stats->d2h_bytes += h.mirror.nbytes() + Q8StateBytes(n);
  std::shared_ptr<Event> landed(backend_->NewEvent().release());
  landed->Record(StreamId::kD2H);
  return landed;
}

// ---------------------------------------------------------------- exact steps

absl::StatusOr<std::vector<std::shared_ptr<Event>>> Executor::ExactDeviceUpdates(const AdamWStep& hp,
                                                                                 PassStats* stats) {
  SFD_RETURN_IF_ERROR(failure());
  std::vector<std::shared_ptr<Event>> landed(layout_.num_units());
  std::vector<int> units;  // forward order, as the next forward needs them
  for (int u = 0; u < layout_.num_units(); ++u) {
    if (DeviceUpdateOn(u)) units.push_back(u);
  }
  if (units.empty()) return landed;
  const absl::Status st = compat::CatchTorch("device AdamW of sliding layers", [&] {
    at::NoGradGuard no_grad;
    // The gradients went into the mirrors on the D2H stream during the pass.
    std::unique_ptr<Event> grads_home = backend_->NewEvent();
    grads_home->Record(StreamId::kD2H);
    backend_->StreamWait(StreamId::kStateH2D, *grads_home);
    // Two staging buffers: the next layer's state and gradient go up while one is updated and
    // returns.
    const int ahead = static_cast<int>(state_stages_.size());
    for (int k = 0; k < static_cast<int>(units.size()) && k < ahead; ++k) StateH2D(units[k], stats, true);
    for (int k = 0; k < static_cast<int>(units.size()); ++k) {
      const int u = units[k];
      StateStage* b = nullptr;
      for (StateStage& x : state_stages_) {
        if (x.unit == u) b = &x;
      }
      SFD_CHECK(b != nullptr) << "unit " << u << " has no staged state";
      landed[u] = UpdateFromStage(b, u, hp, b->grad, nullptr, stats);
      if (k + ahead < static_cast<int>(units.size())) StateH2D(units[k + ahead], stats, true);
    }
  });
  if (!st.ok()) {  // staging buffers may be left occupied: this executor takes no more work
    Fail(st);
    return st;
  }
  return landed;
}

}  // namespace sfd
