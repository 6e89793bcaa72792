// Resumable job checkpoints on disk: output_dir/checkpoint-<step>/ holds the HF model
// (Trainer::SaveModel), the optimizer state (Trainer::SaveState: optimizer/) and job_state.json
// (JobState: step, data position, the settings that must match on resume, eval history).
// A checkpoint is staged as checkpoint-<step>.tmp/, every file fsynced, then renamed into
// place, so a crash never leaves a half checkpoint that ListCheckpoints would return.
// Torch-free (Trainer is used through its torch-free header).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/data/batch_stream.h"
#include "engine/trainer/trainer.h"

namespace sfd {

inline constexpr char kJobStateFile[] = "job_state.json";

// The runner's state beside the trainer's: everything besides weights and optimizer moments
// that a resumed run needs to continue exactly where the checkpointed one stopped.
struct JobState {
  int64_t step = 0;   // optimizer steps completed
  DataPosition data;  // position of the next training step in the batch stream
  uint64_t seed = 0;
  int64_t total_steps = 0;
  int64_t micro_batch_size = 0;
  int64_t gradient_accumulation_steps = 0;
  int64_t steps_per_epoch = 0;
  int64_t last_eval_step = -1;  // -1: no eval yet
  double last_eval_loss = 0;
  int64_t best_eval_step = -1;
  double best_eval_loss = 0;

  std::string ToJson() const;
  // `source` names the file in errors.
  static absl::StatusOr<JobState> FromJson(const std::string& json, const std::string& source);
};

// Reads dir/job_state.json.
absl::StatusOr<JobState> ReadJobState(const std::string& dir);

struct CheckpointEntry {
  int64_t step = 0;
  std::string path;
};

// "checkpoint-<step>".
std::string CheckpointDirName(int64_t step);
// Complete checkpoints of `output_dir` (name exactly checkpoint-<digits>, a directory holding
// job_state.json), oldest first by step. Empty when the dir does not exist.
std::vector<CheckpointEntry> ListCheckpoints(const std::string& output_dir);

// Writes output_dir/checkpoint-<state.step>/ atomically (see above) and returns its path.
// An existing checkpoint of the same step is replaced.
absl::StatusOr<std::string> WriteCheckpoint(Trainer& trainer, const std::string& output_dir,
                                            const JobState& state);

// Deletes all but the `keep_last` newest complete checkpoints (keep_last <= 0: keeps all);
// returns the removed paths.
absl::StatusOr<std::vector<std::string>> PruneCheckpoints(const std::string& output_dir,
                                                          int64_t keep_last);

// Deletes leftovers of interrupted writes in `output_dir`: checkpoint-<N>.tmp/ staging dirs and
// the hidden .checkpoint-<N>*.tmp-XXXXXX / .final.tmp-XXXXXX dirs of WriteHfModelDir.
absl::Status RemoveStaleCheckpointTemps(const std::string& output_dir);

}  // namespace sfd
