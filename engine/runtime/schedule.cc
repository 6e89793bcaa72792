#include "engine/runtime/schedule.h"

#include <algorithm>
#include <limits>
#include <sstream>

#include "engine/common/status.h"

namespace sfd {

Schedule BuildSchedule(int num_layers, int num_micro_batches, int num_slots, bool backward) {
  SFD_CHECK(num_layers >= 1 && num_slots >= 1 && num_slots <= num_layers && num_micro_batches >= 1)
      << "layers=" << num_layers << " slots=" << num_slots << " mb=" << num_micro_batches;
  Schedule s;
  s.num_units = num_layers + 2;
  s.num_slots = num_slots;
  s.backward = backward;
  s.num_micro_batches = num_micro_batches;
  const int head = num_layers + 1;

  for (int mb = 0; mb < num_micro_batches; ++mb) {
    for (int u = 0; u <= head; ++u) s.uses.push_back({u, Phase::kForward, mb});
    if (backward)
      for (int u = head; u >= 0; --u) s.uses.push_back({u, Phase::kBackward, mb});
  }

  // Embedding and head: one load each, before their first use.
  std::vector<bool> dedicated_loaded(s.num_units, false);
  // Decoder layers: Belady over num_slots.
  std::vector<int> occupant(num_slots, -1);       // unit in slot
  std::vector<int> last_use_of_slot(num_slots, -1);
  const int n = static_cast<int>(s.uses.size());
  auto next_use = [&](int unit, int from) {
    for (int j = from; j < n; ++j)
      if (s.uses[j].unit == unit) return j;
    return std::numeric_limits<int>::max();
  };
  for (int j = 0; j < n; ++j) {
    UnitUse& use = s.uses[j];
    if (use.unit == 0 || use.unit == head) {
      if (!dedicated_loaded[use.unit]) {
        use.load = static_cast<int>(s.loads.size());
        s.loads.push_back({use.unit, -1, -1, -1, j});
        dedicated_loaded[use.unit] = true;
      }
      continue;
    }
    int slot = -1;
    for (int k = 0; k < num_slots; ++k)
      if (occupant[k] == use.unit) slot = k;
    if (slot < 0) {
      for (int k = 0; k < num_slots && slot < 0; ++k)
        if (occupant[k] < 0) slot = k;
      if (slot < 0) {
        // Furthest next use; among ties (layers the pass never needs again) the least recently
        // used slot, so that the load can start while the layers after it still compute. Taking
        // the slot just used would make the load wait for that use and the compute for the load.
        int best = -1;
        for (int k = 0; k < num_slots; ++k) {
          int nu = next_use(occupant[k], j + 1);
          if (nu > best || (nu == best && last_use_of_slot[k] < last_use_of_slot[slot])) {
            best = nu;
            slot = k;
          }
        }
      }
      use.load = static_cast<int>(s.loads.size());
      s.loads.push_back({use.unit, slot, occupant[slot], last_use_of_slot[slot], j});
      occupant[slot] = use.unit;
    }
    use.slot = slot;
    last_use_of_slot[slot] = j;
  }
  return s;
}

std::string Schedule::Describe() const {
  std::ostringstream o;
  for (size_t j = 0; j < uses.size(); ++j) {
    const UnitUse& u = uses[j];
    o << j << ": mb" << u.micro_batch << (u.phase == Phase::kForward ? " fwd" : " bwd")
      << " unit " << u.unit << " slot " << u.slot;
    if (u.load >= 0) {
      const SlotLoad& l = loads[u.load];
      o << " load#" << u.load;
      if (l.evicted_unit >= 0) o << " evicts unit " << l.evicted_unit << " after use " << l.after_use;
    }
    o << "\n";
  }
  return o.str();
}

}  // namespace sfd
