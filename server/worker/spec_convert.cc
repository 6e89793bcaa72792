#include "server/worker/spec_convert.h"

#include "absl/strings/str_cat.h"

namespace sfd {
namespace {

absl::Status Unknown(const char* field, const std::string& value) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": unknown value '", value, "'"));
}

void ToProto(const TierBytes& t, v1::TierBytes* out) {
  out->set_device(t.device);
  out->set_pinned(t.pinned);
  out->set_host(t.host);
  out->set_nvme(t.nvme);
}

}  // namespace

absl::StatusOr<JobSpec> ToEngineJobSpec(const v1::JobSpec& s) {
  JobSpec j;
  j.name = s.name();
  j.model_path = s.model();
  const auto& d = s.data();
  j.data.train_path = d.train();
  j.data.eval_path = d.eval();
  j.data.eval_fraction = d.eval_fraction();
  if (d.format() == "auto") j.data.format = DatasetFormat::kAuto;
  else if (d.format() == "text") j.data.format = DatasetFormat::kText;
  else if (d.format() == "completion") j.data.format = DatasetFormat::kCompletion;
  else if (d.format() == "alpaca") j.data.format = DatasetFormat::kAlpaca;
  else if (d.format() == "messages") j.data.format = DatasetFormat::kMessages;
  else return Unknown("data.format", d.format());
  j.data.chat_template = d.chat_template();
  if (d.train_on() == "completions") j.data.train_on = TrainOn::kCompletions;
  else if (d.train_on() == "all") j.data.train_on = TrainOn::kAll;
  else return Unknown("data.train_on", d.train_on());
  j.data.packing = d.packing();
  j.data.max_seq_len = d.max_seq_len();
  j.data.shuffle = d.shuffle();

  const auto& t = s.training();
  j.epochs = t.epochs();
  j.max_steps = t.max_steps();
  j.micro_batch_size = t.micro_batch_size();
  j.gradient_accumulation_steps = t.gradient_accumulation_steps();
  if (t.optimizer().name() == "adamw_8bit") {
    j.optimizer.moments_8bit = true;
  } else if (t.optimizer().name() != "adamw" && !t.optimizer().name().empty()) {
    return Unknown("training.optimizer.name", t.optimizer().name());
  }
  j.optimizer.lr = t.optimizer().lr();
  j.optimizer.beta1 = t.optimizer().beta1();
  j.optimizer.beta2 = t.optimizer().beta2();
  j.optimizer.eps = t.optimizer().eps();
  j.optimizer.weight_decay = t.optimizer().weight_decay();
  if (t.lr_scheduler() == "constant") j.lr_scheduler = LrScheduleKind::kConstant;
  else if (t.lr_scheduler() == "linear") j.lr_scheduler = LrScheduleKind::kLinear;
  else if (t.lr_scheduler() == "cosine") j.lr_scheduler = LrScheduleKind::kCosine;
  else return Unknown("training.lr_scheduler", t.lr_scheduler());
  j.warmup_steps = t.warmup_steps();
  j.min_lr_ratio = t.min_lr_ratio();
  j.max_grad_norm = t.max_grad_norm();
  j.seed = t.seed();

  j.eval_every_steps = s.eval().every_steps();
  j.eval_max_batches = s.eval().max_batches();
  j.checkpoint_every_steps = s.checkpoint().every_steps();
  j.keep_last_checkpoints = s.checkpoint().keep_last();
  j.checkpoint_on_cancel = s.checkpoint().on_cancel();
  j.output_dir = s.output_dir();

  const auto& e = s.engine();
  if (e.device() == "auto") j.engine.device = DeviceKind::kAuto;
  else if (e.device() == "cpu") j.engine.device = DeviceKind::kCpu;
  else if (e.device() == "cuda") j.engine.device = DeviceKind::kCuda;
  else return Unknown("engine.device", e.device());
  j.engine.cuda_device = e.cuda_device();
  j.engine.device_memory_budget = e.gpu_memory_budget();
  j.engine.window_slots = e.window_slots();
  if (e.activation_offload() == "auto") j.engine.activations = ActivationPlacement::kAuto;
  else if (e.activation_offload() == "device") j.engine.activations = ActivationPlacement::kDevice;
  else if (e.activation_offload() == "host") j.engine.activations = ActivationPlacement::kHost;
  else return Unknown("engine.activation_offload", e.activation_offload());
  j.engine.compute_dtype = e.compute_dtype();
  j.engine.cpu_threads = e.cpu_threads();
  j.engine.nvme_dir = e.nvme_dir();
  if (e.has_nvme_fraction()) j.engine.nvme_fraction = e.nvme_fraction();
  j.engine.lm_head_chunk_tokens = e.lm_head_chunk_tokens();
  if (e.cpu_binding() == "auto" || e.cpu_binding().empty()) j.engine.bind_to_device_node = true;
  else if (e.cpu_binding() == "none") j.engine.bind_to_device_node = false;
  else return Unknown("engine.cpu_binding", e.cpu_binding());
  j.engine.device_update_layers = e.device_update_layers();
  if (e.inputs_in_mirrors() == "auto" || e.inputs_in_mirrors().empty()) j.engine.inputs_in_mirrors = -1;
  else if (e.inputs_in_mirrors() == "always") j.engine.inputs_in_mirrors = 1;
  else if (e.inputs_in_mirrors() == "never") j.engine.inputs_in_mirrors = 0;
  else return Unknown("engine.inputs_in_mirrors", e.inputs_in_mirrors());
  return j;
}

v1::MemoryPlan ToProto(const MemoryPlan& p) {
  v1::MemoryPlan out;
  ToProto(p.need, out.mutable_need());
  ToProto(p.available, out.mutable_available());
  out.set_device_name(p.device_name);
  out.set_num_layers(p.num_layers);
  out.set_window_slots(p.window_slots);
  out.set_resident_layers(p.resident_layers);
  out.set_activations_on_device(p.activations_on_device);
  out.set_summary(p.summary);
  return out;
}

v1::DataStats ToProto(const DataStats& s) {
  v1::DataStats out;
  out.set_train_samples(s.train_samples);
  out.set_eval_samples(s.eval_samples);
  out.set_skipped_samples(s.skipped_samples);
  out.set_train_tokens(s.train_tokens);
  out.set_steps_per_epoch(s.steps_per_epoch);
  out.set_total_steps(s.total_steps);
  return out;
}

v1::StepMetrics ToProto(const StepStats& s) {
  v1::StepMetrics out;
  out.set_step(s.step);
  out.set_loss(s.loss);
  out.set_lr(s.lr);
  out.set_grad_norm(s.grad_norm);
  out.set_tokens(s.tokens);
  out.set_target_tokens(s.target_tokens);
  out.set_step_seconds(s.step_seconds);
  out.set_forward_seconds(s.forward_seconds);
  out.set_backward_seconds(s.backward_seconds);
  out.set_optimizer_seconds(s.optimizer_seconds);
  out.set_stall_weights_seconds(s.stall_weights_seconds);
  out.set_stall_optimizer_seconds(s.stall_optimizer_seconds);
  out.set_stall_activations_seconds(s.stall_activations_seconds);
  out.set_h2d_bytes(s.h2d_bytes);
  out.set_d2h_bytes(s.d2h_bytes);
  out.set_nvme_bytes(s.nvme_bytes);
  ToProto(s.peak, out.mutable_peak());
  out.set_device_reserved(s.device_reserved);
  out.set_device_update_layers(s.device_update_layers);
  out.set_device_update_tuning(s.device_update_tuning);
  out.set_optimizer_busy_seconds(s.optimizer_busy_seconds);
  out.set_host_rss(s.host_rss);
  out.set_model_flops(s.model_flops);
  return out;
}

}  // namespace sfd
