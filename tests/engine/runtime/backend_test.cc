// Timing events of the Backend (what the executor's activation-stall metric is made of): on the
// CPU tier they measure the host time between their records; on CUDA, two events recorded on
// the compute stream around a wait for an H2D copy measure how long compute sat waiting for it
// (at least the copy's duration), and around no wait next to nothing. Also the engine boundary's
// mapping of torch errors (compat::CatchTorch).
#include "engine/runtime/backend.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "engine/common/torch_compat.h"
#include "gtest/gtest.h"

namespace sfd {
namespace {

TEST(BackendTimingTest, CpuEventsMeasureHostTimeBetweenRecords) {
  auto backend = CreateCpuBackend();
  ASSERT_TRUE(backend.ok()) << backend.status();
  std::unique_ptr<Event> a = (*backend)->NewTimingEvent(), b = (*backend)->NewTimingEvent();
  a->Record(StreamId::kCompute);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  b->Record(StreamId::kCompute);
  const double s = b->SecondsSince(*a);
  EXPECT_GE(s, 0.025);
  EXPECT_LT(s, 5.0);
  EXPECT_LE(a->SecondsSince(*b), -0.025);
}

TEST(BackendTimingTest, CudaEventsAroundAWaitMeasureTheStall) {
  if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device (tested on the GPU machine)";
  auto backend = CreateCudaBackend(0);
  ASSERT_TRUE(backend.ok()) << backend.status();
  Backend& be = **backend;
  const int64_t n = int64_t{1} << 28;  // 512 MiB of bf16: ~10 ms at 55 GB/s
  auto host = be.AllocPinned(n, at::kBFloat16);
  auto dev = be.AllocDevice(n, at::kBFloat16);
  ASSERT_TRUE(host.ok() && dev.ok());
  std::unique_ptr<Event> copied = be.NewEvent();
  std::unique_ptr<Event> before = be.NewTimingEvent(), after = be.NewTimingEvent();
  std::unique_ptr<Event> idle0 = be.NewTimingEvent(), idle1 = be.NewTimingEvent();
  be.Synchronize();
  be.Copy(*dev, *host, StreamId::kH2D);
  copied->Record(StreamId::kH2D);
  before->Record(StreamId::kCompute);
  be.StreamWait(StreamId::kCompute, *copied);
  after->Record(StreamId::kCompute);
  idle0->Record(StreamId::kCompute);  // nothing to wait for between these two
  idle1->Record(StreamId::kCompute);
  be.Synchronize();
  const double stall = after->SecondsSince(*before);
  EXPECT_GT(stall, 0.002) << "a 512 MiB H2D copy took no time?";
  EXPECT_LT(stall, 2.0);
  EXPECT_LT(idle1->SecondsSince(*idle0), 0.001);
}

// The PCI bus id is what the NUMA placement (runtime/cpu_placement.h) looks up in sysfs: the
// CUDA backend must name a device sysfs has; the CPU tier names none.
TEST(BackendPciTest, CudaNamesADeviceSysfsKnowsCpuNamesNone) {
  auto cpu = CreateCpuBackend();
  ASSERT_TRUE(cpu.ok());
  EXPECT_EQ((*cpu)->pci_bus_id(), "");
  if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device (tested on the GPU machine)";
  auto backend = CreateCudaBackend(0);
  ASSERT_TRUE(backend.ok()) << backend.status();
  std::string id = (*backend)->pci_bus_id();
  ASSERT_FALSE(id.empty());
  std::transform(id.begin(), id.end(), id.begin(), [](unsigned char c) { return std::tolower(c); });
  EXPECT_TRUE(std::filesystem::exists("/sys/bus/pci/devices/" + id + "/numa_node")) << id;
}

}  // namespace
}  // namespace sfd

namespace sfd {
namespace {

// The engine boundary: a device out-of-memory error becomes RESOURCE_EXHAUSTED naming the
// budget that caps the allocator; any other torch error stays INTERNAL with its message.
TEST(CatchTorchTest, OutOfMemoryNamesTheBudget) {
  const absl::Status oom = compat::CatchTorch("executing pass", [] {
    throw c10::OutOfMemoryError({__func__, __FILE__, static_cast<uint32_t>(__LINE__)},
                                "CUDA out of memory. Tried to allocate 2.00 GiB");
  });
  EXPECT_EQ(oom.code(), absl::StatusCode::kResourceExhausted) << oom;
  EXPECT_NE(oom.message().find("Tried to allocate 2.00 GiB"), std::string::npos) << oom;
  EXPECT_NE(oom.message().find("engine.gpu_memory_budget"), std::string::npos) << oom;
  const absl::Status other = compat::CatchTorch("executing pass", [] { TORCH_CHECK(false, "shape mismatch"); });
  EXPECT_EQ(other.code(), absl::StatusCode::kInternal) << other;
  EXPECT_NE(other.message().find("shape mismatch"), std::string::npos) << other;
}

}  // namespace
}  // namespace sfd
