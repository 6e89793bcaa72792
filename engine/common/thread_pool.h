// A small persistent CPU thread pool for data-parallel loops: ParallelFor(n, fn) runs fn(i) for
// every i in [0, n) on the pool's workers plus the calling thread and returns when all are done.
// Used by the CPU optimizer (engine/optim/cpu_adamw.h) and the trainer for host-side bulk work
// (grad norms, bf16 conversions). Header-only; no torch.
//
// - num_threads counts the caller: a pool of T runs T-1 background threads.
// - Indices are handed out dynamically (atomic counter), so a slow or preempted thread does
//   not hold up the loop; fn must therefore not depend on which thread runs which index.
// - ParallelFor may be called from several threads at once: calls are serialised. A
//   ParallelFor issued from inside one of this pool's loops runs inline on the calling thread
//   (no deadlock, no extra parallelism).
// - fn must not throw (the project builds without relying on exceptions).
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sfd {

class ThreadPool {
 public:
  // num_threads <= 0 means std::thread::hardware_concurrency() (at least 1).
  explicit ThreadPool(int num_threads = 0) {
    if (num_threads <= 0) {
      num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    }
    num_threads_ = num_threads;
    workers_.reserve(num_threads_ - 1);
    for (int i = 0; i + 1 < num_threads_; ++i) {
      workers_.emplace_back([this] { WorkerLoop(); });
    }
  }

  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Runs fn(i) for i in [0, n). Blocks until every call returned.
  void ParallelFor(int64_t n, const std::function<void(int64_t)>& fn) {
    if (n <= 0) return;
    if (n == 1 || workers_.empty() || CurrentPool() == this) {
      for (int64_t i = 0; i < n; ++i) fn(i);
      return;
    }
    std::lock_guard<std::mutex> submit_lock(submit_mu_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_fn_ = &fn;
      job_n_ = n;
      next_.store(0, std::memory_order_relaxed);
      // Only as many helpers as there are indices beyond the caller's first one.
      active_ = static_cast<int>(std::min<int64_t>(static_cast<int64_t>(workers_.size()), n - 1));
      wanted_ = active_;
      ++generation_;
    }
    wake_cv_.notify_all();
    RunIndices(fn, n);
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [this] { return active_ == 0; });
    job_fn_ = nullptr;
  }

 private:
  static ThreadPool*& CurrentPool() {
    static thread_local ThreadPool* pool = nullptr;
    return pool;
  }

  void RunIndices(const std::function<void(int64_t)>& fn, int64_t n) {
    ThreadPool* saved = CurrentPool();
    CurrentPool() = this;
    for (;;) {
      int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) break;
      fn(i);
    }
    CurrentPool() = saved;
  }

  void WorkerLoop() {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int64_t)>* fn;
      int64_t n;
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_cv_.wait(lock, [&] { return stop_ || (generation_ != seen && wanted_ > 0); });
        if (stop_) return;
        seen = generation_;
        --wanted_;
        fn = job_fn_;
        n = job_n_;
      }
      RunIndices(*fn, n);
      bool last;
      {
        std::lock_guard<std::mutex> lock(mu_);
        last = --active_ == 0;
      }
      if (last) done_cv_.notify_one();
    }
  }

  int num_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex submit_mu_;  // one ParallelFor at a time
  std::mutex mu_;         // guards the job fields below
  std::condition_variable wake_cv_;
  std::condition_variable done_cv_;
  const std::function<void(int64_t)>* job_fn_ = nullptr;
  int64_t job_n_ = 0;
  uint64_t generation_ = 0;
  int wanted_ = 0;  // helpers still to join the current job
  int active_ = 0;  // helpers that joined (or will) and have not finished
  bool stop_ = false;
  std::atomic<int64_t> next_{0};
};

}  // namespace sfd
