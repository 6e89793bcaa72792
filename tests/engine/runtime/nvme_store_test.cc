// NvmeStore: round trips in every I/O mode (io_uring with registered buffers, plain io_uring,
// pread/pwrite thread; O_DIRECT and buffered), optimizer-like prefetch-ahead over many units
// and steps, and the error paths (bad directory, truncated file, file size limit, misuse).
#include "engine/runtime/nvme_store.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sfd {
namespace {

std::string FreshDir(const std::string& name) {
  static int counter = 0;
  std::string dir = ::testing::TempDir();
  if (dir.empty() || dir.back() != '/') dir += '/';
  dir += "nvme_store_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" + name;
  return dir;
}

std::vector<float> Random(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> x(n);
  for (float& f : x) f = dist(rng);
  return x;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

struct Mode {
  const char* name;
  bool thread, unregistered, buffered;
};

class NvmeStoreModeTest : public ::testing::TestWithParam<Mode> {
 protected:
  NvmeStoreOptions Options() const {
    NvmeStoreOptions o;
    o.force_thread_io = GetParam().thread;
    o.force_unregistered = GetParam().unregistered;
    o.force_buffered = GetParam().buffered;
    o.chunk_bytes = 16 << 10;  // many chunks per unit
    o.queue_depth = 4;
    return o;
  }
};

TEST_P(NvmeStoreModeTest, ReportsItsMode) {
  auto store = NvmeStore::Create(FreshDir("mode"), {1000}, Options());
  ASSERT_TRUE(store.ok()) << store.status();
  const NvmeStore& s = **store;
  if (GetParam().thread) {
    EXPECT_EQ(s.io_mode(), NvmeIoMode::kThread);
  }
  if (GetParam().unregistered) {
    EXPECT_NE(s.io_mode(), NvmeIoMode::kIoUringFixed);
  }
  if (GetParam().buffered) {
    EXPECT_FALSE(s.direct_io());
  }
  const bool forced = GetParam().thread || GetParam().unregistered || GetParam().buffered;
  // Unforced, the store may still fall back (a container without io_uring): then it says why.
  const bool full = s.io_mode() == NvmeIoMode::kIoUringFixed && s.direct_io();
  EXPECT_EQ(s.fallback_reason().empty(), full) << s.fallback_reason();
  if (forced) {
    EXPECT_FALSE(s.fallback_reason().empty());
  }
  if (!forced && !full) std::printf("note: unforced store fell back: %s\n", s.fallback_reason().c_str());
}

TEST_P(NvmeStoreModeTest, RoundTripsSeveralSizesAndStartsAtZero) {
  const std::vector<int64_t> sizes{1, 1023, 1024, 1025, 3 * 4096 + 7, 300001, 0, 17};
  const std::string dir = FreshDir("roundtrip");
  std::string subdir;
  {
    auto store_or = NvmeStore::Create(dir, sizes, Options());
    ASSERT_TRUE(store_or.ok()) << store_or.status();
    NvmeStore& store = **store_or;
    subdir = store.directory();
    struct stat st;
    ASSERT_EQ(::stat(subdir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    int64_t total = 0;
    for (size_t u = 0; u < sizes.size(); ++u) {
      EXPECT_EQ(store.on_nvme(static_cast<int>(u)), sizes[u] > 0);
      if (sizes[u] == 0) continue;
      ASSERT_EQ(::stat(store.path(u).c_str(), &st), 0) << store.path(u);
      EXPECT_EQ(st.st_size, NvmeStore::UnitFileBytes(sizes[u]));
      EXPECT_EQ(st.st_size % 4096, 0);
      total += st.st_size;
    }
    EXPECT_EQ(store.file_bytes(), total);
    EXPECT_FALSE(store.Prefetch(6).ok());  // size 0: not on NVMe
    EXPECT_FALSE(store.Acquire(99).ok());

    // Fresh files read as zeros (the AdamW initial state).
    for (size_t u = 0; u < sizes.size(); ++u) {
      if (sizes[u] == 0) continue;
      std::vector<float> m(sizes[u], 1.f), v(sizes[u], 1.f);
      ASSERT_TRUE(store.ReadInto(u, m.data(), v.data()).ok());
      for (int64_t i = 0; i < sizes[u]; ++i) ASSERT_TRUE(m[i] == 0.f && v[i] == 0.f) << u << " " << i;
    }
    // Write all, then read all back (each unit's data must land in its own file).
    std::vector<std::vector<float>> ms, vs;
    for (size_t u = 0; u < sizes.size(); ++u) {
      ms.push_back(Random(sizes[u], 100 + u));
      vs.push_back(Random(sizes[u], 200 + u));
      if (sizes[u] > 0) {
        ASSERT_TRUE(store.WriteFrom(u, ms[u].data(), vs[u].data()).ok());
      }
    }
    const int64_t written = store.bytes_written();
    EXPECT_EQ(written, total);
    for (size_t u = sizes.size(); u-- > 0;) {
      if (sizes[u] == 0) continue;
      std::vector<float> m(sizes[u]), v(sizes[u]);
      ASSERT_TRUE(store.ReadInto(u, m.data(), v.data()).ok());
      EXPECT_EQ(0, std::memcmp(m.data(), ms[u].data(), sizes[u] * 4)) << "m of unit " << u;
      EXPECT_EQ(0, std::memcmp(v.data(), vs[u].data(), sizes[u] * 4)) << "v of unit " << u;
    }
    EXPECT_EQ(store.bytes_read(), 2 * total);  // zeros pass + data pass
    // The bytes are really in the file: m at 0, v after m's 4 KiB padding.
    std::ifstream f(store.path(3), std::ios::binary);
    std::vector<float> v3(sizes[3]);
    f.seekg(NvmeStore::UnitFileBytes(sizes[3]) / 2);
    f.read(reinterpret_cast<char*>(v3.data()), sizes[3] * 4);
    EXPECT_EQ(0, std::memcmp(v3.data(), vs[3].data(), sizes[3] * 4));
    EXPECT_TRUE(store.Flush().ok());
  }
  EXPECT_FALSE(Exists(subdir)) << "files and directory are removed by the destructor";
  EXPECT_TRUE(Exists(dir));
}

// The optimizer's pattern: prefetch the next unit, acquire this one, update in place, write
// back — over many units and several steps, with 1, 2 or 3 staging buffers.
TEST_P(NvmeStoreModeTest, PrefetchAheadOverManyUnitsAndSteps) {
  std::vector<int64_t> sizes;
  for (int u = 0; u < 14; ++u) sizes.push_back(u % 5 == 4 ? 0 : 1000 + 3731 * u);
  for (int buffers : {1, 2, 3}) {
    NvmeStoreOptions o = Options();
    o.staging_buffers = buffers;
    auto store_or = NvmeStore::Create(FreshDir("loop"), sizes, o);
    ASSERT_TRUE(store_or.ok()) << store_or.status();
    NvmeStore& store = **store_or;
    std::vector<std::vector<float>> m_ref, v_ref;
    for (int64_t n : sizes) {
      m_ref.emplace_back(n, 0.f);
      v_ref.emplace_back(n, 0.f);
    }
    std::vector<int> order;
    for (int u = 0; u < static_cast<int>(sizes.size()); ++u)
      if (store.on_nvme(u)) order.push_back(u);
    const int steps = 4;
    for (int step = 1; step <= steps; ++step) {
      const std::vector<float> g = Random(sizes.back() + 40000, step);
      ASSERT_TRUE(store.Prefetch(order[0]).ok());
      for (size_t k = 0; k < order.size(); ++k) {
        const int u = order[k];
        auto lease = store.Acquire(u);
        ASSERT_TRUE(lease.ok()) << lease.status();
        if (k + 1 < order.size()) {
          ASSERT_TRUE(store.Prefetch(order[k + 1]).ok());
        }
        ASSERT_EQ(lease->numel, sizes[u]);
        ASSERT_EQ(0, std::memcmp(lease->m, m_ref[u].data(), sizes[u] * 4)) << "step " << step << " unit " << u;
        ASSERT_EQ(0, std::memcmp(lease->v, v_ref[u].data(), sizes[u] * 4)) << "step " << step << " unit " << u;
        for (int64_t i = 0; i < sizes[u]; ++i) {  // a fake AdamW moment update
          const float gi = g[i + u];
          lease->m[i] = 0.9f * lease->m[i] + 0.1f * gi;
          lease->v[i] = 0.999f * lease->v[i] + 0.001f * gi * gi;
          m_ref[u][i] = 0.9f * m_ref[u][i] + 0.1f * gi;
          v_ref[u][i] = 0.999f * v_ref[u][i] + 0.001f * gi * gi;
        }
        ASSERT_TRUE(store.WriteBack(*lease).ok());
      }
    }
    ASSERT_TRUE(store.Flush().ok());
    EXPECT_EQ(store.bytes_read(), steps * store.file_bytes()) << buffers << " buffers";
    EXPECT_EQ(store.bytes_written(), steps * store.file_bytes());
    for (int u : order) {
      std::vector<float> m(sizes[u]), v(sizes[u]);
      ASSERT_TRUE(store.ReadInto(u, m.data(), v.data()).ok());
      EXPECT_EQ(0, std::memcmp(m.data(), m_ref[u].data(), sizes[u] * 4)) << u;
      EXPECT_EQ(0, std::memcmp(v.data(), v_ref[u].data(), sizes[u] * 4)) << u;
    }
  }
}

// One unit on NVMe: its next read must wait for its own write-back still in flight.
TEST_P(NvmeStoreModeTest, ReadAfterWriteOfTheSameUnit) {
  NvmeStoreOptions o = Options();
  o.staging_buffers = 3;
  auto store_or = NvmeStore::Create(FreshDir("raw"), {200000}, o);
  ASSERT_TRUE(store_or.ok()) << store_or.status();
  NvmeStore& store = **store_or;
  for (int step = 1; step <= 6; ++step) {
    auto lease = store.Acquire(0);
    ASSERT_TRUE(lease.ok()) << lease.status();
    ASSERT_EQ(lease->m[123], static_cast<float>(step - 1));
    ASSERT_EQ(lease->v[199999], static_cast<float>(-(step - 1)));
    for (int64_t i = 0; i < lease->numel; ++i) {
      lease->m[i] = static_cast<float>(step);
      lease->v[i] = static_cast<float>(-step);
    }
    ASSERT_TRUE(store.WriteBack(*lease).ok());
    ASSERT_TRUE(store.Prefetch(0).ok());  // issued while the write is in flight
  }
  ASSERT_TRUE(store.Flush().ok());
}

INSTANTIATE_TEST_SUITE_P(Modes, NvmeStoreModeTest,
                         ::testing::Values(Mode{"uring_fixed_direct", false, false, false},
                                           Mode{"uring_direct", false, true, false},
                                           Mode{"thread_direct", true, false, false},
                                           Mode{"uring_buffered", false, false, true},
                                           Mode{"thread_buffered", true, false, true}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(NvmeStoreTest, BadDirectoryNamesThePath) {
  const std::string dir = FreshDir("notadir");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  const std::string file = dir + "/plainfile";
  std::ofstream(file) << "x";
  auto store = NvmeStore::Create(file + "/moments", {100});
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find(file), std::string::npos) << store.status();
  EXPECT_NE(store.status().message().find("Not a directory"), std::string::npos) << store.status();
  auto empty = NvmeStore::Create("", {100});
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  NvmeStoreOptions bad;
  bad.chunk_bytes = 5000;
  EXPECT_EQ(NvmeStore::Create(dir, {100}, bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NvmeStoreTest, MissingDirectoryIsCreatedPrivate) {
  const std::string dir = FreshDir("deep") + "/a/b";
  auto store = NvmeStore::Create(dir, {10});
  ASSERT_TRUE(store.ok()) << store.status();
  struct stat st;
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

class NvmeStoreErrorTest : public ::testing::TestWithParam<bool> {};  // param: thread I/O

TEST_P(NvmeStoreErrorTest, TruncatedFileIsAShortReadNamingIt) {
  NvmeStoreOptions o;
  o.force_thread_io = GetParam();
  o.chunk_bytes = 64 << 10;
  auto store_or = NvmeStore::Create(FreshDir("trunc"), {100000, 5000}, o);
  ASSERT_TRUE(store_or.ok()) << store_or.status();
  NvmeStore& store = **store_or;
  const std::vector<float> x = Random(100000, 7);
  ASSERT_TRUE(store.WriteFrom(0, x.data(), x.data()).ok());
  ASSERT_EQ(::truncate(store.path(0).c_str(), 100 * 1024), 0);  // behind its back
  auto lease = store.Acquire(0);
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.status().code(), absl::StatusCode::kDataLoss) << lease.status();
  EXPECT_NE(lease.status().message().find(store.path(0)), std::string::npos) << lease.status();
  EXPECT_NE(lease.status().message().find("truncated"), std::string::npos) << lease.status();
  // Sticky: every later call reports it.
  EXPECT_EQ(store.Flush().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store.Acquire(1).status().code(), absl::StatusCode::kDataLoss);
}

// Disk full, simulated with a file size limit in a forked child (SIGXFSZ ignored, so the
// kernel returns EFBIG): first when the files are reserved, then on an asynchronous write.
TEST_P(NvmeStoreErrorTest, FileSizeLimitIsReportedNamingTheFile) {
  const std::string dir = FreshDir("fsize");
  const bool thread = GetParam();
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    NvmeStoreOptions o;
    o.force_thread_io = thread;
    struct rlimit lim{1 << 20, 1 << 20};
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) ::_exit(10);
    auto too_big = NvmeStore::Create(dir, {1 << 20}, o);  // 8 MiB file > 1 MiB limit
    if (too_big.ok()) ::_exit(11);
    if (too_big.status().code() != absl::StatusCode::kResourceExhausted) ::_exit(12);
    if (too_big.status().message().find("unit-00000.moments") == std::string::npos) ::_exit(13);
    {
      auto store_or = NvmeStore::Create(dir, {50000}, o);  // 400 KiB: fits
      if (!store_or.ok()) ::_exit(14);
      NvmeStore& store = **store_or;
      auto lease = store.Acquire(0);
      if (!lease.ok()) ::_exit(15);
      // Grow the limit's pressure: the file loses its reservation and may not grow back.
      if (::truncate(store.path(0).c_str(), 0) != 0) ::_exit(16);
      struct rlimit small{4096, 4096};
      if (::setrlimit(RLIMIT_FSIZE, &small) != 0) ::_exit(17);
      if (!store.WriteBack(*lease).ok()) ::_exit(18);  // asynchronous: error comes later
      const absl::Status st = store.Flush();
      if (st.code() != absl::StatusCode::kResourceExhausted) ::_exit(19);
      if (st.message().find(store.path(0)) == std::string::npos) ::_exit(20);
      if (store.Acquire(0).status().code() != absl::StatusCode::kResourceExhausted) ::_exit(21);
    }
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child died with signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "child failed at check " << WEXITSTATUS(status);
}

INSTANTIATE_TEST_SUITE_P(ThreadOrUring, NvmeStoreErrorTest, ::testing::Bool());

// Checkpoint load: overwrite a unit without reading it; a copy prefetched before must not
// be served afterwards.
TEST(NvmeStoreTest, AcquireForWriteDropsStaleCopies) {
  auto store_or = NvmeStore::Create(FreshDir("overwrite"), {5000, 7000});
  ASSERT_TRUE(store_or.ok()) << store_or.status();
  NvmeStore& store = **store_or;
  const std::vector<float> a = Random(5000, 1), b = Random(5000, 2);
  ASSERT_TRUE(store.WriteFrom(0, a.data(), b.data()).ok());
  ASSERT_TRUE(store.Prefetch(0).ok());  // stages a, b
  ASSERT_TRUE(store.Flush().ok());
  const int64_t read_before = store.bytes_read();
  auto w = store.AcquireForWrite(0);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(store.bytes_read(), read_before) << "AcquireForWrite must not read";
  for (int64_t i = 0; i < w->numel; ++i) {
    w->m[i] = b[i];
    w->v[i] = a[i];
  }
  EXPECT_EQ(store.Acquire(0).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store.WriteBack(*w).ok());
  auto r = store.Acquire(0);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(0, std::memcmp(r->m, b.data(), 5000 * 4));
  EXPECT_EQ(0, std::memcmp(r->v, a.data(), 5000 * 4));
  store.Release(*r);
  EXPECT_TRUE(store.Flush().ok());
}

TEST(NvmeStoreTest, MisuseIsAnErrorNotACrash) {
  NvmeStoreOptions o;
  o.staging_buffers = 2;
  auto store_or = NvmeStore::Create(FreshDir("misuse"), {100, 200, 300}, o);
  ASSERT_TRUE(store_or.ok()) << store_or.status();
  NvmeStore& store = **store_or;
  auto a = store.Acquire(0);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(store.Acquire(0).status().code(), absl::StatusCode::kFailedPrecondition);
  auto b = store.Acquire(1);
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(store.Prefetch(2).ok());  // a hint: nothing to do with both buffers leased
  EXPECT_EQ(store.Acquire(2).status().code(), absl::StatusCode::kFailedPrecondition);
  std::vector<float> x(100, 1.f);
  EXPECT_EQ(store.WriteFrom(0, x.data(), x.data()).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store.WriteBack(*a).ok());
  EXPECT_EQ(store.WriteBack(*a).code(), absl::StatusCode::kFailedPrecondition);
  store.Release(*b);
  EXPECT_TRUE(store.Prefetch(2).ok());
  EXPECT_TRUE(store.Flush().ok());
}

}  // namespace
}  // namespace sfd
