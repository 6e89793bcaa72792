#include "bench/engine/kineto_trace.h"

#include <cstdio>
#include <set>

#include <torch/csrc/autograd/profiler_kineto.h>

namespace sfd {
namespace {

namespace tap = torch::autograd::profiler;
namespace tpi = torch::profiler::impl;

tpi::ProfilerConfig Config() { return tpi::ProfilerConfig(tpi::ProfilerState::KINETO); }
std::set<tpi::ActivityType> Activities() { return {tpi::ActivityType::CPU, tpi::ActivityType::CUDA}; }

}  // namespace

bool StartTrace() {
  try {
    tap::prepareProfiler(Config(), Activities());
    tap::enableProfiler(Config(), Activities());
    return true;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trace: cannot start the profiler: %s\n", e.what());
    return false;
  }
}

bool StopTrace(const std::string& path) {
  try {
    std::unique_ptr<tap::ProfilerResult> result = tap::disableProfiler();
    result->save(path);
    return true;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trace: cannot save %s: %s\n", path.c_str(), e.what());
    return false;
  }
}

}  // namespace sfd
