// End to end: sfd checks a job's memory plan at CreateJob (through `sfd-worker --plan-only`,
// since sfd links no libtorch). A model whose fp32 training state cannot fit host RAM is
// refused with RESOURCE_EXHAUSTED and the engine's numbers (GiB), also under validate_only,
// and no job is created; an impossible engine.window_slots is INVALID_ARGUMENT naming the
// field; a model that fits is accepted.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/sfd_harness.h"

namespace sfd::e2e {
namespace {

namespace fs = std::filesystem;

// A Llama-3-70B-shaped config.json (about 70e9 parameters, fp32 master + Adam m, v > 1 TB)
// next to the tiny model: config only, no weights.
absl::StatusOr<std::string> HugeModel() {
  auto root = ModelsRoot();
  if (!root.ok()) return root.status();
  const std::string dir = *root + "/huge";
  std::ifstream in(*root + "/tiny/config.json");
  nlohmann::json cfg = nlohmann::json::parse(in);
  cfg["hidden_size"] = 8192;
  cfg["intermediate_size"] = 28672;
  cfg["num_hidden_layers"] = 80;
  cfg["num_attention_heads"] = 64;
  cfg["num_key_value_heads"] = 8;
  cfg["head_dim"] = 128;
  cfg["vocab_size"] = 128256;
  cfg["tie_word_embeddings"] = false;
  fs::create_directories(dir);
  std::ofstream(dir + "/config.json") << cfg.dump(2);
  return std::string("huge");
}

class PlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!WorkerBuilt()) GTEST_SKIP() << "sfd-worker is not built";
    sfd_ = std::make_unique<Sfd>();
    absl::Status st = sfd_->Start();
    ASSERT_TRUE(st.ok()) << st;
  }
  grpc::Status Create(const std::string& yaml, bool validate_only, v1::CreateJobResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    v1::CreateJobRequest req;
    req.set_job_yaml(yaml);
    req.set_validate_only(validate_only);
    return sfd_->stub()->CreateJob(&ctx, req, resp);
  }
  int NumJobs() {
    grpc::ClientContext ctx;
    v1::ListJobsRequest req;
    v1::ListJobsResponse resp;
    EXPECT_TRUE(sfd_->stub()->ListJobs(&ctx, req, &resp).ok());
    return resp.jobs_size();
  }
  std::unique_ptr<Sfd> sfd_;
};

std::string JobFor(const std::string& model, const std::string& engine) {
  return "name: plan\nmodel: " + model +
         "\ndata: {train: example/instructions.jsonl, format: alpaca, max_seq_len: 64}\n"
         "training: {max_steps: 1, micro_batch_size: 1}\nengine: {device: cpu" + engine + "}\n";
}

TEST_F(PlanTest, ModelThatCannotFitHostRamIsRefusedWithTheNumbers) {
  auto huge = HugeModel();
  ASSERT_TRUE(huge.ok()) << huge.status();
  for (bool validate_only : {false, true}) {
    v1::CreateJobResponse resp;
    grpc::Status st = Create(JobFor(*huge, ""), validate_only, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
    EXPECT_TRUE(absl::StrContains(st.error_message(), "GiB")) << st.error_message();
    EXPECT_TRUE(absl::StrContains(st.error_message(), "host RAM")) << st.error_message();
  }
  EXPECT_EQ(NumJobs(), 0);
}

TEST_F(PlanTest, ImpossibleWindowSlotsIsInvalidArgumentNamingTheField) {
  v1::CreateJobResponse resp;
  grpc::Status st = Create(JobFor("tiny", ", window_slots: 1000"), false, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_TRUE(absl::StrContains(st.error_message(), "engine.window_slots")) << st.error_message();
  EXPECT_EQ(NumJobs(), 0);
}

TEST_F(PlanTest, ModelThatFitsIsAccepted) {
  v1::CreateJobResponse resp;
  grpc::Status st = Create(JobFor("tiny", ""), true, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  st = Create(JobFor("tiny", ""), false, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_FALSE(resp.job().id().empty());
  EXPECT_EQ(NumJobs(), 1);
}

}  // namespace
}  // namespace sfd::e2e
