// Tests engine/optim/lr_schedule.cc against a table produced by transformers' own schedule
// lambdas in Python (gen_lr_schedule_table.py -> lr_schedule_table.inc).
#include "engine/optim/lr_schedule.h"

#include <cmath>
#include <cstdint>

#include "gtest/gtest.h"

namespace sfd {
namespace {

struct Expected {
  LrScheduleKind kind;
  int64_t warmup;
  int64_t total;
  double min_lr_ratio;
  int64_t step;
  double factor;
};

const Expected kTable[] = {
#include "tests/engine/optim/lr_schedule_table.inc"
};

TEST(LrScheduleTest, MatchesTransformersFormulas) {
  int checked = 0;
  for (const Expected& e : kTable) {
    LrScheduleSpec spec;
    spec.kind = e.kind;
    spec.warmup_steps = e.warmup;
    spec.total_steps = e.total;
    spec.min_lr_ratio = e.min_lr_ratio;
    ASSERT_TRUE(ValidateLrSchedule(spec).ok()) << ValidateLrSchedule(spec);
    SCOPED_TRACE(testing::Message()
                 << LrScheduleKindName(e.kind) << " warmup=" << e.warmup << " total=" << e.total
                 << " min=" << e.min_lr_ratio << " step=" << e.step);
    EXPECT_NEAR(LrFactorAt(spec, e.step), e.factor, 1e-15);
    EXPECT_NEAR(LrAt(spec, 3e-4, e.step), 3e-4 * e.factor, 1e-19);
    ++checked;
  }
  EXPECT_GT(checked, 100);
}

TEST(LrScheduleTest, WarmupStartsAtZeroAndReachesBase) {
  LrScheduleSpec spec;
  spec.kind = LrScheduleKind::kCosine;
  spec.warmup_steps = 4;
  spec.total_steps = 20;
  EXPECT_EQ(LrAt(spec, 1e-3, 0), 0.0);
  EXPECT_DOUBLE_EQ(LrAt(spec, 1e-3, 2), 0.5e-3);
  EXPECT_DOUBLE_EQ(LrAt(spec, 1e-3, 4), 1e-3);
  EXPECT_EQ(LrAt(spec, 1e-3, -3), 0.0);  // negative steps clamp to 0
}

TEST(LrScheduleTest, MinLrRatioIsTheFloorAtTheEnd) {
  for (LrScheduleKind kind : {LrScheduleKind::kLinear, LrScheduleKind::kCosine}) {
    LrScheduleSpec spec;
    spec.kind = kind;
    spec.warmup_steps = 10;
    spec.total_steps = 110;
    spec.min_lr_ratio = 0.25;
    EXPECT_NEAR(LrFactorAt(spec, 110), 0.25, 1e-12) << LrScheduleKindName(kind);
    for (int64_t s = 10; s <= 110; ++s) {
      EXPECT_GE(LrFactorAt(spec, s), 0.25 - 1e-12);
      EXPECT_LE(LrFactorAt(spec, s), 1.0);
      if (s > 10) EXPECT_LE(LrFactorAt(spec, s), LrFactorAt(spec, s - 1));  // non-increasing
    }
  }
}

TEST(LrScheduleTest, ValidationNamesTheField) {
  LrScheduleSpec spec;
  spec.kind = LrScheduleKind::kLinear;
  absl::Status s = ValidateLrSchedule(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("total_steps"), std::string::npos) << s;

  spec.total_steps = 10;
  spec.warmup_steps = 11;
  s = ValidateLrSchedule(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("warmup_steps (11)"), std::string::npos) << s;

  spec.warmup_steps = -1;
  EXPECT_NE(ValidateLrSchedule(spec).message().find("warmup_steps"), std::string::npos);

  spec.warmup_steps = 0;
  spec.min_lr_ratio = 1.5;
  EXPECT_NE(ValidateLrSchedule(spec).message().find("min_lr_ratio"), std::string::npos);
  spec.min_lr_ratio = std::nan("");
  EXPECT_FALSE(ValidateLrSchedule(spec).ok());

  LrScheduleSpec constant;
  constant.warmup_steps = 100;  // constant needs no total_steps
  EXPECT_TRUE(ValidateLrSchedule(constant).ok());
  constant.min_lr_ratio = 0.1;
  EXPECT_FALSE(ValidateLrSchedule(constant).ok());

  LrScheduleSpec cosine;
  cosine.kind = LrScheduleKind::kCosine;
  cosine.total_steps = 5;
  cosine.warmup_steps = 5;
  EXPECT_TRUE(ValidateLrSchedule(cosine).ok());
}

}  // namespace
}  // namespace sfd
