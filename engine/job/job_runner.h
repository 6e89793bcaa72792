// JobRunner: runs one fine-tuning job end to end inside the worker process: dataset ->
// batches -> Trainer steps, eval and checkpoint cadence, cancel at step boundaries, resume
// from a checkpoint, final HF model. Reports through plain callbacks (no protobuf).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/job/job_spec.h"
#include "engine/trainer/trainer.h"

namespace sfd {

struct DataStats {
  int64_t train_samples = 0;
  int64_t eval_samples = 0;
  int64_t skipped_samples = 0;   // e.g. no trainable token
  int64_t train_tokens = 0;
  int64_t steps_per_epoch = 0;
  int64_t total_steps = 0;
};

struct CheckpointInfo {
  int64_t step = 0;
  std::string path;
  bool final = false;  // the final model, not a resumable checkpoint
};

struct JobCallbacks {
  std::function<void(const MemoryPlan&, const DataStats&)> on_start;
  std::function<void(const StepStats&)> on_step;
  std::function<void(int64_t step, double eval_loss)> on_eval;
  std::function<void(const CheckpointInfo&)> on_checkpoint;
  std::function<void(const std::string& message)> on_log;
};

// The TrainerSpec a job's run uses. `total_steps` (for the LR schedule) comes from the data;
// it does not change the memory plan.
TrainerSpec TrainerSpecFor(const JobSpec& spec, int64_t total_steps);

class JobRunner {
 public:
  // `resume_dir`: a checkpoint directory written by an earlier run of this job, or empty.
  static absl::StatusOr<std::unique_ptr<JobRunner>> Create(const JobSpec& spec,
                                                           const std::string& resume_dir);
  virtual ~JobRunner() = default;
  // Runs to the end; returns CancelledError if `*cancel` became true (after the optional
  // final checkpoint). `checkpoint_now` is polled at step boundaries.
  virtual absl::Status Run(const JobCallbacks& callbacks, const std::atomic<bool>* cancel,
                           const std::atomic<bool>* checkpoint_now) = 0;
  // Latest resumable checkpoint of a job's output dir, or empty.
  static std::string LatestCheckpoint(const std::string& output_dir);
};

}  // namespace sfd
