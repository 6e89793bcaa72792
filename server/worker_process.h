// WorkerProcess: one sfd-worker child process running one job. Spawned with a socketpair on
// its fd 3 (length-delimited frames, see ipc/frame_io.h), PR_SET_PDEATHSIG=SIGKILL so it
// never outlives the daemon, stdout/stderr appended to a per-job log file. A reader thread
// delivers each WorkerReport and, when the worker is gone, reaps it and calls on_exit.
// Whatever the worker does (abort, CUDA fault, OOM kill) only ends this child.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "server/ipc/frame_io.h"
#include "sfd/v1/worker.pb.h"

namespace sfd {

class WorkerProcess {
 public:
  using ReportFn = std::function<void(const worker::v1::WorkerReport&)>;
  using ExitFn = std::function<void()>;

  // Starts `binary --ipc-fd=3 [extra_args...]` and sends `start` as the first frame.
  // `on_report` and `on_exit` run on the reader thread (on_exit last, exactly once).
  static absl::StatusOr<std::unique_ptr<WorkerProcess>> Spawn(
      const std::string& binary, const worker::v1::WorkerStart& start,
      const std::string& log_path, ReportFn on_report, ExitFn on_exit,
      const std::vector<std::string>& extra_args = {});
  // SIGKILLs a still-running worker and joins the reader thread. Never call from on_exit.
  ~WorkerProcess();

  absl::Status Send(const worker::v1::WorkerControl& control);
  // SIGKILL now (no-op once reaped).
  void Kill();
  pid_t pid() const { return pid_; }
  bool exited() const { return exited_.load(); }
  // After exit: "exit code 3", "killed by signal 9 (Killed)".
  std::string ExitDescription() const;
  // After exit: true when it exited with code 0.
  bool ExitedCleanly() const;

 private:
  WorkerProcess() = default;
  void ReaderLoop();

  pid_t pid_ = -1;
  int fd_ = -1;
  std::unique_ptr<FrameWriter> writer_;
  ReportFn on_report_;
  ExitFn on_exit_;
  std::thread reader_;
  mutable std::mutex mu_;
  bool reaped_ = false;
  int wait_status_ = 0;
  std::atomic<bool> exited_{false};
};

}  // namespace sfd
