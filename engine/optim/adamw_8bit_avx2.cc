// AVX2 build (-mavx2 -mfma -mf16c) of the 8-bit-moment AdamW kernels: the shared body adamw_8bit_kernel.inc compiled with
// this level's flags (set in engine/CMakeLists.txt); only called after cpu_adamw.cc's runtime
// check for the level.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "engine/optim/adamw_8bit.h"
#include "engine/optim/cpu_adamw_kernels.h"

namespace sfd {
namespace optim_internal {

#include "engine/optim/adamw_8bit_kernel.inc"

const Q8KernelTable kQ8Avx2Kernels = {AdamW8, AdamW8Bf16Grad};

}  // namespace optim_internal
}  // namespace sfd
