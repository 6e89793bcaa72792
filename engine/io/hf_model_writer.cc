// WriteHfModelDir: writes a HF model directory atomically (temp dir + rename/exchange).
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "engine/common/remove_tree.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/common/status.h"
#include "engine/io/absl_compat.h"
#include "engine/io/file_util.h"
#include "engine/io/hf_model_dir.h"
#include "nlohmann/json.hpp"

namespace sfd {
namespace {

namespace fs = std::filesystem;

// Removes a directory tree when destroyed unless released.
class TempDirGuard {
 public:
  explicit TempDirGuard(std::string path) : path_(std::move(path)) {}
  ~TempDirGuard() {
    if (!path_.empty()) {
      std::error_code ec;
      (void)::sfd::RemoveTree(path_);
    }
  }
  void Release() { path_.clear(); }

 private:
  std::string path_;
};

absl::Status ErrnoStatus(std::string_view what, int err) {
  return absl::InternalError(absl::StrCat(Sv(what), ": ", std::strerror(err)));
}

// Moves `tmp` to `dir`, replacing an existing directory `dir` (whose old contents end up at
// `tmp` and are deleted).
absl::Status SwapIntoPlace(const std::string& tmp, const std::string& dir) {
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return ErrnoStatus(absl::StrCat("cannot stat ", dir), errno);
    if (::rename(tmp.c_str(), dir.c_str()) != 0) {
      return ErrnoStatus(absl::StrCat("cannot rename ", tmp, " to ", dir), errno);
    }
    return absl::OkStatus();
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, ": exists and is not a directory; refusing to replace it"));
  }
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) {
    std::error_code ec;
    (void)::sfd::RemoveTree(tmp);  // the old contents
    return absl::OkStatus();
  }
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
    return ErrnoStatus(absl::StrCat("cannot exchange ", tmp, " and ", dir), errno);
  }
  // Filesystem without RENAME_EXCHANGE: two renames, with a short window without `dir`.
  std::string old = tmp + ".old";
  if (::rename(dir.c_str(), old.c_str()) != 0) {
    return ErrnoStatus(absl::StrCat("cannot rename ", dir, " to ", old), errno);
  }
  if (::rename(tmp.c_str(), dir.c_str()) != 0) {
    int err = errno;
    (void)::rename(old.c_str(), dir.c_str());
    return ErrnoStatus(absl::StrCat("cannot rename ", tmp, " to ", dir), err);
  }
  std::error_code ec;
  (void)::sfd::RemoveTree(old);
  return absl::OkStatus();
}

std::string ShardName(size_t i, size_t n) {
  if (n == 1) return "model.safetensors";
  return absl::StrFormat("model-%05d-of-%05d.safetensors", i + 1, n);
}

}  // namespace

const std::vector<std::string>& TokenizerFileNames() {
  static const auto* names = new std::vector<std::string>{
      "tokenizer.json",    "tokenizer_config.json", "tokenizer.model",
      "special_tokens_map.json", "chat_template.jinja", "generation_config.json",
      "vocab.json",        "merges.txt",            "added_tokens.json"};
  return *names;
}

absl::Status WriteHfModelDir(const std::string& dir_in, const ModelConfig& config,
                             const std::vector<TensorSource>& tensors,
                             const HfWriteOptions& options) {
  std::string dir = dir_in;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (dir.empty() || dir == "/" || dir == "." || dir == "..") {
    return absl::InvalidArgumentError(absl::StrCat("\"", dir_in, "\" is not a model directory path"));
  }
  if (!IsFloatDType(options.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir, ": cannot write weights as ", Sv(DTypeName(options.dtype)), "; use F32, F16 or BF16"));
  }
  if (options.max_shard_bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": max_shard_bytes must be positive"));
  }
  if (tensors.empty()) return absl::InvalidArgumentError(absl::StrCat(dir, ": no tensors to write"));

  // Validate and plan shards (greedy, in the given order; a tensor larger than the limit gets
  // a shard of its own).
  const uint64_t esize = DTypeSize(options.dtype);
  std::set<std::string_view> names;
  std::vector<std::vector<size_t>> shards(1);
  std::vector<uint64_t> numels(tensors.size());
  uint64_t shard_bytes = 0, total_bytes = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorSource& t = tensors[i];
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(absl::StrCat(dir, ": tensor \"", t.name, "\" given twice"));
    }
    if (!t.fill) {
      return absl::InvalidArgumentError(absl::StrCat(dir, ": tensor \"", t.name, "\" has no fill"));
    }
    absl::StatusOr<int64_t> numel = CheckedNumel(t.shape, esize);
    if (!numel.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(dir, ": tensor \"", t.name, "\": ", numel.status().message()));
    }
    numels[i] = static_cast<uint64_t>(*numel);
    uint64_t bytes = numels[i] * esize;
    if (!shards.back().empty() &&
        shard_bytes + bytes > static_cast<uint64_t>(options.max_shard_bytes)) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(i);
    shard_bytes += bytes;
    total_bytes += bytes;
  }

  // Temp dir beside the target (same filesystem, so the final rename is atomic).
  const std::string parent = ParentDir(dir);
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) return absl::InternalError(absl::StrCat(parent, ": cannot create: ", ec.message()));
  std::string base = dir.substr(dir.find_last_of('/') == std::string::npos
                                    ? 0
                                    : dir.find_last_of('/') + 1);
  std::string tmpl = absl::StrCat(parent, "/.", base, ".tmp-XXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return ErrnoStatus(absl::StrCat("cannot create a temp dir beside ", dir), errno);
  }
  const std::string tmp = tmpl;
  ::chmod(tmp.c_str(), 0755);
  TempDirGuard guard(tmp);

  // Shards.
  nlohmann::json weight_map = nlohmann::json::object();
  std::vector<float> buf;
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string file = ShardName(s, shards.size());
    std::vector<SafetensorsWriter::Entry> entries;
    for (size_t i : shards[s]) entries.push_back({tensors[i].name, options.dtype, tensors[i].shape});
    SFD_ASSIGN_OR_RETURN(auto writer, SafetensorsWriter::Create(absl::StrCat(tmp, "/", file),
                                                                entries, {{"format", "pt"}}));
    for (size_t i : shards[s]) {
      buf.resize(numels[i]);
      tensors[i].fill(buf.data());
      SFD_RETURN_IF_ERROR(writer->AppendFloat(options.dtype, buf.data(), buf.size()));
      weight_map[tensors[i].name] = file;
    }
    SFD_RETURN_IF_ERROR(writer->Finish());
  }
  buf.clear();
  buf.shrink_to_fit();
  if (shards.size() > 1) {
    nlohmann::json index = {{"metadata", {{"total_size", total_bytes}}},
                            {"weight_map", weight_map}};
    SFD_RETURN_IF_ERROR(
        WriteFileAtomic(tmp + "/model.safetensors.index.json", index.dump(2) + "\n"));
  }

  // config.json with the written dtype.
  ModelConfig out_config = config;
  out_config.torch_dtype = std::string(DTypeTorchName(options.dtype));
  SFD_RETURN_IF_ERROR(
      WriteFileAtomic(tmp + "/config.json", ModelConfigToJson(out_config).dump(2) + "\n"));

  // Tokenizer and generation files.
  if (!options.copy_tokenizer_from.empty()) {
    struct stat st;
    if (::stat(options.copy_tokenizer_from.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return absl::NotFoundError(absl::StrCat(options.copy_tokenizer_from,
                                              ": tokenizer source is not a directory"));
    }
    for (const std::string& name : TokenizerFileNames()) {
      std::string from = absl::StrCat(options.copy_tokenizer_from, "/", name);
      if (::stat(from.c_str(), &st) != 0) continue;
      SFD_RETURN_IF_ERROR(CopyFile(from, absl::StrCat(tmp, "/", name)));
    }
  }

  SFD_RETURN_IF_ERROR(FsyncDir(tmp));
  SFD_RETURN_IF_ERROR(SwapIntoPlace(tmp, dir));
  guard.Release();
  return FsyncDir(parent);
}

}  // namespace sfd
