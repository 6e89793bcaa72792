// RandomInit: the deterministic, parallel initialisation of one parameter for models trained
// from scratch (TrainerSpec::random_init: benchmarks and tests, no checkpoint needed). The
// values depend on the parameter's name, the seed and the element index only, so any thread
// count (and any tier: the fp32 master is written, host) gives the same bits. No torch.
#pragma once

#include <cstdint>

#include "engine/common/thread_pool.h"
#include "engine/model/model_layout.h"

namespace sfd {

// Writes p.numel floats at `dst` (host, fp32): matrices uniform(-a, a) with a = std*sqrt(3),
// vectors named *norm* = 1, other vectors (biases) = 0. Element i takes splitmix64 of
// (hash(p.name) ^ seed * golden ratio) + i * golden ratio; chunks of 2^20 run on `pool`.
void RandomInit(const ParamEntry& p, double std, uint64_t seed, float* dst, ThreadPool* pool);

}  // namespace sfd
