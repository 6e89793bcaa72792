#include "server/job_yaml.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/common/status.h"
#include "engine/job/job_spec.h"
#include "server/yaml_fields.h"

namespace sfd {
namespace {

const char* FormatName(DatasetFormat f) {
  switch (f) {
    case DatasetFormat::kText: return "text";
    case DatasetFormat::kCompletion: return "completion";
    case DatasetFormat::kAlpaca: return "alpaca";
    case DatasetFormat::kMessages: return "messages";
    default: return "auto";
  }
}
const char* ScheduleName(LrScheduleKind k) {
  switch (k) {
    case LrScheduleKind::kConstant: return "constant";
    case LrScheduleKind::kLinear: return "linear";
    default: return "cosine";
  }
}

// Defaults come from the engine's plain structs so there is one source of truth.
v1::JobSpec DefaultSpec() {
  const JobSpec d;
  v1::JobSpec s;
  s.set_name("job");
  auto* data = s.mutable_data();
  data->set_eval_fraction(d.data.eval_fraction);
  data->set_format(FormatName(d.data.format));
  data->set_chat_template(d.data.chat_template);
  data->set_train_on(d.data.train_on == TrainOn::kAll ? "all" : "completions");
  data->set_packing(d.data.packing);
  data->set_max_seq_len(d.data.max_seq_len);
  data->set_shuffle(d.data.shuffle);
  auto* t = s.mutable_training();
  t->set_epochs(d.epochs);
  t->set_max_steps(d.max_steps);
  t->set_micro_batch_size(d.micro_batch_size);
  t->set_gradient_accumulation_steps(d.gradient_accumulation_steps);
  auto* o = t->mutable_optimizer();
  o->set_name("adamw");
  o->set_lr(d.optimizer.lr);
  o->set_beta1(d.optimizer.beta1);
  o->set_beta2(d.optimizer.beta2);
  o->set_eps(d.optimizer.eps);
  o->set_weight_decay(d.optimizer.weight_decay);
  t->set_lr_scheduler(ScheduleName(d.lr_scheduler));
  t->set_warmup_steps(d.warmup_steps);
  t->set_min_lr_ratio(d.min_lr_ratio);
  t->set_max_grad_norm(d.max_grad_norm);
  t->set_seed(d.seed);
  s.mutable_eval()->set_every_steps(d.eval_every_steps);
  s.mutable_eval()->set_max_batches(d.eval_max_batches);
  s.mutable_checkpoint()->set_every_steps(d.checkpoint_every_steps);
  s.mutable_checkpoint()->set_keep_last(d.keep_last_checkpoints);
  s.mutable_checkpoint()->set_on_cancel(d.checkpoint_on_cancel);
  auto* e = s.mutable_engine();
  e->set_device("auto");
  e->set_cuda_device(d.engine.cuda_device);
  e->set_gpu_memory_budget(d.engine.device_memory_budget);
  e->set_window_slots(d.engine.window_slots);
  e->set_activation_offload("auto");
  e->set_compute_dtype(d.engine.compute_dtype);
  e->set_cpu_threads(d.engine.cpu_threads);
  e->set_nvme_dir(d.engine.nvme_dir);
  e->set_lm_head_chunk_tokens(d.engine.lm_head_chunk_tokens);
  e->set_cpu_binding(d.engine.bind_to_device_node ? "auto" : "none");
  e->set_device_update_layers(d.engine.device_update_layers);
  e->set_inputs_in_mirrors("auto");
  return s;
}

absl::Status Bad(const std::string& field, const std::string& msg) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", msg));
}

absl::Status OneOf(const std::string& field, const std::string& value,
                   const std::set<std::string>& allowed) {
  if (allowed.count(value)) return absl::OkStatus();
  return Bad(field, absl::StrCat("must be one of [", absl::StrJoin(allowed, ", "), "], got '",
                                 value, "'"));
}

// A YAML setter that reads into a proto field through a temporary.
#define SFD_YAML_GET(map, Getter, key, type, msg, field)  \
  do {                                                      \
    type v_ = (msg)->field();                               \
    SFD_RETURN_IF_ERROR((map).Getter(key, &v_));            \
    (msg)->set_##field(v_);                                 \
  } while (0)

absl::Status ParseData(YamlMap m, v1::DataSpec* d) {
  SFD_YAML_GET(m, GetString, "train", std::string, d, train);
  SFD_YAML_GET(m, GetString, "eval", std::string, d, eval);
  SFD_YAML_GET(m, GetDouble, "eval_fraction", double, d, eval_fraction);
  SFD_YAML_GET(m, GetString, "format", std::string, d, format);
  SFD_YAML_GET(m, GetString, "chat_template", std::string, d, chat_template);
  SFD_YAML_GET(m, GetString, "train_on", std::string, d, train_on);
  SFD_YAML_GET(m, GetBool, "packing", bool, d, packing);
  SFD_YAML_GET(m, GetInt, "max_seq_len", int64_t, d, max_seq_len);
  SFD_YAML_GET(m, GetBool, "shuffle", bool, d, shuffle);
  return m.RejectUnknownKeys();
}

absl::Status ParseOptimizer(YamlMap m, v1::OptimizerSpec* o) {
  SFD_YAML_GET(m, GetString, "name", std::string, o, name);
  SFD_YAML_GET(m, GetDouble, "lr", double, o, lr);
  SFD_YAML_GET(m, GetDouble, "eps", double, o, eps);
  SFD_YAML_GET(m, GetDouble, "weight_decay", double, o, weight_decay);
  std::vector<std::string> betas;
  SFD_RETURN_IF_ERROR(m.GetStringList("betas", &betas));
  if (m.Has("betas")) {
    double b[2];
    if (betas.size() != 2 || !absl::SimpleAtod(betas[0], &b[0]) || !absl::SimpleAtod(betas[1], &b[1]))
      return m.Error("betas", "must be a list of two numbers, e.g. [0.9, 0.999]");
    o->set_beta1(b[0]);
    o->set_beta2(b[1]);
  }
  return m.RejectUnknownKeys();
}

absl::Status ParseTraining(YamlMap m, v1::TrainingSpec* t) {
  SFD_YAML_GET(m, GetInt, "epochs", int64_t, t, epochs);
  SFD_YAML_GET(m, GetInt, "max_steps", int64_t, t, max_steps);
  SFD_YAML_GET(m, GetInt, "micro_batch_size", int64_t, t, micro_batch_size);
  SFD_YAML_GET(m, GetInt, "gradient_accumulation_steps", int64_t, t, gradient_accumulation_steps);
  YamlMap opt(YAML::Node(), "");
  SFD_RETURN_IF_ERROR(m.GetMap("optimizer", &opt));
  SFD_RETURN_IF_ERROR(ParseOptimizer(opt, t->mutable_optimizer()));
  SFD_YAML_GET(m, GetString, "lr_scheduler", std::string, t, lr_scheduler);
  SFD_YAML_GET(m, GetInt, "warmup_steps", int64_t, t, warmup_steps);
  SFD_YAML_GET(m, GetDouble, "min_lr_ratio", double, t, min_lr_ratio);
  SFD_YAML_GET(m, GetDouble, "max_grad_norm", double, t, max_grad_norm);
  SFD_YAML_GET(m, GetUint, "seed", uint64_t, t, seed);
  return m.RejectUnknownKeys();
}

absl::Status ParseEngine(YamlMap m, v1::EngineSpec* e) {
  SFD_YAML_GET(m, GetString, "device", std::string, e, device);
  SFD_YAML_GET(m, GetInt, "cuda_device", int32_t, e, cuda_device);
  SFD_YAML_GET(m, GetBytes, "gpu_memory_budget", int64_t, e, gpu_memory_budget);
  SFD_YAML_GET(m, GetInt, "window_slots", int32_t, e, window_slots);
  SFD_YAML_GET(m, GetString, "activation_offload", std::string, e, activation_offload);
  SFD_YAML_GET(m, GetString, "compute_dtype", std::string, e, compute_dtype);
  SFD_YAML_GET(m, GetInt, "cpu_threads", int32_t, e, cpu_threads);
  SFD_YAML_GET(m, GetString, "nvme_dir", std::string, e, nvme_dir);
  if (m.Has("nvme_fraction")) {  // optional: unset means 1 when nvme_dir is set
    double f = 0;
    SFD_RETURN_IF_ERROR(m.GetDouble("nvme_fraction", &f));
    e->set_nvme_fraction(f);
  }
  SFD_YAML_GET(m, GetInt, "lm_head_chunk_tokens", int64_t, e, lm_head_chunk_tokens);
  SFD_YAML_GET(m, GetString, "cpu_binding", std::string, e, cpu_binding);
  // A spec made before the key existed prints it empty: that meant auto.
  if (e->cpu_binding().empty()) e->set_cpu_binding("auto");
  if (m.Has("device_update_layers")) {  // auto (-1 in the proto) or a count
    std::string v;
    SFD_RETURN_IF_ERROR(m.GetString("device_update_layers", &v));
    int32_t n = 0;
    if (v.empty()) {
      // null: the default
    } else if (v == "auto") {
      e->set_device_update_layers(-1);
    } else if (absl::SimpleAtoi(v, &n) && n >= 0) {
      e->set_device_update_layers(n);
    } else {
      return m.Error("device_update_layers", "must be auto or a layer count >= 0, got '" + v + "'");
    }
  }
  SFD_YAML_GET(m, GetString, "inputs_in_mirrors", std::string, e, inputs_in_mirrors);
  // A spec made before the key existed prints it empty: that meant auto.
  if (e->inputs_in_mirrors().empty()) e->set_inputs_in_mirrors("auto");
  return m.RejectUnknownKeys();
}

// Shortest text that parses back to exactly `x` ("1e-05", not "1.0000000000000001e-05").
std::string Num(double x) {
  char buf[40];
  for (int prec = 6; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof(buf), "%.*g", prec, x);
    double back = 0;
    if (absl::SimpleAtod(buf, &back) && back == x) break;
  }
  return buf;
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return false;
  return true;
}

}  // namespace

absl::StatusOr<v1::JobSpec> ParseJobYaml(const std::string& text) {
  if (text.size() > kMaxJobYamlBytes)
    return absl::InvalidArgumentError(
        absl::StrCat("job.yaml: ", text.size(), " bytes, limit is ", kMaxJobYamlBytes));
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("job.yaml: YAML syntax error at line ",
                                                   e.mark.line + 1, ", column ", e.mark.column + 1,
                                                   ": ", e.msg));
  }
  if (!root.IsDefined() || root.IsNull()) return absl::InvalidArgumentError("job.yaml: empty document");
  SFD_RETURN_IF_ERROR(YamlMap::Check(root, ""));
  v1::JobSpec spec = DefaultSpec();
  try {
    YamlMap m(root, "");
    SFD_YAML_GET(m, GetString, "name", std::string, (&spec), name);
    SFD_YAML_GET(m, GetString, "model", std::string, (&spec), model);
    SFD_YAML_GET(m, GetString, "output_dir", std::string, (&spec), output_dir);
    YamlMap sub(YAML::Node(), "");
    SFD_RETURN_IF_ERROR(m.GetMap("data", &sub));
    SFD_RETURN_IF_ERROR(ParseData(sub, spec.mutable_data()));
    SFD_RETURN_IF_ERROR(m.GetMap("training", &sub));
    SFD_RETURN_IF_ERROR(ParseTraining(sub, spec.mutable_training()));
    SFD_RETURN_IF_ERROR(m.GetMap("eval", &sub));
    {
      auto* e = spec.mutable_eval();
      SFD_YAML_GET(sub, GetInt, "every_steps", int64_t, e, every_steps);
      SFD_YAML_GET(sub, GetInt, "max_batches", int64_t, e, max_batches);
      SFD_RETURN_IF_ERROR(sub.RejectUnknownKeys());
    }
    SFD_RETURN_IF_ERROR(m.GetMap("checkpoint", &sub));
    {
      auto* c = spec.mutable_checkpoint();
      SFD_YAML_GET(sub, GetInt, "every_steps", int64_t, c, every_steps);
      SFD_YAML_GET(sub, GetInt, "keep_last", int64_t, c, keep_last);
      SFD_YAML_GET(sub, GetBool, "on_cancel", bool, c, on_cancel);
      SFD_RETURN_IF_ERROR(sub.RejectUnknownKeys());
    }
    SFD_RETURN_IF_ERROR(m.GetMap("engine", &sub));
    SFD_RETURN_IF_ERROR(ParseEngine(sub, spec.mutable_engine()));
    SFD_RETURN_IF_ERROR(m.RejectUnknownKeys());
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("job.yaml: line ", e.mark.line + 1, ": ", e.msg));
  }
  SFD_RETURN_IF_ERROR(ValidateJobSpec(spec));
  return spec;
}

absl::Status ValidateJobSpec(const v1::JobSpec& s) {
  if (!ValidName(s.name())) return Bad("name", "1-64 characters of [A-Za-z0-9._-]");
  if (s.model().empty()) return Bad("model", "must be set (HF model directory)");
  const auto& d = s.data();
  if (d.train().empty()) return Bad("data.train", "must be set (JSONL file)");
  if (!(d.eval_fraction() >= 0 && d.eval_fraction() < 1))
    return Bad("data.eval_fraction", absl::StrCat("must be in [0, 1), got ", d.eval_fraction()));
  SFD_RETURN_IF_ERROR(OneOf("data.format", d.format(), {"auto", "text", "completion", "alpaca", "messages"}));
  SFD_RETURN_IF_ERROR(OneOf("data.train_on", d.train_on(), {"completions", "all"}));
  if (d.max_seq_len() < 8 || d.max_seq_len() > (1 << 20))
    return Bad("data.max_seq_len", absl::StrCat("must be in [8, 1048576], got ", d.max_seq_len()));
  const auto& t = s.training();
  if (t.max_steps() < 0) return Bad("training.max_steps", absl::StrCat("must be >= 0, got ", t.max_steps()));
  if (t.max_steps() == 0 && t.epochs() < 1)
    return Bad("training.epochs", absl::StrCat("must be >= 1 (or set max_steps), got ", t.epochs()));
  if (t.epochs() < 0 || t.epochs() > 1000000) return Bad("training.epochs", absl::StrCat("out of range: ", t.epochs()));
  if (t.micro_batch_size() < 1 || t.micro_batch_size() > 65536)
    return Bad("training.micro_batch_size", absl::StrCat("must be in [1, 65536], got ", t.micro_batch_size()));
  if (t.gradient_accumulation_steps() < 1 || t.gradient_accumulation_steps() > 65536)
    return Bad("training.gradient_accumulation_steps",
               absl::StrCat("must be in [1, 65536], got ", t.gradient_accumulation_steps()));
  const auto& o = t.optimizer();
  SFD_RETURN_IF_ERROR(OneOf("training.optimizer.name", o.name(), {"adamw", "adamw_8bit"}));
  if (o.name() == "adamw_8bit" && !s.engine().nvme_dir().empty()) {
    return Bad("training.optimizer.name",
               "adamw_8bit keeps its 8-bit moments in RAM and cannot be combined with engine.nvme_dir "
               "(the NVMe tier stores fp32 moments)");
  }
  if (!(o.lr() > 0 && o.lr() <= 10)) return Bad("training.optimizer.lr", absl::StrCat("must be > 0 (and <= 10), got ", o.lr()));
  if (!(o.beta1() >= 0 && o.beta1() < 1)) return Bad("training.optimizer.betas[0]", absl::StrCat("must be in [0, 1), got ", o.beta1()));
  if (!(o.beta2() >= 0 && o.beta2() < 1)) return Bad("training.optimizer.betas[1]", absl::StrCat("must be in [0, 1), got ", o.beta2()));
  if (!(o.eps() > 0 && o.eps() < 1)) return Bad("training.optimizer.eps", absl::StrCat("must be in (0, 1), got ", o.eps()));
  if (!(o.weight_decay() >= 0 && o.weight_decay() <= 10))
    return Bad("training.optimizer.weight_decay", absl::StrCat("must be in [0, 10], got ", o.weight_decay()));
  SFD_RETURN_IF_ERROR(OneOf("training.lr_scheduler", t.lr_scheduler(), {"constant", "linear", "cosine"}));
  if (t.warmup_steps() < 0) return Bad("training.warmup_steps", absl::StrCat("must be >= 0, got ", t.warmup_steps()));
  if (!(t.min_lr_ratio() >= 0 && t.min_lr_ratio() <= 1))
    return Bad("training.min_lr_ratio", absl::StrCat("must be in [0, 1], got ", t.min_lr_ratio()));
  if (!std::isfinite(t.max_grad_norm())) return Bad("training.max_grad_norm", "must be finite");
  if (s.eval().every_steps() < 0) return Bad("eval.every_steps", "must be >= 0");
  if (s.eval().max_batches() < 0) return Bad("eval.max_batches", "must be >= 0");
  if (s.checkpoint().every_steps() < 0) return Bad("checkpoint.every_steps", "must be >= 0");
  if (s.checkpoint().keep_last() < 1) return Bad("checkpoint.keep_last", absl::StrCat("must be >= 1, got ", s.checkpoint().keep_last()));
  const auto& e = s.engine();
  SFD_RETURN_IF_ERROR(OneOf("engine.device", e.device(), {"auto", "cpu", "cuda"}));
  if (e.cuda_device() < 0) return Bad("engine.cuda_device", "must be >= 0");
  if (e.gpu_memory_budget() < 0) return Bad("engine.gpu_memory_budget", "must be >= 0");
  if (e.window_slots() < 0) return Bad("engine.window_slots", "must be >= 0");
  SFD_RETURN_IF_ERROR(OneOf("engine.activation_offload", e.activation_offload(), {"auto", "device", "host"}));
  SFD_RETURN_IF_ERROR(OneOf("engine.compute_dtype", e.compute_dtype(), {"", "bf16", "fp16", "fp32"}));
  SFD_RETURN_IF_ERROR(OneOf("engine.cpu_binding", e.cpu_binding(), {"auto", "none"}));
  if (e.cpu_threads() < 0 || e.cpu_threads() > 4096) return Bad("engine.cpu_threads", "must be in [0, 4096]");
  if (e.lm_head_chunk_tokens() < 1) return Bad("engine.lm_head_chunk_tokens", "must be >= 1");
  if (e.device_update_layers() < -1) return Bad("engine.device_update_layers", "must be auto or >= 0");
  if (e.device_update_layers() > 0) {
    if (s.training().optimizer().name() != "adamw_8bit") {
      return Bad("engine.device_update_layers", "needs training.optimizer.name: adamw_8bit (it streams the 8-bit state)");
    }
    if (s.training().gradient_accumulation_steps() > 1) {
      return Bad("engine.device_update_layers",
                 "runs in steps whose gradients land in the bf16 mirrors, which needs "
                 "training.gradient_accumulation_steps: 1");
    }
    if (e.compute_dtype() == "fp32" || e.compute_dtype() == "fp16") {
      return Bad("engine.device_update_layers",
                 "runs in steps whose gradients land in the bf16 mirrors, which needs bf16 compute");
    }
  }
  SFD_RETURN_IF_ERROR(OneOf("engine.inputs_in_mirrors", e.inputs_in_mirrors(), {"", "auto", "always", "never"}));
  if (e.inputs_in_mirrors() == "always") {
    if (s.training().gradient_accumulation_steps() > 1) {
      return Bad("engine.inputs_in_mirrors",
                 "always needs training.gradient_accumulation_steps: 1 (the mirror receives the step's gradient)");
    }
    if (e.compute_dtype() == "fp32" || e.compute_dtype() == "fp16") {
      return Bad("engine.inputs_in_mirrors", "always needs bf16 compute (the mirrors are bf16)");
    }
  }
  if (e.has_nvme_fraction()) {
    if (!(e.nvme_fraction() >= 0 && e.nvme_fraction() <= 1)) {
      return Bad("engine.nvme_fraction", absl::StrCat("must be in [0, 1], got ", e.nvme_fraction()));
    }
    if (e.nvme_dir().empty()) return Bad("engine.nvme_fraction", "is set but engine.nvme_dir is not");
  }
  return absl::OkStatus();
}

absl::Status ResolveJobPaths(const PathPolicy& policy, const std::string& job_id,
                             v1::JobSpec* spec) {
  SFD_ASSIGN_OR_RETURN(std::string model, policy.ResolveModel(spec->model(), "model"));
  spec->set_model(model);
  auto* d = spec->mutable_data();
  SFD_ASSIGN_OR_RETURN(std::string train, policy.ResolveData(d->train(), "data.train"));
  d->set_train(train);
  if (!d->eval().empty()) {
    SFD_ASSIGN_OR_RETURN(std::string eval, policy.ResolveData(d->eval(), "data.eval"));
    d->set_eval(eval);
  }
  // A chat template that names a file (not a built-in name) is a path like any other.
  const std::string& tmpl = d->chat_template();
  if (tmpl.find('/') != std::string::npos || tmpl.find('.') != std::string::npos) {
    SFD_ASSIGN_OR_RETURN(std::string path, policy.ResolveData(tmpl, "data.chat_template"));
    d->set_chat_template(path);
  }
  const std::string out = spec->output_dir().empty() ? job_id : spec->output_dir();
  SFD_ASSIGN_OR_RETURN(std::string output, policy.ResolveOutput(out, "output_dir"));
  if (output == policy.output_root())
    return Bad("output_dir", "must be a folder below the output root, not the root itself");
  spec->set_output_dir(output);
  if (!spec->engine().nvme_dir().empty()) {
    SFD_ASSIGN_OR_RETURN(std::string nvme, policy.ResolveOutput(spec->engine().nvme_dir(), "engine.nvme_dir"));
    spec->mutable_engine()->set_nvme_dir(nvme);
  }
  // The model directory must be an HF model with a supported architecture.
  std::ifstream f(model + "/config.json");
  if (!f) return Bad("model", absl::StrCat("'", model, "' has no config.json (not an HF model directory)"));
  std::stringstream ss;
  ss << f.rdbuf();
  nlohmann::json cfg = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (cfg.is_discarded() || !cfg.is_object())
    return Bad("model", absl::StrCat(model, "/config.json is not valid JSON"));
  static const std::set<std::string> kSupported = {"LlamaForCausalLM", "MistralForCausalLM",
                                                   "Qwen2ForCausalLM", "Qwen3ForCausalLM"};
  std::string arch;
  if (cfg.contains("architectures") && cfg["architectures"].is_array() &&
      !cfg["architectures"].empty() && cfg["architectures"][0].is_string())
    arch = cfg["architectures"][0].get<std::string>();
  if (!kSupported.count(arch)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model: unsupported architecture '", arch, "' in ", model, "/config.json (supported: ",
        absl::StrJoin(kSupported, ", "), ")"));
  }
  return absl::OkStatus();
}

std::string JobSpecToYaml(const v1::JobSpec& s) {
  YAML::Emitter y;
  y << YAML::BeginMap;
  y << YAML::Key << "name" << YAML::Value << s.name();
  y << YAML::Key << "model" << YAML::Value << s.model();
  y << YAML::Key << "output_dir" << YAML::Value << s.output_dir();
  const auto& d = s.data();
  y << YAML::Key << "data" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "train" << YAML::Value << d.train();
  y << YAML::Key << "eval" << YAML::Value << d.eval();
  y << YAML::Key << "eval_fraction" << YAML::Value << Num(d.eval_fraction());
  y << YAML::Key << "format" << YAML::Value << d.format();
  y << YAML::Key << "chat_template" << YAML::Value << d.chat_template();
  y << YAML::Key << "train_on" << YAML::Value << d.train_on();
  y << YAML::Key << "packing" << YAML::Value << d.packing();
  y << YAML::Key << "max_seq_len" << YAML::Value << d.max_seq_len();
  y << YAML::Key << "shuffle" << YAML::Value << d.shuffle();
  y << YAML::EndMap;
  const auto& t = s.training();
  y << YAML::Key << "training" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "epochs" << YAML::Value << t.epochs();
  y << YAML::Key << "max_steps" << YAML::Value << t.max_steps();
  y << YAML::Key << "micro_batch_size" << YAML::Value << t.micro_batch_size();
  y << YAML::Key << "gradient_accumulation_steps" << YAML::Value << t.gradient_accumulation_steps();
  y << YAML::Key << "optimizer" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "name" << YAML::Value << t.optimizer().name();
  y << YAML::Key << "lr" << YAML::Value << Num(t.optimizer().lr());
  y << YAML::Key << "betas" << YAML::Value << YAML::Flow << YAML::BeginSeq
    << Num(t.optimizer().beta1()) << Num(t.optimizer().beta2()) << YAML::EndSeq;
  y << YAML::Key << "eps" << YAML::Value << Num(t.optimizer().eps());
  y << YAML::Key << "weight_decay" << YAML::Value << Num(t.optimizer().weight_decay());
  y << YAML::EndMap;
  y << YAML::Key << "lr_scheduler" << YAML::Value << t.lr_scheduler();
  y << YAML::Key << "warmup_steps" << YAML::Value << t.warmup_steps();
  y << YAML::Key << "min_lr_ratio" << YAML::Value << Num(t.min_lr_ratio());
  y << YAML::Key << "max_grad_norm" << YAML::Value << Num(t.max_grad_norm());
  y << YAML::Key << "seed" << YAML::Value << t.seed();
  y << YAML::EndMap;
  y << YAML::Key << "eval" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "every_steps" << YAML::Value << s.eval().every_steps();
  y << YAML::Key << "max_batches" << YAML::Value << s.eval().max_batches();
  y << YAML::EndMap;
  y << YAML::Key << "checkpoint" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "every_steps" << YAML::Value << s.checkpoint().every_steps();
  y << YAML::Key << "keep_last" << YAML::Value << s.checkpoint().keep_last();
  y << YAML::Key << "on_cancel" << YAML::Value << s.checkpoint().on_cancel();
  y << YAML::EndMap;
  const auto& e = s.engine();
  y << YAML::Key << "engine" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "device" << YAML::Value << e.device();
  y << YAML::Key << "cuda_device" << YAML::Value << e.cuda_device();
  y << YAML::Key << "gpu_memory_budget" << YAML::Value << e.gpu_memory_budget();
  y << YAML::Key << "window_slots" << YAML::Value << e.window_slots();
  y << YAML::Key << "activation_offload" << YAML::Value << e.activation_offload();
  y << YAML::Key << "compute_dtype" << YAML::Value << e.compute_dtype();
  y << YAML::Key << "cpu_threads" << YAML::Value << e.cpu_threads();
  y << YAML::Key << "nvme_dir" << YAML::Value << e.nvme_dir();
  if (e.has_nvme_fraction()) y << YAML::Key << "nvme_fraction" << YAML::Value << Num(e.nvme_fraction());
  y << YAML::Key << "lm_head_chunk_tokens" << YAML::Value << e.lm_head_chunk_tokens();
  y << YAML::Key << "cpu_binding" << YAML::Value << e.cpu_binding();
  y << YAML::Key << "device_update_layers" << YAML::Value;
  if (e.device_update_layers() < 0) {
    y << "auto";
  } else {
    y << e.device_update_layers();
  }
  y << YAML::Key << "inputs_in_mirrors" << YAML::Value << (e.inputs_in_mirrors().empty() ? "auto" : e.inputs_in_mirrors());
  y << YAML::EndMap;
  y << YAML::EndMap;
  return std::string(y.c_str()) + "\n";
}

}  // namespace sfd
