// sfd-worker: runs exactly one job for the sfd daemon and exits. Reads WorkerStart from the
// socketpair on --ipc-fd, runs JobRunner, reports plan / steps / evals / checkpoints / logs
// and a Final status as length-delimited frames; obeys Cancel and CheckpointNow from the
// daemon. Dies with the daemon (PR_SET_PDEATHSIG). Cancel with a final checkpoint =
// request a checkpoint now, then cancel once it is written. With --plan-only it only reports
// the job's memory plan (or why it does not fit) and exits: the daemon's CreateJob check.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/job/job_runner.h"
#include "server/ipc/frame_io.h"
#include "server/worker/spec_convert.h"
#include "sfd/v1/worker.pb.h"

namespace sfd {
namespace {

std::atomic<bool> g_cancel{false};
std::atomic<bool> g_checkpoint_now{false};
std::atomic<bool> g_cancel_after_checkpoint{false};
std::atomic<int64_t> g_last_step{0};

absl::Status ExceptionStatus(const std::exception& e) {
  const std::string what = e.what();
  const std::string msg = absl::StrCat("uncaught exception in the engine: ", what.substr(0, 4000));
  if (what.find("out of memory") != std::string::npos) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

void ControlLoop(int fd) {
  while (true) {
    worker::v1::WorkerControl ctl;
    if (!ReadFrame(fd, &ctl).ok()) {
      g_cancel = true;  // daemon gone: stop at the next step boundary
      return;
    }
    if (ctl.has_cancel()) {
      if (ctl.cancel().final_checkpoint() && g_last_step.load() > 0) {
        g_cancel_after_checkpoint = true;
        g_checkpoint_now = true;
      } else {
        g_cancel = true;
      }
    } else if (ctl.has_checkpoint_now()) {
      g_checkpoint_now = true;
    }
  }
}

// --plan-only: the memory plan of the job in the start frame (Trainer::Plan: no allocation, no
// weights read), reported as `started` (plan only) when it fits, then `final` with the status
// (RESOURCE_EXHAUSTED with the numbers when it does not fit). The daemon runs this at CreateJob.
int PlanOnly(int fd) {
  FrameWriter out(fd);
  worker::v1::WorkerStart start;
  if (absl::Status st = ReadFrame(fd, &start); !st.ok()) {
    std::fprintf(stderr, "sfd-worker: no start frame: %s\n", std::string(st.message()).c_str());
    return 3;
  }
  absl::Status st;
  auto spec = ToEngineJobSpec(start.spec());
  if (!spec.ok()) {
    st = spec.status();
  } else {
    absl::StatusOr<MemoryPlan> plan = absl::InternalError("not planned");
    try {
      plan = Trainer::Plan(TrainerSpecFor(*spec, /*total_steps=*/0));
    } catch (const std::exception& e) {
      plan = ExceptionStatus(e);
    }
    st = plan.status();
    if (plan.ok()) {
      worker::v1::WorkerReport r;
      *r.mutable_started()->mutable_plan() = ToProto(*plan);
      if (!out.Write(r).ok()) return 4;
    }
  }
  worker::v1::WorkerReport r;
  r.mutable_final()->set_code(static_cast<int>(st.code()));
  r.mutable_final()->set_message(std::string(st.message()));
  if (!out.Write(r).ok()) return 4;
  std::fprintf(stderr, "sfd-worker: plan-only: %s\n", st.ToString().c_str());
  std::fflush(stderr);
  ::close(fd);
  ::_exit(0);  // skip static destructors of the engine's libraries
}

int Main(int fd) {
  FrameWriter out(fd);
  auto report = [&out](const worker::v1::WorkerReport& r) {
    absl::Status st = out.Write(r);
    if (!st.ok()) std::fprintf(stderr, "sfd-worker: report lost: %s\n", std::string(st.message()).c_str());
  };
  auto finish = [&](const absl::Status& st, const std::string& final_dir) {
    worker::v1::WorkerReport r;
    r.mutable_final()->set_code(static_cast<int>(st.code()));
    r.mutable_final()->set_message(std::string(st.message()));
    r.mutable_final()->set_final_model_dir(final_dir);
    report(r);
    std::fprintf(stderr, "sfd-worker: finished: %s\n", st.ToString().c_str());
    std::fflush(stderr);
    ::close(fd);
    ::_exit(0);  // skip static destructors of the engine's libraries
  };

  worker::v1::WorkerStart start;
  if (absl::Status st = ReadFrame(fd, &start); !st.ok()) {
    std::fprintf(stderr, "sfd-worker: no start frame: %s\n", std::string(st.message()).c_str());
    return 3;
  }
  std::fprintf(stderr, "sfd-worker: job %s attempt %d (pid %d)\n", start.job_id().c_str(),
               start.attempt(), ::getpid());
  auto spec = ToEngineJobSpec(start.spec());
  if (!spec.ok()) finish(spec.status(), "");
  // Cancel-with-checkpoint is driven from here (checkpoint_now, then cancel).
  spec->checkpoint_on_cancel = false;
  const std::string resume_dir =
      start.resume() ? JobRunner::LatestCheckpoint(spec->output_dir) : std::string();
  if (start.resume()) {
    worker::v1::WorkerReport r;
    r.set_log(resume_dir.empty() ? "no checkpoint found; starting from the beginning"
                                 : absl::StrCat("resuming from ", resume_dir));
    report(r);
  }
  std::thread control(ControlLoop, fd);
  control.detach();

  absl::StatusOr<std::unique_ptr<JobRunner>> runner = absl::InternalError("not created");
  try {
    runner = JobRunner::Create(*spec, resume_dir);
  } catch (const std::exception& e) {
    finish(ExceptionStatus(e), "");
  }
  if (!runner.ok()) finish(runner.status(), "");

  std::string final_dir;
  JobCallbacks cb;
  cb.on_start = [&](const MemoryPlan& plan, const DataStats& stats) {
    worker::v1::WorkerReport r;
    *r.mutable_started()->mutable_plan() = ToProto(plan);
    *r.mutable_started()->mutable_data_stats() = ToProto(stats);
    r.mutable_started()->set_attempt(start.attempt());
    r.mutable_started()->set_resumed_from(resume_dir);
    report(r);
  };
  cb.on_step = [&](const StepStats& s) {
    g_last_step = s.step;
    worker::v1::WorkerReport r;
    *r.mutable_step() = ToProto(s);
    report(r);
  };
  cb.on_eval = [&](int64_t step, double loss) {
    worker::v1::WorkerReport r;
    r.mutable_eval()->set_step(step);
    r.mutable_eval()->set_eval_loss(loss);
    report(r);
  };
  cb.on_checkpoint = [&](const CheckpointInfo& c) {
    if (c.final) final_dir = c.path;
    // JobRunner only reads checkpoint_now (const); a request is served by one checkpoint.
    if (!c.final) g_checkpoint_now = false;
    worker::v1::WorkerReport r;
    r.mutable_checkpoint()->set_step(c.step);
    r.mutable_checkpoint()->set_path(c.path);
    r.mutable_checkpoint()->set_final(c.final);
    report(r);
    if (!c.final && g_cancel_after_checkpoint.load()) g_cancel = true;
  };
  cb.on_log = [&](const std::string& message) {
    worker::v1::WorkerReport r;
    r.set_log(message);
    report(r);
  };
  absl::Status st;
  try {
    st = (*runner)->Run(cb, &g_cancel, &g_checkpoint_now);
  } catch (const std::exception& e) {
    // An exception that escaped the engine (e.g. a c10::Error) is deterministic: report it as
    // the job's failure instead of crashing into a retry.
    st = ExceptionStatus(e);
  }
  finish(st, final_dir);
  return 0;
}

}  // namespace
}  // namespace sfd

int main(int argc, char** argv) {
  // Never outlive the daemon (also set before exec; kept here for direct launches).
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::signal(SIGPIPE, SIG_IGN);
  int fd = -1;
  bool plan_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--ipc-fd=", 0) == 0 && !absl::SimpleAtoi(a.substr(9), &fd)) fd = -1;
    if (a == "--plan-only") plan_only = true;
  }
  if (fd < 0) {
    std::fprintf(stderr, "usage: sfd-worker --ipc-fd=N [--plan-only] (started by sfd, not by hand)\n");
    return 2;
  }
  return plan_only ? sfd::PlanOnly(fd) : sfd::Main(fd);
}
