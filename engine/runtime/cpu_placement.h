// CPU placement near the GPU: on a machine with several NUMA nodes, the engine's host threads
// (CPU AdamW pool, optimizer stage, stager, drainer) and its host arenas (pinned fp32 master,
// bf16 mirrors, AdamW moments, offloaded activations) belong on the node the GPU's PCIe root
// hangs off — the same thing `numactl --cpunodebind=N --membind=N` does by hand. H2D/D2H then
// cross no socket link, and the bandwidth-bound CPU AdamW reads node-local memory.
//
// How: the GPU's node comes from sysfs (/sys/bus/pci/devices/<bus id>/numa_node), its CPUs from
// /sys/devices/system/node/node<N>/cpulist, cut to the CPUs this process may use. While a
// ScopedCpuAffinity is alive the calling thread runs on those CPUs only; every thread it
// creates inherits the mask, and the pages it or they first touch (cudaHostAlloc pins by
// touching) come from the local node under Linux's default policy. The trainer holds one over
// its set-up and over each step (buffers made on the first step), so nothing else in the
// process (the daemon's worker loop, test code) stays bound afterwards; while bound it also
// sizes ATen's host thread pool to the node.
//
// On one node (or when sysfs says nothing) the placement is unbound and nothing changes.
// Linux-only (sched_getaffinity / pthread_setaffinity_np); no torch.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace sfd {

// Where the engine's threads and host memory go. cpus is empty when unbound.
struct CpuPlacement {
  int node = -1;          // NUMA node of the GPU; -1 = unbound
  std::vector<int> cpus;  // CPUs of that node this process may use, ascending
  std::string summary;    // one line for logs and the plan report: where, or why unbound
  bool bound() const { return !cpus.empty(); }
};

// Parses a Linux CPU/node list such as "0-3,8,10-11" (sysfs cpulist, taskset -c) into
// ascending, unique ids. An empty or all-blank list is empty; anything else malformed is
// InvalidArgument quoting the text.
absl::StatusOr<std::vector<int>> ParseCpuList(std::string_view text);

// CPUs the calling thread may run on (sched_getaffinity), ascending; if the mask cannot be
// read (more CPU ids than a cpu_set_t holds), 0 .. hardware_concurrency()-1.
std::vector<int> AllowedCpus();

// The placement for the device at `pci_bus_id` ("0000:19:00.0", any case) given the CPUs this
// process may use, read from the sysfs tree at `sysfs_root`. Never fails: every reason not to
// bind (no bus id, one node, node -1, unreadable files, no allowed CPU on the node) gives an
// unbound placement whose summary says which.
CpuPlacement PlaceNearDevice(const std::string& pci_bus_id, const std::vector<int>& allowed,
                             const std::string& sysfs_root = "/sys");

// Binds the calling thread to `cpus` and restores its previous mask when destroyed. Threads
// created meanwhile keep the binding for life.
class ScopedCpuAffinity {
 public:
  // cpus empty = no change (a no-op scope). Fails (naming the CPUs) if the kernel refuses.
  static absl::StatusOr<std::unique_ptr<ScopedCpuAffinity>> Bind(const std::vector<int>& cpus);
  ~ScopedCpuAffinity();
  ScopedCpuAffinity(const ScopedCpuAffinity&) = delete;
  ScopedCpuAffinity& operator=(const ScopedCpuAffinity&) = delete;

 private:
  ScopedCpuAffinity() = default;
  std::vector<int> saved_;  // the mask to restore; empty = nothing was changed
};

}  // namespace sfd
