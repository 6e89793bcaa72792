// JobRunner end to end on a tiny random Llama (real 32k tokenizer) on the CPU: training to
// completion with falling loss and an HF final model, eval cadence, cancel at a step boundary
// with its checkpoint, checkpoint requests, exact resume (same per-step losses as an
// uninterrupted run), pruning to keep_last, and clear errors for bad specs and resumes.
#include "engine/job/job_runner.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <vector>

#include "engine/io/hf_model_dir.h"
#include "engine/job/job_checkpoint.h"
#include "tests/engine/job/job_test_util.h"

namespace sfd {
namespace {

namespace fs = std::filesystem;
using testing_util::FreshDir;
using testing_util::LearnableDataset;
using testing_util::TinyJobSpec;

// What the callbacks reported.
struct Record {
  int starts = 0;
  DataStats stats;
  std::vector<StepStats> steps;
  std::vector<std::pair<int64_t, double>> evals;
  std::vector<CheckpointInfo> checkpoints;
  std::vector<std::string> logs;
};

JobCallbacks Recorder(Record* r) {
  JobCallbacks cb;
  cb.on_start = [r](const MemoryPlan&, const DataStats& s) {
    ++r->starts;
    r->stats = s;
  };
  cb.on_step = [r](const StepStats& s) { r->steps.push_back(s); };
  cb.on_eval = [r](int64_t step, double loss) { r->evals.emplace_back(step, loss); };
  cb.on_checkpoint = [r](const CheckpointInfo& c) { r->checkpoints.push_back(c); };
  cb.on_log = [r](const std::string& m) { r->logs.push_back(m); };
  return cb;
}

std::unique_ptr<JobRunner> Make(const JobSpec& spec, const std::string& resume = "") {
  auto r = JobRunner::Create(spec, resume);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? std::move(*r) : nullptr;
}

bool AnyLogContains(const Record& r, const std::string& needle) {
  for (const std::string& m : r.logs)
    if (m.find(needle) != std::string::npos) return true;
  return false;
}

TEST(JobRunnerTest, TrainsToCompletionWithFallingLossAndWritesFinalModel) {
  const std::string data = LearnableDataset("learn.jsonl");
  const std::string out = FreshDir("run_full");
  JobSpec spec = TinyJobSpec(data, out);
  spec.epochs = 4;
  spec.data.eval_path = data;
  spec.eval_every_steps = 4;
  auto runner = Make(spec);
  ASSERT_TRUE(runner);
  Record rec;
  std::atomic<bool> cancel{false}, ckpt{false};
  ASSERT_TRUE(runner->Run(Recorder(&rec), &cancel, &ckpt).ok());

  EXPECT_EQ(rec.starts, 1);
  EXPECT_EQ(rec.stats.train_samples, 24);
  EXPECT_EQ(rec.stats.eval_samples, 24);
  EXPECT_GT(rec.stats.train_tokens, 24 * 10);
  ASSERT_GT(rec.stats.steps_per_epoch, 1);
  EXPECT_EQ(rec.stats.total_steps, 4 * rec.stats.steps_per_epoch);
  const int64_t total = rec.stats.total_steps;
  ASSERT_EQ(static_cast<int64_t>(rec.steps.size()), total);
  for (int64_t i = 0; i < total; ++i) {
    EXPECT_EQ(rec.steps[i].step, i + 1);
    EXPECT_TRUE(std::isfinite(rec.steps[i].loss));
  }
  const double first = (rec.steps[0].loss + rec.steps[1].loss + rec.steps[2].loss) / 3;
  const double last =
      (rec.steps[total - 1].loss + rec.steps[total - 2].loss + rec.steps[total - 3].loss) / 3;
  EXPECT_LT(last, first - 1.0) << "first " << first << " last " << last;

  // Evals every 4 steps and once at the end (not twice when the end is a multiple of 4).
  std::vector<int64_t> eval_steps;
  for (auto& [s, l] : rec.evals) eval_steps.push_back(s);
  std::vector<int64_t> want;
  for (int64_t s = 4; s <= total; s += 4) want.push_back(s);
  if (total % 4 != 0) want.push_back(total);
  EXPECT_EQ(eval_steps, want);
  ASSERT_GE(rec.evals.size(), 2u);
  EXPECT_LT(rec.evals.back().second, rec.evals.front().second);

  // Only the final model: no resumable checkpoint was asked for.
  ASSERT_EQ(rec.checkpoints.size(), 1u);
  EXPECT_TRUE(rec.checkpoints[0].final);
  EXPECT_EQ(rec.checkpoints[0].step, total);
  EXPECT_EQ(rec.checkpoints[0].path, out + "/final");
  auto model = HfModelDir::Open(out + "/final");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->config().vocab_size, 32000);
  EXPECT_TRUE(fs::exists(out + "/final/tokenizer.json"));
  EXPECT_EQ(JobRunner::LatestCheckpoint(out), "");
  EXPECT_TRUE(AnyLogContains(rec, "final model written"));

  // Run twice is an error, not a second training.
  EXPECT_EQ(runner->Run(Recorder(&rec), &cancel, &ckpt).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(JobRunnerTest, CancelAtStepBoundaryWritesCheckpointWhenAsked) {
  const std::string data = LearnableDataset("cancel.jsonl");
  for (bool checkpoint_on_cancel : {true, false}) {
    const std::string out = FreshDir(checkpoint_on_cancel ? "cancel_ckpt" : "cancel_nockpt");
    JobSpec spec = TinyJobSpec(data, out);
    spec.max_steps = 8;
    spec.checkpoint_on_cancel = checkpoint_on_cancel;
    auto runner = Make(spec);
    ASSERT_TRUE(runner);
    Record rec;
    std::atomic<bool> cancel{false};
    JobCallbacks cb = Recorder(&rec);
    cb.on_step = [&](const StepStats& s) {
      rec.steps.push_back(s);
      if (s.step == 3) cancel = true;
    };
    absl::Status st = runner->Run(cb, &cancel, nullptr);
    EXPECT_EQ(st.code(), absl::StatusCode::kCancelled) << st;
    EXPECT_EQ(rec.steps.size(), 3u);
    EXPECT_FALSE(fs::exists(out + "/final"));
    if (checkpoint_on_cancel) {
      EXPECT_EQ(JobRunner::LatestCheckpoint(out), out + "/checkpoint-3");
      ASSERT_EQ(rec.checkpoints.size(), 1u);
      EXPECT_FALSE(rec.checkpoints[0].final);
      EXPECT_EQ(rec.checkpoints[0].step, 3);
      auto state = ReadJobState(out + "/checkpoint-3");
      ASSERT_TRUE(state.ok()) << state.status();
      EXPECT_EQ(state->step, 3);
      EXPECT_EQ(state->total_steps, 8);
      EXPECT_TRUE(HfModelDir::Open(out + "/checkpoint-3").ok());
      EXPECT_TRUE(fs::exists(out + "/checkpoint-3/optimizer/state.json"));
    } else {
      EXPECT_EQ(JobRunner::LatestCheckpoint(out), "");
      EXPECT_TRUE(rec.checkpoints.empty());
    }
  }
}

// The resume guarantee: stop after k steps, resume from the latest checkpoint in a new
// runner, and steps k+1..N have the losses (and lrs) of the uninterrupted run. Shuffled data,
// several epochs, warmup + cosine, so data position and schedule position both matter.
TEST(JobRunnerTest, ResumedRunReproducesUninterruptedLosses) {
  const std::string data = LearnableDataset("resume.jsonl");
  auto spec_for = [&](const std::string& out) {
    JobSpec s = TinyJobSpec(data, out);
    s.max_steps = 9;
    s.lr_scheduler = LrScheduleKind::kCosine;
    s.warmup_steps = 2;
    s.optimizer.weight_decay = 0.01;
    s.data.eval_fraction = 0.2;
    s.eval_every_steps = 3;
    return s;
  };
  Record full;
  {
    auto r = Make(spec_for(FreshDir("resume_full")));
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->Run(Recorder(&full), nullptr, nullptr).ok());
  }
  ASSERT_EQ(full.steps.size(), 9u);
  ASSERT_LT(full.stats.steps_per_epoch, 5) << "the test should cross epoch boundaries";

  const int k = 5;
  const std::string out = FreshDir("resume_split");
  Record first;
  {
    auto r = Make(spec_for(out));
    ASSERT_TRUE(r);
    std::atomic<bool> cancel{false};
    JobCallbacks cb = Recorder(&first);
    cb.on_step = [&](const StepStats& s) {
      first.steps.push_back(s);
      if (s.step == k) cancel = true;
    };
    ASSERT_EQ(r->Run(cb, &cancel, nullptr).code(), absl::StatusCode::kCancelled);
  }
  const std::string latest = JobRunner::LatestCheckpoint(out);
  ASSERT_EQ(latest, out + "/checkpoint-" + std::to_string(k));
  Record second;
  auto r = Make(spec_for(out), latest);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->Run(Recorder(&second), nullptr, nullptr).ok());
  EXPECT_TRUE(AnyLogContains(second, "resumed from " + latest));

  ASSERT_EQ(second.steps.size(), 9u - k);
  for (int i = 0; i < k; ++i) EXPECT_DOUBLE_EQ(first.steps[i].loss, full.steps[i].loss) << i;
  for (size_t i = 0; i < second.steps.size(); ++i) {
    const StepStats& want = full.steps[k + i];
    EXPECT_EQ(second.steps[i].step, want.step);
    EXPECT_NEAR(second.steps[i].loss, want.loss, 1e-6 * std::abs(want.loss)) << want.step;
    EXPECT_NEAR(second.steps[i].lr, want.lr, 1e-12) << want.step;
    EXPECT_EQ(second.steps[i].target_tokens, want.target_tokens) << want.step;
  }
  // Evals after the resume (steps 6, 9) match too.
  std::map<int64_t, double> full_evals(full.evals.begin(), full.evals.end());
  ASSERT_EQ(second.evals.size(), 2u);
  for (auto& [s, l] : second.evals) {
    ASSERT_TRUE(full_evals.count(s)) << s;
    EXPECT_NEAR(l, full_evals[s], 1e-6 * full_evals[s]) << s;
  }
}

TEST(JobRunnerTest, CheckpointCadenceRequestsAndKeepLast) {
  const std::string data = LearnableDataset("cadence.jsonl");
  const std::string out = FreshDir("cadence");
  JobSpec spec = TinyJobSpec(data, out);
  spec.max_steps = 7;
  spec.checkpoint_every_steps = 2;
  spec.keep_last_checkpoints = 2;
  // Leftovers of a crashed write: ignored by LatestCheckpoint, removed by Run.
  fs::create_directories(out + "/checkpoint-99.tmp");
  std::ofstream(out + "/checkpoint-99.tmp/" + kJobStateFile) << "{}";
  EXPECT_EQ(JobRunner::LatestCheckpoint(out), "");
  auto runner = Make(spec);
  ASSERT_TRUE(runner);
  Record rec;
  std::atomic<bool> ckpt{false};
  JobCallbacks cb = Recorder(&rec);
  cb.on_step = [&](const StepStats& s) {
    rec.steps.push_back(s);
    if (s.step == 5) ckpt = true;  // an on-demand checkpoint between the cadence ones
  };
  cb.on_checkpoint = [&](const CheckpointInfo& c) {
    rec.checkpoints.push_back(c);
    ckpt = false;  // the caller clears the request, as sfd-worker does
  };
  ASSERT_TRUE(runner->Run(cb, nullptr, &ckpt).ok());
  std::vector<int64_t> steps;
  for (const CheckpointInfo& c : rec.checkpoints) steps.push_back(c.final ? -c.step : c.step);
  EXPECT_EQ(steps, (std::vector<int64_t>{2, 4, 5, 6, -7}));
  std::vector<int64_t> left;
  for (const CheckpointEntry& e : ListCheckpoints(out)) left.push_back(e.step);
  EXPECT_EQ(left, (std::vector<int64_t>{5, 6}));
  EXPECT_FALSE(fs::exists(out + "/checkpoint-99.tmp"));
  EXPECT_TRUE(AnyLogContains(rec, "removed old checkpoint " + out + "/checkpoint-2"));
  EXPECT_EQ(JobRunner::LatestCheckpoint(out), out + "/checkpoint-6");
}

// sfd-worker's cancel-with-checkpoint: it sets checkpoint_now, and cancel once on_checkpoint
// fires. A request arriving right after a cadence checkpoint of the same step must still be
// answered (with that checkpoint, not a second write), or the cancel would never come.
TEST(JobRunnerTest, CheckpointRequestRightAfterCadenceCheckpointIsAnswered) {
  const std::string data = LearnableDataset("request.jsonl");
  const std::string out = FreshDir("request");
  JobSpec spec = TinyJobSpec(data, out);
  spec.max_steps = 6;
  spec.checkpoint_every_steps = 2;
  spec.checkpoint_on_cancel = false;  // as sfd-worker runs it
  auto runner = Make(spec);
  ASSERT_TRUE(runner);
  Record rec;
  std::atomic<bool> cancel{false}, ckpt{false};
  bool requested = false;
  JobCallbacks cb = Recorder(&rec);
  cb.on_checkpoint = [&](const CheckpointInfo& c) {
    rec.checkpoints.push_back(c);
    if (!requested) {  // the request lands just after checkpoint-2 was written
      requested = true;
      ckpt = true;
      return;
    }
    if (ckpt.exchange(false)) cancel = true;
  };
  EXPECT_EQ(runner->Run(cb, &cancel, &ckpt).code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(rec.steps.size(), 2u);
  ASSERT_EQ(rec.checkpoints.size(), 2u);
  for (const CheckpointInfo& c : rec.checkpoints) {
    EXPECT_EQ(c.step, 2);
    EXPECT_EQ(c.path, out + "/checkpoint-2");
    EXPECT_FALSE(c.final);
  }
  EXPECT_EQ(JobRunner::LatestCheckpoint(out), out + "/checkpoint-2");
}

TEST(JobRunnerTest, BadSpecIsAnErrorNamingTheField) {
  const std::string data = LearnableDataset("badspec.jsonl");
  const std::string out = FreshDir("badspec");
  struct Case {
    std::function<void(JobSpec&)> edit;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](JobSpec& s) { s.micro_batch_size = 0; }, "training.micro_batch_size must be >= 1"},
      {[](JobSpec& s) { s.gradient_accumulation_steps = -1; },
       "training.gradient_accumulation_steps must be >= 1"},
      {[](JobSpec& s) { s.optimizer.lr = -1; }, "training.optimizer.lr must be > 0"},
      {[](JobSpec& s) { s.optimizer.beta2 = 1; }, "training.optimizer.beta2"},
      {[](JobSpec& s) { s.epochs = 0; }, "training.epochs"},
      {[](JobSpec& s) { s.max_steps = -3; }, "training.max_steps must be >= 0"},
      {[](JobSpec& s) { s.min_lr_ratio = 2; }, "training.min_lr_ratio"},
      {[](JobSpec& s) { s.keep_last_checkpoints = -1; }, "checkpoint.keep_last"},
      {[](JobSpec& s) { s.eval_every_steps = -1; }, "eval.every_steps"},
      {[](JobSpec& s) { s.data.eval_fraction = 1.5; }, "data.eval_fraction"},
      {[](JobSpec& s) { s.data.max_seq_len = 1; }, "data.max_seq_len"},
      {[](JobSpec& s) { s.data.train_path.clear(); }, "data.train must be set"},
      {[](JobSpec& s) { s.output_dir.clear(); }, "output_dir must be set"},
      {[](JobSpec& s) { s.model_path.clear(); }, "model must be set"},
      {[](JobSpec& s) { s.data.train_path = "/nonexistent/train.jsonl"; },
       "/nonexistent/train.jsonl"},
      {[](JobSpec& s) { s.model_path = "/nonexistent/model"; }, "/nonexistent/model"},
      {[](JobSpec& s) { s.engine.compute_dtype = "int4"; }, "engine.compute_dtype"},
  };
  for (const Case& c : cases) {
    JobSpec spec = TinyJobSpec(data, out);
    c.edit(spec);
    auto r = JobRunner::Create(spec, "");
    ASSERT_FALSE(r.ok()) << c.message;
    EXPECT_NE(r.status().message().find(c.message), std::string::npos) << r.status();
  }
  // A dataset without any trainable token fails before training starts.
  const std::string cut =
      testing_util::WriteTempFile("no_target.jsonl",
                                  "{\"prompt\": \"a long prompt that fills the whole row and "
                                  "more\", \"completion\": \" x\"}\n");
  JobSpec spec = TinyJobSpec(cut, out);
  spec.data.max_seq_len = 4;
  auto r = JobRunner::Create(spec, "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no usable sample"), std::string::npos) << r.status();
}

TEST(JobRunnerTest, ResumeWithChangedSettingsOrMissingStateIsAnError) {
  const std::string data = LearnableDataset("resume_bad.jsonl");
  const std::string out = FreshDir("resume_bad");
  JobSpec spec = TinyJobSpec(data, out);
  spec.max_steps = 2;
  spec.checkpoint_every_steps = 2;
  {
    auto r = Make(spec);
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->Run(JobCallbacks(), nullptr, nullptr).ok());
  }
  const std::string ckpt = JobRunner::LatestCheckpoint(out);
  ASSERT_EQ(ckpt, out + "/checkpoint-2");
  JobSpec changed = spec;
  changed.micro_batch_size = 1;
  auto r = JobRunner::Create(changed, ckpt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("training.micro_batch_size"), std::string::npos)
      << r.status();
  changed = spec;
  changed.seed = 12;
  r = JobRunner::Create(changed, ckpt);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("training.seed"), std::string::npos) << r.status();
  auto missing = JobRunner::Create(spec, out + "/checkpoint-77");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(out + "/checkpoint-77/job_state.json"),
            std::string::npos)
      << missing.status();
}

}  // namespace
}  // namespace sfd
