// CPU placement near the GPU: CPU-list parsing, the node choice from a fake sysfs tree (two
// nodes, the device on the second; every reason not to bind), and ScopedCpuAffinity binding the
// calling thread and the threads it creates, then restoring the caller's mask.
#include "engine/runtime/cpu_placement.h"

#include <sched.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "engine/common/thread_pool.h"
#include "gtest/gtest.h"

namespace sfd {
namespace {

namespace fs = std::filesystem;

TEST(ParseCpuListTest, ReadsRangesAndSingles) {
  auto l = ParseCpuList("0-3,8,10-11\n");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(*l, (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  auto u = ParseCpuList("3,1,1-2");  // out of order and overlapping: sorted, unique
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(*u, (std::vector<int>{1, 2, 3}));
  auto e = ParseCpuList(" \n");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->empty());
}

TEST(ParseCpuListTest, RejectsMalformedListsQuotingThem) {
  for (const char* bad : {"a", "3-1", "1-", "-1", "1,,2", "+2", "1-x", "5000"}) {
    auto l = ParseCpuList(bad);
    ASSERT_FALSE(l.ok()) << bad;
    EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(l.status().message(), std::string("\"") + bad + "\"")) << l.status();
  }
}

// A sysfs tree with nodes 0 (CPUs 0-3) and 1 (CPUs 4-7, 12) and one GPU on node 1.
class FakeSysfs : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("sfd-sysfs-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    Write("devices/system/node/online", "0-1\n");
    Write("devices/system/node/node0/cpulist", "0-3\n");
    Write("devices/system/node/node1/cpulist", "4-7,12\n");
    Write("bus/pci/devices/0000:1a:00.0/numa_node", "1\n");
  }
  void TearDown() override { fs::remove_all(root_); }
  void Write(const std::string& rel, const std::string& text) {
    fs::create_directories((root_ / rel).parent_path());
    std::ofstream(root_ / rel) << text;
  }
  CpuPlacement Place(const std::string& bus, const std::vector<int>& allowed) {
    return PlaceNearDevice(bus, allowed, root_.string());
  }
  fs::path root_;
};

TEST_F(FakeSysfs, BindsToTheDevicesNodeCutToTheAllowedCpus) {
  // CUDA names the bus in upper case; sysfs in lower case.
  CpuPlacement p = Place("0000:1A:00.0", {0, 1, 2, 3, 4, 5, 6, 7, 8, 12});
  EXPECT_TRUE(p.bound());
  EXPECT_EQ(p.node, 1);
  EXPECT_EQ(p.cpus, (std::vector<int>{4, 5, 6, 7, 12}));
  EXPECT_TRUE(absl::StrContains(p.summary, "NUMA node 1")) << p.summary;
  EXPECT_TRUE(absl::StrContains(p.summary, "CPUs 4-7,12 (5)")) << p.summary;

  CpuPlacement cut = Place("0000:1a:00.0", {0, 5, 12});  // e.g. a cgroup cpuset
  EXPECT_EQ(cut.cpus, (std::vector<int>{5, 12}));
}

TEST_F(FakeSysfs, LeavesThreadsUnboundAndSaysWhy) {
  auto expect_unbound = [](const CpuPlacement& p, const std::string& why) {
    EXPECT_FALSE(p.bound()) << p.summary;
    EXPECT_EQ(p.node, -1);
    EXPECT_TRUE(absl::StrContains(p.summary, why)) << p.summary << " lacks " << why;
  };
  const std::vector<int> all = {0, 1, 2, 3, 4, 5, 6, 7, 12};
  expect_unbound(Place("", all), "no PCI device");
  expect_unbound(Place("0000:1a:00.0", {0, 1, 2, 3}), "none of node 1's CPUs (4-7,12)");
  expect_unbound(Place("0000:99:00.0", all), "cannot read");
  Write("bus/pci/devices/0000:1a:00.0/numa_node", "-1\n");
  expect_unbound(Place("0000:1a:00.0", all), "reports no NUMA node");
  Write("bus/pci/devices/0000:1a:00.0/numa_node", "1\n");
  Write("devices/system/node/node1/cpulist", "7-4\n");
  expect_unbound(Place("0000:1a:00.0", all), "runs backwards");
  Write("devices/system/node/online", "0\n");
  expect_unbound(Place("0000:1a:00.0", all), "one NUMA node");
  fs::remove(root_ / "devices/system/node/online");
  expect_unbound(Place("0000:1a:00.0", all), "no NUMA information");
}

TEST(ScopedCpuAffinityTest, BindsTheCallerAndItsNewThreadsThenRestoresTheCaller) {
  const std::vector<int> before = AllowedCpus();
  ASSERT_FALSE(before.empty());
  const int cpu = before.back();
  std::promise<void> release;
  std::future<std::vector<int>> later_mask;
  std::thread created_inside;
  {
    auto scope = ScopedCpuAffinity::Bind({cpu});
    ASSERT_TRUE(scope.ok()) << scope.status();
    EXPECT_EQ(AllowedCpus(), std::vector<int>{cpu});
    EXPECT_EQ(sched_getcpu(), cpu);

    ThreadPool pool(3);  // its workers are created bound
    std::mutex mu;
    std::set<int> ran_on;
    pool.ParallelFor(64, [&](int64_t) {
      std::lock_guard<std::mutex> lock(mu);
      ran_on.insert(sched_getcpu());
    });
    EXPECT_EQ(ran_on, std::set<int>{cpu});

    std::promise<std::vector<int>> mask;
    later_mask = mask.get_future();
    auto gate = release.get_future().share();
    created_inside = std::thread([gate, m = std::move(mask)]() mutable {
      gate.wait();  // asked only after the scope has ended
      m.set_value(AllowedCpus());
    });
  }
  EXPECT_EQ(AllowedCpus(), before);  // the caller is unbound again
  release.set_value();
  EXPECT_EQ(later_mask.get(), std::vector<int>{cpu});  // a thread made inside keeps its binding
  created_inside.join();
}

TEST(ScopedCpuAffinityTest, EmptySetChangesNothingAndBadCpusAreRefused) {
  const std::vector<int> before = AllowedCpus();
  {
    auto none = ScopedCpuAffinity::Bind({});
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(AllowedCpus(), before);
  }
  EXPECT_EQ(AllowedCpus(), before);
  auto out_of_range = ScopedCpuAffinity::Bind({5000});
  ASSERT_FALSE(out_of_range.ok());
  EXPECT_TRUE(absl::StrContains(out_of_range.status().message(), "5000"));
  if (before.back() < 1023) {  // a CPU id the machine does not have
    auto absent = ScopedCpuAffinity::Bind({1023});
    ASSERT_FALSE(absent.ok());
    EXPECT_TRUE(absl::StrContains(absent.status().message(), "1023")) << absent.status();
  }
  EXPECT_EQ(AllowedCpus(), before);
}

}  // namespace
}  // namespace sfd
