// sfctl's human output: job tables and summaries, one line per event, and the live progress
// bar (step/total, loss, tokens/s, ETA, GPU and RAM). --json output is the proto's JSON.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <google/protobuf/message.h>

#include "sfd/v1/sfd.pb.h"

namespace sfd {

std::string FormatBytes(int64_t bytes);
std::string FormatDuration(double seconds);
std::string StateName(v1::JobState state);
// JSON with the proto field names (one object, no trailing newline).
std::string ToJson(const google::protobuf::Message& message);

std::string JobTable(const std::vector<v1::Job>& jobs);
std::string JobSummary(const v1::Job& job);
std::string EventLine(const v1::JobEvent& event);
std::string ServerInfoText(const v1::ServerInfo& info);

// Renders progress from step events; on a TTY it redraws one line, otherwise it prints a line
// per step.
class ProgressBar {
 public:
  explicit ProgressBar(bool tty) : tty_(tty) {}
  void Step(const v1::StepMetrics& step);
  void Eval(double eval_loss) { eval_loss_ = eval_loss; }
  // Prints a normal line (ends the bar line first on a TTY).
  void Line(const std::string& text);
  void Finish();

 private:
  bool tty_;
  bool bar_open_ = false;
  double eval_loss_ = 0;
  double avg_step_seconds_ = 0;
};

}  // namespace sfd
