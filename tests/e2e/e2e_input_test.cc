// End to end, no training needed: a real sfd over its real Unix socket refuses bad job.yaml
// (syntax, unknown key, negative lr) and path escapes (.., symlink) with INVALID_ARGUMENT and
// the field path, answers NOT_FOUND / FAILED_PRECONDITION, honours request_id idempotency
// and validate_only, enforces the queue limit, and creates its socket with mode 0600.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "tests/e2e/sfd_harness.h"

namespace sfd::e2e {
namespace {

namespace fs = std::filesystem;

class InputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // No job of these tests should train: the queue never starts (worker path is invalid).
    sfd_ = std::make_unique<Sfd>("worker_binary: /nonexistent/sfd-worker\nqueue_limit: 3\n");
    absl::Status st = sfd_->Start();
    ASSERT_TRUE(st.ok()) << st;
  }
  void ExpectRejected(const std::string& yaml, absl::StatusCode code, const std::string& text) {
    auto job = sfd_->Submit(yaml);
    ASSERT_FALSE(job.ok()) << yaml;
    EXPECT_EQ(job.status().code(), code) << job.status();
    EXPECT_TRUE(absl::StrContains(job.status().message(), text))
        << "error: " << job.status().message() << "\nexpected to contain: " << text;
  }
  std::unique_ptr<Sfd> sfd_;
};

TEST_F(InputTest, SocketIsOwnerOnly) {
  struct stat st;
  ASSERT_EQ(::stat(sfd_->socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(InputTest, BadYamlUnknownKeyNegativeLr) {
  ExpectRejected("model: tiny\ndata: {train: example/instructions.jsonl\n",
                 absl::StatusCode::kInvalidArgument, "YAML syntax error at line");
  ExpectRejected(TinyJobYaml(5, 0, "trainig: {}\n"), absl::StatusCode::kInvalidArgument,
                 "trainig (line");
  ExpectRejected(TinyJobYaml(5, 0, "eval: {every_steps: 2, bogus: 1}\n"),
                 absl::StatusCode::kInvalidArgument, "eval.bogus");
  ExpectRejected("model: tiny\ndata: {train: example/instructions.jsonl}\n"
                 "training: {optimizer: {lr: -0.01}}\n",
                 absl::StatusCode::kInvalidArgument, "training.optimizer.lr: must be > 0");
  ExpectRejected("", absl::StatusCode::kInvalidArgument, "job_yaml");
}

TEST_F(InputTest, PathEscapesAreRejected) {
  std::ofstream(sfd_->dir() + "/secret.jsonl") << "{\"text\": \"secret\"}\n";
  ExpectRejected("model: tiny\ndata: {train: ../secret.jsonl}\n", absl::StatusCode::kInvalidArgument,
                 "data.train: '../secret.jsonl' resolves to");
  ExpectRejected("model: ../../etc\ndata: {train: example/instructions.jsonl}\n",
                 absl::StatusCode::kInvalidArgument, "model:");
  ExpectRejected("model: tiny\ndata: {train: " + sfd_->dir() + "/secret.jsonl}\n",
                 absl::StatusCode::kInvalidArgument, "outside the allowed roots");
  fs::create_symlink(sfd_->dir() + "/secret.jsonl", sfd_->data_dir() + "/link.jsonl");
  ExpectRejected("model: tiny\ndata: {train: link.jsonl}\n", absl::StatusCode::kInvalidArgument,
                 "outside the allowed roots");
  fs::create_symlink("/etc", sfd_->dir() + "/out/etc");
  ExpectRejected(TinyJobYaml(5, 0, "output_dir: etc/run\n"), absl::StatusCode::kInvalidArgument,
                 "output_dir");
  ExpectRejected(TinyJobYaml(5, 0, "output_dir: ../escape\n"), absl::StatusCode::kInvalidArgument,
                 "output_dir");
  ExpectRejected("model: tiny\ndata: {train: example/instructions.jsonl}\nengine: {nvme_dir: /tmp}\n",
                 absl::StatusCode::kInvalidArgument, "engine.nvme_dir");
  ExpectRejected(TinyJobYaml(5, 0, "engine: {device: cpu}\n"), absl::StatusCode::kInvalidArgument,
                 "duplicate key");
}

TEST_F(InputTest, NotFoundAndFailedPrecondition) {
  auto job = sfd_->Get("j-doesnotexist");
  EXPECT_EQ(job.status().code(), absl::StatusCode::kNotFound);
  grpc::ClientContext ctx;
  v1::CancelJobRequest req;
  req.set_job_id("j-doesnotexist");
  v1::Job out;
  EXPECT_EQ(sfd_->stub()->CancelJob(&ctx, req, &out).error_code(), grpc::StatusCode::NOT_FOUND);
  std::vector<v1::JobEvent> events;
  EXPECT_EQ(sfd_->ReadEvents(sfd_->stub(), "j-nope", 0, true, std::chrono::seconds(10), &events)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(InputTest, RequestIdIsIdempotentAndValidateOnlyCreatesNothing) {
  const std::string yaml = TinyJobYaml(5);
  auto a = sfd_->Submit(yaml, "req-1");
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = sfd_->Submit(yaml, "req-1");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->id(), b->id());
  auto c = sfd_->Submit(TinyJobYaml(6), "req-1");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kAlreadyExists) << c.status();
  auto d = sfd_->Submit(yaml, "req-2");
  ASSERT_TRUE(d.ok());
  EXPECT_NE(d->id(), a->id());
  // The resolved spec is stored: canonical paths, defaults filled in.
  EXPECT_EQ(a->spec().data().train(),
            fs::canonical(sfd_->data_dir()).string() + "/example/instructions.jsonl");
  EXPECT_TRUE(absl::StrContains(a->spec_yaml(), "lr_scheduler: constant"));

  grpc::ClientContext ctx;
  v1::CreateJobRequest req;
  req.set_job_yaml(yaml);
  req.set_validate_only(true);
  v1::CreateJobResponse resp;
  ASSERT_TRUE(sfd_->stub()->CreateJob(&ctx, req, &resp).ok());
  EXPECT_TRUE(resp.job().id().empty());
  grpc::ClientContext lctx;
  v1::ListJobsRequest lreq;
  v1::ListJobsResponse lresp;
  ASSERT_TRUE(sfd_->stub()->ListJobs(&lctx, lreq, &lresp).ok());
  EXPECT_EQ(lresp.jobs_size(), 2);
}

TEST_F(InputTest, CancelledJobCannotBeCancelledAgain) {
  // The worker binary does not exist, so the first job fails at once and the queue drains;
  // a job cancelled while queued cannot be cancelled twice.
  auto a = sfd_->Submit(TinyJobYaml(5));
  ASSERT_TRUE(a.ok());
  auto failed = sfd_->WaitForState(a->id(), {v1::FAILED}, std::chrono::seconds(30));
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_TRUE(absl::StrContains(failed->error_message(), "cannot start worker")) << failed->error_message();
  grpc::ClientContext ctx;
  v1::CancelJobRequest req;
  req.set_job_id(a->id());
  v1::Job out;
  grpc::Status st = sfd_->stub()->CancelJob(&ctx, req, &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_TRUE(absl::StrContains(st.error_message(), "already FAILED")) << st.error_message();
}

}  // namespace
}  // namespace sfd::e2e
