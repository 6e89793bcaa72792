// Backend: the device tier as the executor sees it — four streams (compute, H2D, D2H, state H2D),
// events between them, async copies, page-locked host buffers and device buffers. The CUDA
// backend (cuda_backend.cc) uses real streams/events and cudaHostAlloc; the CPU backend
// (cpu_backend.cc) stands in for the GPU on machines without one: host memory is the device
// tier and every operation completes synchronously, so the same executor trains for real in CI.
// A test variant of it (cpu_deferred_backend.cc, EngineSpec::cpu_deferred_copies) runs the copies
// on the H2D/D2H/state streams as late as the stream order allows instead, so that a missing
// wait between streams gives wrong bits in the CPU tests.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "engine/trainer/trainer_spec.h"

namespace sfd {

// kStateH2D carries the optimizer state of device-updated layers (engine.device_update_layers)
// up to the device: its waits for a staging buffer's previous occupant never hold up the weight
// loads queued on kH2D. kEarlyH2D carries the embedding's and head's new weights up during a
// streamed backward (Executor::HostUnitUpdated): ~1 GB copies that would otherwise queue ahead
// of the backward's layer loads.
enum class StreamId { kCompute = 0, kH2D = 1, kD2H = 2, kStateH2D = 3, kEarlyH2D = 4 };
constexpr int kNumStreams = 5;

// A point in a stream's work. Record/wait are cheap; Synchronize blocks the calling thread.
class Event {
 public:
  virtual ~Event() = default;
  virtual void Record(StreamId stream) = 0;
  virtual void Synchronize() = 0;
  virtual bool Query() = 0;  // true when everything recorded before it has finished
  // Seconds from `start` to this event on the device timeline. Both must come from
  // NewTimingEvent, be recorded and have completed (e.g. after Backend::Synchronize).
  virtual double SecondsSince(Event& start) = 0;
};

// While alive, torch ops issued by this thread run on the given stream.
class StreamScope {
 public:
  virtual ~StreamScope() = default;
};

struct DeviceMemory {
  int64_t in_use = 0;     // bytes currently allocated by this process on the device tier
  int64_t peak = 0;       // peak since the last ResetPeak()
  int64_t free = 0;       // free bytes on the device (0 = unknown)
  int64_t total = 0;      // device capacity (0 = unknown)
  // Peak bytes the device allocator reserved from the driver since ResetPeak() (CUDA caching
  // allocator: allocated + cached); 0 on the CPU stand-in tier.
  int64_t reserved_peak = 0;
};

class Backend {
 public:
  // kAuto picks CUDA when this build has it and a device is visible, else CPU.
  static absl::StatusOr<std::unique_ptr<Backend>> Create(const EngineSpec& spec);
  virtual ~Backend() = default;

  virtual bool is_cuda() const = 0;
  virtual at::Device device() const = 0;
  virtual std::string name() const = 0;
  // PCI bus id of the device ("0000:19:00.0"); empty on the CPU tier.
  virtual std::string pci_bus_id() const { return ""; }

  virtual std::unique_ptr<Event> NewEvent() = 0;
  // An event that also records when it was reached (CUDA: timing enabled; CPU: host clock at
  // Record, where every operation is synchronous).
  virtual std::unique_ptr<Event> NewTimingEvent() = 0;
  // Device-side wait: work queued on `stream` after this call starts after `event`.
  virtual void StreamWait(StreamId stream, Event& event) = 0;
  // Async copy of `src` into `dst` (same numel and dtype, contiguous) on `stream`.
  virtual void Copy(const at::Tensor& dst, const at::Tensor& src, StreamId stream) = 0;
  virtual std::unique_ptr<StreamScope> Use(StreamId stream) = 0;
  // Tells the device allocator that `t` is in use on `stream`, so its memory is not reused
  // before the work queued there so far has finished (CUDA caching allocator semantics).
  virtual void RecordStream(const at::Tensor& t, StreamId stream) = 0;
  virtual void Synchronize() = 0;  // all streams

  // Page-locked host memory (plain host memory on the CPU backend), freed with the tensor.
  virtual absl::StatusOr<at::Tensor> AllocPinned(int64_t numel, at::ScalarType dtype) = 0;
  virtual absl::StatusOr<at::Tensor> AllocDevice(int64_t numel, at::ScalarType dtype) = 0;
  virtual int64_t pinned_bytes() const = 0;
  virtual DeviceMemory Memory() = 0;
  virtual void ResetPeak() = 0;
  // Caps what the device allocator may hold from the driver (cached blocks included) at
  // `bytes` (0 = no cap): past it, it returns cached blocks and retries before failing. The
  // trainer sets the job's engine.gpu_memory_budget. No-op on the CPU tier.
  virtual absl::Status SetMemoryLimit(int64_t bytes) {
    (void)bytes;
    return absl::OkStatus();
  }
};

// Factories for the implementations (Create picks one).
absl::StatusOr<std::unique_ptr<Backend>> CreateCpuBackend();
// The CPU backend with deferred copies (tests: EngineSpec::cpu_deferred_copies).
// Streams with bit (1 << StreamId) set in `eager_streams` run each copy when it is issued.
absl::StatusOr<std::unique_ptr<Backend>> CreateCpuDeferredBackend(int eager_streams = 0);
absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(int device_index);
bool CudaAvailable();

}  // namespace sfd
