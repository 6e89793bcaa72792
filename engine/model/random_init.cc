// RandomInit (random_init.h).
#include "engine/model/random_init.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>

namespace sfd {

void RandomInit(const ParamEntry& p, double std, uint64_t seed, float* dst, ThreadPool* pool) {
  const bool norm = p.name.find("norm") != std::string::npos;
  if (p.shape.size() == 1) {
    std::fill(dst, dst + p.numel, norm ? 1.0f : 0.0f);
    return;
  }
  const float a = static_cast<float>(std * std::sqrt(3.0));
  const uint64_t salt = std::hash<std::string>()(p.name) ^ (seed * 0x9E3779B97F4A7C15ull);
  constexpr int64_t kChunk = 1 << 20;
  pool->ParallelFor((p.numel + kChunk - 1) / kChunk, [&](int64_t c) {
    const int64_t end = std::min(p.numel, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < end; ++i) {
      uint64_t z = salt + static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      const float u01 = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
      dst[i] = (2.0f * u01 - 1.0f) * a;
    }
  });
}

}  // namespace sfd
