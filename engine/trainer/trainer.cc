// Trainer: builds the engine for one model (load, plan, allocate) and runs optimizer steps.
// The step, top to bottom: forward+backward of all micro-batches (Executor), exact global grad
// norm, clip coefficient, then the AdamW update launched in the background (OptimizerStage) —
// it overlaps the next step's forward, unit by unit. With clipping off (max_grad_norm <= 0) and
// one bf16 micro-batch, the update is streamed instead: each unit is updated as soon as its
// gradient lands, overlapping the backward too (same arithmetic, earlier start).
#include "engine/trainer/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <thread>

#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "engine/common/status.h"
#include "engine/common/torch_compat.h"
#include "engine/io/hf_model_dir.h"
#include "engine/model/fused_ops.h"
#include "engine/model/model_layout.h"
#include "engine/model/random_init.h"
#include "engine/optim/cpu_adamw.h"
#include "engine/optim/lr_schedule.h"
#include "engine/runtime/backend.h"
#include "engine/runtime/cpu_placement.h"
#include "engine/runtime/executor.h"
#include "engine/runtime/host_arena.h"
#include "engine/runtime/memory_planner.h"
#include "engine/runtime/nvme_store.h"
#include "engine/runtime/optimizer_stage.h"
#include "engine/trainer/device_update_tuner.h"
#include "engine/trainer/optimizer_state_io.h"

namespace sfd {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

absl::StatusOr<at::ScalarType> ComputeDtype(const std::string& name, bool cuda) {
  if (name.empty()) return cuda ? at::kBFloat16 : at::kFloat;
  if (name == "bf16" || name == "bfloat16") return at::kBFloat16;
  if (name == "fp32" || name == "float32") return at::kFloat;
  return absl::InvalidArgumentError("engine.compute_dtype: '" + name +
                                    "' is not supported; use bf16 or fp32");
}

}  // namespace

struct Trainer::Impl {
  TrainerSpec spec;
  std::unique_ptr<HfModelDir> source;
  ModelConfig config;
  std::unique_ptr<ModelLayout> layout;
  ModelInfo info;
  MemoryPlan plan;
  PlannerInputs planner_inputs;  // what the plan was made from (ReleaseDeviceUpdateIfUnused)
  CpuPlacement placement;  // where set-up runs and the engine's threads live
  at::ScalarType dtype = at::kFloat;
  std::unique_ptr<Backend> backend;
  std::vector<HostUnit> host;
  std::unique_ptr<CpuAdamW> adam;  // optimizer threads
  std::unique_ptr<CpuAdamW> io;    // staging / drain conversions
  // NVMe tier for the AdamW moments of `nvme_units` (null without engine.nvme_dir); outlives
  // the optimizer stage that uses it.
  std::unique_ptr<NvmeStore> nvme;
  std::vector<bool> nvme_units;
  // Sliding layers that may be updated on the device (engine.device_update_layers; their state
  // is pinned), in the order counts take them (DeviceUpdateOrder); the first du_count of them
  // are in the steps now; du_tuner picks du_count when the key is auto.
  std::vector<bool> device_update;
  std::vector<int> du_order;
  int du_count = 0;
  std::unique_ptr<DeviceUpdateTuner> du_tuner;
  int64_t nvme_reported = 0;  // NVMe bytes already counted in a StepStats
  std::unique_ptr<OptimizerStage> optimizer;
  std::unique_ptr<Executor> executor;
  int64_t step = 0;
  // Set when a streamed update was applied to part of the model and the step then failed:
  // the weights no longer match any step, so only loading a checkpoint clears it.
  std::string invalid_state;

  // A failed NVMe read/write left a unit un-updated: the state is invalid from then on.
  absl::Status CheckNvme() {
    const absl::Status st = optimizer->status();
    if (st.ok()) return st;
    if (invalid_state.empty()) {
      invalid_state = "the NVMe tier (engine.nvme_dir) failed during the AdamW update of step " +
                      std::to_string(step) + ", which was left incomplete: " + std::string(st.message());
    }
    return absl::Status(st.code(), invalid_state);
  }

  // The first n of du_order updated on the device from the next direct step on.
  absl::Status SetDeviceUpdateCount(int n) {
    if (n == du_count) return absl::OkStatus();
    std::vector<bool> on(layout->num_units(), false);
    for (int k = 0; k < n; ++k) on[du_order[k]] = true;
    SFD_RETURN_IF_ERROR(executor->SetDeviceUpdated(std::move(on)));
    du_count = n;
    return absl::OkStatus();
  }

  // engine.device_update_layers auto chose none: the candidates' staging buffers go, and the
  // saved inputs they displaced come back to the device where the plan without them (same
  // slots and chunks) keeps more. Nothing changes a bit; SetDeviceUpdateLayers then refuses
  // any count but 0.
  absl::Status ReleaseDeviceUpdateIfUnused() {
    if (!(plan.device_update_auto && du_tuner && du_tuner->done() && du_tuner->count() == 0)) {
      return absl::OkStatus();
    }
    plan.device_update_auto = false;  // tried once
    // A search that ended at 0 observed its last step with the count it tried last: apply 0
    // now (that step's device updates are issued; ReleaseDeviceUpdate waits for their copies).
    SFD_RETURN_IF_ERROR(SetDeviceUpdateCount(0));
    SFD_RETURN_IF_ERROR(executor->ReleaseDeviceUpdate());
    du_order.clear();
    plan.device_update_layers = 0;
    const int saved = DeviceSavedLayersWithoutStaging(planner_inputs, plan);
    if (saved > plan.device_saved_layers) {
      spdlog::info("engine.device_update_layers auto chose 0: staging released; the last {} of {} layers' saved "
                   "inputs stay on the device (were {})", saved, plan.num_layers, plan.device_saved_layers);
      executor->set_device_saved_layers(saved);
      plan.device_saved_layers = saved;
    } else {
      spdlog::info("engine.device_update_layers auto chose 0: staging released");
    }
    return absl::OkStatus();
  }

  // bf16 mirrors := bf16(master), e.g. after loading weights or optimizer state.
  void RefreshMirrors() {
    for (HostUnit& h : host)
      if (h.mirror.defined())
        adam->FloatToBf16(h.master.data_ptr<float>(), reinterpret_cast<uint16_t*>(h.mirror.data_ptr()),
                          h.numel());
  }

  // Binds the calling thread to the placement's CPUs until the result goes. Placement is a
  // hint: if the kernel refuses (the process's CPU set changed since the plan), run unbound.
  std::unique_ptr<ScopedCpuAffinity> BindToPlacement() {
    absl::StatusOr<std::unique_ptr<ScopedCpuAffinity>> b = ScopedCpuAffinity::Bind(placement.cpus);
    if (b.ok()) return std::move(b).value();
    spdlog::warn("running unbound: {}", b.status().ToString());
    return nullptr;
  }

  // Model config, device and memory plan (the part Create and Plan share). The plan is made
  // from config.json before the weights are opened, so a model that cannot fit is refused
  // without reading its shards.
  absl::Status LoadAndPlan();
};

absl::Status Trainer::Impl::LoadAndPlan() {
  SFD_ASSIGN_OR_RETURN(config, LoadModelConfig(spec.model_dir));
  layout = std::make_unique<ModelLayout>(config);
  info = {config.architecture, layout->TotalParams(), layout->MatmulParams(),
          layout->num_layers(), config.hidden_size, config.vocab_size};

  SFD_ASSIGN_OR_RETURN(backend, Backend::Create(spec.engine));
  SFD_ASSIGN_OR_RETURN(dtype, ComputeDtype(spec.engine.compute_dtype, backend->is_cuda()));

  if (spec.engine.device_update_layers > 0 &&
      (dtype != at::kBFloat16 || spec.engine.max_micro_batches_per_step > 1)) {
    return absl::InvalidArgumentError(
        "engine.device_update_layers: the device update of sliding layers runs in steps whose "
        "gradients land in the bf16 mirrors, which needs bf16 compute and one micro-batch per "
        "step (engine.max_micro_batches_per_step / gradient_accumulation_steps 1)");
  }
  if (spec.optimizer.moments_8bit && !spec.engine.nvme_dir.empty()) {  // NVMe holds fp32 moments
    return absl::InvalidArgumentError(
        "engine.nvme_dir: the NVMe tier stores fp32 AdamW moments; optimizer adamw_8bit keeps "
        "its 8-bit moments in RAM — use one or the other");
  }
  PlannerInputs pin;
  pin.moments_8bit = spec.optimizer.moments_8bit;
  pin.grad_accumulators = dtype != at::kBFloat16 || spec.engine.max_micro_batches_per_step != 1;
  pin.direct_steps = dtype == at::kBFloat16 && spec.engine.max_micro_batches_per_step == 1;
  pin.clipped = spec.max_grad_norm > 0;
  if (spec.engine.staging_elems > 0) pin.staging_elems = spec.engine.staging_elems;
  pin.config = &config;
  pin.layout = layout.get();
  pin.compute_dtype_bytes = static_cast<int64_t>(c10::elementSize(dtype));
  pin.cuda = backend->is_cuda();
  pin.fused_cross_entropy = pin.cuda && GetFusedOps().fused_kernels;
  pin.device_name = backend->name();
  pin.device_free = backend->Memory().free;
  pin.host_available = HostMemAvailable();
  pin.engine = &spec.engine;
  if (!spec.engine.nvme_dir.empty()) {
    SFD_ASSIGN_OR_RETURN(pin.nvme_available, NvmeDirFreeBytes(spec.engine.nvme_dir));
  }
  SFD_ASSIGN_OR_RETURN(plan, PlanMemory(pin));
  planner_inputs = pin;
  if (spec.engine.bind_to_device_node && backend->is_cuda()) {
    placement = PlaceNearDevice(backend->pci_bus_id(), AllowedCpus());
  } else {
    placement.summary = backend->is_cuda() ? "CPU threads unbound: engine.cpu_binding is none"
                                           : "CPU threads unbound: no GPU";
  }
  plan.numa_node = placement.node;
  // With a GPU the optimizer gets every core: the threads that issue device work and stage
  // copies mostly wait, and the bandwidth-bound AdamW gains from each extra core (H200, 16
  // cores, 3B at bs8 under 8 GiB: 16 threads 0.78 s/step, 14 threads 0.86 s, results of
  // 2026-11-22). On the CPU stand-in tier the device work itself needs cores: all but two.
  // "Every core" is every CPU this thread may run on now: the GPU node's when bound, else the
  // process's mask (a cgroup cpuset or taskset limits it below hardware_concurrency()).
  const int hw = placement.bound() ? static_cast<int>(placement.cpus.size())
                                    : static_cast<int>(AllowedCpus().size());
  const int default_threads = backend->is_cuda() ? std::max(1, hw) : std::max(1, hw - 2);
  plan.cpu_threads = spec.engine.cpu_threads > 0 ? spec.engine.cpu_threads : default_threads;
  plan.summary += absl::StrCat("; ", placement.summary, "; ", plan.cpu_threads, " CPU optimizer threads.");

  if (!spec.random_init) {
    SFD_ASSIGN_OR_RETURN(source, HfModelDir::Open(spec.model_dir));
  }
  return absl::OkStatus();
}

absl::StatusOr<MemoryPlan> Trainer::Plan(const TrainerSpec& spec) {
  Impl m;
  m.spec = spec;
  SFD_RETURN_IF_ERROR(m.LoadAndPlan());
  return std::move(m.plan);
}

Trainer::Trainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Trainer::~Trainer() {
  if (impl_) {
    // The update in flight may read executor buffers (the embedding's staged token rows):
    // let it finish before the executor goes.
    if (impl_->optimizer) {
      impl_->optimizer->FinishStreaming();
      impl_->optimizer->WaitAll();
    }
    impl_->executor.reset();   // joins its threads
    impl_->optimizer.reset();
  }
}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const TrainerSpec& spec) {
  auto m = std::make_unique<Impl>();
  m->spec = spec;
  SFD_RETURN_IF_ERROR(ValidateLrSchedule(spec.schedule));
  const OptimizerSpec& o = spec.optimizer;
  if (!(o.lr >= 0) || !(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1) ||
      !(o.eps > 0) || !(o.weight_decay >= 0)) {
    return absl::InvalidArgumentError("optimizer: need lr >= 0, 0 <= betas < 1, eps > 0, weight_decay >= 0");
  }
  SFD_RETURN_IF_ERROR(m->LoadAndPlan());
  const ModelLayout& layout = *m->layout;
  // Everything below runs on the GPU's NUMA node: the host arenas are first touched there and
  // every engine thread is created there (and keeps the binding); the caller is unbound again
  // when Create returns.
  std::unique_ptr<ScopedCpuAffinity> bound = m->BindToPlacement();
  // ATen's host pool (arena zero-fill, gradient accumulation) sized to the node, not the machine.
  if (m->placement.bound()) at::set_num_threads(static_cast<int>(m->placement.cpus.size()));

  const bool bf16 = m->dtype == at::kBFloat16;
  SFD_ASSIGN_OR_RETURN(const double nvme_fraction, NvmeFraction(spec.engine));
  m->nvme_units = NvmeUnits(layout, nvme_fraction, m->plan.device_optimizer_units);
  if (!m->nvme_units.empty()) {
    std::vector<int64_t> numels(layout.num_units(), 0);
    for (int u = 0; u < layout.num_units(); ++u)
      if (m->nvme_units[u]) numels[u] = layout.layout(u).numel();
    absl::StatusOr<std::unique_ptr<NvmeStore>> store = NvmeStore::Create(spec.engine.nvme_dir, numels);
    if (!store.ok()) {
      return absl::Status(store.status().code(), "engine.nvme_dir: " + std::string(store.status().message()));
    }
    m->nvme = std::move(store).value();
  }
  const bool leading = spec.engine.device_update_leading;
  m->device_update = DeviceUpdateUnits(layout, m->plan.device_update_layers, m->plan.device_optimizer_units, leading);
  m->du_order = DeviceUpdateOrder(layout, m->plan.device_optimizer_units, leading);
  m->du_order.resize(std::min<size_t>(m->du_order.size(), m->plan.device_update_layers));
  SFD_ASSIGN_OR_RETURN(m->host, AllocateHostUnits(layout, m->backend.get(), bf16, /*all_grads=*/!bf16,
                                                  m->nvme_units, spec.optimizer.moments_8bit,
                                                  m->device_update));
  m->adam = std::make_unique<CpuAdamW>(m->plan.cpu_threads);
  for (int u = 0; u < layout.num_units(); ++u) {
    float* master = m->host[u].master.data_ptr<float>();
    for (const ParamEntry& p : layout.layout(u).params()) {
      if (spec.random_init) {
        RandomInit(p, spec.init_std, spec.seed * 1000003 + u, master + p.offset, m->adam->pool());
      } else {
        SFD_RETURN_IF_ERROR(m->source->ReadFloat(layout.HfName(u, p),
                                                 absl::Span<float>(master + p.offset, p.numel)));
      }
    }
  }
  m->io = std::make_unique<CpuAdamW>(std::max(1, m->adam->num_threads() / 4));
  m->RefreshMirrors();
  m->optimizer = std::make_unique<OptimizerStage>(&m->host, m->adam.get());
  ExecutorOptions eo;
  eo.compute_dtype = m->dtype;
  eo.num_slots = m->plan.window_slots;
  eo.lm_head_chunk_tokens = m->plan.lm_head_chunk_tokens;
  eo.offload_activations = !m->plan.activations_on_device;
  eo.device_saved_layers = m->plan.device_saved_layers;
  eo.inputs_in_mirrors = m->plan.inputs_in_mirrors;
  if (spec.engine.staging_elems > 0) eo.staging_elems = spec.engine.staging_elems;
  eo.layer_chunk_tokens = m->plan.layer_chunk_tokens;
  eo.keep_graph_layers = m->plan.keep_graph_layers;
  eo.device_optimizer_units = m->plan.device_optimizer_units;
  eo.device_update_units = m->device_update;
  eo.device_update_grads = spec.max_grad_norm > 0;  // exact steps stage the gradient too
  eo.max_tokens_per_micro_batch = spec.engine.max_tokens_per_micro_batch;
  eo.profile = std::getenv("SFD_PROFILE") != nullptr;
  eo.memory_trace = std::getenv("SFD_MEMORY_TRACE") != nullptr;
  OptimizerStage* stage = m->optimizer.get();
  eo.wait_for_update = [stage](int u, int64_t v) { stage->WaitUnit(u, v); };
  eo.update_done = [stage](int u, int64_t v) { return stage->UnitDone(u, v); };
  eo.grad_landed = [stage](int u, std::shared_ptr<Event> e) { stage->MarkReady(u, std::move(e)); };
  eo.grad_updated = [stage](int u, std::shared_ptr<Event> e) { stage->MarkUpdated(u, std::move(e)); };
  eo.grad_partial = [stage](int u, std::shared_ptr<Event> e, std::vector<int32_t> rows, int64_t d) {
    stage->MarkPartial(u, std::move(e), std::move(rows), d);
  };
  eo.grad_rows = [stage](int u, std::shared_ptr<Event> e, uint16_t* staged) {
    stage->MarkRows(u, std::move(e), staged);
  };
  eo.early_uploads = true;  // set_on_streamed_update below
  // The budget caps what the device allocator holds (cached blocks too), not only the plan.
  SFD_RETURN_IF_ERROR(m->backend->SetMemoryLimit(spec.engine.device_memory_budget));
  SFD_ASSIGN_OR_RETURN(m->executor, Executor::Create(m->config, layout, m->backend.get(), &m->host,
                                                     m->io.get(), eo));
  m->optimizer->set_device_units(m->plan.device_optimizer_units);
  m->optimizer->set_on_streamed_update(
      [e = m->executor.get()](int u, int64_t step, bool partial, const std::shared_ptr<Event>& landed) {
        e->HostUnitUpdated(u, step, partial, landed);
      });
  m->optimizer->set_nvme(m->nvme.get());
  m->du_count = static_cast<int>(m->du_order.size());
  if (m->plan.device_update_auto) {  // from none, as the tuner starts
    DeviceUpdateTunerOptions o;
    o.cpu_bound_fraction = spec.engine.device_update_cpu_bound;
    m->du_tuner = std::make_unique<DeviceUpdateTuner>(m->du_count, o);
    SFD_RETURN_IF_ERROR(m->SetDeviceUpdateCount(m->du_tuner->count()));
  }
  return std::unique_ptr<Trainer>(new Trainer(std::move(m)));
}

absl::Status Trainer::SetDeviceUpdateLayers(int layers) {
  Impl& m = *impl_;
  if (!m.invalid_state.empty()) return absl::FailedPreconditionError(m.invalid_state);
  if (layers < 0 || layers > static_cast<int>(m.du_order.size())) {
    return absl::InvalidArgumentError("device-updated layers " + std::to_string(layers) + " must be in [0, " +
                                      std::to_string(m.du_order.size()) +
                                      "] (the plan's engine.device_update_layers candidates)");
  }
  m.du_tuner.reset();
  return m.SetDeviceUpdateCount(layers);
}

const MemoryPlan& Trainer::plan() const { return impl_->plan; }
const ModelInfo& Trainer::model() const { return impl_->info; }
int64_t Trainer::step() const { return impl_->step; }

absl::StatusOr<StepStats> Trainer::Step(const std::vector<TokenBatch>& micro_batches) {
  Impl& m = *impl_;
  // Buffers made on the first step (offloaded activations, accumulation arenas) belong on the
  // GPU's node too, and the launching thread runs there.
  std::unique_ptr<ScopedCpuAffinity> bound = m.BindToPlacement();
  if (!m.invalid_state.empty()) return absl::FailedPreconditionError(m.invalid_state);
  const int max_mb = m.spec.engine.max_micro_batches_per_step;
  if (max_mb > 0 && static_cast<int>(micro_batches.size()) > max_mb) {
    return absl::InvalidArgumentError(
        "a step of " + std::to_string(micro_batches.size()) + " micro-batches, but "
        "engine.max_micro_batches_per_step is " + std::to_string(max_mb) + " (the memory plan assumed it)");
  }
  SFD_RETURN_IF_ERROR(m.CheckNvme());
  const double t0 = Now();
  StepStats st;
  for (const TokenBatch& b : micro_batches) {
    st.tokens += b.num_tokens();
    st.target_tokens += b.num_target_tokens();
  }
  if (st.target_tokens == 0) {
    return absl::InvalidArgumentError("optimizer step has no target tokens (every label is ignored)");
  }
  m.backend->ResetPeak();
  st.lr = LrAt(m.spec.schedule, m.spec.optimizer.lr, m.step);
  AdamWStep hp;
  hp.lr = static_cast<float>(st.lr);
  hp.beta1 = static_cast<float>(m.spec.optimizer.beta1);
  hp.beta2 = static_cast<float>(m.spec.optimizer.beta2);
  hp.eps = static_cast<float>(m.spec.optimizer.eps);
  hp.weight_decay = static_cast<float>(m.spec.optimizer.weight_decay);
  hp.step = m.step + 1;
  hp.grad_scale = 1.0f;

  // 1. Forward + backward of every micro-batch. Direct mode (bf16, no accumulation): layer
  //    grads land in the bf16 mirrors and their norm is summed on the device; otherwise they
  //    accumulate in fp32 host arenas. Streamed: without clipping, the CPU AdamW of each unit
  //    starts as soon as its gradient has landed (during the backward).
  const bool direct = m.dtype == at::kBFloat16 && micro_batches.size() == 1;
  const bool streamed = direct && !(m.spec.max_grad_norm > 0);
  if (!direct) SFD_RETURN_IF_ERROR(EnsureGradArenas(&m.host));
  // The search's count while it runs, its choice once it has ended. Device-updated layers
  // run in direct steps: during the backward when streamed, after it when exact.
  const bool tuning = direct && m.du_tuner && !m.du_tuner->done();
  if (direct && m.du_tuner) SFD_RETURN_IF_ERROR(m.SetDeviceUpdateCount(m.du_tuner->count()));
  if (streamed) {
    m.optimizer->BeginStreaming(hp);
    m.executor->set_stream_update_step(hp);
  }
  absl::StatusOr<PassStats> pass_or =
      m.executor->Train(micro_batches, 1.0 / st.target_tokens, m.step, direct, streamed);
  if (streamed && !pass_or.ok()) {
    m.optimizer->AbortStreaming();
    m.optimizer->WaitAll();
    m.RefreshMirrors();
    m.invalid_state = "step " + std::to_string(m.step + 1) + " failed after its streamed update (max_grad_norm: 0) had "
                      "changed part of the model: load a checkpoint to continue (" +
                      std::string(pass_or.status().message()) + ")";
  }
  // A failed direct pass may have left gradients (and, with inputs in mirrors, saved inputs)
  // in the mirrors: restore the weights there.
  if (!streamed && direct && !pass_or.ok()) {
    m.optimizer->WaitAll();  // the previous step's update may still write mirrors
    m.RefreshMirrors();
  }
  SFD_RETURN_IF_ERROR(pass_or.status());
  SFD_RETURN_IF_ERROR(m.CheckNvme());  // the previous update overlapped this pass
  PassStats pass = *pass_or;

  // 2. Exact global grad norm and clip coefficient (torch.nn.utils.clip_grad_norm_).
  double sumsq = pass.grad_sumsq;
  if (!direct) {
    sumsq = pass.device_grad_sumsq;
    for (int u = 0; u < static_cast<int>(m.host.size()); ++u) {
      if (m.executor->OnDevice(u)) continue;
      sumsq += m.adam->SumSquares(m.host[u].grad.data_ptr<float>(), m.host[u].numel());
    }
  }
  st.grad_norm = std::sqrt(sumsq);
  if (!std::isfinite(st.grad_norm)) {
    const std::string what = "non-finite gradient norm at step " + std::to_string(m.step + 1);
    if (streamed) {  // the update already ran on part of the model
      m.optimizer->FinishStreaming();
      m.optimizer->WaitAll();
      m.invalid_state = what + ": with clipping off (max_grad_norm: 0) the update overlaps the "
                        "backward and was applied; load a checkpoint to continue (lower the learning rate?)";
      return absl::InternalError(m.invalid_state);
    }
    if (direct) m.RefreshMirrors();  // the mirrors hold this step's grads: restore the weights
    return absl::InternalError(what + "; the update was skipped (lower the learning rate?)");
  }
  double clip = 1.0;
  if (m.spec.max_grad_norm > 0) clip = std::min(1.0, m.spec.max_grad_norm / (st.grad_norm + 1e-6));
  hp.grad_scale = static_cast<float>(clip);

  // 3. AdamW: device-resident units now, the rest on the CPU in the background, unit by unit in
  //    forward order (streamed: the units whose gradient has not been announced yet).
  SFD_RETURN_IF_ERROR(m.executor->DeviceUpdate(hp, direct));
  if (streamed) {
    m.optimizer->FinishStreaming();
  } else {
    std::vector<std::shared_ptr<Event>> on_device;  // exact: device-updated sliding layers
    if (direct) {
      absl::StatusOr<std::vector<std::shared_ptr<Event>>> du = m.executor->ExactDeviceUpdates(hp, &pass);
      if (!du.ok()) {  // some layers may have been updated: their mirrors hold weights, others grads
        m.optimizer->WaitAll();
        // Copies already issued land first (a device fault fails this too: nothing then lands).
        (void)compat::CatchTorch("waiting for the device", [&] { m.backend->Synchronize(); });
        m.RefreshMirrors();
        m.invalid_state = "step " + std::to_string(m.step + 1) + " failed in the device update of sliding layers "
                          "(engine.device_update_layers), which left part of the model updated; this engine "
                          "takes no more steps: restart the job from a checkpoint (" +
                          std::string(du.status().message()) + ")";
        return absl::Status(du.status().code(), m.invalid_state);
      }
      on_device = std::move(du).value();
    }
    m.optimizer->Launch(hp, direct, std::move(on_device));
  }
  m.step += 1;

  st.step = m.step;
  st.loss = pass.ce_sum / st.target_tokens;
  st.step_seconds = Now() - t0;
  st.forward_seconds = pass.forward_seconds;
  st.backward_seconds = pass.backward_seconds;
  st.optimizer_seconds = m.optimizer->last_update_seconds();
  st.optimizer_busy_seconds = m.optimizer->last_update_busy_seconds();
  st.stall_weights_seconds = pass.stall_weights_seconds;
  st.stall_optimizer_seconds = pass.stall_optimizer_seconds + pass.stall_drain_seconds;
  st.stall_activations_seconds = pass.stall_activations_seconds;
  st.h2d_bytes = pass.h2d_bytes;
  st.d2h_bytes = pass.d2h_bytes;
  st.device_update_layers = direct ? m.du_count : 0;
  st.device_update_tuning = tuning;
  if (tuning) {
    m.du_tuner->Observe(st.step_seconds, st.optimizer_busy_seconds, st.tokens, pass.stall_optimizer_seconds);
    if (m.du_tuner->done()) {
      spdlog::info("engine.device_update_layers auto: {}", m.du_tuner->Summary());
      const absl::Status released = m.ReleaseDeviceUpdateIfUnused();
      if (!released.ok()) spdlog::warn("engine.device_update_layers auto: staging kept: {}", released.ToString());
    }
  }
  const DeviceMemory dm = m.backend->Memory();
  st.peak.device = dm.peak;
  st.device_reserved = dm.reserved_peak;
  st.peak.pinned = m.backend->pinned_bytes();
  st.peak.host = HostUnitBytes(*m.layout, m.dtype == at::kBFloat16,
                               m.host[m.layout->layer_unit(0)].grad.defined(), m.nvme_units,
                               m.spec.optimizer.moments_8bit);
  for (size_t u = 0; u < m.device_update.size(); ++u) {  // their state is pinned (peak.pinned)
    if (!m.device_update[u]) continue;
    st.peak.host -= Q8StateBytes(m.host[u].numel());
  }
  if (m.nvme) {  // the update's I/O runs in the background: bytes moved since the last report
    st.peak.host += m.nvme->staging_bytes();
    st.peak.nvme = m.nvme->file_bytes();
    const int64_t moved = m.nvme->bytes_read() + m.nvme->bytes_written();
    st.nvme_bytes = moved - m.nvme_reported;
    m.nvme_reported = moved;
  }
  st.host_rss = ProcessRss();
  int64_t seq = micro_batches.front().seq;
  st.model_flops = (6.0 * m.info.num_matmul_params + 6.0 * m.info.num_layers * m.info.hidden_size * seq) *
                   static_cast<double>(st.tokens);
  return st;
}

std::optional<int> Trainer::device_update_choice() const {
  const Impl& m = *impl_;
  if (!m.du_tuner || !m.du_tuner->done()) return std::nullopt;
  return m.du_tuner->count();
}

const std::vector<int>& Trainer::device_update_order() const { return impl_->du_order; }

absl::StatusOr<double> Trainer::Evaluate(const std::vector<TokenBatch>& batches) {
  if (impl_->du_tuner) impl_->du_tuner->Disturbed();
  int64_t targets = 0;
  for (const TokenBatch& b : batches) targets += b.num_target_tokens();
  if (targets == 0) return absl::InvalidArgumentError("evaluation batches have no target tokens");
  SFD_ASSIGN_OR_RETURN(PassStats pass, impl_->executor->Evaluate(batches, impl_->step));
  return pass.ce_sum / targets;
}

absl::StatusOr<std::vector<float>> Trainer::Logits(const TokenBatch& batch) {
  SFD_ASSIGN_OR_RETURN(at::Tensor logits, impl_->executor->Logits(batch, impl_->step));
  at::Tensor c = logits.contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

absl::Status Trainer::SaveModel(const std::string& dir) {
  Impl& m = *impl_;
  if (m.du_tuner) m.du_tuner->Disturbed();
  if (!m.invalid_state.empty()) return absl::FailedPreconditionError(m.invalid_state);
  m.optimizer->WaitAll();
  SFD_RETURN_IF_ERROR(m.CheckNvme());
  SFD_RETURN_IF_ERROR(m.executor->DownloadDeviceState());
  const ModelLayout& layout = *m.layout;
  std::vector<TensorSource> tensors;
  for (int u = 0; u < layout.num_units(); ++u) {
    for (const ParamEntry& p : layout.layout(u).params()) {
      const float* src = m.host[u].master.data_ptr<float>() + p.offset;
      const int64_t n = p.numel;
      tensors.push_back({layout.HfName(u, p), p.shape,
                         [src, n](float* dst) { std::memcpy(dst, src, n * sizeof(float)); }});
    }
  }
  HfWriteOptions opts;
  const std::string& td = m.config.torch_dtype;
  opts.dtype = td == "float32" ? DType::kF32 : td == "float16" ? DType::kF16 : DType::kBF16;
  opts.copy_tokenizer_from = m.spec.model_dir;
  return WriteHfModelDir(dir, m.config, tensors, opts);
}

absl::Status Trainer::SaveState(const std::string& dir) {
  if (impl_->du_tuner) impl_->du_tuner->Disturbed();  // waits for the update in flight
  Impl& m = *impl_;
  if (!m.invalid_state.empty()) return absl::FailedPreconditionError(m.invalid_state);
  m.optimizer->WaitAll();
  SFD_RETURN_IF_ERROR(m.CheckNvme());
  SFD_RETURN_IF_ERROR(m.executor->DownloadDeviceState());
  return WriteOptimizerState(dir, *m.layout, m.host, m.step, m.nvme.get());
}

absl::Status Trainer::LoadState(const std::string& dir) {
  if (impl_->du_tuner) impl_->du_tuner->Disturbed();
  Impl& m = *impl_;
  m.optimizer->WaitAll();
  bool modified = false;
  absl::StatusOr<int64_t> read = ReadOptimizerState(dir, *m.layout, &m.host, m.nvme.get(), &modified);
  if (!read.ok()) {
    if (modified) {  // the checkpoint passed its checks but a read failed: the arenas are mixed
      m.invalid_state = "loading the optimizer state from " + dir + " failed after part of it was read (" +
                        std::string(read.status().message()) + "): load a checkpoint to continue";
      (void)m.executor->UploadDeviceState();  // nothing on the device may pass for current
    }
    return read.status();
  }
  const int64_t step = *read;
  m.step = step;
  m.RefreshMirrors();
  SFD_RETURN_IF_ERROR(m.executor->UploadDeviceState());
  m.optimizer->ResetVersions(step);
  m.invalid_state.clear();
  return absl::OkStatus();
}

}  // namespace sfd
