// CPU placement near the GPU (see cpu_placement.h).
#include "engine/runtime/cpu_placement.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"

namespace sfd {
namespace {

constexpr int kMaxCpuId = CPU_SETSIZE - 1;  // what a cpu_set_t can hold (1024 on glibc)

bool ReadFirstLine(const std::string& path, std::string* line) {
  std::ifstream in(path);
  if (!in) return false;
  std::getline(in, *line);
  return static_cast<bool>(in) || !line->empty();
}

// "0-3,8" for {0,1,2,3,8}: the logs' form of a CPU set.
std::string FormatCpuList(const std::vector<int>& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += j == i ? absl::StrCat(cpus[i]) : absl::StrCat(cpus[i], "-", cpus[j]);
    i = j + 1;
  }
  return out;
}

std::string_view Strip(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// A CPU id: decimal digits only (no sign, no blanks), at most kMaxCpuId + a few digits' room.
bool ParseId(std::string_view s, int* out) {
  if (s.empty() || s.size() > 6) return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

void SetMask(const std::vector<int>& cpus, cpu_set_t* set) {
  CPU_ZERO(set);
  for (int c : cpus) CPU_SET(c, set);
}

}  // namespace

absl::StatusOr<std::vector<int>> ParseCpuList(std::string_view text) {
  std::vector<int> out;
  const std::string_view list = Strip(text);
  if (list.empty()) return out;
  auto bad = [&](std::string_view why, std::string_view part) {
    return absl::InvalidArgumentError(
        absl::StrCat("CPU list \"", std::string(text), "\": ", std::string(why), " \"", std::string(part), "\""));
  };
  size_t pos = 0;
  for (;;) {
    const size_t comma = list.find(',', pos);
    const std::string_view part = Strip(list.substr(pos, comma == std::string_view::npos ? list.npos : comma - pos));
    const size_t dash = part.find('-');
    int lo = 0, hi = 0;
    if (!ParseId(part.substr(0, dash), &lo)) return bad("bad entry", part);
    hi = lo;
    if (dash != std::string_view::npos && !ParseId(part.substr(dash + 1), &hi)) return bad("bad range", part);
    if (hi < lo) return bad("range runs backwards:", part);
    if (hi > kMaxCpuId) return bad(absl::StrCat("CPU ids stop at ", kMaxCpuId, ":"), part);
    for (int c = lo; c <= hi; ++c) out.push_back(c);
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<int> AllowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int c = 0; c <= kMaxCpuId; ++c)
      if (CPU_ISSET(c, &set)) out.push_back(c);
  }
  if (out.empty()) {  // more CPU ids than a cpu_set_t holds: every CPU the machine reports
    const int n = std::max(1u, std::thread::hardware_concurrency());
    for (int c = 0; c < n; ++c) out.push_back(c);
  }
  return out;
}

CpuPlacement PlaceNearDevice(const std::string& pci_bus_id, const std::vector<int>& allowed,
                             const std::string& sysfs_root) {
  CpuPlacement p;
  auto unbound = [&](std::string why) {
    p.summary = "CPU threads unbound: " + why;
    return p;
  };
  if (pci_bus_id.empty()) return unbound("no PCI device (CPU tier)");
  std::string online;
  if (!ReadFirstLine(sysfs_root + "/devices/system/node/online", &online)) {
    return unbound("no NUMA information in " + sysfs_root + "/devices/system/node");
  }
  absl::StatusOr<std::vector<int>> nodes = ParseCpuList(online);
  if (!nodes.ok()) return unbound(std::string(nodes.status().message()));
  if (nodes->size() <= 1) return unbound("one NUMA node");

  std::string bus = pci_bus_id;
  std::transform(bus.begin(), bus.end(), bus.begin(), [](unsigned char c) { return std::tolower(c); });
  const std::string node_file = sysfs_root + "/bus/pci/devices/" + bus + "/numa_node";
  std::string node_text;
  int node = -1;
  if (!ReadFirstLine(node_file, &node_text)) return unbound("cannot read " + node_file);
  if (Strip(node_text) == "-1") return unbound("the device at " + bus + " reports no NUMA node");
  if (!ParseId(Strip(node_text), &node)) return unbound(node_file + " holds \"" + node_text + "\"");

  const std::string cpu_file = absl::StrCat(sysfs_root, "/devices/system/node/node", node, "/cpulist");
  std::string cpu_text;
  if (!ReadFirstLine(cpu_file, &cpu_text)) return unbound("cannot read " + cpu_file);
  absl::StatusOr<std::vector<int>> node_cpus = ParseCpuList(cpu_text);
  if (!node_cpus.ok()) return unbound(cpu_file + ": " + std::string(node_cpus.status().message()));
  std::vector<int> cpus;
  std::set_intersection(node_cpus->begin(), node_cpus->end(), allowed.begin(), allowed.end(),
                        std::back_inserter(cpus));
  if (cpus.empty()) {
    return unbound(absl::StrCat("none of node ", node, "'s CPUs (", FormatCpuList(*node_cpus),
                                ") may be used by this process"));
  }
  p.node = node;
  p.cpus = std::move(cpus);
  p.summary = absl::StrCat("CPU threads and host memory on NUMA node ", node, " of the device at ",
                           bus, ": CPUs ", FormatCpuList(p.cpus), " (", p.cpus.size(), ")");
  return p;
}

absl::StatusOr<std::unique_ptr<ScopedCpuAffinity>> ScopedCpuAffinity::Bind(const std::vector<int>& cpus) {
  std::unique_ptr<ScopedCpuAffinity> scope(new ScopedCpuAffinity());
  if (cpus.empty()) return scope;
  for (int c : cpus) {
    if (c < 0 || c > kMaxCpuId) return absl::InvalidArgumentError(absl::StrCat("CPU ", c, " is out of range"));
  }
  cpu_set_t set;
  std::vector<int> saved;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int c = 0; c <= kMaxCpuId; ++c)
      if (CPU_ISSET(c, &set)) saved.push_back(c);
  }
  if (saved.empty()) return absl::FailedPreconditionError("cannot read this thread's CPU mask to restore it later");
  SetMask(cpus, &set);
  const int err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
  if (err != 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot bind to CPUs ", FormatCpuList(cpus),
                                                      ": ", std::strerror(err)));
  }
  scope->saved_ = std::move(saved);
  return scope;
}

ScopedCpuAffinity::~ScopedCpuAffinity() {
  if (saved_.empty()) return;
  cpu_set_t set;
  SetMask(saved_, &set);
  (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

}  // namespace sfd
