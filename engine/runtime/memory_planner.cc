#include "engine/runtime/memory_planner.h"

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/common/status.h"
#include "engine/runtime/host_arena.h"
#include "engine/runtime/nvme_store.h"

namespace sfd {
namespace {

std::string Gib(int64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f GiB", static_cast<double>(b) / (1 << 30));
  return buf;
}

}  // namespace

int64_t HostMemAvailable() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return 0;
}

int64_t ProcessRss() {
  std::ifstream f("/proc/self/statm");
  int64_t size = 0, resident = 0;
  if (!(f >> size >> resident)) return 0;
  return resident * sysconf(_SC_PAGESIZE);
}

std::vector<bool> NvmeUnits(const ModelLayout& layout, double fraction, int device_units) {
  const int L = layout.num_layers();
  const int n = static_cast<int>(std::clamp<double>(std::llround(fraction * L), 0, L));
  std::vector<bool> on(layout.num_units(), false);
  if (n == 0) return {};
  for (int i = 0; i < L; ++i) {
    const int u = layout.layer_unit(i);
    if ((int64_t{i + 1} * n) / L > (int64_t{i} * n) / L && u >= device_units) on[u] = true;
  }
  return on;
}

std::vector<int> DeviceUpdateOrder(const ModelLayout& layout, int device_units, bool leading) {
  const int L = layout.num_layers();
  if (leading) {
    std::vector<int> order;
    for (int i = 0; i < L; ++i) {
      if (layout.layer_unit(i) >= device_units) order.push_back(layout.layer_unit(i));
    }
    return order;
  }
  int bits = 0;
  while ((1 << bits) < L) ++bits;
  std::vector<bool> taken(L, false);
  std::vector<int> order;
  for (int k = 0; k < (1 << bits); ++k) {
    int r = 0;  // k with its `bits` low bits reversed: k/2^bits -> the van der Corput point
    for (int b = 0; b < bits; ++b) r |= ((k >> b) & 1) << (bits - 1 - b);
    const int i = static_cast<int>((int64_t{r} * L) >> bits);
    if (taken[i]) continue;
    taken[i] = true;
    if (layout.layer_unit(i) >= device_units) order.push_back(layout.layer_unit(i));
  }
  return order;
}

std::vector<bool> DeviceUpdateUnits(const ModelLayout& layout, int layers, int device_units,
                                    bool leading) {
  if (layers <= 0) return {};
  const std::vector<int> order = DeviceUpdateOrder(layout, device_units, leading);
  std::vector<bool> on(layout.num_units(), false);
  for (int k = 0; k < layers && k < static_cast<int>(order.size()); ++k) on[order[k]] = true;
  return on;
}

absl::StatusOr<double> NvmeFraction(const EngineSpec& e) {
  if (!e.nvme_fraction.has_value()) return e.nvme_dir.empty() ? 0.0 : 1.0;
  const double f = *e.nvme_fraction;
  if (!(f >= 0 && f <= 1)) {
    return absl::InvalidArgumentError("engine.nvme_fraction=" + std::to_string(f) +
                                      " must be in [0, 1] (fraction of decoder layers whose AdamW "
                                      "moments live in engine.nvme_dir)");
  }
  if (e.nvme_dir.empty()) {
    return absl::InvalidArgumentError("engine.nvme_fraction is set but engine.nvme_dir is not");
  }
  return f;
}

absl::StatusOr<int64_t> NvmeDirFreeBytes(const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError("engine.nvme_dir is empty");
  std::string p = dir;
  struct stat st;
  while (::stat(p.c_str(), &st) != 0) {  // nearest existing ancestor
    if (errno != ENOENT && errno != ENOTDIR) {  // ENOTDIR: an ancestor is a file (reported below)
      return absl::InvalidArgumentError("engine.nvme_dir '" + dir + "': cannot use " + p + ": " +
                                        std::strerror(errno));
    }
    const size_t slash = p.find_last_of('/');
    if (slash == std::string::npos) {
      p = ".";
    } else {
      p = slash == 0 ? "/" : p.substr(0, slash);
    }
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError("engine.nvme_dir '" + dir + "': " + p + " is not a directory");
  }
  if (::access(p.c_str(), W_OK | X_OK) != 0) {
    return absl::InvalidArgumentError("engine.nvme_dir '" + dir + "': " + p + " is not writable: " +
                                      std::strerror(errno));
  }
  struct statvfs vfs;
  if (::statvfs(p.c_str(), &vfs) != 0) return int64_t{0};
  return static_cast<int64_t>(vfs.f_bavail) * static_cast<int64_t>(vfs.f_frsize);
}

namespace {

// The plan with `du_layers` sliding layers updated on the device (already validated).
absl::StatusOr<MemoryPlan> PlanWith(const PlannerInputs& in, int du_layers, bool du_auto) {
  const ModelLayout& layout = *in.layout;
  const ModelConfig& c = *in.config;
  const EngineSpec& e = *in.engine;
  const int64_t es = in.compute_dtype_bytes;
  const int64_t layer = layout.layout(layout.layer_unit(0)).numel();
  const int64_t embed = layout.layout(ModelLayout::kEmbeddingUnit).numel();
  const int64_t head = layout.layout(layout.head_unit()).numel();
  const int L = layout.num_layers();

  // Sliding layers updated on the device (engine.device_update_layers): two staging buffers
  // of one layer's fp32 master + 8-bit codes + scales (+ its gradient in exact steps).
  const int64_t state_staging = du_layers > 0 ? 2 * (Q8StateBytes(layer) + (in.clipped ? es * layer : 0)) : 0;
  // Streamed bf16 steps: the embedding's held-row indices (int64, executor.h), on the device
  // and pinned.
  const int64_t held_idx = es == 2 ? 8 * (e.max_tokens_per_micro_batch > 0
                                              ? std::min(c.vocab_size, e.max_tokens_per_micro_batch)
                                              : c.vocab_size)
                                   : 0;
  // Fixed device buffers: embedding + head weights (compute dtype) and fp32 grad accumulators.
  const int64_t fixed = (embed + head) * (es + 4) + state_staging + held_idx;
  // Activations: saved layer inputs of one micro-batch, plus the working set of one layer
  // (qkv, attention output, MLP intermediates ~ 4 * intermediate + 6 * hidden per token in
  // compute dtype, doubled for autograd recompute) and one LM-head chunk of fp32 logits.
  const int64_t t = e.max_tokens_per_micro_batch > 0 ? e.max_tokens_per_micro_batch : 8192;
  // LM-head chunk: logits [chunk, V] (in place in the compute dtype with the fused CE, else
  // fp32 plus its gradient); under a device budget keep it within 1/8 of the budget.
  const int64_t head_token_bytes = c.vocab_size * (in.fused_cross_entropy ? es : 8);
  int64_t chunk = e.lm_head_chunk_tokens;
  if (e.device_memory_budget > 0) {
    const int64_t fit = e.device_memory_budget / 8 / head_token_bytes;
    chunk = std::clamp<int64_t>(fit / 256 * 256, 256, chunk);
  }
  const int64_t saved_all = static_cast<int64_t>(L) * t * c.hidden_size * es;
  // Decoder layers run in row chunks of at most `layer_tokens` tokens: under a budget, the
  // layer working set (~2 * tokens * (4*I + 8*d) * es with recompute) stays within 1/4 of it.
  int64_t layer_tokens = t;
  if (e.device_memory_budget > 0) {
    const int64_t per_token = 2 * (4 * c.intermediate_size + 8 * c.hidden_size) * es;
    layer_tokens = std::min(t, std::max<int64_t>(1, e.device_memory_budget / 4 / per_token));
  }
  const int64_t working = 2 * layer_tokens * (4 * c.intermediate_size + 8 * c.hidden_size) * es +
                          std::min<int64_t>(chunk, t) * head_token_bytes +
                          2 * t * c.hidden_size * es;  // x and dx of the whole micro-batch
  const int64_t per_slot = 2 * layer * es;  // weights + grads

  // Saved layer inputs stay on the device unless that would not leave room for two layer
  // slots; then they go to pinned host memory (3 on the device: current + prefetch).
  const int64_t budget = e.device_memory_budget > 0 ? e.device_memory_budget : in.device_free * 9 / 10;
  bool offload = e.activations == ActivationPlacement::kHost;
  if (e.activations == ActivationPlacement::kAuto && in.cuda) {
    offload = fixed + saved_all + working + std::min(2, L) * per_slot > budget;
  }
  const int64_t saved = offload ? std::min<int64_t>(3, L) * t * c.hidden_size * es : saved_all;
  int slots = e.window_slots;
  if (slots == 0) {
    if (!in.cuda) {
      slots = std::min(2, L);
    } else {
      const int64_t room = budget - fixed - saved - working;
      slots = static_cast<int>(std::clamp<int64_t>(room / std::max<int64_t>(per_slot, 1), 1, L));
      // Beyond 4 slots streaming is already hidden; more only helps when everything fits.
      if (slots < L) slots = std::min(slots, 4);
    }
  }
  if (slots < 1 || slots > L) {
    return absl::InvalidArgumentError("engine.window_slots=" + std::to_string(slots) +
                                      " must be in [1, " + std::to_string(L) + "]");
  }

  MemoryPlan p;
  p.device_name = in.device_name;
  p.num_layers = L;
  p.window_slots = slots;
  p.resident_layers = slots == L ? L : 0;
  p.activations_on_device = !offload;
  p.lm_head_chunk_tokens = chunk;
  // Room left on the device (the budget, or 90% of what is free) goes to two things:
  //  - the AdamW state (fp32 master, m, v; or master and 8-bit m, v) of the leading units on the
  //    device, which takes their update off the CPU and their weights off PCIe; only with every
  //    layer resident;
  //  - forward graphs kept for backward (no recompute): ~t * (6*I + 12*d) * es per layer; only
  //    with the saved inputs on the device.
  // Whichever bound is larger gets first claim: the CPU AdamW of the whole model (~5 Gparam/s)
  // or the GPU work of the step with recompute (8 * N * tokens at ~700 TFLOP/s, the H200's
  // measured GEMM rate). Explicit engine settings override both.
  const int64_t per_graph = t * (6 * c.intermediate_size + 12 * c.hidden_size) * es;
  const double total_params = static_cast<double>(layout.TotalParams());
  const double cpu_adamw_s = total_params / 5e9;
  const double gpu_step_s = 8.0 * total_params * static_cast<double>(t) / 700e12;
  const bool graphs_first = gpu_step_s > cpu_adamw_s;
  int64_t room = budget - (fixed + slots * per_slot + saved + working);
  int64_t device_opt_bytes = 0;
  // Device bytes of a unit's optimizer state: fp32 master + m + v, or fp32 master + 8-bit codes
  // and block scales; plus a decoder layer's fp32 gradient accumulator when steps accumulate.
  auto opt_bytes = [&](int u) {
    const int64_t n = layout.layout(u).numel();
    const bool layer = layout.unit(u).kind == UnitKind::kDecoderLayer;
    return (in.moments_8bit ? Q8StateBytes(n) : 12 * n) + (layer && in.grad_accumulators ? 4 * n : 0);
  };
  auto claim_optimizer = [&] {
    if (e.device_optimizer_units >= 0) {
      p.device_optimizer_units = std::min(e.device_optimizer_units, layout.num_units());
      for (int u = 0; u < p.device_optimizer_units; ++u) room -= opt_bytes(u);
    } else if (in.cuda && slots == L && !offload) {
      for (int u = 0; u < layout.num_units(); ++u) {
        const int64_t cost = opt_bytes(u);
        if (cost > room) break;
        room -= cost;
        ++p.device_optimizer_units;
      }
    }
    for (int u = 0; u < p.device_optimizer_units; ++u) device_opt_bytes += opt_bytes(u);
  };
  auto claim_graphs = [&] {
    if (e.keep_graph_layers >= 0) {
      p.keep_graph_layers = std::min(e.keep_graph_layers, L);
      room -= p.keep_graph_layers * per_graph;
    } else if (in.cuda && !offload) {
      // With sliding slots only the layers still resident at the turn (the last `slots`) can
      // keep their graph: the executor recomputes any layer whose slot was reloaded.
      p.keep_graph_layers = static_cast<int>(std::clamp<int64_t>(
          std::max<int64_t>(room, 0) / std::max<int64_t>(per_graph, 1), 0, slots));
      room -= p.keep_graph_layers * per_graph;
    }
  };
  // Explicit settings claim first, then the automatic ones in the order above.
  const bool explicit_graphs = e.keep_graph_layers >= 0, explicit_optimizer = e.device_optimizer_units >= 0;
  if (explicit_graphs != explicit_optimizer ? explicit_graphs : graphs_first) {
    claim_graphs();
    claim_optimizer();
  } else {
    claim_optimizer();
    claim_graphs();
  }
  // Offloaded saved inputs: what room is left keeps the last layers' inputs (the first the
  // backward needs) on the device: less pinned host memory and PCIe traffic, no stall at the turn.
  // The room is recomputed here: explicit optimizer/graph settings above do not draw it down. A
  // layer that keeps its graph holds no separate input, so the last keep_graph_layers of the
  // kept layers cost nothing more.
  const int64_t per_input = t * c.hidden_size * es;
  const int64_t claimed = fixed + slots * per_slot + saved + working + p.keep_graph_layers * per_graph +
                          device_opt_bytes;
  if (offload) {
    if (e.device_saved_layers >= 0) {
      p.device_saved_layers = std::min(e.device_saved_layers, L);
    } else if (in.cuda) {
      p.device_saved_layers = static_cast<int>(std::clamp<int64_t>(
          p.keep_graph_layers + std::max<int64_t>(budget - claimed, 0) / per_input, 0, L));
    }
  }
  const int64_t kept_inputs = std::max(0, p.device_saved_layers - p.keep_graph_layers);
  p.layer_chunk_tokens = layer_tokens < t ? layer_tokens : 0;
  // Offloaded inputs in the layers' mirrors (direct steps only): their backward reloads round
  // the fp32 master to bf16 on 4 CPU threads (~6 Gparam/s) into a pinned ring; automatic when
  // that takes under half the layer's backward GEMMs (6 * n * t at ~700 TFLOP/s): micro-batches
  // of ~39k tokens up.
  const bool direct_steps = !in.grad_accumulators;
  if (e.inputs_in_mirrors == 1 && !direct_steps) {
    return absl::InvalidArgumentError(
        "engine.inputs_in_mirrors needs bf16 compute and one micro-batch per step "
        "(engine.max_micro_batches_per_step: 1, i.e. no gradient accumulation)");
  }
  if (offload && p.device_saved_layers < L && e.inputs_in_mirrors != 0) {
    const double rounding_s = static_cast<double>(layer) / 6e9;
    const double backward_s = 6.0 * static_cast<double>(layer) * static_cast<double>(t) / 700e12;
    p.inputs_in_mirrors = direct_steps && (e.inputs_in_mirrors == 1 || (in.cuda && rounding_s < 0.5 * backward_s));
  }
  p.need.device = claimed + kept_inputs * per_input;
  const int64_t staging = std::min(in.staging_elems, std::max({layer, embed, head}));
  const bool bf16 = es == 2;
  p.need.pinned = 2 * layer * es + staging * 4 + (bf16 ? MirrorBytes(layout) + held_idx : 0) +
                  (p.inputs_in_mirrors ? 2 * std::min(in.staging_elems, layer) * es : 0) +
                  (offload ? (L - p.device_saved_layers) *
                                 (p.inputs_in_mirrors ? std::max<int64_t>(0, per_input - layer * es) : per_input)
                           : 0);
  // NVMe tier: the chosen layers' m and v live in files; host keeps their master (and mirror)
  // plus the store's staging buffers (each the largest NVMe unit's m+v).
  SFD_ASSIGN_OR_RETURN(const double nvme_fraction, NvmeFraction(e));
  const std::vector<bool> nvme = NvmeUnits(layout, nvme_fraction, p.device_optimizer_units);
  int64_t nvme_staging = 0;
  for (size_t u = 0; u < nvme.size(); ++u) {
    if (!nvme[u]) continue;
    const int64_t file = NvmeStore::UnitFileBytes(layout.layout(static_cast<int>(u)).numel());
    ++p.nvme_layers;
    p.need.nvme += file;
    nvme_staging = std::max(nvme_staging, file * NvmeStoreOptions{}.staging_buffers);
  }
  p.need.host = HostUnitBytes(layout, bf16, !bf16, nvme, in.moments_8bit) -
                (bf16 ? MirrorBytes(layout) : 0) + nvme_staging;
  // Device-updated sliding layers: their host state is pinned (the same bytes, another tier).
  const std::vector<bool> dev_update =
      DeviceUpdateUnits(layout, du_layers, p.device_optimizer_units, e.device_update_leading);
  for (size_t u = 0; u < dev_update.size(); ++u) {
    if (!dev_update[u]) continue;
    const int64_t n = layout.layout(static_cast<int>(u)).numel();
    ++p.device_update_layers;
    p.need.pinned += Q8StateBytes(n);
    p.need.host -= Q8StateBytes(n);
  }
  p.available.device = in.device_free;
  p.available.host = in.host_available;
  p.available.nvme = in.nvme_available;

  std::ostringstream s;
  s << "model " << c.architecture << " " << layout.TotalParams() / 1e9 << "B params, " << L
    << " layers; device " << in.device_name << ": " << slots << " layer slot(s) of " << L
    << ", need " << Gib(p.need.device) << " device (" << Gib(fixed - state_staging) << " embedding/head, "
    << Gib(slots * per_slot) << " slots, " << Gib(saved + working + kept_inputs * per_input)
    << " activations for " << t << " tokens/micro-batch, saved inputs "
    << (offload ? "offloaded to pinned host" : "on device");
  if (offload) {
    s << " (the last " << p.device_saved_layers << " of " << L << " layers' on the device"
      << (p.inputs_in_mirrors ? "; the others' in the layers' bf16 mirrors, reloads from the fp32 master)" : ")");
  }
  s << ", " << p.keep_graph_layers << " layer graph(s) kept instead of recomputed; AdamW of "
    << p.device_optimizer_units << " unit(s) on the device), "
    << Gib(p.need.pinned)
    << (p.device_update_layers > 0 ? " pinned (bf16 weight/grad mirror + rings + device-updated layers' state), "
                                    : " pinned (bf16 weight/grad mirror + rings), ")
    << Gib(p.need.host)
    << (in.moments_8bit ? " host (fp32 master, 8-bit m+v)" : " host (fp32 master+m+v)");
  if (p.device_update_layers > 0) {
    p.device_update_auto = du_auto;
    s << "; AdamW of " << (du_auto ? "up to " : "") << p.device_update_layers
      << " sliding layer(s) on the device (" << (in.clipped ? "after the backward, exact" : "during the backward")
      << "; " << Gib(state_staging) << " state" << (in.clipped ? " and gradient" : "") << " staging"
      << (du_auto ? "; the count follows measured step times)" : ")");
  }
  if (p.nvme_layers > 0) {
    s << "; AdamW moments of " << p.nvme_layers << " of " << L << " layers on NVMe: "
      << Gib(p.need.nvme) << " in " << e.nvme_dir << " (" << Gib(nvme_staging) << " host staging)";
  }
  p.summary = s.str();

  if (in.cuda) {
    const int64_t limit = e.device_memory_budget > 0 ? e.device_memory_budget : in.device_free;
    if (limit > 0 && p.need.device > limit) {
      return absl::ResourceExhaustedError(
          "memory plan does not fit the device: need " + Gib(p.need.device) + " but " +
          (e.device_memory_budget > 0 ? "engine.gpu_memory_budget is " : "only ") + Gib(limit) +
          (e.device_memory_budget > 0 ? "" : " is free") +
          "; reduce micro_batch_size or max_seq_len, or lower engine.window_slots. Plan: " + p.summary);
    }
  }
  if (in.nvme_available > 0 && p.need.nvme > in.nvme_available) {
    return absl::ResourceExhaustedError("memory plan does not fit engine.nvme_dir " + e.nvme_dir +
                                        ": the AdamW moments need " + Gib(p.need.nvme) + " but " +
                                        Gib(in.nvme_available) +
                                        " is free; lower engine.nvme_fraction. Plan: " + p.summary);
  }
  if (in.host_available > 0 && p.need.host + p.need.pinned > in.host_available) {
    return absl::ResourceExhaustedError("memory plan does not fit host RAM: need " +
                                        Gib(p.need.host + p.need.pinned) + " but " +
                                        Gib(in.host_available) + " is available. Plan: " + p.summary);
  }
  return p;
}

}  // namespace

int AutoDeviceUpdateLayers(int num_layers) { return (2 * num_layers + 2) / 3; }

int DeviceSavedLayersWithoutStaging(const PlannerInputs& in, const MemoryPlan& current) {
  if (current.activations_on_device) return current.device_saved_layers;
  // The plan without the staging for the executor as it is: its slots, kept graphs and
  // device-optimizer units fixed, so the room the staging held goes to saved inputs only.
  EngineSpec e = *in.engine;
  e.window_slots = current.window_slots;
  e.keep_graph_layers = current.keep_graph_layers;
  e.device_optimizer_units = current.device_optimizer_units;
  PlannerInputs fixed = in;
  fixed.engine = &e;
  absl::StatusOr<MemoryPlan> without = PlanWith(fixed, 0, /*du_auto=*/false);
  if (!without.ok() || without->window_slots != current.window_slots ||
      without->layer_chunk_tokens != current.layer_chunk_tokens ||
      without->lm_head_chunk_tokens != current.lm_head_chunk_tokens ||
      without->keep_graph_layers != current.keep_graph_layers) {
    return current.device_saved_layers;
  }
  const int saved = without->activations_on_device ? without->num_layers : without->device_saved_layers;
  return std::max(saved, current.device_saved_layers);
}

absl::StatusOr<MemoryPlan> PlanMemory(const PlannerInputs& in) {
  const EngineSpec& e = *in.engine;
  const int L = in.layout->num_layers();
  if (e.device_update_layers < -1 || e.device_update_layers > L) {
    return absl::InvalidArgumentError("engine.device_update_layers=" + std::to_string(e.device_update_layers) +
                                      " must be auto (-1) or in [0, " + std::to_string(L) + "]");
  }
  if (e.device_update_layers > 0 && !in.moments_8bit) {
    return absl::InvalidArgumentError(
        "engine.device_update_layers needs optimizer adamw_8bit (it streams the 8-bit state)");
  }
  if (e.device_update_layers >= 0) return PlanWith(in, e.device_update_layers, /*du_auto=*/false);
  // auto: candidates only where the device update can run (8-bit moments, direct steps) and
  // layers slide; a plan that does not fit with the staging is made without it. The CPU tier
  // too: there the "device" update is the same CPU's, and the search finds what it is worth.
  absl::StatusOr<MemoryPlan> without = PlanWith(in, 0, false);
  if (!(in.moments_8bit && in.direct_steps)) return without;
  if (without.ok() && without->window_slots == L) return without;  // every layer resident
  absl::StatusOr<MemoryPlan> with = PlanWith(in, AutoDeviceUpdateLayers(L), /*du_auto=*/true);
  if (!with.ok() || with->window_slots == L || with->device_update_layers == 0) return without;
  // (Without the staging a plan may not fit where one with it does: an explicit window_slots
  // whose inputs stay on the device, which the staging pushes to the host. Then it is that.)
  if (!without.ok()) return with;
  // Nor where the staging takes the weight window below kAutoMinSlots (or below the slots the
  // plan without it has, if fewer): with one slot a layer's load waits for the previous
  // layer's compute, and releasing the staging later (v25) gives back saved inputs, not slots.
  // 8B bs64 under 17 GiB: 1 slot with the staging against 4 without, for GEMM-bound steps.
  if (with->window_slots < std::min(without->window_slots, kAutoMinSlots)) return without;
  return with;
}

}  // namespace sfd
