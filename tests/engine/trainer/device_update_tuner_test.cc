// DeviceUpdateTuner: the search over device-updated layer counts, fed with step times from
// a model of the step (max of the CPU AdamW share and the PCIe time, plus what the step does
// regardless). The model's constants are the session-8 H100 measurements of 3B at batch 8
// under 8 GiB (bench/NOTES.md v20): 3.2B parameters, 28 layers of 0.1B, 11.3 GB of H2D per step
// at count 0 and 0.61 GB more per device-updated layer; host A updates on the CPU in 0.58 s and
// streams at ~27 GB/s, host B takes 0.756 s and streams at ~33 GB/s.
#include "engine/trainer/device_update_tuner.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include <gtest/gtest.h>

namespace sfd {
namespace {

struct Host {
  double cpu_s;     // CPU AdamW of the whole model, count 0
  double h2d_gbps;  // PCIe rate in the pipeline
  double gpu_s;     // GPU work of the step
};

constexpr int kLayers = 28;
constexpr int64_t kTokens = 8192;

// Step seconds and CPU busy seconds with `n` layers updated on the device.
double StepSeconds(const Host& h, int n) {
  const double cpu = h.cpu_s * (1 - n * 0.1 / 3.2);
  const double pcie = (11.3 + 0.61 * n) / h.h2d_gbps;
  return std::max({cpu, pcie, h.gpu_s});
}
double CpuSeconds(const Host& h, int n) { return h.cpu_s * (1 - n * 0.1 / 3.2); }

struct TuneResult {
  int chosen = -1;
  int steps = 0;  // steps until done
  std::string summary;
};

// Feeds the tuner steps until it is done (at most 200). A step right after a change of count
// still waits for the previous update and takes `transition_s` longer; noise(step) is added.
TuneResult Tune(const Host& h, int max_layers, double transition_s = 0,
         std::function<double(int)> noise = [](int) { return 0.0; }) {
  DeviceUpdateTuner t(max_layers);
  int last = t.count();
  TuneResult r;
  for (int step = 0; step < 200 && !t.done(); ++step) {
    const int n = t.count();
    EXPECT_GE(n, 0);
    EXPECT_LE(n, max_layers);
    const double s = StepSeconds(h, n) + (n != last ? transition_s : 0) + noise(step);
    last = n;
    t.Observe(s, CpuSeconds(h, n), kTokens);
    r.steps = step + 1;
  }
  EXPECT_TRUE(t.done()) << t.Summary();
  r.chosen = t.count();
  r.summary = t.Summary();
  return r;
}

double Best(const Host& h, int max_layers) {
  double best = std::numeric_limits<double>::infinity();
  for (int n = 0; n <= max_layers; ++n) best = std::min(best, StepSeconds(h, n));
  return best;
}

TEST(DeviceUpdateTunerTest, PcieBoundHostKeepsTheUpdateOnTheCpu) {
  // The CPU update (0.40 s) is already faster than the step's PCIe traffic (0.42 s): every
  // device-updated layer only adds to the bound.
  const Host fast{0.40, 27, 0.3};
  const TuneResult r = Tune(fast, 19);
  EXPECT_EQ(r.chosen, 0) << r.summary;
}

TEST(DeviceUpdateTunerTest, HostAGetsAFewLayersNotFourteen) {
  // Host A's model is best at 4 layers (0.507 s against 0.58 at 0 and 0.735 at 14, the
  // count that lost 20% there).
  const Host a{0.58, 27, 0.3};
  const TuneResult r = Tune(a, 19);
  EXPECT_GE(r.chosen, 3) << r.summary;
  EXPECT_LE(r.chosen, 5) << r.summary;
}

TEST(DeviceUpdateTunerTest, HostWithASlowCpuMovesLayersToTheDevice) {
  const Host b{0.756, 33, 0.3};
  const TuneResult r = Tune(b, 19);
  // The optimum of the model is at 9-10 layers (0.53 s against 0.756 s at 0).
  EXPECT_GE(r.chosen, 8);
  EXPECT_LE(r.chosen, 11);
  EXPECT_LE(StepSeconds(b, r.chosen), Best(b, 19) * 1.02);
  // Warm-up 2, count 0 (2), then at most 2 counts per halving of the stride (5 strides), each
  // 1 settle + 2 measured steps.
  EXPECT_LE(r.steps, 2 + 2 + 2 * 5 * 3);
}

TEST(DeviceUpdateTunerTest, FindsTheBestCountAcrossHosts) {
  for (double cpu : {0.4, 0.6, 0.8, 1.2, 2.0}) {
    for (double gbps : {20.0, 30.0, 45.0}) {
      for (int max_layers : {1, 5, 19, 28}) {
        const Host h{cpu, gbps, 0.2};
        SCOPED_TRACE(::testing::Message() << "cpu " << cpu << " s, " << gbps << " GB/s, max " << max_layers);
        const TuneResult r = Tune(h, max_layers);
        // Within the 2% the search treats as a tie of the model's best count.
        EXPECT_LE(StepSeconds(h, r.chosen), Best(h, max_layers) * 1.021) << r.summary;
      }
    }
  }
}

TEST(DeviceUpdateTunerTest, TransitionStepsAndNoiseDoNotMisleadIt) {
  const Host b{0.756, 33, 0.3};
  // The step after a change of count is 0.3 s slower (the previous update's tail), and every
  // step has up to +-0.5% of noise.
  const TuneResult r = Tune(b, 19, 0.3, [](int step) { return 0.004 * std::sin(step * 2.3); });
  EXPECT_LE(StepSeconds(b, r.chosen), Best(b, 19) * 1.03);
}

TEST(DeviceUpdateTunerTest, GpuBoundStepsStopAtZeroAfterOneMeasurement) {
  // 8B at batch 64: GPU work 6.2 s, CPU update 2 s: nothing to gain, nothing tried.
  const Host g{2.0, 30, 6.2};
  DeviceUpdateTuner t(21);
  for (int step = 0; step < 4; ++step) {
    EXPECT_FALSE(t.done());
    EXPECT_EQ(t.count(), 0);
    t.Observe(StepSeconds(g, 0), CpuSeconds(g, 0), kTokens);
  }
  EXPECT_TRUE(t.done());
  EXPECT_EQ(t.count(), 0);
  EXPECT_NE(t.Summary().find("not bound by the update"), std::string::npos) << t.Summary();
}

// Exact (clipped) steps: the update starts after the backward and overlaps only the next
// forward, so it bounds the step while busy for well under 80% of it. A simple model of 3B bs8
// on the session-11 H100 (0.78 s step, update busy 0.48 s): step = backward 0.3 + max(forward
// 0.28, CPU share, 16 ms per device-updated layer); its count-0 wait of 0.2 s is half the
// measured 0.39-0.44 s, so the stop test is met with room to spare there. The device's
// wait for the update makes the tuner search, and it finds the best count; told no wait, it
// stops at 0.
TEST(DeviceUpdateTunerTest, ExactStepsBoundByTheUpdateAreSearched) {
  auto cpu = [](int n) { return 0.48 * (1 - n * 0.1 / 3.2); };
  auto step = [&](int n) { return 0.3 + std::max({0.28, cpu(n), 0.016 * n}); };
  double best = std::numeric_limits<double>::infinity();
  for (int n = 0; n <= 19; ++n) best = std::min(best, step(n));
  for (bool report_stall : {true, false}) {
    SCOPED_TRACE(::testing::Message() << "stall reported " << report_stall);
    DeviceUpdateTuner t(19);
    for (int i = 0; i < 200 && !t.done(); ++i) {
      const int n = t.count();
      const double stall = step(n) - 0.3 - 0.28;
      t.Observe(step(n), cpu(n), kTokens, report_stall ? stall : 0);
    }
    ASSERT_TRUE(t.done());
    EXPECT_NEAR(cpu(0) / step(0), 0.62, 0.01);  // under the 80% busy threshold
    if (report_stall) {
      EXPECT_LE(step(t.count()), best * 1.03) << t.Summary();
      EXPECT_GE(t.count(), 10) << t.Summary();
    } else {
      EXPECT_EQ(t.count(), 0) << t.Summary();
      EXPECT_NE(t.Summary().find("not bound by the update"), std::string::npos) << t.Summary();
    }
  }
}

TEST(DeviceUpdateTunerTest, ComparesTimePerTokenNotPerStep) {
  // Steps alternate between 8k and 4k tokens at the same time per token: the count that takes
  // the update off the CPU wins although its steps are "shorter" only by the token count.
  DeviceUpdateTunerOptions o;
  o.warmup_steps = 0;
  o.settle_steps = 0;
  DeviceUpdateTuner t(4, o);
  for (int step = 0; step < 100 && !t.done(); ++step) {
    const int64_t tokens = step % 2 ? 4096 : 8192;
    const double per_token = t.count() == 2 ? 50e-6 : 60e-6;  // 2 layers: 17% faster
    t.Observe(per_token * tokens, per_token * tokens, tokens);
  }
  ASSERT_TRUE(t.done());
  EXPECT_EQ(t.count(), 2) << t.Summary();
}

TEST(DeviceUpdateTunerTest, StepAfterADisturbanceIsNotMeasured) {
  // One candidate, one step per count. After count 0 (60 us/token) the tuner tries count 1;
  // an evaluation then absorbs the update in flight, so the next step looks fast (30 us/token)
  // and is ignored; the real one (61 us/token) loses to count 0.
  DeviceUpdateTunerOptions o;
  o.warmup_steps = 0;
  o.settle_steps = 0;
  o.measure_steps = 1;
  DeviceUpdateTuner t(1, o);
  t.Observe(60e-6 * kTokens, 60e-6 * kTokens, kTokens);
  ASSERT_EQ(t.count(), 1);
  t.Disturbed();
  t.Observe(30e-6 * kTokens, 30e-6 * kTokens, kTokens);
  EXPECT_FALSE(t.done());
  t.Observe(61e-6 * kTokens, 61e-6 * kTokens, kTokens);
  ASSERT_TRUE(t.done());
  EXPECT_EQ(t.count(), 0) << t.Summary();
}

TEST(DeviceUpdateTunerTest, NoCandidatesMeansDoneAtZero) {
  DeviceUpdateTuner t(0);
  EXPECT_TRUE(t.done());
  EXPECT_EQ(t.count(), 0);
  t.Observe(1.0, 1.0, kTokens);  // ignored
  EXPECT_EQ(t.count(), 0);
}

}  // namespace
}  // namespace sfd
