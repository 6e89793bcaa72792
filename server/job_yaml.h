// job.yaml <-> sfd.v1.JobSpec: strict parsing (unknown keys and bad values are rejected with
// the field path and line), defaults taken from the engine's plain JobSpec, value validation,
// path resolution against the PathPolicy, and the resolved spec printed back as YAML.
//
// job.yaml layout (axolotl / TRL names):
//   name, model, output_dir,
//   data: {train, eval, eval_fraction, format, chat_template, train_on, packing, max_seq_len,
//          shuffle}
//   training: {epochs, max_steps, micro_batch_size, gradient_accumulation_steps,
//              optimizer: {name (adamw | adamw_8bit), lr, betas: [b1, b2], eps, weight_decay},
//              lr_scheduler, warmup_steps, min_lr_ratio, max_grad_norm, seed}
//   eval: {every_steps, max_batches}
//   checkpoint: {every_steps, keep_last, on_cancel}
//   engine: {device, cuda_device, gpu_memory_budget, window_slots, activation_offload,
//            compute_dtype, cpu_threads, nvme_dir, nvme_fraction, lm_head_chunk_tokens,
//            cpu_binding (auto | none)}
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "server/path_policy.h"
#include "sfd/v1/sfd.pb.h"

namespace sfd {

// Largest job.yaml accepted.
inline constexpr size_t kMaxJobYamlBytes = 256 * 1024;

// Parses job.yaml text, fills defaults and validates values (not paths).
absl::StatusOr<v1::JobSpec> ParseJobYaml(const std::string& text);

// Value checks shared by every entry point (ranges, enums); errors name the field path.
absl::Status ValidateJobSpec(const v1::JobSpec& spec);

// Canonicalises and checks every path of `spec` against `policy`; an empty output_dir becomes
// <output_root>/<job_id>. Also checks that the model directory has a config.json with a
// supported architecture (FAILED_PRECONDITION otherwise).
absl::Status ResolveJobPaths(const PathPolicy& policy, const std::string& job_id,
                             v1::JobSpec* spec);

// The spec as job.yaml text (every field, so it parses back to the same spec).
std::string JobSpecToYaml(const v1::JobSpec& spec);

}  // namespace sfd
