// Trainer: the engine's public entry point. Builds the layer-sliding training engine for one
// HF model from a TrainerSpec, runs optimizer steps on token micro-batches and saves/restores
// checkpoints. The header is torch-free so the daemon's worker and tests include it cheaply.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/data/token_batch.h"
#include "engine/trainer/trainer_spec.h"

namespace sfd {

// What the planner decided before any allocation; a job whose plan does not fit is refused.
struct MemoryPlan {
  TierBytes need;            // bytes the run will use per tier
  TierBytes available;       // bytes the machine offers per tier (0 = unknown/unlimited)
  std::string device_name;   // "cpu" or the CUDA device name
  int num_layers = 0;
  int window_slots = 0;      // decoder-layer slots streamed through the device
  int resident_layers = 0;   // layers kept on the device for the whole run
  bool activations_on_device = true;  // every saved layer input stays on the device
  int device_saved_layers = 0;          // offloaded: the last this-many layers' inputs stay anyway
  bool inputs_in_mirrors = false;       // offloaded inputs live in the layers' mirrors (direct steps)
  int64_t lm_head_chunk_tokens = 4096;  // tokens per LM-head/CE chunk (fp32 logits chunk)
  int64_t layer_chunk_tokens = 0;       // tokens per decoder-layer pass (0 = whole micro-batch)
  int keep_graph_layers = 0;            // layers whose forward graph is kept (no recompute)
  int device_optimizer_units = 0;       // leading units whose AdamW runs on the device
  int device_update_layers = 0;         // sliding layers updated on the device (direct steps)
  bool device_update_auto = false;      // ... at most; the count per step follows measured step times
  int nvme_layers = 0;                  // decoder layers whose AdamW moments live on NVMe
  int cpu_threads = 0;       // CPU AdamW threads (engine.cpu_threads, or the default it stands for)
  int numa_node = -1;        // NUMA node the engine's threads and host arenas are bound to (-1 = unbound)
  std::string summary;       // one human-readable paragraph
};

struct ModelInfo {
  std::string architecture;  // e.g. "LlamaForCausalLM"
  int64_t num_params = 0;
  int64_t num_matmul_params = 0;  // params that take part in matmuls (for FLOPs)
  int num_layers = 0;
  int64_t hidden_size = 0;
  int64_t vocab_size = 0;
};

class Trainer {
 public:
  // Loads the model, computes and checks the memory plan, allocates all tiers.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(const TrainerSpec& spec);
  // The memory plan Create would compute, without allocating or loading weights: validates
  // config.json, plans from it (a plan that does not fit is ResourceExhausted, with the numbers
  // per tier), then checks the safetensors headers (unless random_init). The optimizer and
  // schedule settings are not looked at. Used by the daemon to refuse a job at submission.
  static absl::StatusOr<MemoryPlan> Plan(const TrainerSpec& spec);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  const MemoryPlan& plan() const;
  const ModelInfo& model() const;
  int64_t step() const;  // optimizer steps completed

  // One optimizer step over `micro_batches` (gradient accumulation, token-weighted loss).
  absl::StatusOr<StepStats> Step(const std::vector<TokenBatch>& micro_batches);
  // Sliding layers the next direct steps update on the device: the first `layers` of the
  // plan's device_update_layers candidates (more is InvalidArgument). Stops the auto search.
  // Changes no bit of the training (the same update runs on the device or the CPU).
  absl::Status SetDeviceUpdateLayers(int layers);
  // engine.device_update_layers auto: the count the search chose (nullopt while it runs, or
  // without auto).
  std::optional<int> device_update_choice() const;
  // The sliding layers' units a count of n takes on the device: the first n of this order
  // (EngineSpec::device_update_leading or the spread order); empty without candidates.
  const std::vector<int>& device_update_order() const;
  // Mean cross-entropy over all target tokens of `batches`; no parameter change.
  absl::StatusOr<double> Evaluate(const std::vector<TokenBatch>& batches);
  // Full fp32 logits [rows, seq, vocab] of one batch with the current weights (tests, small
  // models only).
  absl::StatusOr<std::vector<float>> Logits(const TokenBatch& batch);

  // HF-format model directory (sharded safetensors + index + config + tokenizer files).
  absl::Status SaveModel(const std::string& dir);
  // Optimizer state (fp32 master, m, v), step and schedule position, into `dir`.
  absl::Status SaveState(const std::string& dir);
  absl::Status LoadState(const std::string& dir);

 private:
  struct Impl;
  explicit Trainer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sfd
