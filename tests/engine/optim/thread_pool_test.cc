// Tests engine/common/thread_pool.h (used by CpuAdamW): every index runs exactly once, calls
// from several threads at once, nested calls, empty loops. Lives here because the pool's main
// user is engine/optim.
#include "engine/common/thread_pool.h"

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace sfd {
namespace {

TEST(ThreadPoolTest, EveryIndexRunsExactlyOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    for (int64_t n : {0, 1, 2, 3, 17, 10000}) {
      std::vector<std::atomic<int>> hits(n);
      pool.ParallelFor(n, [&](int64_t i) { hits[i].fetch_add(1); });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
    }
  }
}

TEST(ThreadPoolTest, DefaultSizeIsHardwareConcurrency) {
  ThreadPool pool;
  EXPECT_EQ(pool.num_threads(),
            static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

TEST(ThreadPoolTest, UsesSeveralThreads) {
  ThreadPool pool(3);
  std::atomic<int> in_flight{0}, max_in_flight{0};
  pool.ParallelFor(3, [&](int64_t) {
    const int now = ++in_flight;
    int prev = max_in_flight.load();
    while (now > prev && !max_in_flight.compare_exchange_weak(prev, now)) {
    }
    // Wait (bounded) until another index is running concurrently.
    for (int spin = 0; spin < 2000000 && max_in_flight.load() < 2; ++spin)
      std::this_thread::yield();
    --in_flight;
  });
  EXPECT_GE(max_in_flight.load(), 2);
}

TEST(ThreadPoolTest, ConcurrentCallersAndNestedCalls) {
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      for (int rep = 0; rep < 50; ++rep) {
        pool.ParallelFor(10, [&](int64_t i) {
          pool.ParallelFor(3, [&](int64_t j) { total.fetch_add(i * 3 + j + 1); });  // inline
        });
      }
    });
  }
  for (auto& t : callers) t.join();
  // Per outer loop: sum over i<10, j<3 of (3i + j + 1) = sum_{k=1}^{30} k = 465.
  EXPECT_EQ(total.load(), int64_t{4} * 50 * 465);
}

}  // namespace
}  // namespace sfd
