// Tests server/worker/spec_convert.cc: the resolved wire spec becomes the engine's JobSpec
// field by field, and engine stats become wire messages.
#include "server/worker/spec_convert.h"

#include <gtest/gtest.h>

#include "server/job_yaml.h"

namespace sfd {
namespace {

TEST(SpecConvertTest, EveryFieldReachesTheEngineSpec) {
  auto spec = ParseJobYaml(R"(
name: n
model: /m
output_dir: /o
data: {train: /t, eval: /e, eval_fraction: 0.1, format: messages, chat_template: qwen,
       train_on: all, packing: false, max_seq_len: 99, shuffle: false}
training: {epochs: 3, max_steps: 11, micro_batch_size: 2, gradient_accumulation_steps: 5,
           optimizer: {lr: 0.002, betas: [0.8, 0.9], eps: 1e-7, weight_decay: 0.01},
           lr_scheduler: linear, warmup_steps: 4, min_lr_ratio: 0.1, max_grad_norm: 2, seed: 9}
eval: {every_steps: 6, max_batches: 2}
checkpoint: {every_steps: 7, keep_last: 3, on_cancel: false}
engine: {device: cpu, cuda_device: 1, gpu_memory_budget: 1000, window_slots: 3,
         activation_offload: host, compute_dtype: fp32, cpu_threads: 2, nvme_dir: /nv,
         nvme_fraction: 0.25, lm_head_chunk_tokens: 128, cpu_binding: none}
)");
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto j = ToEngineJobSpec(*spec);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(j->name, "n");
  EXPECT_EQ(j->model_path, "/m");
  EXPECT_EQ(j->output_dir, "/o");
  EXPECT_EQ(j->data.train_path, "/t");
  EXPECT_EQ(j->data.eval_path, "/e");
  EXPECT_DOUBLE_EQ(j->data.eval_fraction, 0.1);
  EXPECT_EQ(j->data.format, DatasetFormat::kMessages);
  EXPECT_EQ(j->data.chat_template, "qwen");
  EXPECT_EQ(j->data.train_on, TrainOn::kAll);
  EXPECT_FALSE(j->data.packing);
  EXPECT_EQ(j->data.max_seq_len, 99);
  EXPECT_FALSE(j->data.shuffle);
  EXPECT_EQ(j->epochs, 3);
  EXPECT_EQ(j->max_steps, 11);
  EXPECT_EQ(j->micro_batch_size, 2);
  EXPECT_EQ(j->gradient_accumulation_steps, 5);
  EXPECT_DOUBLE_EQ(j->optimizer.lr, 0.002);
  EXPECT_DOUBLE_EQ(j->optimizer.beta1, 0.8);
  EXPECT_DOUBLE_EQ(j->optimizer.beta2, 0.9);
  EXPECT_DOUBLE_EQ(j->optimizer.eps, 1e-7);
  EXPECT_DOUBLE_EQ(j->optimizer.weight_decay, 0.01);
  EXPECT_FALSE(j->optimizer.moments_8bit);  // name defaults to adamw
  EXPECT_EQ(j->lr_scheduler, LrScheduleKind::kLinear);
  EXPECT_EQ(j->warmup_steps, 4);
  EXPECT_DOUBLE_EQ(j->min_lr_ratio, 0.1);
  EXPECT_DOUBLE_EQ(j->max_grad_norm, 2);
  EXPECT_EQ(j->seed, 9u);
  EXPECT_EQ(j->eval_every_steps, 6);
  EXPECT_EQ(j->eval_max_batches, 2);
  EXPECT_EQ(j->checkpoint_every_steps, 7);
  EXPECT_EQ(j->keep_last_checkpoints, 3);
  EXPECT_FALSE(j->checkpoint_on_cancel);
  EXPECT_EQ(j->engine.device, DeviceKind::kCpu);
  EXPECT_EQ(j->engine.cuda_device, 1);
  EXPECT_EQ(j->engine.device_memory_budget, 1000);
  EXPECT_EQ(j->engine.window_slots, 3);
  EXPECT_EQ(j->engine.activations, ActivationPlacement::kHost);
  EXPECT_EQ(j->engine.compute_dtype, "fp32");
  EXPECT_EQ(j->engine.cpu_threads, 2);
  EXPECT_EQ(j->engine.nvme_dir, "/nv");
  ASSERT_TRUE(j->engine.nvme_fraction.has_value());
  EXPECT_DOUBLE_EQ(*j->engine.nvme_fraction, 0.25);
  EXPECT_EQ(j->engine.lm_head_chunk_tokens, 128);
  EXPECT_FALSE(j->engine.bind_to_device_node);
}

TEST(SpecConvertTest, Adamw8bitSelectsEightBitMoments) {
  auto spec = ParseJobYaml("model: /m\ndata: {train: /t}\ntraining: {optimizer: {name: adamw_8bit}}\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto j = ToEngineJobSpec(*spec);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_TRUE(j->optimizer.moments_8bit);
  EXPECT_TRUE(j->engine.bind_to_device_node);  // cpu_binding defaults to auto
  spec->mutable_training()->mutable_optimizer()->set_name("sgd");
  auto bad = ToEngineJobSpec(*spec);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("training.optimizer.name"), std::string::npos) << bad.status();
}

TEST(SpecConvertTest, DeviceUpdateLayersReachTheEngineSpec) {
  auto spec = ParseJobYaml(
      "model: /m\ndata: {train: /t}\ntraining: {optimizer: {name: adamw_8bit}, max_grad_norm: 0}\n"
      "engine: {device_update_layers: 6}\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto j = ToEngineJobSpec(*spec);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(j->engine.device_update_layers, 6);
  // auto needs none of the settings a count needs (it plans candidates only where they apply).
  auto a = ToEngineJobSpec(*ParseJobYaml("model: /m\ndata: {train: /t}\nengine: {device_update_layers: auto}\n"));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->engine.device_update_layers, -1);
  // A key with no value keeps the default.
  auto null = ToEngineJobSpec(*ParseJobYaml("model: /m\ndata: {train: /t}\nengine: {device_update_layers: }\n"));
  ASSERT_TRUE(null.ok()) << null.status();
  EXPECT_EQ(null->engine.device_update_layers, 0);
  auto plain = ToEngineJobSpec(*ParseJobYaml("model: /m\ndata: {train: /t}\n"));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->engine.device_update_layers, 0);
}

TEST(SpecConvertTest, InputsInMirrorsReachTheEngineSpec) {
  for (const auto& [text, want] : std::vector<std::pair<std::string, int>>{{"always", 1}, {"never", 0}, {"auto", -1}}) {
    auto spec = ParseJobYaml("model: /m\ndata: {train: /t}\nengine: {inputs_in_mirrors: " + text + "}\n");
    ASSERT_TRUE(spec.ok()) << spec.status();
    auto j = ToEngineJobSpec(*spec);
    ASSERT_TRUE(j.ok()) << j.status();
    EXPECT_EQ(j->engine.inputs_in_mirrors, want) << text;
  }
  auto plain = ToEngineJobSpec(*ParseJobYaml("model: /m\ndata: {train: /t}\n"));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->engine.inputs_in_mirrors, -1);
}

TEST(SpecConvertTest, UnknownEnumStringIsAnError) {
  v1::JobSpec spec;
  spec.mutable_data()->set_format("csv");
  auto j = ToEngineJobSpec(spec);
  ASSERT_FALSE(j.ok());
  EXPECT_NE(std::string(j.status().message()).find("data.format"), std::string::npos);
}

TEST(SpecConvertTest, StepStatsBecomeWireMetrics) {
  StepStats s;
  s.step = 5;
  s.loss = 2.5;
  s.tokens = 1000;
  s.peak.device = 123;
  s.host_rss = 456;
  s.stall_weights_seconds = 0.25;
  s.device_update_layers = 7;
  s.device_update_tuning = true;
  s.optimizer_busy_seconds = 0.125;
  const v1::StepMetrics m = ToProto(s);
  EXPECT_EQ(m.device_update_layers(), 7);
  EXPECT_TRUE(m.device_update_tuning());
  EXPECT_DOUBLE_EQ(m.optimizer_busy_seconds(), 0.125);
  EXPECT_EQ(m.step(), 5);
  EXPECT_DOUBLE_EQ(m.loss(), 2.5);
  EXPECT_EQ(m.tokens(), 1000);
  EXPECT_EQ(m.peak().device(), 123);
  EXPECT_EQ(m.host_rss(), 456);
  EXPECT_DOUBLE_EQ(m.stall_weights_seconds(), 0.25);
}

}  // namespace
}  // namespace sfd
