#include "server/plan_check.h"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>

#include "absl/strings/str_cat.h"
#include "server/status_mapping.h"
#include "server/worker_process.h"
#include "spdlog/spdlog.h"

namespace sfd {
namespace {

// Shared with the reader thread's callbacks, which may outlive a timed-out wait.
struct PlanAnswer {
  std::mutex mu;
  std::condition_variable cv;
  bool exited = false;
  std::optional<worker::v1::Final> final;
  std::string plan_summary;
};

}  // namespace

absl::Status CheckJobPlan(const std::string& worker_binary, const v1::JobSpec& spec,
                          const std::string& log_path, absl::Duration timeout) {
  auto answer = std::make_shared<PlanAnswer>();
  worker::v1::WorkerStart start;
  start.set_job_id("plan-check");
  *start.mutable_spec() = spec;
  auto worker = WorkerProcess::Spawn(
      worker_binary, start, log_path,
      [answer](const worker::v1::WorkerReport& r) {
        std::lock_guard<std::mutex> lock(answer->mu);
        if (r.has_final()) answer->final = r.final();
        if (r.has_started()) answer->plan_summary = r.started().plan().summary();
      },
      [answer] {
        std::lock_guard<std::mutex> lock(answer->mu);
        answer->exited = true;
        answer->cv.notify_all();
      },
      {"--plan-only"});
  if (!worker.ok()) {
    spdlog::warn("memory plan check skipped (job accepted unchecked): {}",
                 std::string(worker.status().message()));
    return absl::OkStatus();
  }
  std::optional<worker::v1::Final> final;
  {
    std::unique_lock<std::mutex> lock(answer->mu);
    const bool done = answer->cv.wait_for(lock, absl::ToChronoSeconds(timeout),
                                          [&] { return answer->exited; });
    if (!done) {
      lock.unlock();
      (*worker)->Kill();
      spdlog::warn("memory plan check timed out after {}; job accepted unchecked",
                   absl::FormatDuration(timeout));
      return absl::OkStatus();  // the WorkerProcess destructor joins the reader
    }
    final = answer->final;
  }
  if (!final.has_value()) {
    spdlog::warn("memory plan check: the worker gave no answer ({}); job accepted unchecked",
                 (*worker)->ExitDescription());
    return absl::OkStatus();
  }
  const auto code = static_cast<absl::StatusCode>(final->code());
  if (code == absl::StatusCode::kOk) {
    spdlog::info("memory plan fits: {}", answer->plan_summary);
    return absl::OkStatus();
  }
  if (code == absl::StatusCode::kResourceExhausted || code == absl::StatusCode::kInvalidArgument)
    return absl::Status(code, final->message());
  spdlog::warn("memory plan check answered {}: {}; job accepted unchecked", StatusCodeName(code),
               final->message());
  return absl::OkStatus();
}

}  // namespace sfd
