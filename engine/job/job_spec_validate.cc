// ValidateJobSpec: the checks JobRunner::Create runs before touching data or model. Field names
// in the messages are job.yaml's (model, data.train, training.micro_batch_size, ...).
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/job/job_spec.h"

namespace sfd {
namespace {

template <typename T>
absl::Status Bad(const std::string& field, const std::string& rule, T value) {
  return absl::InvalidArgumentError(absl::StrCat(field, " must be ", rule, " (got ", value, ")"));
}

}  // namespace

absl::Status ValidateJobSpec(const JobSpec& s) {
  if (s.model_path.empty()) return absl::InvalidArgumentError("model must be set");
  if (s.output_dir.empty()) return absl::InvalidArgumentError("output_dir must be set");
  const DataSpec& d = s.data;
  if (d.train_path.empty()) return absl::InvalidArgumentError("data.train must be set");
  if (!(d.eval_fraction >= 0 && d.eval_fraction < 1))
    return Bad("data.eval_fraction", "in [0, 1)", d.eval_fraction);
  if (d.max_seq_len < 2) return Bad("data.max_seq_len", ">= 2", d.max_seq_len);

  if (s.max_steps < 0) return Bad("training.max_steps", ">= 0", s.max_steps);
  if (s.epochs < 0 || (s.max_steps == 0 && s.epochs < 1))
    return Bad("training.epochs", ">= 1 when training.max_steps is 0", s.epochs);
  if (s.micro_batch_size < 1) return Bad("training.micro_batch_size", ">= 1", s.micro_batch_size);
  if (s.gradient_accumulation_steps < 1)
    return Bad("training.gradient_accumulation_steps", ">= 1", s.gradient_accumulation_steps);
  const OptimizerSpec& o = s.optimizer;
  if (!(o.lr > 0) || !std::isfinite(o.lr)) return Bad("training.optimizer.lr", "> 0", o.lr);
  if (!(o.beta1 >= 0 && o.beta1 < 1)) return Bad("training.optimizer.beta1", "in [0, 1)", o.beta1);
  if (!(o.beta2 >= 0 && o.beta2 < 1)) return Bad("training.optimizer.beta2", "in [0, 1)", o.beta2);
  if (!(o.eps > 0) || !std::isfinite(o.eps)) return Bad("training.optimizer.eps", "> 0", o.eps);
  if (!(o.weight_decay >= 0) || !std::isfinite(o.weight_decay))
    return Bad("training.optimizer.weight_decay", ">= 0", o.weight_decay);
  if (s.warmup_steps < 0) return Bad("training.warmup_steps", ">= 0", s.warmup_steps);
  if (!(s.min_lr_ratio >= 0 && s.min_lr_ratio <= 1))
    return Bad("training.min_lr_ratio", "in [0, 1]", s.min_lr_ratio);
  if (std::isnan(s.max_grad_norm) || std::isinf(s.max_grad_norm))
    return Bad("training.max_grad_norm", "finite (<= 0 disables clipping)", s.max_grad_norm);

  if (s.eval_every_steps < 0) return Bad("eval.every_steps", ">= 0", s.eval_every_steps);
  if (s.eval_max_batches < 0) return Bad("eval.max_batches", ">= 0", s.eval_max_batches);
  if (s.checkpoint_every_steps < 0)
    return Bad("checkpoint.every_steps", ">= 0", s.checkpoint_every_steps);
  if (s.keep_last_checkpoints < 0)
    return Bad("checkpoint.keep_last", ">= 0 (0 keeps all)", s.keep_last_checkpoints);

  const EngineSpec& e = s.engine;
  if (e.cuda_device < 0) return Bad("engine.cuda_device", ">= 0", e.cuda_device);
  if (e.device_memory_budget < 0)
    return Bad("engine.gpu_memory_budget", ">= 0", e.device_memory_budget);
  if (e.window_slots < 0) return Bad("engine.window_slots", ">= 0", e.window_slots);
  if (e.cpu_threads < 0) return Bad("engine.cpu_threads", ">= 0", e.cpu_threads);
  if (e.lm_head_chunk_tokens < 1)
    return Bad("engine.lm_head_chunk_tokens", ">= 1", e.lm_head_chunk_tokens);
  return absl::OkStatus();
}

}  // namespace sfd
