// The CPU stand-in for the device tier: host memory, synchronous copies, events that only
// record the host clock.
#include <atomic>
#include <chrono>

#include "engine/common/status.h"
#include "engine/runtime/backend.h"

namespace sfd {
namespace {

class CpuEvent final : public Event {
 public:
  void Record(StreamId) override { at_ = std::chrono::steady_clock::now(); }
  void Synchronize() override {}
  bool Query() override { return true; }
  double SecondsSince(Event& start) override {
    return std::chrono::duration<double>(at_ - static_cast<CpuEvent&>(start).at_).count();
  }

 private:
  std::chrono::steady_clock::time_point at_{};
};

class CpuScope final : public StreamScope {};

class CpuBackend final : public Backend {
 public:
  bool is_cuda() const override { return false; }
  at::Device device() const override { return at::Device(at::kCPU); }
  std::string name() const override { return "cpu"; }
  std::unique_ptr<Event> NewEvent() override { return std::make_unique<CpuEvent>(); }
  std::unique_ptr<Event> NewTimingEvent() override { return std::make_unique<CpuEvent>(); }
  void StreamWait(StreamId, Event&) override {}
  void Copy(const at::Tensor& dst, const at::Tensor& src, StreamId) override { dst.copy_(src); }
  std::unique_ptr<StreamScope> Use(StreamId) override { return std::make_unique<CpuScope>(); }
  void Synchronize() override {}
  void RecordStream(const at::Tensor&, StreamId) override {}

  absl::StatusOr<at::Tensor> AllocPinned(int64_t numel, at::ScalarType dtype) override {
    pinned_ += numel * static_cast<int64_t>(c10::elementSize(dtype));
    return at::empty({numel}, at::TensorOptions().dtype(dtype));
  }
  absl::StatusOr<at::Tensor> AllocDevice(int64_t numel, at::ScalarType dtype) override {
    int64_t bytes = numel * static_cast<int64_t>(c10::elementSize(dtype));
    device_ += bytes;
    peak_ = std::max(peak_.load(), device_.load());
    return at::empty({numel}, at::TensorOptions().dtype(dtype));
  }
  int64_t pinned_bytes() const override { return pinned_; }
  // Only explicit AllocDevice buffers are counted: activations are ordinary host tensors here.
  DeviceMemory Memory() override { return {device_, peak_, 0, 0}; }
  void ResetPeak() override { peak_ = device_.load(); }

 private:
  std::atomic<int64_t> pinned_{0}, device_{0}, peak_{0};
};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> CreateCpuBackend() {
  return std::unique_ptr<Backend>(new CpuBackend());
}

#ifndef SFD_WITH_CUDA
absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(int) {
  return absl::FailedPreconditionError(
      "engine.device=cuda requested but this sfd build has no CUDA support (built against a "
      "CPU-only libtorch); rebuild with -DSFD_WITH_CUDA=ON or use device: cpu");
}
bool CudaAvailable() { return false; }
#endif

absl::StatusOr<std::unique_ptr<Backend>> Backend::Create(const EngineSpec& spec) {
  auto cpu = [&] {
    return spec.cpu_deferred_copies ? CreateCpuDeferredBackend(spec.cpu_eager_streams) : CreateCpuBackend();
  };
  switch (spec.device) {
    case DeviceKind::kCpu:
      return cpu();
    case DeviceKind::kCuda:
      return CreateCudaBackend(spec.cuda_device);
    case DeviceKind::kAuto:
      if (CudaAvailable()) return CreateCudaBackend(spec.cuda_device);
      return cpu();
  }
  return cpu();
}

}  // namespace sfd
