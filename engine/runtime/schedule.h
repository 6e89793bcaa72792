// Schedule: the plan of one pass (a training step or an evaluation), computed before execution
// and walked by the Executor. It lists every use of a unit in order (forward: embedding,
// layers 0..L-1, head; backward: head, layers L-1..0, embedding; repeated per micro-batch),
// which device slot each decoder layer occupies, and every H2D load with the use it must wait
// for (the last use of the layer it evicts). Slots are assigned with Belady's rule (evict the
// layer needed furthest in the future), so the layers still resident when forward turns into
// backward are reused without a reload. The embedding and head have dedicated buffers.
// No torch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sfd {

enum class Phase { kForward, kBackward };

struct UnitUse {
  int unit = 0;         // ModelLayout unit index
  Phase phase = Phase::kForward;
  int micro_batch = 0;
  int slot = -1;        // decoder-layer slot; -1 for the embedding / head buffers
  int load = -1;        // index into loads this use waits for; -1 if already resident
};

struct SlotLoad {
  int unit = 0;
  int slot = -1;        // -1: the unit's dedicated buffer (embedding / head)
  int evicted_unit = -1;
  int after_use = -1;   // the evicted layer's last use before this load (-1: slot was empty)
  int first_use = 0;    // the use that needs this load
};

struct Schedule {
  int num_units = 0;
  int num_slots = 0;
  bool backward = false;
  int num_micro_batches = 0;
  std::vector<UnitUse> uses;
  std::vector<SlotLoad> loads;

  int64_t LoadCount() const { return static_cast<int64_t>(loads.size()); }
  std::string Describe() const;  // one line per use, for logs and tests
};

// num_layers decoder layers; units are 0 (embedding), 1..L (layers), L+1 (head).
// num_slots in [1, L]: decoder-layer slots on the device.
Schedule BuildSchedule(int num_layers, int num_micro_batches, int num_slots, bool backward);

}  // namespace sfd
