// End-to-end test harness: runs the real `sfd` binary (and through it the real sfd-worker)
// in a temp dir with its own config, talks to it over its real Unix socket (or TCP), and
// offers bounded waits on job states and event streams. Every process it starts is killed
// when the harness is destroyed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "sfd/v1/sfd.grpc.pb.h"

namespace sfd::e2e {

// Directory of the built binaries (sfd, sfd-worker, sfctl, make_tiny_model).
std::string BinDir();
bool WorkerBuilt();
// A tiny random-init Qwen3 model with the real Qwen3 tokenizer, made once per process
// (fetches the tokenizer with tests/oracle/fetch_tokenizers.sh when needed). Its folder is
// <ModelsRoot()>/tiny.
absl::StatusOr<std::string> ModelsRoot();

class Sfd {
 public:
  // A fresh state dir under /tmp; `extra_config` is appended to sfd.yaml.
  explicit Sfd(const std::string& extra_config = "");
  ~Sfd();  // SIGKILLs sfd and its workers, removes the temp dir

  absl::Status Start();                      // waits until "sfd ready"
  void Kill9();                              // SIGKILL sfd (workers die with it)
  // SIGTERM; returns sfd's exit code (or -1 if it did not exit within `timeout`).
  int Terminate(std::chrono::seconds timeout);
  pid_t pid() const { return pid_; }
  // pids of sfd-worker children of sfd.
  std::vector<pid_t> WorkerPids() const;

  v1::Sfd::Stub* stub() { return stub_.get(); }
  std::unique_ptr<v1::Sfd::Stub> NewStub() const;  // its own channel
  const std::string& dir() const { return dir_; }
  std::string data_dir() const { return dir_ + "/data"; }
  std::string socket() const { return dir_ + "/state/sfd.sock"; }
  const std::string& tcp_address() const { return tcp_address_; }  // "" without TCP

  // Job helpers (all with deadlines).
  absl::StatusOr<v1::Job> Submit(const std::string& yaml, const std::string& request_id = "");
  absl::StatusOr<v1::Job> Get(const std::string& job_id);
  // Polls until the job is in one of `states`.
  absl::StatusOr<v1::Job> WaitForState(const std::string& job_id, std::set<v1::JobState> states,
                                       std::chrono::seconds timeout);
  // Polls until the job has completed `step` steps (or is terminal).
  absl::StatusOr<v1::Job> WaitForStep(const std::string& job_id, int64_t step,
                                      std::chrono::seconds timeout);
  // Every event after `after_seq`; follows until the stream ends (terminal job) or `timeout`.
  grpc::Status ReadEvents(v1::Sfd::Stub* stub, const std::string& job_id, int64_t after_seq,
                          bool follow, std::chrono::seconds timeout,
                          std::vector<v1::JobEvent>* out);

 private:
  std::string dir_;
  std::string extra_config_;
  pid_t pid_ = -1;
  std::string tcp_address_;
  std::unique_ptr<v1::Sfd::Stub> stub_;
};

// A job.yaml for the tiny model on the bundled example dataset.
std::string TinyJobYaml(int max_steps, int checkpoint_every = 0, const std::string& extra = "");

// Loss of each step event, in order.
std::vector<double> Losses(const std::vector<v1::JobEvent>& events);

}  // namespace sfd::e2e
