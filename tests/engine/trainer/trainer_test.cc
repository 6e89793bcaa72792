// Trainer behaviour beyond the golden match: 1-slot sliding equals all-resident training,
// stop/resume reproduces the uninterrupted run, a saved HF checkpoint reloads with the same
// logits, and bad input is a clear error, never a crash.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include "engine/common/remove_tree.h"
#include "engine/io/model_config.h"
#include "engine/model/model_layout.h"
#include "engine/runtime/backend.h"
#include "engine/trainer/trainer.h"
#include "gtest/gtest.h"
#include "tests/engine/trainer/golden_fixture.h"
#include "tests/engine/trainer/trainer_test_util.h"

namespace sfd {
namespace {

using testing::Make;
using testing::LongBatch;

std::vector<double> Train(Trainer& t, const testing::GoldenFixture& f, int from, int to) {
  std::vector<double> losses;
  for (int s = from; s < to; ++s) {
    auto st = t.Step(f.batches[s]);
    EXPECT_TRUE(st.ok()) << st.status();
    losses.push_back(st.ok() ? st->loss : NAN);
  }
  return losses;
}

// Trains `a` and `b` on the fixture's steps and expects the same loss at every step.
void ExpectSameLosses(const testing::GoldenFixture& f, const TrainerSpec& a, const TrainerSpec& b,
                      double rel_tol) {
  auto ta = Make(a);
  auto tb = Make(b);
  ASSERT_TRUE(ta && tb);
  std::vector<double> la = Train(*ta, f, 0, f.steps);
  std::vector<double> lb = Train(*tb, f, 0, f.steps);
  for (int s = 0; s < f.steps; ++s) EXPECT_NEAR(la[s], lb[s], rel_tol * lb[s]) << "step " << s;
}

TEST(TrainerTest, OneSlotSlidingEqualsAllResident) {
  auto f = testing::LoadGolden("qwen3");
  auto sliding = Make(testing::GoldenSpec(f, 1));
  auto resident = Make(testing::GoldenSpec(f, 2));
  ASSERT_TRUE(sliding && resident);
  std::vector<double> a = Train(*sliding, f, 0, f.steps);
  std::vector<double> b = Train(*resident, f, 0, f.steps);
  for (int s = 0; s < f.steps; ++s) EXPECT_NEAR(a[s], b[s], 1e-6 * std::abs(b[s])) << s;
  auto la = sliding->Logits(f.batches[0][0]);
  auto lb = resident->Logits(f.batches[0][0]);
  ASSERT_TRUE(la.ok() && lb.ok());
  EXPECT_LT(testing::RelErr(*la, *lb), 1e-6);
}

TEST(TrainerTest, ActivationOffloadEqualsDeviceActivations) {
  auto f = testing::LoadGolden("llama31");
  TrainerSpec host_spec = testing::GoldenSpec(f, 1);
  host_spec.engine.activations = ActivationPlacement::kHost;
  auto offloaded = Make(host_spec);
  ASSERT_TRUE(offloaded);
  EXPECT_FALSE(offloaded->plan().activations_on_device);
  ExpectSameLosses(f, host_spec, testing::GoldenSpec(f, 1), 1e-6);
}

TEST(TrainerTest, PartialOffloadEqualsDeviceActivations) {
  // Layer 0's input offloaded, layer 1's kept on the device: same losses, one input less pinned.
  auto f = testing::LoadGolden("llama31");
  TrainerSpec host_spec = testing::GoldenSpec(f, 1);
  host_spec.engine.activations = ActivationPlacement::kHost;
  TrainerSpec partial_spec = host_spec;
  partial_spec.engine.device_saved_layers = 1;
  auto partial = Make(partial_spec);
  auto full = Make(host_spec);
  ASSERT_TRUE(partial && full);
  EXPECT_FALSE(partial->plan().activations_on_device);
  EXPECT_EQ(partial->plan().device_saved_layers, 1);
  EXPECT_EQ(full->plan().device_saved_layers, 0);
  EXPECT_LT(partial->plan().need.pinned, full->plan().need.pinned);
  // The kept layer's input makes no round trip: one [tokens, d] input less each way (the
  // executor counts the bytes of the copies it issues).
  const std::vector<TokenBatch>& batches = f.batches[0];
  auto a = partial->Step(batches);
  auto b = full->Step(batches);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  int64_t tokens = 0;
  for (const TokenBatch& mb : batches) tokens += mb.rows * mb.seq;
  const int64_t input_bytes = tokens * partial->model().hidden_size * 4;  // fp32 compute on CPU
  EXPECT_EQ(b->d2h_bytes - a->d2h_bytes, input_bytes);
  EXPECT_EQ(b->h2d_bytes - a->h2d_bytes, input_bytes);
  ExpectSameLosses(f, partial_spec, testing::GoldenSpec(f, 1), 1e-6);
}

void ExpectInputsInMirrorsGiveTheSameBits(DeviceKind device) {
  auto f = testing::LoadGolden("llama31");
  const std::string five = testing::ConfigVariant(f, "five_layers", {{"num_hidden_layers", 5}});
  struct Case {
    std::string model;
    std::vector<TokenBatch> batches;
    int64_t staging_elems;
  };
  std::vector<Case> cases(2);
  cases[0].model = f.model_dir;
  for (int s = 0; s < f.steps; ++s) cases[0].batches.push_back(f.batches[s][0]);
  cases[0].staging_elems = 0;
  cases[1].model = five;
  for (int s = 0; s < 2; ++s) cases[1].batches.push_back(LongBatch(4, 160, 256, s));
  cases[1].staging_elems = 5000;
  for (const Case& c : cases) {
    const ModelLayout layout(*LoadModelConfig(c.model));
    const int64_t n = layout.layout(1).numel(), layers = layout.num_layers();
    for (double clip : {0.0, 1.0}) {
      SCOPED_TRACE(::testing::Message() << c.model << ", max_grad_norm " << clip);
      TrainerSpec own = testing::GoldenSpec(f, 1);
      own.model_dir = c.model;
      own.random_init = c.model == five;
      own.engine.device = device;
      own.engine.compute_dtype = "bf16";
      own.engine.activations = ActivationPlacement::kHost;
      own.engine.device_saved_layers = 0;
      own.engine.max_micro_batches_per_step = 1;
      own.engine.max_tokens_per_micro_batch = 1024;
      own.engine.staging_elems = c.staging_elems;
      own.engine.inputs_in_mirrors = 0;
      own.max_grad_norm = clip;
      TrainerSpec mirrors = own;
      mirrors.engine.inputs_in_mirrors = 1;
      auto a = Make(mirrors);
      auto b = Make(own);
      ASSERT_TRUE(a && b);
      EXPECT_TRUE(a->plan().inputs_in_mirrors);
      EXPECT_FALSE(b->plan().inputs_in_mirrors);
      EXPECT_NE(a->plan().summary.find("in the layers' bf16 mirrors"), std::string::npos) << a->plan().summary;
      // Pinned memory: the reload ring (2 x bf16 [min(staging, layer numel)]) against the part
      // of each offloaded input that now lives in its layer's mirror (a pinned buffer keeps at
      // least one element).
      const int64_t ring = 2 * std::min(c.staging_elems > 0 ? c.staging_elems : int64_t{1} << 24, n) * 2;
      for (size_t s = 0; s < c.batches.size(); ++s) {
        const TokenBatch& mb = c.batches[s];
        const int64_t elems = mb.rows * mb.seq * a->model().hidden_size;
        const int64_t moved = layers * (elems - std::max<int64_t>(1, elems - n)) * 2;
        auto sa = a->Step({mb});
        auto sb = b->Step({mb});
        ASSERT_TRUE(sa.ok() && sb.ok()) << sa.status() << sb.status();
        EXPECT_EQ(sa->loss, sb->loss) << "step " << s;
        EXPECT_EQ(sa->grad_norm, sb->grad_norm) << "step " << s;
        EXPECT_EQ(sa->h2d_bytes, sb->h2d_bytes) << "step " << s;
        EXPECT_EQ(sa->d2h_bytes, sb->d2h_bytes) << "step " << s;
        EXPECT_EQ(sa->peak.pinned - sb->peak.pinned, ring - moved) << "step " << s;
      }
      auto la = a->Logits(c.batches[0]);
      auto lb = b->Logits(c.batches[0]);
      ASSERT_TRUE(la.ok() && lb.ok());
      EXPECT_EQ(testing::RelErr(*la, *lb), 0);
    }
  }
  // It needs every step direct: asked for with gradient accumulation possible, it is refused.
  TrainerSpec accum = testing::GoldenSpec(f, 1);
  accum.engine.compute_dtype = "bf16";
  accum.engine.activations = ActivationPlacement::kHost;
  accum.engine.inputs_in_mirrors = 1;
  auto t = Trainer::Create(accum);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("engine.inputs_in_mirrors"), std::string::npos) << t.status();
}

TEST(TrainerTest, InputsInMirrorsGiveTheSameBits) { ExpectInputsInMirrorsGiveTheSameBits(DeviceKind::kCpu); }

TEST(TrainerTest, CudaInputsInMirrorsGiveTheSameBits) {
  if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device (tested on the GPU machine)";
  ExpectInputsInMirrorsGiveTheSameBits(DeviceKind::kCuda);
}

TEST(TrainerTest, KeptGraphLayerSendsNoInputOut) {
  // Offloaded activations with layer 1 keeping its forward graph (both layers resident): layer
  // 1's input neither goes out nor comes back, the same copies as keeping it on the device,
  // and the losses of device activations.
  auto f = testing::LoadGolden("llama31");
  TrainerSpec graph_spec = testing::GoldenSpec(f, 2);
  graph_spec.engine.activations = ActivationPlacement::kHost;
  graph_spec.engine.keep_graph_layers = 1;
  graph_spec.engine.device_saved_layers = 0;
  TrainerSpec kept_spec = testing::GoldenSpec(f, 2);
  kept_spec.engine.activations = ActivationPlacement::kHost;
  kept_spec.engine.device_saved_layers = 1;
  auto graph = Make(graph_spec);
  auto kept = Make(kept_spec);
  ASSERT_TRUE(graph && kept);
  EXPECT_EQ(graph->plan().keep_graph_layers, 1);
  auto a = graph->Step(f.batches[0]);
  auto b = kept->Step(f.batches[0]);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  EXPECT_GT(a->d2h_bytes, 0);
  EXPECT_EQ(a->d2h_bytes, b->d2h_bytes);
  EXPECT_EQ(a->h2d_bytes, b->h2d_bytes);
  ExpectSameLosses(f, graph_spec, testing::GoldenSpec(f, 1), 1e-6);
}

TEST(TrainerTest, RowChunkedLayersEqualWholeBatch) {
  auto f = testing::LoadGolden("qwen2");
  TrainerSpec chunked_spec = testing::GoldenSpec(f, 1);
  chunked_spec.engine.device_memory_budget = 1;  // forces the smallest row chunk (one row)
  auto chunked = Make(chunked_spec);
  ASSERT_TRUE(chunked);
  EXPECT_GT(chunked->plan().layer_chunk_tokens, 0);
  ExpectSameLosses(f, chunked_spec, testing::GoldenSpec(f, 1), 1e-5);
}

TEST(TrainerTest, KeptGraphsEqualRecompute) {
  // All layers resident and kept from the forward (no recompute) vs 1 sliding slot with
  // recompute: the same losses up to fp32 rounding. Two micro-batches exercise accumulation.
  auto f = testing::LoadGolden("llama_tied_bias");
  TrainerSpec keep_spec = testing::GoldenSpec(f, 2);
  keep_spec.engine.keep_graph_layers = 2;
  auto kept = Make(keep_spec);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->plan().keep_graph_layers, 2);
  ExpectSameLosses(f, keep_spec, testing::GoldenSpec(f, 1), 1e-6);
}

TEST(TrainerTest, DeviceOptimizerEqualsCpuOptimizer) {
  // Embedding, both layers and the head updated by the device AdamW (torch ops) vs the SIMD CPU
  // AdamW: the same losses (two micro-batches per step: accumulate mode), and a resume from a
  // checkpoint written from device state continues identically.
  auto f = testing::LoadGolden("qwen3");
  TrainerSpec dev_spec = testing::GoldenSpec(f, 2);
  dev_spec.engine.device_optimizer_units = 4;
  auto dev = Make(dev_spec);
  ASSERT_TRUE(dev);
  EXPECT_EQ(dev->plan().device_optimizer_units, 4);
  ExpectSameLosses(f, dev_spec, testing::GoldenSpec(f, 2), 1e-5);

  const std::string dir = ::testing::TempDir() + "/device_opt_state";
  (void)::sfd::RemoveTree(dir);
  std::vector<double> want = Train(*dev, f, 0, f.steps);  // a third run, uninterrupted
  auto first = Make(dev_spec);
  ASSERT_TRUE(first);
  Train(*first, f, 0, 4);
  ASSERT_TRUE(first->SaveState(dir).ok());
  auto second = Make(dev_spec);
  ASSERT_TRUE(second);
  ASSERT_TRUE(second->LoadState(dir).ok());
  std::vector<double> got = Train(*second, f, 4, f.steps);
  for (int s = 4; s < f.steps; ++s) EXPECT_NEAR(got[s - 4], want[s], 1e-6 * want[s]) << s;
  // Layers on the device need every layer resident.
  TrainerSpec bad = testing::GoldenSpec(f, 1);
  bad.engine.device_optimizer_units = 3;
  EXPECT_EQ(Trainer::Create(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

// Clipping off + one bf16 micro-batch per step: the CPU AdamW of each unit starts as soon as its
// gradient lands (during the backward, on the optimizer thread, concurrently with the
// backward of the layers before it). Same arithmetic as the update launched after the backward
// with a clip coefficient of exactly 1 — so the runs must match bit for bit.
// The embedding is updated in two parts (all rows but the batch's tokens right after the LM
// head, the token rows at the end), tied (llama_tied_bias) and untied (llama31). Streamed, the
// first part's new weights and the head's go up as soon as they are updated, so a step then
// starts by sending only the previous batch's token rows (and their indices) for the
// embedding and nothing for the head: its H2D bytes are the launched step's plus those rows
// and their indices (the early uploads count in the step whose update made them). Hidden 48
// (random init from a config) leaves alignment padding in the layers' gradient buffers, which
// the rows pass through on their way: the gradient norm shows any left there.
TEST(TrainerTest, StreamedUpdateEqualsUpdateAfterBackward) {
  for (const char* family : {"llama31", "llama_tied_bias", "llama31/hidden48"})
  for (int slots : {1, 2}) {
    SCOPED_TRACE(family);
    const std::string name = family;
    const bool odd = name.find('/') != std::string::npos;
    auto f = testing::LoadGolden(name.substr(0, name.find('/')));
    TrainerSpec streamed = testing::GoldenSpec(f, slots);
    if (odd) {
      streamed.model_dir = testing::ConfigVariant(f, "hidden48", {{"hidden_size", 48}, {"head_dim", 12}});
      streamed.random_init = true;
    }
    absl::StatusOr<ModelConfig> config = LoadModelConfig(streamed.model_dir);
    ASSERT_TRUE(config.ok()) << config.status();
    streamed.engine.compute_dtype = "bf16";
    streamed.max_grad_norm = 0;          // streamed
    TrainerSpec launched = streamed;
    launched.max_grad_norm = 1e30;       // exact clipping path, coefficient min(1, huge) = 1
    auto a = Make(streamed);
    auto b = Make(launched);
    ASSERT_TRUE(a && b);
    for (int s = 0; s < f.steps; ++s) {
      auto sa = a->Step({f.batches[s][0]});
      auto sb = b->Step({f.batches[s][0]});
      ASSERT_TRUE(sa.ok() && sb.ok()) << sa.status() << sb.status();
      EXPECT_EQ(sa->loss, sb->loss) << "slots " << slots << " step " << s;
      EXPECT_EQ(sa->grad_norm, sb->grad_norm) << "slots " << slots << " step " << s;
      // Streamed sends the whole embedding gradient early plus the batch's token rows again.
      EXPECT_GT(sa->d2h_bytes, sb->d2h_bytes) << "slots " << slots << " step " << s;
      if (s > 0) {
        const std::vector<int32_t>& ids = f.batches[s - 1][0].input_ids;
        const int64_t rows = static_cast<int64_t>(std::set<int32_t>(ids.begin(), ids.end()).size());
        EXPECT_EQ(sa->h2d_bytes, sb->h2d_bytes + rows * (config->hidden_size * 2 + 8))
            << "slots " << slots << " step " << s;
      }
    }
    // The evaluation and logits passes after the last step: the streamed trainer's embedding
    // comes from the early upload and that step's rows, its head from the early upload; the
    // launched one loads both whole. Then both already hold them.
    ASSERT_TRUE(a->Evaluate({f.batches[0][0]}).ok());
    ASSERT_TRUE(b->Evaluate({f.batches[0][0]}).ok());
    auto la = a->Logits(f.batches[0][0]);
    auto lb = b->Logits(f.batches[0][0]);
    ASSERT_TRUE(la.ok() && lb.ok());
    EXPECT_EQ(testing::RelErr(*la, *lb), 0) << "slots " << slots;
  }
}

// The embedding and head buffers remember which version they hold; a checkpoint of the same
// step but other weights must still replace them.
TEST(TrainerTest, LoadingAStateOfTheSameStepReloadsEmbeddingAndHead) {
  auto f = testing::LoadGolden("llama31");
  TrainerSpec spec = testing::GoldenSpec(f, 1);
  spec.engine.compute_dtype = "bf16";
  spec.max_grad_norm = 0;
  spec.schedule.warmup_steps = 0;  // the first step moves the weights
  const std::string dir = ::testing::TempDir() + "/same_step_other_weights";
  (void)::sfd::RemoveTree(dir);
  TrainerSpec other = spec;
  other.optimizer.lr *= 3;  // (Adam's first step is about lr * sign(g): change the size)
  auto a = Make(spec);
  auto c = Make(other);
  ASSERT_TRUE(a && c);
  ASSERT_TRUE(a->Step({f.batches[0][0]}).ok());
  ASSERT_TRUE(c->Step({f.batches[0][0]}).ok());
  ASSERT_TRUE(c->SaveState(dir).ok());
  auto before = a->Logits(f.batches[0][0]);  // a's buffers now hold its step-1 weights
  ASSERT_TRUE(a->LoadState(dir).ok());
  ASSERT_EQ(a->step(), 1);
  auto la = a->Logits(f.batches[0][0]);
  auto lc = c->Logits(f.batches[0][0]);
  ASSERT_TRUE(before.ok() && la.ok() && lc.ok());
  EXPECT_GT(testing::RelErr(*before, *lc), 0);  // the two step-1 states differ
  EXPECT_EQ(testing::RelErr(*la, *lc), 0);
}

// A checkpoint with a missing or wrong unit file is refused before any unit is read: the error
// names the file, and the trainer goes on exactly as if the load had not been tried.
TEST(TrainerTest, ABadCheckpointChangesNothing) {
  auto f = testing::LoadGolden("llama31");
  TrainerSpec spec = testing::GoldenSpec(f, 1);
  const std::string dir = ::testing::TempDir() + "/bad_state";
  (void)::sfd::RemoveTree(dir);
  auto a = Make(spec);
  auto b = Make(spec);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Step(f.batches[0]).ok());
  ASSERT_TRUE(b->Step(f.batches[0]).ok());
  ASSERT_TRUE(a->SaveState(dir).ok());
  ASSERT_TRUE(a->Step(f.batches[1]).ok());
  ASSERT_TRUE(b->Step(f.batches[1]).ok());
  // The last unit (the head) is the one read last: without the checks up front, every other
  // unit would have been overwritten with step 1's state by then.
  absl::StatusOr<ModelConfig> config = LoadModelConfig(f.model_dir);
  ASSERT_TRUE(config.ok()) << config.status();
  char name[32];
  std::snprintf(name, sizeof(name), "unit-%05d.safetensors", static_cast<int>(config->num_layers + 1));
  const std::string last = dir + "/optimizer/" + name;
  ASSERT_TRUE(std::filesystem::exists(last)) << last;
  std::filesystem::resize_file(last, std::filesystem::file_size(last) / 2);  // truncated
  absl::Status st = a->LoadState(dir);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find(last), std::string::npos) << st;
  std::filesystem::remove(last);  // missing
  st = a->LoadState(dir);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find(last), std::string::npos) << st;
  EXPECT_EQ(a->step(), 2);
  for (int s = 2; s < f.steps; ++s) {
    auto sa = a->Step(f.batches[s]);
    auto sb = b->Step(f.batches[s]);
    ASSERT_TRUE(sa.ok() && sb.ok()) << sa.status() << sb.status();
    EXPECT_EQ(sa->loss, sb->loss) << "step " << s;
  }
}

// A streamed update cannot be skipped once the norm turns out non-finite: the step fails, the
// trainer refuses to step or save until a checkpoint is loaded, and then trains again.
TEST(TrainerTest, NonFiniteGradientAfterStreamedUpdateNeedsACheckpoint) {
  auto f = testing::LoadGolden("llama31");
  TrainerSpec spec = testing::GoldenSpec(f, 1);
  spec.engine.compute_dtype = "bf16";
  spec.max_grad_norm = 0;
  const std::string dir = ::testing::TempDir() + "/streamed_nan_state";
  (void)::sfd::RemoveTree(dir);
  auto t = Make(spec);
  ASSERT_TRUE(t);
  ASSERT_TRUE(t->Step({f.batches[0][0]}).ok());
  ASSERT_TRUE(t->SaveState(dir).ok());
  TokenBatch poison = f.batches[1][0];
  TrainerSpec huge = spec;
  huge.optimizer.lr = 1e30;  // the next update sends the weights to inf, the step after fails
  auto h = Make(huge);
  ASSERT_TRUE(h);
  ASSERT_TRUE(h->LoadState(dir).ok());
  absl::Status failed;
  for (int s = 1; s < f.steps && failed.ok(); ++s) failed = h->Step({f.batches[s][0]}).status();
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find("load a checkpoint"), std::string::npos) << failed;
  EXPECT_EQ(h->Step({poison}).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(h->SaveState(dir + "-bad").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(h->LoadState(dir).ok());
  EXPECT_EQ(h->step(), 1);
  EXPECT_TRUE(h->Evaluate({poison}).ok());
}

TEST(TrainerTest, MicroBatchLargerThanPlannedIsRefused) {
  auto f = testing::LoadGolden("qwen3");
  TrainerSpec spec = testing::GoldenSpec(f, 1);
  spec.engine.max_tokens_per_micro_batch = 16;  // fixture micro-batches have 2 x 16 tokens
  auto t = Make(spec);
  ASSERT_TRUE(t);
  auto st = t->Step(f.batches[0]);
  EXPECT_EQ(st.status().code(), absl::StatusCode::kResourceExhausted) << st.status();
}

TEST(TrainerTest, ResumeReproducesUninterruptedRun) {
  auto f = testing::LoadGolden("llama31");
  const int k = 4;
  auto full = Make(testing::GoldenSpec(f, 1));
  ASSERT_TRUE(full);
  std::vector<double> want = Train(*full, f, 0, f.steps);

  const std::string dir = ::testing::TempDir() + "/resume_state";
  (void)::sfd::RemoveTree(dir);
  {
    auto first = Make(testing::GoldenSpec(f, 1));
    Train(*first, f, 0, k);
    ASSERT_TRUE(first->SaveState(dir).ok());
  }
  auto second = Make(testing::GoldenSpec(f, 2));
  ASSERT_TRUE(second);
  ASSERT_TRUE(second->LoadState(dir).ok());
  EXPECT_EQ(second->step(), k);
  std::vector<double> got = Train(*second, f, k, f.steps);
  for (int s = k; s < f.steps; ++s) EXPECT_NEAR(got[s - k], want[s], 1e-6 * want[s]) << s;
}

TEST(TrainerTest, SavedModelReloadsWithSameLogits) {
  auto f = testing::LoadGolden("llama_tied_bias");
  auto t = Make(testing::GoldenSpec(f, 1));
  ASSERT_TRUE(t);
  Train(*t, f, 0, 3);
  const std::string dir = ::testing::TempDir() + "/saved_model";
  (void)::sfd::RemoveTree(dir);
  ASSERT_TRUE(t->SaveModel(dir).ok());
  EXPECT_TRUE(std::filesystem::exists(dir + "/config.json"));
  TrainerSpec spec = testing::GoldenSpec(f, 2);
  spec.model_dir = dir;
  auto reloaded = Make(spec);
  ASSERT_TRUE(reloaded);
  auto a = t->Logits(f.batches[5][1]);
  auto b = reloaded->Logits(f.batches[5][1]);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_LT(testing::RelErr(*b, *a), 1e-6);  // fp32 checkpoint: exact up to op order
}

TEST(TrainerTest, BadInputIsAClearError) {
  auto f = testing::LoadGolden("mistral");
  auto t = Make(testing::GoldenSpec(f, 1));
  ASSERT_TRUE(t);
  TokenBatch bad = f.batches[0][0];
  bad.input_ids[5] = 100000;
  auto st = t->Step({bad});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(std::string(st.status().message()).find("outside the vocabulary"), std::string::npos)
      << st.status();
  TokenBatch short_batch = f.batches[0][0];
  short_batch.targets.pop_back();
  EXPECT_EQ(t->Step({short_batch}).status().code(), absl::StatusCode::kInvalidArgument);
  TokenBatch no_targets = f.batches[0][0];
  for (auto& x : no_targets.targets) x = kIgnoreLabel;
  EXPECT_EQ(t->Step({no_targets}).status().code(), absl::StatusCode::kInvalidArgument);
  // The trainer still works after rejected input, and no update happened.
  auto ok = t->Step(f.batches[0]);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->step, 1);
  EXPECT_NEAR(ok->loss, f.expected["losses"][0].get<double>(), 1e-4);

  TrainerSpec missing = testing::GoldenSpec(f, 1);
  missing.model_dir = "/nonexistent/model";
  EXPECT_FALSE(Trainer::Create(missing).ok());
  TrainerSpec slots = testing::GoldenSpec(f, 7);
  EXPECT_EQ(Trainer::Create(slots).status().code(), absl::StatusCode::kInvalidArgument);
  // Bad engine.nvme_dir / engine.nvme_fraction: trainer_nvme_test.cc.
}

TEST(TrainerTest, PackedRowsDoNotAttendAcrossDocuments) {
  // Two documents packed in one row must give the same per-token loss as each alone.
  auto f = testing::LoadGolden("qwen2");
  auto t = Make(testing::GoldenSpec(f, 1));
  ASSERT_TRUE(t);
  const TokenBatch& src = f.batches[0][0];
  const int64_t seq = src.seq, half = seq / 2;
  auto single = [&](int64_t start) {
    TokenBatch b;
    b.rows = 1;
    b.seq = half;
    for (int64_t i = 0; i < half; ++i) {
      b.input_ids.push_back(src.input_ids[start + i]);
      b.targets.push_back(i + 1 < half ? src.input_ids[start + i + 1] : kIgnoreLabel);
      b.position_ids.push_back(static_cast<int32_t>(i));
      b.segment_ids.push_back(0);
    }
    return b;
  };
  TokenBatch a = single(0), b = single(half);
  TokenBatch packed;
  packed.rows = 1;
  packed.seq = seq;
  for (const TokenBatch* d : {&a, &b}) {
    const int32_t segment = d == &a ? 0 : 1;
    for (int64_t i = 0; i < half; ++i) {
      packed.input_ids.push_back(d->input_ids[i]);
      packed.targets.push_back(d->targets[i]);
      packed.position_ids.push_back(d->position_ids[i]);
      packed.segment_ids.push_back(segment);
    }
  }
  auto la = t->Evaluate({a}), lb = t->Evaluate({b}), lp = t->Evaluate({packed});
  ASSERT_TRUE(la.ok() && lb.ok() && lp.ok());
  const double na = a.num_target_tokens(), nb = b.num_target_tokens();
  EXPECT_NEAR(*lp, (*la * na + *lb * nb) / (na + nb), 1e-5);
  // And attention across the boundary would change it: same row as one document differs.
  TokenBatch joined = packed;
  for (auto& s : joined.segment_ids) s = 0;
  for (int64_t i = half; i < seq; ++i) joined.position_ids[i] = static_cast<int32_t>(i);
  auto lj = t->Evaluate({joined});
  ASSERT_TRUE(lj.ok());
  EXPECT_GT(std::abs(*lj - *lp), 1e-4);
}

}  // namespace
}  // namespace sfd
