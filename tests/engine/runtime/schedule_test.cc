// Schedule: the slot plan the Executor walks. Checks the plan's invariants by replaying it
// (every decoder-layer use finds its layer in its slot, every load names the evicted layer and
// its last use), the minimum number of loads that Belady's rule gives, and that a load in the
// backward never waits for the use right before the one that needs it (the load would then be
// serialised with the compute).
#include "engine/runtime/schedule.h"

#include <vector>

#include "gtest/gtest.h"

namespace sfd {
namespace {

bool IsLayer(const Schedule& s, int unit) { return unit >= 1 && unit <= s.num_units - 2; }

// Replays the plan; fails the test on the first inconsistency.
void Replay(const Schedule& s) {
  std::vector<int> occupant(s.num_slots, -1), last_use(s.num_slots, -1);
  std::vector<bool> dedicated_loaded(s.num_units, false);
  for (int j = 0; j < static_cast<int>(s.uses.size()); ++j) {
    const UnitUse& u = s.uses[j];
    if (!IsLayer(s, u.unit)) {
      EXPECT_EQ(u.slot, -1) << "use " << j;
      if (u.load >= 0) {
        ASSERT_LT(u.load, s.LoadCount());
        EXPECT_EQ(s.loads[u.load].unit, u.unit);
        EXPECT_FALSE(dedicated_loaded[u.unit]) << "embedding/head loaded twice, use " << j;
        dedicated_loaded[u.unit] = true;
      } else {
        EXPECT_TRUE(dedicated_loaded[u.unit]) << "use " << j << " before its load";
      }
      continue;
    }
    ASSERT_GE(u.slot, 0) << "use " << j;
    ASSERT_LT(u.slot, s.num_slots);
    if (u.load >= 0) {
      const SlotLoad& l = s.loads[u.load];
      EXPECT_EQ(l.unit, u.unit);
      EXPECT_EQ(l.slot, u.slot);
      EXPECT_EQ(l.first_use, j);
      EXPECT_EQ(l.evicted_unit, occupant[u.slot]) << "use " << j;
      EXPECT_EQ(l.after_use, last_use[u.slot]) << "use " << j;
      EXPECT_LT(l.after_use, j);
      occupant[u.slot] = u.unit;
    } else {
      EXPECT_EQ(occupant[u.slot], u.unit) << "use " << j << " expects its layer resident";
    }
    last_use[u.slot] = j;
  }
}

TEST(Schedule, ReplaysConsistentlyForEveryShape) {
  for (int layers : {1, 2, 3, 5, 8, 28})
    for (int mb : {1, 2, 3})
      for (int slots = 1; slots <= layers; ++slots)
        for (bool backward : {false, true}) {
          SCOPED_TRACE(::testing::Message() << "layers=" << layers << " mb=" << mb
                                            << " slots=" << slots << " backward=" << backward);
          Replay(BuildSchedule(layers, mb, slots, backward));
        }
}

TEST(Schedule, LoadCountIsBeladysMinimumForOneMicroBatch) {
  // Forward loads every layer once; the backward reuses the `slots` layers still resident and
  // loads the others again; plus the embedding and head once each.
  for (int layers : {4, 16, 28})
    for (int slots : {1, 2, 3, layers}) {
      Schedule s = BuildSchedule(layers, 1, slots, /*backward=*/true);
      EXPECT_EQ(s.LoadCount(), 2 + layers + (layers - slots)) << layers << " " << slots;
      Schedule f = BuildSchedule(layers, 1, slots, /*backward=*/false);
      EXPECT_EQ(f.LoadCount(), 2 + layers);
    }
}

TEST(Schedule, BackwardLoadsDoNotWaitForTheUseJustBeforeThem) {
  // With S slots a load may start once the use S-1 places before the one that needs it is done
  // (the least recently used slot). Evicting the slot of the layer that has just run would
  // make the H2D copy wait for that compute, and the next compute for that copy.
  for (int layers : {8, 28})
    for (int mb : {1, 2})
      for (int slots : {2, 3, 4}) {
        Schedule s = BuildSchedule(layers, mb, slots, true);
        for (const SlotLoad& l : s.loads) {
          if (l.slot < 0 || l.after_use < 0 || s.uses[l.first_use].phase != Phase::kBackward) continue;
          // uses between the evicted layer's last use and the one needing the load
          EXPECT_GE(l.first_use - l.after_use, slots)
              << "layers=" << layers << " mb=" << mb << " slots=" << slots << " unit " << l.unit
              << " waits for use " << l.after_use << " and is needed by use " << l.first_use;
        }
      }
}

TEST(Schedule, AllSlotsMeansNoReload) {
  Schedule s = BuildSchedule(6, 3, 6, true);
  EXPECT_EQ(s.LoadCount(), 2 + 6);
  for (const SlotLoad& l : s.loads) EXPECT_EQ(l.evicted_unit, -1);
}

}  // namespace
}  // namespace sfd
