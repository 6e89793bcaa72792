#include "server/worker_process.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace sfd {

absl::StatusOr<std::unique_ptr<WorkerProcess>> WorkerProcess::Spawn(
    const std::string& binary, const worker::v1::WorkerStart& start,
    const std::string& log_path, ReportFn on_report, ExitFn on_exit,
    const std::vector<std::string>& extra_args) {
  if (::access(binary.c_str(), X_OK) != 0)
    return absl::FailedPreconditionError(
        absl::StrCat("worker binary ", binary, " is not executable: ", std::strerror(errno)));
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    return absl::InternalError(absl::StrCat("socketpair: ", std::strerror(errno)));
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return absl::InternalError(absl::StrCat("open ", log_path, ": ", std::strerror(errno)));
  }
  // Everything the child needs is prepared before fork(): after it, only async-signal-safe
  // calls (the daemon is multithreaded).
  std::vector<std::string> args = {binary, "--ipc-fd=3"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    ::close(log_fd);
    return absl::ResourceExhaustedError(absl::StrCat("fork: ", std::strerror(e)));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the daemon died before prctl
    ::setpgid(0, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    int child_fd = fds[1];
    if (child_fd == 3) {
      ::fcntl(3, F_SETFD, 0);
    } else {
      ::dup2(child_fd, 3);  // dup2 clears FD_CLOEXEC on the new descriptor
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  ::close(log_fd);
  std::unique_ptr<WorkerProcess> w(new WorkerProcess());
  w->pid_ = pid;
  w->fd_ = fds[0];
  w->writer_ = std::make_unique<FrameWriter>(w->fd_);
  w->on_report_ = std::move(on_report);
  w->on_exit_ = std::move(on_exit);
  absl::Status sent = w->writer_->Write(start);
  if (!sent.ok()) spdlog::warn("worker {}: start frame not sent: {}", pid, std::string(sent.message()));
  w->reader_ = std::thread([p = w.get()] { p->ReaderLoop(); });
  return w;
}

WorkerProcess::~WorkerProcess() {
  Kill();
  if (reader_.joinable()) reader_.join();
  if (fd_ >= 0) ::close(fd_);
}

absl::Status WorkerProcess::Send(const worker::v1::WorkerControl& control) {
  return writer_->Write(control);
}

void WorkerProcess::Kill() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!reaped_ && pid_ > 0) ::kill(pid_, SIGKILL);
}

void WorkerProcess::ReaderLoop() {
  while (true) {
    worker::v1::WorkerReport report;
    absl::Status st = ReadFrame(fd_, &report);
    if (!st.ok()) {
      if (!absl::IsOutOfRange(st)) {
        // A worker that speaks garbage is not trusted to finish: stop it.
        spdlog::warn("worker {}: {}; killing it", pid_, std::string(st.message()));
        ::kill(pid_, SIGKILL);
      }
      break;
    }
    on_report_(report);
  }
  // The worker closed its end (it exits right after): wait without reaping, so that Kill()
  // can never hit a recycled pid, then reap under the lock.
  siginfo_t info;
  std::memset(&info, 0, sizeof(info));
  while (::waitid(P_PID, pid_, &info, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    wait_status_ = status;
    reaped_ = true;
  }
  exited_ = true;
  on_exit_();
}

std::string WorkerProcess::ExitDescription() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!reaped_) return "running";
  if (WIFEXITED(wait_status_)) return absl::StrCat("exit code ", WEXITSTATUS(wait_status_));
  if (WIFSIGNALED(wait_status_)) {
    const int sig = WTERMSIG(wait_status_);
    return absl::StrCat("killed by signal ", sig, " (", ::strsignal(sig), ")");
  }
  return absl::StrCat("wait status ", wait_status_);
}

bool WorkerProcess::ExitedCleanly() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reaped_ && WIFEXITED(wait_status_) && WEXITSTATUS(wait_status_) == 0;
}

}  // namespace sfd
