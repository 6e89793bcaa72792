// A test variant of the CPU stand-in tier (EngineSpec::cpu_deferred_copies): copies on the
// H2D, D2H, state-H2D and early-H2D streams do not run when issued but as late as the stream order allows,
// so that a missing StreamWait or event wait in the executor gives wrong bits in the CPU tests
// instead of passing unnoticed (on the plain CPU backend every copy is synchronous).
//
// The schedule it runs is a legal CUDA one in which compute is infinitely fast and copies are
// as late as possible:
//  - torch ops and copies on the compute stream run when issued; events recorded there are
//    complete at once.
//  - a copy on another stream is appended to that stream's FIFO queue (which holds the tensors,
//    so their buffers stay alive: RecordStream has nothing to do).
//  - an event recorded on such a stream marks the current end of its queue.
//  - StreamWait(compute, e) runs e's stream up to e's mark now; StreamWait(s, e) queues a
//    marker on s that does so when s's queue reaches it.
//  - Use(s) runs s's whole queue first (the ops issued in the scope follow it); Event::
//    Synchronize/Query and Backend::Synchronize run what they wait for.
// One mutex guards all queues; running them (copies, and through wait markers other streams'
// queues, recursively) happens with it held, and never calls out of the backend.
// What it shows: a reader (compute, the host, another stream) that does not wait for a copy,
// and compute or the host overwriting a copy's source or destination before the copy ran. A
// wait that keeps a copy from running too early (a staging buffer's reuse before the previous
// occupant's copy out ran) shows only with that stream eager (EngineSpec::cpu_eager_streams:
// its copies run when issued, after what its wait markers wait for). Not seen: where a host
// thread waits for a copy soon after it is issued (the drain thread, the streamed optimizer),
// the copy runs then, so a missing wait next to it shows only when the other thread gets there
// first.
#include <array>
#include <chrono>
#include <deque>
#include <mutex>

#include <ATen/core/grad_mode.h>

#include "engine/runtime/backend.h"

namespace sfd {
namespace {

constexpr int kStreams = kNumStreams;

int Index(StreamId s) { return static_cast<int>(s); }

// The queues of the non-compute streams, shared by the backend and its events.
class Queues {
 public:
  std::mutex mu;

  // A copy (dst defined) or a wait marker: run stream `wait_stream` up to `wait_mark` first.
  struct Entry {
    at::Tensor dst, src;
    int wait_stream = 0;
    int64_t wait_mark = 0;
  };

  // The mark an event recorded on `s` now gets: the entries queued on it so far.
  int64_t EndLocked(int s) const { return issued_[s]; }

  // Eager streams (bit 1 << s) run each entry when it is queued.
  explicit Queues(int eager) : eager_(eager) {}

  void PushLocked(int s, Entry e) {
    queue_[s].push_back(std::move(e));
    ++issued_[s];
    if (eager_ & (1 << s)) FlushLocked(s, issued_[s]);
  }

  // Runs stream s's entries until `upto` of them have run. Recursion through wait markers
  // cannot come back to an entry of s at or past the one running: a marker only waits for
  // work queued before it was.
  void FlushLocked(int s, int64_t upto) {
    at::NoGradGuard no_grad;  // a device copy, on whichever host thread runs it
    while (done_[s] < upto && !queue_[s].empty()) {
      Entry e = std::move(queue_[s].front());
      queue_[s].pop_front();
      ++done_[s];
      if (e.dst.defined()) {
        e.dst.copy_(e.src);
      } else {
        FlushLocked(e.wait_stream, e.wait_mark);
      }
    }
  }

  void FlushAllLocked() {
    for (int s = 0; s < kStreams; ++s) FlushLocked(s, issued_[s]);
  }

 private:
  const int eager_;
  std::array<std::deque<Entry>, kStreams> queue_;
  std::array<int64_t, kStreams> issued_{};  // entries ever queued per stream
  std::array<int64_t, kStreams> done_{};    // entries run per stream
};

class DeferredEvent final : public Event {
 public:
  explicit DeferredEvent(std::shared_ptr<Queues> q) : q_(std::move(q)) {}

  void Record(StreamId stream) override {
    std::lock_guard<std::mutex> lock(q_->mu);
    stream_ = Index(stream);
    mark_ = q_->EndLocked(stream_);
    at_ = std::chrono::steady_clock::now();
  }
  void Synchronize() override {
    std::lock_guard<std::mutex> lock(q_->mu);
    q_->FlushLocked(stream_, mark_);
  }
  bool Query() override {
    Synchronize();
    return true;
  }
  double SecondsSince(Event& start) override {
    return std::chrono::duration<double>(at_ - static_cast<DeferredEvent&>(start).at_).count();
  }

  // Where the event stands: its stream and mark. Called with q_->mu held.
  int stream_locked() const { return stream_; }
  int64_t mark_locked() const { return mark_; }

 private:
  std::shared_ptr<Queues> q_;
  int stream_ = 0;   // never recorded: compute, mark 0 (complete)
  int64_t mark_ = 0;
  std::chrono::steady_clock::time_point at_{};
};

class DeferredScope final : public StreamScope {};

class DeferredCpuBackend final : public Backend {
 public:
  DeferredCpuBackend(std::unique_ptr<Backend> base, int eager_streams)
      : base_(std::move(base)), q_(std::make_shared<Queues>(eager_streams)) {}
  ~DeferredCpuBackend() override {
    try {
      Synchronize();  // what the device would still have done
    } catch (...) {
    }
  }

  bool is_cuda() const override { return false; }
  at::Device device() const override { return base_->device(); }
  std::string name() const override { return "cpu (deferred copies)"; }
  std::unique_ptr<Event> NewEvent() override { return std::make_unique<DeferredEvent>(q_); }
  std::unique_ptr<Event> NewTimingEvent() override { return std::make_unique<DeferredEvent>(q_); }

  void StreamWait(StreamId stream, Event& event) override {
    auto& e = static_cast<DeferredEvent&>(event);
    std::lock_guard<std::mutex> lock(q_->mu);
    const int from = e.stream_locked();
    const int64_t mark = e.mark_locked();
    if (stream == StreamId::kCompute) {
      q_->FlushLocked(from, mark);
    } else if (from != Index(stream) && from != Index(StreamId::kCompute)) {
      // (the compute stream's events are complete, and a stream is ordered after itself)
      Queues::Entry w;
      w.wait_stream = from;
      w.wait_mark = mark;
      q_->PushLocked(Index(stream), std::move(w));
    }
  }

  void Copy(const at::Tensor& dst, const at::Tensor& src, StreamId stream) override {
    if (stream == StreamId::kCompute) {
      dst.copy_(src);
      return;
    }
    Queues::Entry c;
    c.dst = dst;
    c.src = src;
    std::lock_guard<std::mutex> lock(q_->mu);
    q_->PushLocked(Index(stream), std::move(c));
  }

  std::unique_ptr<StreamScope> Use(StreamId stream) override {
    if (stream != StreamId::kCompute) {  // what was queued on it before precedes the scope's ops
      std::lock_guard<std::mutex> lock(q_->mu);
      q_->FlushLocked(Index(stream), q_->EndLocked(Index(stream)));
    }
    return std::make_unique<DeferredScope>();
  }
  void RecordStream(const at::Tensor&, StreamId) override {}  // the queue holds the tensors
  void Synchronize() override {
    std::lock_guard<std::mutex> lock(q_->mu);
    q_->FlushAllLocked();
  }

  absl::StatusOr<at::Tensor> AllocPinned(int64_t numel, at::ScalarType dtype) override {
    return base_->AllocPinned(numel, dtype);
  }
  absl::StatusOr<at::Tensor> AllocDevice(int64_t numel, at::ScalarType dtype) override {
    return base_->AllocDevice(numel, dtype);
  }
  int64_t pinned_bytes() const override { return base_->pinned_bytes(); }
  DeviceMemory Memory() override { return base_->Memory(); }
  void ResetPeak() override { base_->ResetPeak(); }

 private:
  std::unique_ptr<Backend> base_;  // the CPU backend: memory and its accounting
  std::shared_ptr<Queues> q_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> CreateCpuDeferredBackend(int eager_streams) {
  auto base = CreateCpuBackend();
  if (!base.ok()) return base.status();
  return std::unique_ptr<Backend>(new DeferredCpuBackend(std::move(*base), eager_streams));
}

}  // namespace sfd
