#include "engine/common/remove_tree.h"
#include "engine/job/job_checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/common/status.h"
#include "engine/io/file_util.h"
#include "nlohmann/json.hpp"

namespace sfd {
namespace {

namespace fs = std::filesystem;

constexpr char kPrefix[] = "checkpoint-";
constexpr char kTmpSuffix[] = ".tmp";

// The step of a directory name "checkpoint-<digits>" (nothing else), or -1.
int64_t StepOfName(const std::string& name) {
  if (!absl::StartsWith(name, kPrefix)) return -1;
  const std::string digits = name.substr(sizeof(kPrefix) - 1);
  if (digits.empty() || digits.size() > 18) return -1;
  for (char c : digits)
    if (c < '0' || c > '9') return -1;
  int64_t step = -1;
  return absl::SimpleAtoi(digits, &step) ? step : -1;
}

absl::Status FsyncFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return absl::InternalError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0)
    return absl::InternalError(absl::StrCat("cannot fsync ", path, ": ", std::strerror(err)));
  return absl::OkStatus();
}

// fsyncs every file and directory under `dir` (and `dir` itself).
absl::Status FsyncTree(const std::string& dir) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_directory(ec)) {
      SFD_RETURN_IF_ERROR(FsyncDir(it->path().string()));
    } else if (it->is_regular_file(ec)) {
      SFD_RETURN_IF_ERROR(FsyncFile(it->path().string()));
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", dir, ": ", ec.message()));
  return FsyncDir(dir);
}

}  // namespace

std::string JobState::ToJson() const {
  nlohmann::json j = {
      {"format", 1},
      {"step", step},
      {"data_position", {{"epoch", data.epoch}, {"step_in_epoch", data.step_in_epoch}}},
      {"seed", seed},
      {"total_steps", total_steps},
      {"micro_batch_size", micro_batch_size},
      {"gradient_accumulation_steps", gradient_accumulation_steps},
      {"steps_per_epoch", steps_per_epoch},
      {"last_eval_step", last_eval_step},
      {"last_eval_loss", last_eval_loss},
      {"best_eval_step", best_eval_step},
      {"best_eval_loss", best_eval_loss}};
  return j.dump(1) + "\n";
}

absl::StatusOr<JobState> JobState::FromJson(const std::string& json, const std::string& source) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  auto bad = [&source](const char* field, const char* what) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": \"", field, "\" ", what));
  };
  if (!j.contains("format") || j["format"] != 1) return bad("format", "must be 1");
  auto get_int = [&](const nlohmann::json& obj, const char* field, int64_t* out) -> absl::Status {
    if (!obj.contains(field) || !obj[field].is_number_integer())
      return bad(field, "must be an integer");
    *out = obj[field].get<int64_t>();
    return absl::OkStatus();
  };
  auto get_double = [&](const char* field, double* out) -> absl::Status {
    if (!j.contains(field) || !j[field].is_number()) return bad(field, "must be a number");
    *out = j[field].get<double>();
    return absl::OkStatus();
  };
  JobState s;
  SFD_RETURN_IF_ERROR(get_int(j, "step", &s.step));
  if (!j.contains("data_position") || !j["data_position"].is_object())
    return bad("data_position", "must be an object");
  SFD_RETURN_IF_ERROR(get_int(j["data_position"], "epoch", &s.data.epoch));
  SFD_RETURN_IF_ERROR(get_int(j["data_position"], "step_in_epoch", &s.data.step_in_epoch));
  if (!j.contains("seed") || !j["seed"].is_number_unsigned())
    return bad("seed", "must be a non-negative integer");
  s.seed = j["seed"].get<uint64_t>();
  SFD_RETURN_IF_ERROR(get_int(j, "total_steps", &s.total_steps));
  SFD_RETURN_IF_ERROR(get_int(j, "micro_batch_size", &s.micro_batch_size));
  SFD_RETURN_IF_ERROR(get_int(j, "gradient_accumulation_steps", &s.gradient_accumulation_steps));
  SFD_RETURN_IF_ERROR(get_int(j, "steps_per_epoch", &s.steps_per_epoch));
  SFD_RETURN_IF_ERROR(get_int(j, "last_eval_step", &s.last_eval_step));
  SFD_RETURN_IF_ERROR(get_double("last_eval_loss", &s.last_eval_loss));
  SFD_RETURN_IF_ERROR(get_int(j, "best_eval_step", &s.best_eval_step));
  SFD_RETURN_IF_ERROR(get_double("best_eval_loss", &s.best_eval_loss));
  if (s.step < 0 || s.data.epoch < 0 || s.data.step_in_epoch < 0)
    return absl::InvalidArgumentError(absl::StrCat(source, ": negative step or data position"));
  return s;
}

absl::StatusOr<JobState> ReadJobState(const std::string& dir) {
  const std::string path = dir + "/" + kJobStateFile;
  SFD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return JobState::FromJson(text, path);
}

std::string CheckpointDirName(int64_t step) { return absl::StrCat(kPrefix, step); }

std::vector<CheckpointEntry> ListCheckpoints(const std::string& output_dir) {
  std::vector<CheckpointEntry> out;
  std::error_code ec;
  if (output_dir.empty() || !fs::is_directory(output_dir, ec)) return out;
  for (auto it = fs::directory_iterator(output_dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const int64_t step = StepOfName(it->path().filename().string());
    if (step < 0) continue;
    std::error_code e2;
    if (!it->is_directory(e2) || !fs::is_regular_file(it->path() / kJobStateFile, e2)) continue;
    out.push_back({step, it->path().string()});
  }
  std::sort(out.begin(), out.end(),
            [](const CheckpointEntry& a, const CheckpointEntry& b) { return a.step < b.step; });
  return out;
}

absl::StatusOr<std::string> WriteCheckpoint(Trainer& trainer, const std::string& output_dir,
                                            const JobState& state) {
  std::error_code ec;
  fs::create_directories(output_dir, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("cannot create ", output_dir, ": ", ec.message()));
  const std::string final_path = output_dir + "/" + CheckpointDirName(state.step);
  const std::string tmp = final_path + kTmpSuffix;
  SFD_RETURN_IF_ERROR(RemoveTree(tmp));
  // Model (its own atomic write creates `tmp`), then optimizer state and job state into it.
  SFD_RETURN_IF_ERROR(trainer.SaveModel(tmp));
  SFD_RETURN_IF_ERROR(trainer.SaveState(tmp));
  SFD_RETURN_IF_ERROR(WriteFileAtomic(tmp + "/" + kJobStateFile, state.ToJson()));
  SFD_RETURN_IF_ERROR(FsyncTree(tmp));
  if (fs::exists(final_path, ec)) SFD_RETURN_IF_ERROR(RemoveTree(final_path));
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", tmp, " to ", final_path, ": ", std::strerror(errno)));
  }
  SFD_RETURN_IF_ERROR(FsyncDir(output_dir));
  return final_path;
}

absl::StatusOr<std::vector<std::string>> PruneCheckpoints(const std::string& output_dir,
                                                          int64_t keep_last) {
  std::vector<std::string> removed;
  if (keep_last <= 0) return removed;
  std::vector<CheckpointEntry> all = ListCheckpoints(output_dir);
  const int64_t n = static_cast<int64_t>(all.size());
  for (int64_t i = 0; i + keep_last < n; ++i) {
    SFD_RETURN_IF_ERROR(RemoveTree(all[i].path));
    removed.push_back(all[i].path);
  }
  return removed;
}

absl::Status RemoveStaleCheckpointTemps(const std::string& output_dir) {
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return absl::OkStatus();
  std::vector<std::string> stale;
  for (auto it = fs::directory_iterator(output_dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const bool staging = absl::StartsWith(name, kPrefix) && absl::EndsWith(name, kTmpSuffix) &&
                         StepOfName(name.substr(0, name.size() - 4)) >= 0;
    const bool writer_tmp =
        (absl::StartsWith(name, ".checkpoint-") || absl::StartsWith(name, ".final.tmp-")) &&
        absl::StrContains(name, ".tmp-");
    if (staging || writer_tmp) stale.push_back(it->path().string());
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", output_dir, ": ", ec.message()));
  for (const std::string& p : stale) SFD_RETURN_IF_ERROR(RemoveTree(p));
  return absl::OkStatus();
}

}  // namespace sfd
