#include "engine/runtime/host_arena.h"

#include "engine/common/torch_compat.h"

namespace sfd {

int64_t HostUnitBytes(const ModelLayout& layout) {
  int64_t n = 0;
  for (int u = 0; u < layout.num_units(); ++u) n += layout.layout(u).numel();
  return n * 4 * static_cast<int64_t>(sizeof(float));
}

absl::StatusOr<std::vector<HostUnit>> AllocateHostUnits(const ModelLayout& layout) {
  std::vector<HostUnit> units(layout.num_units());
  absl::Status st = compat::CatchTorch("allocating host arenas", [&] {
    for (int u = 0; u < layout.num_units(); ++u) {
      const int64_t n = layout.layout(u).numel();
      units[u].master = at::zeros({n}, at::kFloat);
      units[u].m = at::zeros({n}, at::kFloat);
      units[u].v = at::zeros({n}, at::kFloat);
      units[u].grad = at::zeros({n}, at::kFloat);
    }
  });
  if (!st.ok()) return absl::ResourceExhaustedError(std::string(st.message()));
  return units;
}

}  // namespace sfd
