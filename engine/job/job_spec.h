// JobSpec: the fully resolved job (what job.yaml says, defaults filled in) as a plain struct.
// The daemon parses/validates YAML into the protobuf JobSpec; the worker converts that into
// this struct and hands it to JobRunner. No torch, no protobuf.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "engine/trainer/trainer_spec.h"

namespace sfd {

enum class DatasetFormat { kAuto, kText, kCompletion, kAlpaca, kMessages };
enum class TrainOn { kCompletions, kAll };  // which tokens carry loss

struct DataSpec {
  std::string train_path;   // JSONL
  std::string eval_path;    // JSONL, optional
  double eval_fraction = 0; // split this fraction off train when eval_path is empty
  DatasetFormat format = DatasetFormat::kAuto;
  std::string chat_template;  // "" = model's own; a known name ("llama3", "qwen", "mistral") or a file
  TrainOn train_on = TrainOn::kCompletions;
  bool packing = true;
  int64_t max_seq_len = 2048;
  bool shuffle = true;
};

struct JobSpec {
  std::string name;
  std::string model_path;
  DataSpec data;
  // training
  int64_t epochs = 1;
  int64_t max_steps = 0;   // > 0 overrides epochs
  int64_t micro_batch_size = 1;
  int64_t gradient_accumulation_steps = 1;
  OptimizerSpec optimizer;
  LrScheduleKind lr_scheduler = LrScheduleKind::kCosine;
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.0;
  double max_grad_norm = 1.0;
  uint64_t seed = 42;
  // eval and checkpoints
  int64_t eval_every_steps = 0;     // 0 = only at the end (if there is eval data)
  int64_t eval_max_batches = 0;     // 0 = whole eval set
  int64_t checkpoint_every_steps = 0;  // 0 = none until the end
  int64_t keep_last_checkpoints = 2;
  bool checkpoint_on_cancel = true;
  std::string output_dir;
  EngineSpec engine;
};

// Checks every field JobRunner relies on; the error names the field as job.yaml spells it
// (e.g. "training.micro_batch_size must be >= 1"). Defined in job_spec_validate.cc.
absl::Status ValidateJobSpec(const JobSpec& spec);

}  // namespace sfd
