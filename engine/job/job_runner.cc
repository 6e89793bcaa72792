// JobRunner: dataset -> BatchStream -> Trainer steps, with the eval / checkpoint cadence, cancel
// and checkpoint requests at step boundaries, exact resume (trainer state + data position +
// job state from a checkpoint dir) and the final HF model in output_dir/final.
#include "engine/job/job_runner.h"

#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/common/status.h"
#include "engine/data/batch_stream.h"
#include "engine/job/job_checkpoint.h"

namespace sfd {

TrainerSpec TrainerSpecFor(const JobSpec& spec, int64_t total_steps) {
  TrainerSpec ts;
  ts.model_dir = spec.model_path;
  ts.optimizer = spec.optimizer;
  ts.schedule.kind = spec.lr_scheduler;
  ts.schedule.warmup_steps = spec.warmup_steps;
  ts.schedule.total_steps = total_steps;
  ts.schedule.min_lr_ratio = spec.min_lr_ratio;
  ts.max_grad_norm = spec.max_grad_norm;
  ts.seed = spec.seed;
  ts.engine = spec.engine;
  ts.engine.max_micro_batches_per_step = static_cast<int>(spec.gradient_accumulation_steps);
  return ts;
}

namespace {

constexpr char kFinalDir[] = "final";

class JobRunnerImpl final : public JobRunner {
 public:
  explicit JobRunnerImpl(const JobSpec& spec) : spec_(spec) {}

  absl::Status Init(const std::string& resume_dir);
  absl::Status Run(const JobCallbacks& callbacks, const std::atomic<bool>* cancel,
                   const std::atomic<bool>* checkpoint_now) override;

 private:
  absl::Status BuildData();
  absl::Status BuildTrainer();
  absl::Status Resume(const std::string& dir);
  // Mean CE over the eval set (or its first eval.max_batches micro-batches), token-weighted.
  absl::StatusOr<double> EvalLoss();
  absl::Status RunEval(const JobCallbacks& cb);
  absl::Status Checkpoint(const JobCallbacks& cb);
  absl::Status WriteFinal(const JobCallbacks& cb);
  static void Log(const JobCallbacks& cb, const std::string& message) {
    if (cb.on_log) cb.on_log(message);
  }

  JobSpec spec_;
  std::unique_ptr<BatchStream> train_;
  std::unique_ptr<BatchStream> eval_;  // null without eval data
  std::unique_ptr<Trainer> trainer_;
  DataStats stats_;
  JobState state_;
  int64_t last_checkpoint_step_ = -1;
  std::string last_checkpoint_path_;
  std::vector<std::string> pending_logs_;  // from Create, reported when Run starts
  bool ran_ = false;
};

absl::Status JobRunnerImpl::Init(const std::string& resume_dir) {
  SFD_RETURN_IF_ERROR(BuildData());
  SFD_RETURN_IF_ERROR(BuildTrainer());
  if (!resume_dir.empty()) SFD_RETURN_IF_ERROR(Resume(resume_dir));
  return absl::OkStatus();
}

absl::Status JobRunnerImpl::BuildData() {
  const int64_t ga = spec_.gradient_accumulation_steps;
  SFD_ASSIGN_OR_RETURN(train_, BatchStream::Create(spec_.data, spec_.model_path,
                                                   spec_.micro_batch_size, spec_.seed, false));
  const bool has_eval = !spec_.data.eval_path.empty() || spec_.data.eval_fraction > 0;
  if (has_eval) {
    SFD_ASSIGN_OR_RETURN(eval_, BatchStream::Create(spec_.data, spec_.model_path,
                                                    spec_.micro_batch_size, spec_.seed, true));
    eval_->set_num_epochs(1);
  }
  const int64_t spe = train_->steps_per_epoch(ga);
  if (spe <= 0)
    return absl::InvalidArgumentError(absl::StrCat(spec_.data.train_path, ": no training step"));
  const int64_t total = spec_.max_steps > 0 ? spec_.max_steps : spec_.epochs * spe;
  // max_steps beyond the data wraps into further epochs.
  train_->set_num_epochs(spec_.max_steps > 0 ? (spec_.max_steps + spe - 1) / spe : spec_.epochs);

  const SampleStats& t = train_->stats();
  stats_.train_samples = t.samples;
  stats_.skipped_samples = t.skipped_no_target;
  stats_.train_tokens = t.tokens;
  stats_.steps_per_epoch = spe;
  stats_.total_steps = total;
  if (eval_) {
    stats_.eval_samples = eval_->stats().samples;
    stats_.skipped_samples += eval_->stats().skipped_no_target;
  }
  if (stats_.skipped_samples > 0)
    pending_logs_.push_back(
        absl::StrCat("skipped ", stats_.skipped_samples, " samples without a trainable token"));
  const int64_t truncated = t.truncated + (eval_ ? eval_->stats().truncated : 0);
  if (truncated > 0)
    pending_logs_.push_back(
        absl::StrCat(truncated, " samples truncated to data.max_seq_len ", spec_.data.max_seq_len));
  pending_logs_.push_back(absl::StrCat("data: ", stats_.train_samples, " train samples (",
                                       stats_.train_tokens, " tokens, ", train_->num_rows(),
                                       " rows), ", stats_.eval_samples, " eval samples; ", spe,
                                       " steps per epoch, ", total, " steps"));

  state_.seed = spec_.seed;
  state_.total_steps = total;
  state_.micro_batch_size = spec_.micro_batch_size;
  state_.gradient_accumulation_steps = ga;
  state_.steps_per_epoch = spe;
  state_.data = train_->position();
  return absl::OkStatus();
}

absl::Status JobRunnerImpl::BuildTrainer() {
  SFD_ASSIGN_OR_RETURN(trainer_, Trainer::Create(TrainerSpecFor(spec_, state_.total_steps)));
  return absl::OkStatus();
}

absl::Status JobRunnerImpl::Resume(const std::string& dir) {
  SFD_ASSIGN_OR_RETURN(JobState saved, ReadJobState(dir));
  auto mismatch = [&dir](const char* field, auto now, auto then) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot resume from ", dir, ": ", field, " is ", now,
                     " but the checkpoint was written with ", then,
                     " (the job's data or training settings changed)"));
  };
  if (saved.seed != state_.seed) return mismatch("training.seed", state_.seed, saved.seed);
  if (saved.micro_batch_size != state_.micro_batch_size)
    return mismatch("training.micro_batch_size", state_.micro_batch_size, saved.micro_batch_size);
  if (saved.gradient_accumulation_steps != state_.gradient_accumulation_steps)
    return mismatch("training.gradient_accumulation_steps", state_.gradient_accumulation_steps,
                    saved.gradient_accumulation_steps);
  if (saved.steps_per_epoch != state_.steps_per_epoch)
    return mismatch("steps per epoch", state_.steps_per_epoch, saved.steps_per_epoch);
  SFD_RETURN_IF_ERROR(trainer_->LoadState(dir));
  if (trainer_->step() != saved.step)
    return absl::FailedPreconditionError(
        absl::StrCat("cannot resume from ", dir, ": ", kJobStateFile, " says step ", saved.step,
                     " but the optimizer state step ", trainer_->step()));
  SFD_RETURN_IF_ERROR(train_->Seek(saved.data));
  if (saved.total_steps != state_.total_steps)
    pending_logs_.push_back(absl::StrCat("total steps changed from ", saved.total_steps, " to ",
                                         state_.total_steps, " since the checkpoint"));
  saved.total_steps = state_.total_steps;
  state_ = saved;
  last_checkpoint_step_ = saved.step;
  last_checkpoint_path_ = dir;
  pending_logs_.push_back(absl::StrCat("resumed from ", dir, " at step ", saved.step, " of ",
                                       state_.total_steps, " (epoch ", saved.data.epoch + 1,
                                       ", step ", saved.data.step_in_epoch, " of the epoch)"));
  return absl::OkStatus();
}

absl::StatusOr<double> JobRunnerImpl::EvalLoss() {
  SFD_RETURN_IF_ERROR(eval_->Seek(DataPosition{}));
  double ce_sum = 0;
  int64_t targets = 0, batches = 0;
  const int64_t limit = spec_.eval_max_batches;
  while (limit == 0 || batches < limit) {
    auto step = eval_->NextStep(spec_.gradient_accumulation_steps);
    if (absl::IsOutOfRange(step.status())) break;
    if (!step.ok()) return step.status();
    if (limit > 0 && batches + static_cast<int64_t>(step->size()) > limit)
      step->resize(static_cast<size_t>(limit - batches));
    batches += static_cast<int64_t>(step->size());
    int64_t n = 0;
    for (const TokenBatch& b : *step) n += b.num_target_tokens();
    if (n == 0) continue;
    SFD_ASSIGN_OR_RETURN(double loss, trainer_->Evaluate(*step));
    ce_sum += loss * static_cast<double>(n);
    targets += n;
  }
  if (targets == 0) return absl::InvalidArgumentError("the eval data has no target token");
  return ce_sum / static_cast<double>(targets);
}

absl::Status JobRunnerImpl::RunEval(const JobCallbacks& cb) {
  SFD_ASSIGN_OR_RETURN(double loss, EvalLoss());
  state_.last_eval_step = state_.step;
  state_.last_eval_loss = loss;
  if (state_.best_eval_step < 0 || loss < state_.best_eval_loss) {
    state_.best_eval_step = state_.step;
    state_.best_eval_loss = loss;
  }
  if (cb.on_eval) cb.on_eval(state_.step, loss);
  return absl::OkStatus();
}

absl::Status JobRunnerImpl::Checkpoint(const JobCallbacks& cb) {
  SFD_ASSIGN_OR_RETURN(std::string path, WriteCheckpoint(*trainer_, spec_.output_dir, state_));
  last_checkpoint_step_ = state_.step;
  last_checkpoint_path_ = path;
  Log(cb, absl::StrCat("checkpoint written: ", path));
  SFD_ASSIGN_OR_RETURN(std::vector<std::string> removed,
                       PruneCheckpoints(spec_.output_dir, spec_.keep_last_checkpoints));
  for (const std::string& r : removed) Log(cb, absl::StrCat("removed old checkpoint ", r));
  if (cb.on_checkpoint) cb.on_checkpoint(CheckpointInfo{state_.step, path, false});
  return absl::OkStatus();
}

absl::Status JobRunnerImpl::WriteFinal(const JobCallbacks& cb) {
  const std::string path = spec_.output_dir + "/" + kFinalDir;
  std::error_code ec;
  std::filesystem::create_directories(spec_.output_dir, ec);
  if (ec)
    return absl::InternalError(
        absl::StrCat("cannot create output_dir ", spec_.output_dir, ": ", ec.message()));
  SFD_RETURN_IF_ERROR(trainer_->SaveModel(path));
  Log(cb, absl::StrCat("final model written: ", path));
  if (cb.on_checkpoint) cb.on_checkpoint(CheckpointInfo{state_.step, path, true});
  return absl::OkStatus();
}

absl::Status JobRunnerImpl::Run(const JobCallbacks& cb, const std::atomic<bool>* cancel,
                                const std::atomic<bool>* checkpoint_now) {
  if (ran_) return absl::FailedPreconditionError("JobRunner::Run may be called only once");
  ran_ = true;
  SFD_RETURN_IF_ERROR(RemoveStaleCheckpointTemps(spec_.output_dir));
  if (cb.on_start) cb.on_start(trainer_->plan(), stats_);
  for (const std::string& m : pending_logs_) Log(cb, m);
  pending_logs_.clear();

  const int64_t total = state_.total_steps;
  while (state_.step < total) {
    // Step boundary: a requested checkpoint first (a caller may cancel from on_checkpoint),
    // then cancel.
    const bool fresh = state_.step > 0 && last_checkpoint_step_ != state_.step;
    if (checkpoint_now != nullptr && checkpoint_now->load() && state_.step > 0) {
      if (fresh) {
        SFD_RETURN_IF_ERROR(Checkpoint(cb));
      } else if (cb.on_checkpoint) {
        // This step's checkpoint already exists (cadence, or the one we resumed from): the
        // request is served by announcing it again rather than writing it twice.
        cb.on_checkpoint(CheckpointInfo{state_.step, last_checkpoint_path_, false});
      }
    }
    if (cancel != nullptr && cancel->load()) {
      if (spec_.checkpoint_on_cancel && state_.step > 0 && last_checkpoint_step_ != state_.step)
        SFD_RETURN_IF_ERROR(Checkpoint(cb));
      return absl::CancelledError(absl::StrCat("cancelled at step ", state_.step, " of ", total));
    }
    auto batches = train_->NextStep(spec_.gradient_accumulation_steps);
    if (!batches.ok())
      return absl::Status(batches.status().code(),
                          absl::StrCat("training data at step ", state_.step + 1, ": ",
                                       batches.status().message()));
    SFD_ASSIGN_OR_RETURN(StepStats st, trainer_->Step(*batches));
    state_.step = st.step;
    state_.data = train_->position();
    if (cb.on_step) cb.on_step(st);
    if (eval_ && spec_.eval_every_steps > 0 && state_.step % spec_.eval_every_steps == 0)
      SFD_RETURN_IF_ERROR(RunEval(cb));
    if (spec_.checkpoint_every_steps > 0 && state_.step % spec_.checkpoint_every_steps == 0)
      SFD_RETURN_IF_ERROR(Checkpoint(cb));
  }
  if (eval_ && state_.last_eval_step != state_.step) SFD_RETURN_IF_ERROR(RunEval(cb));
  return WriteFinal(cb);
}

}  // namespace

absl::StatusOr<std::unique_ptr<JobRunner>> JobRunner::Create(const JobSpec& spec,
                                                             const std::string& resume_dir) {
  SFD_RETURN_IF_ERROR(ValidateJobSpec(spec));
  auto runner = std::make_unique<JobRunnerImpl>(spec);
  SFD_RETURN_IF_ERROR(runner->Init(resume_dir));
  return std::unique_ptr<JobRunner>(std::move(runner));
}

std::string JobRunner::LatestCheckpoint(const std::string& output_dir) {
  std::vector<CheckpointEntry> all = ListCheckpoints(output_dir);
  return all.empty() ? std::string() : all.back().path;
}

}  // namespace sfd
