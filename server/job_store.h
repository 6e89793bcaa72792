// JobStore: the daemon's persistent state in SQLite (WAL mode): jobs (the sfd.v1.Job message
// plus indexed columns), each job's ordered event log (seq 1, 2, ... without gaps) and its
// checkpoints. Appending an event wakes every stream waiting on that job. Thread-safe: one
// connection behind a mutex (SQLite calls are short; WAL keeps commits cheap).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sfd/v1/sfd.pb.h"

struct sqlite3;

namespace sfd {

class JobStore {
 public:
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& db_path);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // Inserts a new job; `submission` is the exact request text (for idempotency checks).
  // ALREADY_EXISTS if the id or non-empty request_id is taken.
  absl::Status InsertJob(const v1::Job& job, const std::string& submission);
  absl::Status UpdateJob(const v1::Job& job);
  absl::StatusOr<v1::Job> GetJob(const std::string& job_id);
  // The job created with `request_id` and its submission text, if any.
  absl::StatusOr<std::optional<std::pair<v1::Job, std::string>>> FindByRequestId(
      const std::string& request_id);
  // Jobs in creation order after `after_key` (0 = from the start), at most `limit`, filtered by
  // state (empty = all). *next_key is the key to continue from (0 = no more).
  absl::StatusOr<std::vector<v1::Job>> ListJobs(const std::vector<v1::JobState>& states,
                                                int64_t after_key, int limit, int64_t* next_key);

  // Assigns the next seq and the time to `event`, stores it and (in the same transaction)
  // `job` when given, then wakes waiters.
  absl::Status AppendEvent(v1::JobEvent* event, const v1::Job* job = nullptr);
  // Events with seq > after_seq in order, at most `limit`.
  absl::StatusOr<std::vector<v1::JobEvent>> EventsAfter(const std::string& job_id,
                                                        int64_t after_seq, int limit);
  int64_t LastSeq(const std::string& job_id);
  // Blocks until the job has an event with seq > after_seq, `deadline` passes or Shutdown().
  // Returns true if such an event exists.
  bool WaitForEvents(const std::string& job_id, int64_t after_seq,
                     std::chrono::steady_clock::time_point deadline);
  // Wakes every waiter (daemon shutdown).
  void Shutdown();

  absl::Status AddCheckpoint(const std::string& job_id, const v1::Checkpoint& checkpoint);
  absl::StatusOr<std::vector<v1::Checkpoint>> Checkpoints(const std::string& job_id);

 private:
  explicit JobStore(sqlite3* db) : db_(db) {}
  absl::Status Exec(const char* sql);
  int64_t LastSeqLocked(const std::string& job_id);

  sqlite3* db_;
  std::mutex mu_;
  std::condition_variable events_cv_;
  std::map<std::string, int64_t> last_seq_;  // cache of MAX(seq) per job
  bool shutdown_ = false;
};

int64_t NowMs();

}  // namespace sfd
