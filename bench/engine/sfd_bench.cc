// sfd_bench: trains a model with sfd's engine and prints one CSV line per step plus a RESULT
// line in the format of ../shared/reference peers (mode,model,params,batch,seq,step_s,tokens_s,
// TFLOPS,peak_gpu_GiB,peak_rss_GiB). TFLOPS = (6*N_matmul + 6*L*d*seq) * tokens / step time.
//
//   sfd_bench --model DIR [--random-init] (--batches FILE | --rows R --seq S --steps N)
//             [--accum A] [--lr X] [--warmup W] [--schedule constant|cosine|linear]
//             [--max-grad-norm G] [--weight-decay D] [--beta2 B] [--device cpu|cuda]
//             [--dtype bf16|fp32] [--cpu-threads N] [--slots K] [--budget-gib X] [--timing-warmup N]
//             [--activations auto|device|host] [--device-saved-layers N] [--inputs-in-mirrors -1|0|1] [--device-update-layers auto|N] [--device-update-cpu-bound F] [--device-update-leading] [--save DIR] [--logits-out FILE] [--label NAME]
//             [--nvme-dir DIR [--nvme-fraction F]]   AdamW moments of F of the layers on NVMe
//             [--optimizer adamw|adamw_8bit]   adamw_8bit: 8-bit moments (optim/adamw_8bit.h)
//             [--cpu-binding auto|none]   none: engine threads and host arenas not bound to the
//                                         GPU's NUMA node (runtime/cpu_placement.h)
//             [--trace FILE --trace-step N]   (sfd_bench_trace only: Kineto trace of step N)
//             [--device-update-sweep C1,C2,... [--sweep-steps K]]   after the timing warm-up, K
//                                   steps (default 4) with each count of device-updated layers
//                                   in one process (needs --device-update-layers >= max C):
//                                   SWEEP lines with the median of each count's last K-1 steps;
//                                   RESULT is the best count's
//             [--stream-passes N]   after training: N forward-only passes of the first batch,
//                                   printing STREAM with the weight bytes streamed H2D per second
// --batches: safetensors with int64 input_ids and labels [steps, accum, rows, seq] (HF
// convention: labels unshifted, -100 ignored), as tests/golden/make_golden.py writes them.
// Without it, tokens follow a random affine bigram rule per row, so the loss can fall.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/common/status.h"
#include "engine/io/safetensors.h"
#include "engine/trainer/trainer.h"
#if SFD_BENCH_TRACE
#include "bench/engine/kineto_trace.h"
#endif

namespace sfd {
namespace {

struct Args {
  std::map<std::string, std::string> kv;
  std::string Get(const std::string& k, const std::string& def = "") const {
    auto it = kv.find(k);
    return it == kv.end() ? def : it->second;
  }
  bool Has(const std::string& k) const { return kv.count(k) > 0; }
  // --k, one of two words (the first is the default); false after printing the error.
  bool GetChoice(const std::string& k, const std::string& first, const std::string& second,
                 std::string* out) const {
    *out = Get(k, first);
    if (*out == first || *out == second) return true;
    std::fprintf(stderr, "error: --%s must be %s or %s, got %s\n", k.c_str(), first.c_str(),
                 second.c_str(), out->c_str());
    return false;
  }
};

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) continue;
    k = k.substr(2);
    if (i + 1 < argc && std::strncmp(argv[i + 1], "--", 2) != 0) {
      a.kv[k] = argv[++i];
    } else {
      a.kv[k] = "1";
    }
  }
  return a;
}

TokenBatch FromHf(const int64_t* ids, const int64_t* labels, int64_t rows, int64_t seq) {
  TokenBatch b;
  b.rows = rows;
  b.seq = seq;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < seq; ++t) {
      b.input_ids.push_back(static_cast<int32_t>(ids[r * seq + t]));
      b.targets.push_back(t + 1 < seq ? static_cast<int32_t>(labels[r * seq + t + 1]) : kIgnoreLabel);
      b.position_ids.push_back(static_cast<int32_t>(t));
      b.segment_ids.push_back(0);
    }
  return b;
}

absl::StatusOr<std::vector<std::vector<TokenBatch>>> LoadBatches(const std::string& path) {
  SFD_ASSIGN_OR_RETURN(auto f, SafetensorsFile::Open(path));
  const TensorInfo* ids = f->Find("input_ids");
  const TensorInfo* labels = f->Find("labels");
  if (!ids || !labels || ids->dtype != DType::kI64 || ids->shape.size() != 4 ||
      labels->shape != ids->shape) {
    return absl::InvalidArgumentError(path + ": need int64 input_ids and labels [steps, accum, rows, seq]");
  }
  const auto& s = ids->shape;
  const auto* pi = reinterpret_cast<const int64_t*>(f->Bytes(*ids).data());
  const auto* pl = reinterpret_cast<const int64_t*>(f->Bytes(*labels).data());
  std::vector<std::vector<TokenBatch>> out(s[0]);
  const int64_t per = s[2] * s[3];
  for (int64_t i = 0; i < s[0]; ++i)
    for (int64_t a = 0; a < s[1]; ++a)
      out[i].push_back(FromHf(pi + (i * s[1] + a) * per, pl + (i * s[1] + a) * per, s[2], s[3]));
  return out;
}

std::vector<std::vector<TokenBatch>> BigramBatches(int64_t steps, int64_t accum, int64_t rows,
                                                   int64_t seq, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t v = std::min<int64_t>(vocab, 32000);
  std::vector<std::vector<TokenBatch>> out(steps);
  for (auto& step : out)
    for (int64_t a = 0; a < accum; ++a) {
      std::vector<int64_t> ids(rows * seq);
      for (int64_t r = 0; r < rows; ++r) {
        int64_t x = rng() % v;
        const int64_t mul = 1 + 2 * (rng() % 7), add = rng() % 101;
        for (int64_t t = 0; t < seq; ++t) {
          ids[r * seq + t] = x;
          x = (x * mul + add) % v;
        }
      }
      step.push_back(FromHf(ids.data(), ids.data(), rows, seq));
    }
  return out;
}

int Run(const Args& a) {
  TrainerSpec spec;
  spec.model_dir = a.Get("model");
  spec.random_init = a.Has("random-init");
  spec.optimizer.lr = std::stod(a.Get("lr", "1e-5"));
  spec.optimizer.beta2 = std::stod(a.Get("beta2", "0.999"));
  spec.optimizer.weight_decay = std::stod(a.Get("weight-decay", "0"));
  std::string optimizer, binding;
  if (!a.GetChoice("optimizer", "adamw", "adamw_8bit", &optimizer) ||
      !a.GetChoice("cpu-binding", "auto", "none", &binding)) {
    return 2;
  }
  spec.optimizer.moments_8bit = optimizer == "adamw_8bit";
  spec.engine.bind_to_device_node = binding == "auto";
  spec.max_grad_norm = std::stod(a.Get("max-grad-norm", "1.0"));
  const std::string sched = a.Get("schedule", "constant");
  spec.schedule.kind = sched == "cosine" ? LrScheduleKind::kCosine
                       : sched == "linear" ? LrScheduleKind::kLinear
                                           : LrScheduleKind::kConstant;
  spec.schedule.warmup_steps = std::stoll(a.Get("warmup", "0"));
  const std::string dev = a.Get("device", "auto");
  spec.engine.device = dev == "cpu" ? DeviceKind::kCpu : dev == "cuda" ? DeviceKind::kCuda : DeviceKind::kAuto;
  spec.engine.compute_dtype = a.Get("dtype", "");
  spec.engine.cpu_threads = std::stoi(a.Get("cpu-threads", "0"));
  spec.engine.window_slots = std::stoi(a.Get("slots", "0"));
  spec.engine.device_memory_budget = static_cast<int64_t>(std::stod(a.Get("budget-gib", "0")) * (1 << 30));
  spec.engine.lm_head_chunk_tokens = std::stoll(a.Get("head-chunk", "4096"));
  const std::string act = a.Get("activations", "auto");
  spec.engine.activations = act == "host" ? ActivationPlacement::kHost
                            : act == "device" ? ActivationPlacement::kDevice
                                              : ActivationPlacement::kAuto;
  spec.engine.device_saved_layers = std::stoi(a.Get("device-saved-layers", "-1"));
  spec.engine.inputs_in_mirrors = std::stoi(a.Get("inputs-in-mirrors", "-1"));
  const std::string dul = a.Get("device-update-layers", "0");
  spec.engine.device_update_layers = dul == "auto" ? -1 : std::stoi(dul);
  spec.engine.device_update_cpu_bound = std::stod(a.Get("device-update-cpu-bound", "0.8"));
  spec.engine.device_update_leading = a.Has("device-update-leading");
  std::vector<int> sweep;  // --device-update-sweep counts
  const int sweep_steps = std::stoi(a.Get("sweep-steps", "4"));
  if (a.Has("device-update-sweep") && sweep_steps < 2) {
    std::fprintf(stderr, "error: --sweep-steps must be >= 2 (the first step of each count is not timed)\n");
    return 2;
  }
  if (a.Has("device-update-sweep")) {
    std::string list = a.Get("device-update-sweep");
    for (size_t at = 0; at < list.size();) {
      const size_t comma = std::min(list.find(',', at), list.size());
      sweep.push_back(std::stoi(list.substr(at, comma - at)));
      at = comma + 1;
    }
  }
  spec.engine.nvme_dir = a.Get("nvme-dir", "");
  if (a.Has("nvme-fraction")) spec.engine.nvme_fraction = std::stod(a.Get("nvme-fraction"));
  if (!a.Has("batches")) {
    spec.engine.max_tokens_per_micro_batch = std::stoll(a.Get("rows", "8")) * std::stoll(a.Get("seq", "1024"));
  }

  std::vector<std::vector<TokenBatch>> batches;
  if (a.Has("batches")) {
    auto b = LoadBatches(a.Get("batches"));
    if (!b.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(b.status().message()).c_str());
      return 2;
    }
    batches = std::move(*b);
  }
  spec.schedule.total_steps = a.Has("batches") ? static_cast<int64_t>(batches.size())
                                               : std::stoll(a.Get("steps", "8"));
  if (!sweep.empty() && !a.Has("batches")) {  // warm-up, then sweep_steps per count
    spec.schedule.total_steps = std::stoi(a.Get("timing-warmup", "2")) + sweep_steps * static_cast<int64_t>(sweep.size());
  }
  spec.engine.max_micro_batches_per_step =
      a.Has("batches") ? (batches.empty() ? 1 : static_cast<int>(batches[0].size()))
                       : std::stoi(a.Get("accum", "1"));
  auto trainer = Trainer::Create(spec);
  if (!trainer.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(trainer.status().message()).c_str());
    return 2;
  }
  Trainer& t = **trainer;
  std::printf("PLAN,%s\n", t.plan().summary.c_str());
  if (!a.Has("batches")) {
    batches = BigramBatches(spec.schedule.total_steps, std::stoll(a.Get("accum", "1")),
                            std::stoll(a.Get("rows", "8")), std::stoll(a.Get("seq", "1024")),
                            t.model().vocab_size, 1234);
  }
  const int warm = std::stoi(a.Get("timing-warmup", "2"));
  std::vector<double> times;
  StepStats last;
  double peak_dev = 0, peak_rss = 0, peak_reserved = 0;
  std::printf("STEP,step,loss,grad_norm,lr,step_s,tokens_s,tflops,peak_dev_gib,rss_gib,h2d_gb,d2h_gb,"
              "stall_weights_s,stall_opt_s,optimizer_s,fwd_s,bwd_s,nvme_gb,stall_act_s,reserved_gib,"
              "device_updated_layers,tuning,optimizer_busy_s\n");
  std::map<int, std::vector<double>> sweep_times;  // count -> step seconds after its first step
  const int trace_step = a.Has("trace") ? std::stoi(a.Get("trace-step", "4")) : -1;
  for (size_t i = 0; i < batches.size(); ++i) {
#if SFD_BENCH_TRACE
    bool tracing = static_cast<int>(i) + 1 == trace_step && StartTrace();
#endif
    const int seg = static_cast<int>(i) - warm;
    if (!sweep.empty() && seg >= 0 && seg % sweep_steps == 0) {
      const absl::Status set = t.SetDeviceUpdateLayers(sweep[(seg / sweep_steps) % sweep.size()]);
      if (!set.ok()) {
        std::fprintf(stderr, "error: %s\n", std::string(set.message()).c_str());
        return 2;
      }
    }
    auto st = t.Step(batches[i]);
#if SFD_BENCH_TRACE
    if (tracing) {
      // One more step's first half would belong to this step's update: the trace covers the
      // step's own forward/backward; the streamed/background update shows on its thread.
      StopTrace(a.Get("trace"));
    }
#else
    if (trace_step >= 0 && i == 0) std::fprintf(stderr, "--trace needs sfd_bench_trace (CUDA build)\n");
#endif
    if (!st.ok()) {
      std::fprintf(stderr, "error at step %zu: %s\n", i + 1, std::string(st.status().message()).c_str());
      return 1;
    }
    last = *st;
    const double gib = 1 << 30;
    std::printf("STEP,%lld,%.6f,%.5f,%.3e,%.4f,%.0f,%.1f,%.2f,%.2f,%.2f,%.2f,%.4f,%.4f,%.4f,%.4f,%.4f,%.2f,%.4f,%.2f,%d,%d,%.4f\n",
                static_cast<long long>(st->step), st->loss, st->grad_norm, st->lr, st->step_seconds,
                st->tokens / st->step_seconds, st->model_flops / st->step_seconds / 1e12,
                st->peak.device / gib, st->host_rss / gib, st->h2d_bytes / 1e9, st->d2h_bytes / 1e9,
                st->stall_weights_seconds, st->stall_optimizer_seconds, st->optimizer_seconds,
                st->forward_seconds, st->backward_seconds, st->nvme_bytes / 1e9,
                st->stall_activations_seconds, st->device_reserved / gib, st->device_update_layers,
                st->device_update_tuning ? 1 : 0, st->optimizer_busy_seconds);
    std::fflush(stdout);
    if (!sweep.empty()) {
      if (seg >= 0 && seg % sweep_steps != 0) sweep_times[st->device_update_layers].push_back(st->step_seconds);
    } else if (static_cast<int>(i) >= warm && !st->device_update_tuning) {
      times.push_back(st->step_seconds);
    }
    peak_dev = std::max(peak_dev, st->peak.device / gib);
    peak_rss = std::max(peak_rss, st->host_rss / gib);
    peak_reserved = std::max(peak_reserved, st->device_reserved / gib);
  }
  double best = 0;
  for (auto& [count, v] : sweep_times) {
    std::sort(v.begin(), v.end());
    const double med = v[v.size() / 2];
    std::printf("SWEEP,%s,device_updated_layers=%d,median_s=%.4f,tokens_s=%.0f,steps=%zu\n",
                a.Get("label", "model").c_str(), count, med, last.tokens / med, v.size());
    if (best == 0 || med < best) {
      best = med;
      times = v;
    }
  }
  if (!times.empty()) {
    std::sort(times.begin(), times.end());
    const double med = times[times.size() / 2];
    const double tflops = last.model_flops / med / 1e12;
    // peak_dev: allocated by tensors; reserved: what the caching allocator held from the driver.
    std::printf("RESULT,sfd,%s,%.2fB,%lld,%lld,%.3f,%.0f,%.1f,%.1f,%.1f,loss=%.3f,slots=%d,reserved=%.1f\n",
                a.Get("label", "model").c_str(), t.model().num_params / 1e9,
                static_cast<long long>(batches[0][0].rows * batches[0].size()),
                static_cast<long long>(batches[0][0].seq), med, last.tokens / med, tflops, peak_dev,
                peak_rss, last.loss, t.plan().window_slots, peak_reserved);
  }
  if (a.Has("stream-passes")) {
    // Forward-only passes: every unit is loaded once per pass (slots < layers), no optimizer
    // and no gradient traffic, so with a small batch the pass is bound by weight streaming.
    const int n = std::stoi(a.Get("stream-passes"));
    const double bytes = static_cast<double>(t.model().num_params) * 2;  // bf16 weights
    std::vector<double> secs;
    for (int i = 0; i < n; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      auto ce = t.Evaluate({batches[0][0]});
      if (!ce.ok()) {
        std::fprintf(stderr, "error in stream pass: %s\n", std::string(ce.status().message()).c_str());
        return 1;
      }
      secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(secs.begin(), secs.end());
    const double med = secs[secs.size() / 2];
    std::printf("STREAM,%s,passes=%d,weight_gb=%.2f,median_s=%.4f,gb_per_s=%.1f,slots=%d\n",
                a.Get("label", "model").c_str(), n, bytes / 1e9, med, bytes / med / 1e9,
                t.plan().window_slots);
  }
  if (a.Has("save")) {
    absl::Status s = t.SaveModel(a.Get("save"));
    if (!s.ok()) {
      std::fprintf(stderr, "error saving: %s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  if (a.Has("logits-out")) {  // logits of the first row of the first batch, fp32 [seq, vocab]
    TokenBatch b = batches[0][0];
    b.rows = 1;
    b.input_ids.resize(b.seq);
    b.targets.resize(b.seq);
    b.position_ids.resize(b.seq);
    b.segment_ids.resize(b.seq);
    auto logits = t.Logits(b);
    if (!logits.ok()) return 1;
    std::vector<int64_t> ids(b.input_ids.begin(), b.input_ids.end());
    absl::Status s = WriteSafetensors(
        a.Get("logits-out"),
        {{"logits", DType::kF32, {b.seq, t.model().vocab_size}, logits->data()},
         {"input_ids", DType::kI64, {b.seq}, ids.data()}},
        {});
    if (!s.ok()) return 1;
  }
  return 0;
}

}  // namespace
}  // namespace sfd

int main(int argc, char** argv) { return sfd::Run(sfd::Parse(argc, argv)); }
