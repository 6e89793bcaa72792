#include "server/job_store.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "engine/common/status.h"

namespace sfd {
namespace {

// RAII prepared statement.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  absl::Status status() const {
    if (rc_ == SQLITE_OK) return absl::OkStatus();
    return absl::InternalError(absl::StrCat("sqlite prepare: ", sqlite3_errmsg(db_)));
  }
  void Bind(int i, const std::string& s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  void BindBlob(int i, const std::string& s) {
    sqlite3_bind_blob(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void BindNull(int i) { sqlite3_bind_null(stmt_, i); }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }
  absl::Status Run() {
    const int rc = Step();
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) return absl::OkStatus();
    if (rc == SQLITE_CONSTRAINT)
      return absl::AlreadyExistsError(absl::StrCat("sqlite: ", sqlite3_errmsg(db_)));
    return absl::InternalError(absl::StrCat("sqlite step: ", sqlite3_errmsg(db_)));
  }
  int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }
  std::string Blob(int col) {
    const void* p = sqlite3_column_blob(stmt_, col);
    const int n = sqlite3_column_bytes(stmt_, col);
    return p ? std::string(static_cast<const char*>(p), n) : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS jobs(
  k INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  request_id TEXT UNIQUE,
  state INTEGER NOT NULL,
  job BLOB NOT NULL,
  submission BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS events(
  job_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  event BLOB NOT NULL,
  PRIMARY KEY(job_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints(
  job_id TEXT NOT NULL,
  step INTEGER NOT NULL,
  final INTEGER NOT NULL,
  checkpoint BLOB NOT NULL,
  PRIMARY KEY(job_id, step, final)) WITHOUT ROWID;
)sql";

absl::StatusOr<v1::Job> ParseJob(const std::string& blob) {
  v1::Job job;
  if (!job.ParseFromString(blob)) return absl::DataLossError("corrupt job row");
  return job;
}

}  // namespace

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& db_path) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(db_path.c_str(), &db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                                 nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("sqlite open ", db_path, ": ", msg));
  }
  std::unique_ptr<JobStore> store(new JobStore(db));
  sqlite3_busy_timeout(db, 5000);
  SFD_RETURN_IF_ERROR(store->Exec("PRAGMA journal_mode=WAL;"));
  SFD_RETURN_IF_ERROR(store->Exec("PRAGMA synchronous=NORMAL;"));
  SFD_RETURN_IF_ERROR(store->Exec(kSchema));
  return store;
}

JobStore::~JobStore() { sqlite3_close(db_); }

absl::Status JobStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown";
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("sqlite: ", msg, " in: ", sql));
  }
  return absl::OkStatus();
}

absl::Status JobStore::InsertJob(const v1::Job& job, const std::string& submission) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_, "INSERT INTO jobs(id, request_id, state, job, submission) VALUES(?,?,?,?,?)");
  SFD_RETURN_IF_ERROR(s.status());
  s.Bind(1, job.id());
  if (job.request_id().empty()) s.BindNull(2); else s.Bind(2, job.request_id());
  s.Bind(3, static_cast<int64_t>(job.state()));
  s.BindBlob(4, job.SerializeAsString());
  s.BindBlob(5, submission);
  return s.Run();
}

absl::Status JobStore::UpdateJob(const v1::Job& job) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_, "UPDATE jobs SET state=?, job=? WHERE id=?");
  SFD_RETURN_IF_ERROR(s.status());
  s.Bind(1, static_cast<int64_t>(job.state()));
  s.BindBlob(2, job.SerializeAsString());
  s.Bind(3, job.id());
  SFD_RETURN_IF_ERROR(s.Run());
  if (sqlite3_changes(db_) != 1) return absl::NotFoundError(absl::StrCat("job ", job.id()));
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> JobStore::GetJob(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_, "SELECT job FROM jobs WHERE id=?");
  SFD_RETURN_IF_ERROR(s.status());
  s.Bind(1, job_id);
  if (s.Step() != SQLITE_ROW) return absl::NotFoundError(absl::StrCat("job '", job_id, "' not found"));
  return ParseJob(s.Blob(0));
}

absl::StatusOr<std::optional<std::pair<v1::Job, std::string>>> JobStore::FindByRequestId(
    const std::string& request_id) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_, "SELECT job, submission FROM jobs WHERE request_id=?");
  SFD_RETURN_IF_ERROR(s.status());
  s.Bind(1, request_id);
  if (s.Step() != SQLITE_ROW) return std::optional<std::pair<v1::Job, std::string>>();
  SFD_ASSIGN_OR_RETURN(v1::Job job, ParseJob(s.Blob(0)));
  return std::make_optional(std::make_pair(std::move(job), s.Blob(1)));
}

absl::StatusOr<std::vector<v1::Job>> JobStore::ListJobs(const std::vector<v1::JobState>& states,
                                                        int64_t after_key, int limit,
                                                        int64_t* next_key) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string sql = "SELECT k, job FROM jobs WHERE k > ?";
  if (!states.empty()) {
    sql += " AND state IN (";
    for (size_t i = 0; i < states.size(); ++i) sql += i ? ",?" : "?";
    sql += ")";
  }
  sql += " ORDER BY k LIMIT ?";
  Stmt s(db_, sql.c_str());
  SFD_RETURN_IF_ERROR(s.status());
  int i = 1;
  s.Bind(i++, after_key);
  for (v1::JobState st : states) s.Bind(i++, static_cast<int64_t>(st));
  s.Bind(i++, static_cast<int64_t>(limit) + 1);
  std::vector<v1::Job> jobs;
  int64_t last = 0;
  *next_key = 0;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    if (static_cast<int>(jobs.size()) == limit) {
      *next_key = last;
      break;
    }
    last = s.Int(0);
    SFD_ASSIGN_OR_RETURN(v1::Job job, ParseJob(s.Blob(1)));
    jobs.push_back(std::move(job));
  }
  return jobs;
}

int64_t JobStore::LastSeqLocked(const std::string& job_id) {
  auto it = last_seq_.find(job_id);
  if (it != last_seq_.end()) return it->second;
  Stmt s(db_, "SELECT MAX(seq) FROM events WHERE job_id=?");
  s.Bind(1, job_id);
  int64_t seq = 0;
  if (s.Step() == SQLITE_ROW) seq = s.Int(0);
  last_seq_[job_id] = seq;
  return seq;
}

int64_t JobStore::LastSeq(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return LastSeqLocked(job_id);
}

absl::Status JobStore::AppendEvent(v1::JobEvent* event, const v1::Job* job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t seq = LastSeqLocked(event->job_id()) + 1;
    event->set_seq(seq);
    if (event->time_ms() == 0) event->set_time_ms(NowMs());
    SFD_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    absl::Status st = [&]() -> absl::Status {
      Stmt s(db_, "INSERT INTO events(job_id, seq, event) VALUES(?,?,?)");
      SFD_RETURN_IF_ERROR(s.status());
      s.Bind(1, event->job_id());
      s.Bind(2, seq);
      s.BindBlob(3, event->SerializeAsString());
      SFD_RETURN_IF_ERROR(s.Run());
      if (job != nullptr) {
        Stmt u(db_, "UPDATE jobs SET state=?, job=? WHERE id=?");
        SFD_RETURN_IF_ERROR(u.status());
        u.Bind(1, static_cast<int64_t>(job->state()));
        u.BindBlob(2, job->SerializeAsString());
        u.Bind(3, job->id());
        SFD_RETURN_IF_ERROR(u.Run());
      }
      return absl::OkStatus();
    }();
    if (!st.ok()) {
      Exec("ROLLBACK").IgnoreError();
      return st;
    }
    SFD_RETURN_IF_ERROR(Exec("COMMIT"));
    last_seq_[event->job_id()] = seq;
  }
  events_cv_.notify_all();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::JobEvent>> JobStore::EventsAfter(const std::string& job_id,
                                                                int64_t after_seq, int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_, "SELECT event FROM events WHERE job_id=? AND seq>? ORDER BY seq LIMIT ?");
  SFD_RETURN_IF_ERROR(s.status());
  s.Bind(1, job_id);
  s.Bind(2, after_seq);
  s.Bind(3, static_cast<int64_t>(limit));
  std::vector<v1::JobEvent> out;
  while (s.Step() == SQLITE_ROW) {
    v1::JobEvent ev;
    if (!ev.ParseFromString(s.Blob(0))) return absl::DataLossError("corrupt event row");
    out.push_back(std::move(ev));
  }
  return out;
}

bool JobStore::WaitForEvents(const std::string& job_id, int64_t after_seq,
                             std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  events_cv_.wait_until(lock, deadline,
                        [&] { return shutdown_ || LastSeqLocked(job_id) > after_seq; });
  return LastSeqLocked(job_id) > after_seq;
}

void JobStore::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  events_cv_.notify_all();
}

absl::Status JobStore::AddCheckpoint(const std::string& job_id, const v1::Checkpoint& ckpt) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_, "INSERT OR REPLACE INTO checkpoints(job_id, step, final, checkpoint) VALUES(?,?,?,?)");
  SFD_RETURN_IF_ERROR(s.status());
  s.Bind(1, job_id);
  s.Bind(2, ckpt.step());
  s.Bind(3, static_cast<int64_t>(ckpt.final()));
  s.BindBlob(4, ckpt.SerializeAsString());
  return s.Run();
}

absl::StatusOr<std::vector<v1::Checkpoint>> JobStore::Checkpoints(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_, "SELECT checkpoint FROM checkpoints WHERE job_id=? ORDER BY step, final");
  SFD_RETURN_IF_ERROR(s.status());
  s.Bind(1, job_id);
  std::vector<v1::Checkpoint> out;
  while (s.Step() == SQLITE_ROW) {
    v1::Checkpoint c;
    if (!c.ParseFromString(s.Blob(0))) return absl::DataLossError("corrupt checkpoint row");
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace sfd
