// Tests server/job_yaml.cc: strict job.yaml parsing, defaults, validation messages naming the
// field, path resolution against roots (.., symlink escapes), and YAML round trips.
#include "server/job_yaml.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "absl/strings/match.h"

namespace sfd {
namespace {

namespace fs = std::filesystem;

TEST(JobYamlTest, ParsesFullSpecAndKeepsValues) {
  auto spec = ParseJobYaml(R"(
name: my-run
model: /models/tiny
output_dir: run1
data:
  train: train.jsonl
  eval: eval.jsonl
  format: alpaca
  train_on: all
  packing: false
  max_seq_len: 512
training:
  max_steps: 40
  micro_batch_size: 2
  gradient_accumulation_steps: 4
  optimizer: {lr: 3e-4, betas: [0.9, 0.95], eps: 1e-6, weight_decay: 0.1}
  lr_scheduler: linear
  warmup_steps: 5
  max_grad_norm: 0.5
  seed: 7
eval: {every_steps: 10, max_batches: 3}
checkpoint: {every_steps: 20, keep_last: 1, on_cancel: false}
engine: {device: cpu, gpu_memory_budget: 2GiB, activation_offload: host, compute_dtype: fp32}
)");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name(), "my-run");
  EXPECT_EQ(spec->data().format(), "alpaca");
  EXPECT_FALSE(spec->data().packing());
  EXPECT_EQ(spec->data().max_seq_len(), 512);
  EXPECT_EQ(spec->training().max_steps(), 40);
  EXPECT_DOUBLE_EQ(spec->training().optimizer().lr(), 3e-4);
  EXPECT_DOUBLE_EQ(spec->training().optimizer().beta2(), 0.95);
  EXPECT_EQ(spec->training().lr_scheduler(), "linear");
  EXPECT_EQ(spec->training().seed(), 7u);
  EXPECT_EQ(spec->eval().every_steps(), 10);
  EXPECT_EQ(spec->checkpoint().keep_last(), 1);
  EXPECT_FALSE(spec->checkpoint().on_cancel());
  EXPECT_EQ(spec->engine().gpu_memory_budget(), int64_t{2} << 30);
  EXPECT_EQ(spec->engine().activation_offload(), "host");
}

TEST(JobYamlTest, FillsDefaultsFromTheEngine) {
  auto spec = ParseJobYaml("model: m\ndata: {train: t.jsonl}\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->training().epochs(), 1);
  EXPECT_EQ(spec->training().micro_batch_size(), 1);
  EXPECT_EQ(spec->training().optimizer().name(), "adamw");
  EXPECT_GT(spec->training().optimizer().lr(), 0);
  EXPECT_EQ(spec->data().format(), "auto");
  EXPECT_TRUE(spec->data().packing());
  EXPECT_EQ(spec->engine().device(), "auto");
  EXPECT_EQ(spec->engine().cpu_binding(), "auto");
}

struct BadCase {
  const char* yaml;
  const char* expect;  // substring of the error
};

TEST(JobYamlTest, RejectsBadInputNamingTheField) {
  const BadCase cases[] = {
      {"model: m\ndata: {train: t}\ntraining: {optimizer: {lr: -0.001}}\n", "training.optimizer.lr"},
      {"model: m\ndata: {train: t}\ntraining: {optimizer: {lr: abc}}\n", "training.optimizer.lr (line 3)"},
      {"model: m\ndata: {train: t}\nlearning_rate: 1\n", "learning_rate (line 3): unknown key"},
      {"model: m\ndata: {train: t, fromat: alpaca}\n", "data.fromat (line 2): unknown key"},
      {"model: m\ndata: {train: t}\ntraining: {micro_batch_size: 0}\n", "training.micro_batch_size"},
      {"model: m\ndata: {train: t}\ntraining: {epochs: 0}\n", "training.epochs"},
      {"model: m\ndata: {train: t, format: csv}\n", "data.format: must be one of"},
      {"model: m\ndata: {train: t}\ntraining: {optimizer: {betas: [0.9]}}\n", "training.optimizer.betas"},
      {"model: m\ndata: {train: t}\ntraining: {optimizer: {betas: [0.9, 1.5]}}\n", "betas[1]"},
      {"model: m\ndata: {train: t}\ntraining: {lr_scheduler: step}\n", "training.lr_scheduler"},
      {"model: m\ndata: {train: t}\nengine: {gpu_memory_budget: 12 parsecs}\n", "engine.gpu_memory_budget"},
      {"model: m\ndata: {train: t}\ncheckpoint: {keep_last: 0}\n", "checkpoint.keep_last"},
      {"model: m\ndata: {train: t}\nengine: {nvme_dir: nv, nvme_fraction: 1.5}\n", "engine.nvme_fraction: must be in [0, 1]"},
      {"model: m\ndata: {train: t}\nengine: {nvme_fraction: 0.5}\n", "engine.nvme_fraction: is set but engine.nvme_dir is not"},
      {"model: m\ndata: {train: t}\nengine: {nvme_dir: nv, nvme_fraction: half}\n", "engine.nvme_fraction (line 3)"},
      {"model: m\ndata: {train: t}\ntraining: {optimizer: {name: adam8}}\n", "training.optimizer.name: must be one of"},
      {"model: m\ndata: {train: t}\ntraining: {optimizer: {name: adamw_8bit}}\nengine: {nvme_dir: nv}\n",
       "training.optimizer.name: adamw_8bit keeps its 8-bit moments in RAM and cannot be combined with engine.nvme_dir"},
      {"model: m\ndata: {train: t}\nengine: {cpu_binding: node0}\n", "engine.cpu_binding: must be one of [auto, none], got 'node0'"},
      {"model: m\ndata: {train: t}\nengine: {device_update_layers: -1}\n",
       "engine.device_update_layers (line 3): must be auto or a layer count >= 0, got '-1'"},
      {"model: m\ndata: {train: t}\nengine: {device_update_layers: many}\n",
       "engine.device_update_layers (line 3): must be auto or a layer count >= 0, got 'many'"},
      {"model: m\ndata: {train: t}\ntraining: {max_grad_norm: 0}\nengine: {device_update_layers: 4}\n",
       "engine.device_update_layers: needs training.optimizer.name: adamw_8bit"},
      {"model: m\ndata: {train: t}\ntraining: {optimizer: {name: adamw_8bit}, gradient_accumulation_steps: 2}\n"
       "engine: {device_update_layers: 4}\n", "needs training.gradient_accumulation_steps: 1"},
      {"model: m\ndata: {train: t}\ntraining: {optimizer: {name: adamw_8bit}, max_grad_norm: 0}\n"
       "engine: {device_update_layers: 4, compute_dtype: fp32}\n",
       "engine.device_update_layers: runs in steps whose gradients land in the bf16 mirrors, which needs bf16 compute"},
      {"model: m\ndata: {train: t}\nengine: {inputs_in_mirrors: yes}\n", "engine.inputs_in_mirrors"},
      {"model: m\ndata: {train: t}\ntraining: {gradient_accumulation_steps: 2}\nengine: {inputs_in_mirrors: always}\n",
       "engine.inputs_in_mirrors: always needs training.gradient_accumulation_steps: 1"},
      {"model: m\ndata: {train: t}\nengine: {inputs_in_mirrors: always, compute_dtype: fp16}\n",
       "engine.inputs_in_mirrors: always needs bf16 compute"},
      {"model: m\ndata: {train: t}\ndata2: 1\n", "data2"},
      {"data: {train: t}\n", "model: must be set"},
      {"model: m\n", "data.train: must be set"},
      {"model: m\ndata: [1, 2]\n", "data (line 2): must be a mapping"},
      {"model: m\ndata: {train: t\n", "YAML syntax error at line"},
      {"- a\n- b\n", "must be a mapping"},
      {"", "empty document"},
      {"model: m\ndata: {train: t}\nname: 'bad name!'\n", "name:"},
      {"model: m\ndata: {train: t}\ntraining: {seed: -1}\n", "training.seed"},
      {"model: m\ndata: {train: t}\ntraining: {packing: true}\n", "training.packing (line 3): unknown key"},
      {"model: m\ndata: {train: t}\nmodel: n\n", "model (line 3): duplicate key"},
      {"model: m\ndata: {train: t, train: u}\n", "data.train (line 2): duplicate key"},
  };
  for (const BadCase& c : cases) {
    auto spec = ParseJobYaml(c.yaml);
    ASSERT_FALSE(spec.ok()) << c.yaml;
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << c.yaml;
    EXPECT_TRUE(absl::StrContains(spec.status().message(), c.expect))
        << "yaml:\n" << c.yaml << "error: " << spec.status().message() << "\nexpected: " << c.expect;
  }
}

TEST(JobYamlTest, RejectsOversizedDocument) {
  std::string big = "model: m\ndata: {train: t}\n# " + std::string(kMaxJobYamlBytes, 'x') + "\n";
  auto spec = ParseJobYaml(big);
  ASSERT_FALSE(spec.ok());
  EXPECT_TRUE(absl::StrContains(spec.status().message(), "limit"));
}

TEST(JobYamlTest, PrintedSpecParsesBackToTheSameSpec) {
  auto spec = ParseJobYaml(
      "name: 'null'\nmodel: 'true'\ndata: {train: '123', chat_template: 'x: y'}\n"
      "training: {optimizer: {lr: 0.1, eps: 3.3e-9}, max_grad_norm: -1}\n"
      "engine: {nvme_dir: nv, nvme_fraction: 0.5, device_update_layers: auto}\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->engine().device_update_layers(), -1);
  const std::string yaml = JobSpecToYaml(*spec);
  EXPECT_TRUE(absl::StrContains(yaml, "device_update_layers: auto\n")) << yaml;
  auto again = ParseJobYaml(yaml);
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << yaml;
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*spec, *again)) << yaml;
  EXPECT_TRUE(absl::StrContains(yaml, "lr: 0.1\n")) << yaml;
  EXPECT_TRUE(again->engine().has_nvme_fraction()) << yaml;
  EXPECT_DOUBLE_EQ(again->engine().nvme_fraction(), 0.5);
  // Unset stays unset (the engine then puts every layer's moments on NVMe).
  auto plain = ParseJobYaml("model: m\ndata: {train: t}\nengine: {nvme_dir: nv}\n");
  ASSERT_TRUE(plain.ok()) << plain.status();
  auto plain_again = ParseJobYaml(JobSpecToYaml(*plain));
  ASSERT_TRUE(plain_again.ok());
  EXPECT_FALSE(plain_again->engine().has_nvme_fraction());
  // A spec from before engine.cpu_binding existed (a client's proto without it) prints it
  // empty; that parses back as auto instead of being refused.
  v1::JobSpec old = *plain;
  old.mutable_engine()->clear_cpu_binding();
  auto old_again = ParseJobYaml(JobSpecToYaml(old));
  ASSERT_TRUE(old_again.ok()) << old_again.status();
  EXPECT_EQ(old_again->engine().cpu_binding(), "auto");
}

// Every key path of a YAML mapping tree ("engine.cpu_binding").
void KeyPaths(const YAML::Node& n, const std::string& prefix, std::set<std::string>* out) {
  if (!n.IsMap()) return;
  for (const auto& kv : n) {
    const std::string path = prefix.empty() ? kv.first.as<std::string>() : prefix + "." + kv.first.as<std::string>();
    out->insert(path);
    KeyPaths(kv.second, path, out);
  }
}

// deploy/example/job-reference.yaml documents every key at its default: it must parse to
// exactly the defaults, and its keys (commented optional ones included) must be exactly the
// keys the daemon prints, so a new key cannot go undocumented and a stale one cannot stay.
TEST(JobYamlTest, ReferenceFileShowsEveryKeyAtItsDefault) {
  std::ifstream in(std::string(SFD_SOURCE_DIR) + "/deploy/example/job-reference.yaml");
  ASSERT_TRUE(in) << "deploy/example/job-reference.yaml";
  std::stringstream text;
  text << in.rdbuf();
  auto reference = ParseJobYaml(text.str());
  ASSERT_TRUE(reference.ok()) << reference.status();
  auto defaults = ParseJobYaml("model: my-model\ndata: {train: train.jsonl}\n");
  ASSERT_TRUE(defaults.ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*reference, *defaults))
      << "the reference's values differ from the defaults, which print as:\n" << JobSpecToYaml(*defaults);

  // Optional keys with no default value are shown commented out ("  # key: value").
  const std::string uncommented = std::regex_replace(text.str(), std::regex("\n( *)# ([a-z_]+:)"), "\n$1$2");
  std::set<std::string> documented, printed;
  KeyPaths(YAML::Load(uncommented), "", &documented);
  v1::JobSpec all = *defaults;  // with the optional keys set, so that they print
  all.mutable_engine()->set_nvme_dir("nv");
  all.mutable_engine()->set_nvme_fraction(0.5);
  KeyPaths(YAML::Load(JobSpecToYaml(all)), "", &printed);
  for (const std::string& k : printed) EXPECT_TRUE(documented.count(k)) << k << " is not in job-reference.yaml";
  for (const std::string& k : documented) EXPECT_TRUE(printed.count(k)) << k << " is documented but not a job.yaml key";
}

class JobPathsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("sfd_jobpaths_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "models/tiny");
    fs::create_directories(root_ / "data");
    fs::create_directories(root_ / "secret");
    std::ofstream(root_ / "models/tiny/config.json") << R"({"architectures": ["Qwen3ForCausalLM"]})";
    std::ofstream(root_ / "data/train.jsonl") << "{}\n";
    std::ofstream(root_ / "secret/passwd") << "x\n";
    fs::create_directories(root_ / "models/gpt2");
    std::ofstream(root_ / "models/gpt2/config.json") << R"({"architectures": ["GPT2LMHeadModel"]})";
    auto p = PathPolicy::Create({(root_ / "models").string()}, {(root_ / "data").string()},
                                (root_ / "out").string());
    ASSERT_TRUE(p.ok()) << p.status();
    policy_ = std::make_unique<PathPolicy>(*p);
  }
  void TearDown() override { fs::remove_all(root_); }

  absl::Status Resolve(const std::string& yaml, v1::JobSpec* out = nullptr) {
    auto spec = ParseJobYaml(yaml);
    if (!spec.ok()) return spec.status();
    absl::Status st = ResolveJobPaths(*policy_, "j-1", &*spec);
    if (out) *out = *spec;
    return st;
  }

  fs::path root_;
  std::unique_ptr<PathPolicy> policy_;
};

TEST_F(JobPathsTest, ResolvesRelativePathsUnderRoots) {
  v1::JobSpec spec;
  ASSERT_TRUE(Resolve("model: tiny\ndata: {train: train.jsonl}\n", &spec).ok());
  const std::string canon_root = fs::canonical(root_).string();
  EXPECT_EQ(spec.model(), canon_root + "/models/tiny");
  EXPECT_EQ(spec.data().train(), canon_root + "/data/train.jsonl");
  EXPECT_EQ(spec.output_dir(), canon_root + "/out/j-1");
}

TEST_F(JobPathsTest, RejectsDotDotEscape) {
  absl::Status st = Resolve("model: tiny\ndata: {train: ../secret/passwd}\n");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(st.message(), "data.train")) << st.message();
  EXPECT_TRUE(absl::StrContains(st.message(), "outside the allowed roots")) << st.message();
  st = Resolve("model: tiny\ndata: {train: train.jsonl}\noutput_dir: ../../x\n");
  EXPECT_TRUE(absl::StrContains(st.message(), "output_dir")) << st.message();
  st = Resolve("model: tiny\ndata: {train: train.jsonl}\noutput_dir: new/../../../x\n");
  EXPECT_FALSE(st.ok());
}

TEST_F(JobPathsTest, RejectsSymlinkEscape) {
  fs::create_symlink(root_ / "secret", root_ / "data/link");
  absl::Status st = Resolve("model: tiny\ndata: {train: link/passwd}\n");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(absl::StrContains(st.message(), "secret/passwd")) << st.message();
  fs::create_symlink(root_ / "secret", root_ / "out_link_target");
  fs::create_directories(root_ / "out");
  fs::create_symlink(root_ / "secret", root_ / "out/escape");
  st = Resolve("model: tiny\ndata: {train: train.jsonl}\noutput_dir: escape/run\n");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(absl::StrContains(st.message(), "output_dir")) << st.message();
}

TEST_F(JobPathsTest, RejectsMissingFilesAndUnsupportedModels) {
  absl::Status st = Resolve("model: tiny\ndata: {train: nope.jsonl}\n");
  EXPECT_TRUE(absl::StrContains(st.message(), "data.train")) << st.message();
  st = Resolve("model: gpt2\ndata: {train: train.jsonl}\n");
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_TRUE(absl::StrContains(st.message(), "GPT2LMHeadModel")) << st.message();
  st = Resolve("model: /\ndata: {train: train.jsonl}\n");
  EXPECT_FALSE(st.ok());
  st = Resolve("model: tiny\ndata: {train: train.jsonl}\noutput_dir: .\n");
  EXPECT_FALSE(st.ok());
}

}  // namespace
}  // namespace sfd
