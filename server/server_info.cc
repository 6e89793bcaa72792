#include "server/server_info.h"

#include <sqlite3.h>
#include <stdio.h>
#include <sys/statvfs.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>

#include <google/protobuf/stubs/common.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

#ifndef SFD_VERSION
#define SFD_VERSION "0.0.0"
#endif

namespace sfd {

HostMemory ReadHostMemory() {
  HostMemory m;
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t kb;
  std::string unit;
  while (f >> key >> kb) {
    std::getline(f, unit);
    if (key == "MemTotal:") m.total = kb * 1024;
    if (key == "MemAvailable:") m.available = kb * 1024;
  }
  return m;
}

int64_t DiskFreeBytes(const std::string& path) {
  struct statvfs st;
  if (::statvfs(path.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
}

std::vector<v1::GpuInfo> ProbeGpus() {
  static std::mutex mu;
  static std::vector<v1::GpuInfo> cached;
  static std::chrono::steady_clock::time_point when;
  std::lock_guard<std::mutex> lock(mu);
  const auto now = std::chrono::steady_clock::now();
  if (when.time_since_epoch().count() != 0 && now - when < std::chrono::seconds(5)) return cached;
  when = now;
  cached.clear();
  FILE* p = ::popen(
      "command -v nvidia-smi >/dev/null 2>&1 && timeout 5 nvidia-smi "
      "--query-gpu=index,name,memory.total,memory.free --format=csv,noheader,nounits 2>/dev/null",
      "r");
  if (p == nullptr) return cached;
  char line[512];
  while (std::fgets(line, sizeof(line), p) != nullptr) {
    std::vector<std::string> f = absl::StrSplit(std::string(line), ',');
    if (f.size() != 4) continue;
    v1::GpuInfo g;
    int32_t idx = 0;
    int64_t total = 0, free = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(f[0]), &idx) ||
        !absl::SimpleAtoi(absl::StripAsciiWhitespace(f[2]), &total) ||
        !absl::SimpleAtoi(absl::StripAsciiWhitespace(f[3]), &free))
      continue;
    g.set_index(idx);
    g.set_name(std::string(absl::StripAsciiWhitespace(f[1])));
    g.set_memory_total(total << 20);  // MiB
    g.set_memory_free(free << 20);
    cached.push_back(g);
  }
  ::pclose(p);
  return cached;
}

void FillMachineInfo(const std::string& output_root, v1::ServerInfo* info) {
  info->set_version(SFD_VERSION);
  info->set_grpc_version(grpc::Version());
  info->set_protobuf_version(google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION));
  info->set_sqlite_version(sqlite3_libversion());
  const HostMemory mem = ReadHostMemory();
  info->set_host_memory_total(mem.total);
  info->set_host_memory_available(mem.available);
  info->set_output_disk_free(DiskFreeBytes(output_root));
  for (const v1::GpuInfo& g : ProbeGpus()) *info->add_gpus() = g;
}

}  // namespace sfd
