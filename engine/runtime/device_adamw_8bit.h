// The 8-bit-moment AdamW (optim/adamw_8bit.h) on a CUDA device, for the units whose optimizer
// state the planner puts there (DeviceOptimizer). It compiles the CPU kernels' element math
// (optim/adamw_8bit_math.inc) with --fmad=false, and block maxima are order-free (max over the
// fp32 bit patterns), so from the same gradient it gives the CPU kernels' bits, and a unit's
// state moves between the tiers as it is. (The gradients the tiers see can differ: in direct
// mode the host receives the embedding's and head's rounded to bf16, and the clip coefficient
// comes from sums taken in another order.) No torch and no CUDA headers
// here (device_optimizer.cc includes it on every build; the definition exists on CUDA builds).
#pragma once

#include <cstdint>

#include "engine/optim/adamw_8bit.h"
#include "engine/optim/cpu_adamw.h"

namespace sfd {

// One AdamW step over n elements of a unit, all pointers on the device: `param` fp32 [n],
// `q` the 8-bit moments at element `index0` of the unit (a multiple of kQ8Block), `grad` [n]
// fp32 or, when `grad_bf16`, bf16; writes the new weights as bf16 to `param_bf16` [n] when not
// null. Uses hp.seed. Launches on `stream` (a cudaStream_t). Returns 0, or a CUDA error code
// that DeviceAdamW8bitErrorString names.
int DeviceAdamW8bit(const AdamWStep& hp, int64_t index0, float* param, Q8Moments q, const void* grad,
                    bool grad_bf16, uint16_t* param_bf16, int64_t n, void* stream);
const char* DeviceAdamW8bitErrorString(int error);

}  // namespace sfd
