// Machine facts for GetServerInfo, gathered without libtorch: RAM from /proc/meminfo, free
// disk under the output root (statvfs), GPUs and their memory from `nvidia-smi` when it is
// installed (cached for a few seconds), and library versions.
#pragma once

#include <string>
#include <vector>

#include "sfd/v1/sfd.pb.h"

namespace sfd {

struct HostMemory {
  int64_t total = 0;
  int64_t available = 0;
};

HostMemory ReadHostMemory();
int64_t DiskFreeBytes(const std::string& path);
// Empty when there is no nvidia-smi or no GPU.
std::vector<v1::GpuInfo> ProbeGpus();
// Fills the version, memory, GPU and disk fields of `info`.
void FillMachineInfo(const std::string& output_root, v1::ServerInfo* info);

}  // namespace sfd
