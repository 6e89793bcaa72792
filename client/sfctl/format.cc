#include "client/sfctl/format.h"

#include <cstdio>
#include <ctime>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace sfd {

std::string FormatBytes(int64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? absl::StrCat(b, " B") : absl::StrFormat("%.1f %s", v, units[u]);
}

std::string FormatDuration(double s) {
  if (!(s >= 0) || s > 1e8) return "?";
  const int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return absl::StrFormat("%d:%02d:%02d", t / 3600, (t / 60) % 60, t % 60);
  return absl::StrFormat("%d:%02d", t / 60, t % 60);
}

std::string StateName(v1::JobState s) { return v1::JobState_Name(s); }

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  return out;
}

namespace {
std::string TimeText(int64_t ms) {
  if (ms <= 0) return "-";
  const time_t t = static_cast<time_t>(ms / 1000);
  struct tm tm;
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}
}  // namespace

std::string JobTable(const std::vector<v1::Job>& jobs) {
  std::string out = absl::StrFormat("%-16s %-20s %-10s %-12s %-10s %s\n", "ID", "NAME", "STATE",
                                    "STEP", "LOSS", "CREATED");
  for (const auto& j : jobs) {
    const auto& p = j.progress();
    out += absl::StrFormat("%-16s %-20s %-10s %-12s %-10s %s\n", j.id(), j.name(),
                           StateName(j.state()),
                           p.total_steps() > 0 ? absl::StrCat(p.step(), "/", p.total_steps())
                                               : absl::StrCat(p.step()),
                           p.step() > 0 ? absl::StrFormat("%.4f", p.loss()) : "-",
                           TimeText(j.create_time_ms()));
  }
  return out;
}

std::string JobSummary(const v1::Job& j) {
  std::string out;
  absl::StrAppend(&out, "id:           ", j.id(), "\n");
  absl::StrAppend(&out, "name:         ", j.name(), "\n");
  absl::StrAppend(&out, "state:        ", StateName(j.state()),
                  j.cancel_requested() && j.state() == v1::RUNNING ? " (cancelling)" : "",
                  j.queue_position() > 0 ? absl::StrCat(" (position ", j.queue_position(), ")") : "",
                  "\n");
  if (!j.error_message().empty())
    absl::StrAppend(&out, "error:        ", j.error_code(), ": ", j.error_message(), "\n");
  const auto& p = j.progress();
  absl::StrAppend(&out, "progress:     step ", p.step(), "/", p.total_steps());
  if (p.step() > 0) absl::StrAppend(&out, absl::StrFormat(", loss %.4f", p.loss()));
  if (p.eval_loss() > 0) absl::StrAppend(&out, absl::StrFormat(", eval loss %.4f", p.eval_loss()));
  absl::StrAppend(&out, "\n");
  absl::StrAppend(&out, "created:      ", TimeText(j.create_time_ms()), "\n");
  absl::StrAppend(&out, "started:      ", TimeText(j.start_time_ms()), "\n");
  absl::StrAppend(&out, "ended:        ", TimeText(j.end_time_ms()), "\n");
  absl::StrAppend(&out, "attempts:     ", j.attempts(), "\n");
  if (!j.plan().summary().empty()) absl::StrAppend(&out, "memory plan:  ", j.plan().summary(), "\n");
  if (!j.final_model_dir().empty()) absl::StrAppend(&out, "final model:  ", j.final_model_dir(), "\n");
  absl::StrAppend(&out, "output dir:   ", j.spec().output_dir(), "\n");
  absl::StrAppend(&out, "resolved spec:\n");
  for (absl::string_view line : absl::StrSplit(j.spec_yaml(), '\n'))
    if (!line.empty()) absl::StrAppend(&out, "  ", line, "\n");
  return out;
}

std::string EventLine(const v1::JobEvent& e) {
  std::string head = absl::StrFormat("#%-5d %s ", e.seq(), TimeText(e.time_ms()));
  switch (e.kind_case()) {
    case v1::JobEvent::kState:
      return absl::StrCat(head, "state ", StateName(e.state().state()),
                          e.state().reason().empty() ? "" : absl::StrCat(": ", e.state().reason()));
    case v1::JobEvent::kStarted: {
      const auto& s = e.started();
      return absl::StrCat(head, "started (attempt ", s.attempt(), "): ",
                          s.data_stats().train_samples(), " train samples, ",
                          s.data_stats().total_steps(), " steps; ", s.plan().summary(),
                          s.resumed_from().empty() ? "" : absl::StrCat("; resumed from ", s.resumed_from()));
    }
    case v1::JobEvent::kStep: {
      const auto& s = e.step();
      return absl::StrCat(head, absl::StrFormat("step %d/%d loss %.4f lr %.3g grad_norm %.3g %.0f tok/s",
                                                s.step(), s.total_steps(), s.loss(), s.lr(),
                                                s.grad_norm(),
                                                s.step_seconds() > 0 ? s.tokens() / s.step_seconds() : 0.0));
    }
    case v1::JobEvent::kEval:
      return absl::StrCat(head, absl::StrFormat("eval step %d loss %.4f", e.eval().step(), e.eval().eval_loss()));
    case v1::JobEvent::kCheckpoint:
      return absl::StrCat(head, e.checkpoint().final() ? "final model " : "checkpoint ",
                          "step ", e.checkpoint().step(), ": ", e.checkpoint().path());
    case v1::JobEvent::kLog:
      return absl::StrCat(head, "[", e.log().source(), "] ", e.log().message());
    case v1::JobEvent::kError:
      return absl::StrCat(head, "error ", e.error().code(), ": ", e.error().message());
    default:
      return absl::StrCat(head, "(unknown event)");
  }
}

std::string ServerInfoText(const v1::ServerInfo& i) {
  std::string out;
  absl::StrAppend(&out, "sfd ", i.version(), " (grpc ", i.grpc_version(), ", protobuf ",
                  i.protobuf_version(), ", sqlite ", i.sqlite_version(), ")\n");
  absl::StrAppend(&out, "listening:    ", absl::StrJoin(i.listen_addresses(), ", "), "\n");
  absl::StrAppend(&out, "uptime:       ", FormatDuration(i.uptime_seconds()), "\n");
  absl::StrAppend(&out, "host memory:  ", FormatBytes(i.host_memory_available()), " available of ",
                  FormatBytes(i.host_memory_total()), "\n");
  if (i.gpus().empty()) absl::StrAppend(&out, "gpus:         none\n");
  for (const auto& g : i.gpus())
    absl::StrAppend(&out, "gpu ", g.index(), ":        ", g.name(), ", ", FormatBytes(g.memory_free()),
                    " free of ", FormatBytes(g.memory_total()), "\n");
  absl::StrAppend(&out, "output disk:  ", FormatBytes(i.output_disk_free()), " free\n");
  absl::StrAppend(&out, "model roots:  ", absl::StrJoin(i.model_roots(), ", "), "\n");
  absl::StrAppend(&out, "data roots:   ", absl::StrJoin(i.data_roots(), ", "), "\n");
  absl::StrAppend(&out, "output root:  ", i.output_root(), "\n");
  absl::StrAppend(&out, "queue:        ", i.queue_length(), "/", i.queue_limit(), " queued",
                  i.running_job_id().empty() ? "" : absl::StrCat(", running ", i.running_job_id()),
                  i.draining() ? " (draining)" : "", "\n");
  return out;
}

void ProgressBar::Step(const v1::StepMetrics& s) {
  avg_step_seconds_ = avg_step_seconds_ == 0 ? s.step_seconds()
                                             : 0.8 * avg_step_seconds_ + 0.2 * s.step_seconds();
  const int64_t total = s.total_steps();
  const double frac = total > 0 ? std::min(1.0, static_cast<double>(s.step()) / total) : 0;
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(frac * kWidth);
  std::string bar = "[" + std::string(filled, '#') + std::string(kWidth - filled, '-') + "]";
  const double tps = s.step_seconds() > 0 ? s.tokens() / s.step_seconds() : 0;
  const double eta = total > 0 ? (total - s.step()) * avg_step_seconds_ : -1;
  std::string line = absl::StrFormat("%s %d/%d loss %.4f", bar, s.step(), total, s.loss());
  if (eval_loss_ > 0) absl::StrAppend(&line, absl::StrFormat(" eval %.4f", eval_loss_));
  absl::StrAppend(&line, absl::StrFormat(" %.0f tok/s ETA %s GPU %s RAM %s", tps,
                                         FormatDuration(eta), FormatBytes(s.peak().device()),
                                         FormatBytes(s.host_rss())));
  if (tty_) {
    std::printf("\r\033[K%s", line.c_str());
    bar_open_ = true;
  } else {
    std::printf("%s\n", line.c_str());
  }
  std::fflush(stdout);
}

void ProgressBar::Line(const std::string& text) {
  if (bar_open_) std::printf("\n");
  bar_open_ = false;
  std::printf("%s\n", text.c_str());
  std::fflush(stdout);
}

void ProgressBar::Finish() {
  if (bar_open_) std::printf("\n");
  bar_open_ = false;
  std::fflush(stdout);
}

}  // namespace sfd
