#include "engine/runtime/host_arena.h"

#include "engine/common/status.h"
#include "engine/common/torch_compat.h"

namespace sfd {

int64_t MirrorBytes(const ModelLayout& layout) {
  int64_t n = 0;
  for (int u = 0; u < layout.num_units(); ++u) n += layout.layout(u).numel();
  return n * 2;
}

int64_t Q8StateBytes(int64_t n) { return 4 * n + 2 * (n + 4 * Q8Blocks(n)); }

namespace {
bool OnNvme(const std::vector<bool>& moments_on_nvme, int u) {
  return u < static_cast<int>(moments_on_nvme.size()) && moments_on_nvme[u];
}
}  // namespace

Q8Moments HostUnit::q8() const {
  SFD_CHECK(moments_8bit()) << "unit has fp32 moments";
  return {m.data_ptr<uint8_t>(), m_scale.data_ptr<float>(), v.data_ptr<uint8_t>(), v_scale.data_ptr<float>()};
}

int64_t HostUnitBytes(const ModelLayout& layout, bool bf16_mirror, bool all_grads,
                      const std::vector<bool>& moments_on_nvme, bool moments_8bit) {
  int64_t bytes = 0;
  for (int u = 0; u < layout.num_units(); ++u) {
    const int64_t n = layout.layout(u).numel();
    bytes += n * 4 * (1 + (all_grads ? 1 : 0));  // master, grad
    if (OnNvme(moments_on_nvme, u)) continue;
    bytes += moments_8bit ? 2 * (n + 4 * Q8Blocks(n)) : 8 * n;
  }
  return bytes + (bf16_mirror ? MirrorBytes(layout) : 0);
}

absl::StatusOr<std::vector<HostUnit>> AllocateHostUnits(const ModelLayout& layout, Backend* backend,
                                                        bool bf16_mirror, bool all_grads,
                                                        const std::vector<bool>& moments_on_nvme,
                                                        bool moments_8bit,
                                                        const std::vector<bool>& pinned_state) {
  std::vector<HostUnit> units(layout.num_units());
  absl::Status st = compat::CatchTorch("allocating host arenas", [&] {
    for (int u = 0; u < layout.num_units(); ++u) {
      const int64_t n = layout.layout(u).numel();
      units[u].master = at::zeros({n}, at::kFloat);
      if (moments_8bit) {  // code 0 at scale 0: zero moments, like fp32
        units[u].m = at::zeros({n}, at::kByte);
        units[u].v = at::zeros({n}, at::kByte);
        units[u].m_scale = at::zeros({Q8Blocks(n)}, at::kFloat);
        units[u].v_scale = at::zeros({Q8Blocks(n)}, at::kFloat);
      } else if (!OnNvme(moments_on_nvme, u)) {
        units[u].m = at::zeros({n}, at::kFloat);
        units[u].v = at::zeros({n}, at::kFloat);
      }
      if (all_grads) units[u].grad = at::zeros({n}, at::kFloat);
    }
  });
  if (!st.ok()) return absl::ResourceExhaustedError(std::string(st.message()));
  if (bf16_mirror) {
    for (int u = 0; u < layout.num_units(); ++u) {
      SFD_ASSIGN_OR_RETURN(units[u].mirror, backend->AllocPinned(layout.layout(u).numel(), at::kBFloat16));
    }
  }
  for (int u = 0; u < static_cast<int>(pinned_state.size()) && u < layout.num_units(); ++u) {
    if (!pinned_state[u]) continue;
    HostUnit& h = units[u];
    for (at::Tensor* t : {&h.master, &h.m, &h.v, &h.m_scale, &h.v_scale}) {
      if (!t->defined()) continue;
      SFD_ASSIGN_OR_RETURN(at::Tensor pinned, backend->AllocPinned(t->numel(), t->scalar_type()));
      pinned.zero_();
      *t = pinned;
    }
  }
  return units;
}

absl::Status EnsureGradArenas(std::vector<HostUnit>* units) {
  absl::Status st = compat::CatchTorch("allocating gradient arenas", [&] {
    for (HostUnit& h : *units)
      if (!h.grad.defined()) h.grad = at::zeros({h.numel()}, at::kFloat);
  });
  if (!st.ok()) return absl::ResourceExhaustedError(std::string(st.message()));
  return absl::OkStatus();
}

}  // namespace sfd
