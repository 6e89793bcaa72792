// The SIMD levels of engine/optim/cpu_adamw.h this CPU can run, for tests that compare them.
#pragma once

#include <vector>

#include "engine/optim/cpu_adamw.h"

namespace sfd {

inline std::vector<SimdLevel> SupportedLevels() {
  std::vector<SimdLevel> levels;
  for (SimdLevel l : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
    if (SimdLevelSupported(l)) levels.push_back(l);
  }
  return levels;
}

}  // namespace sfd
