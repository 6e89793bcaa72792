// HfModelDir: opening and validating a HF model directory for reading.
#include "engine/io/hf_model_dir.h"

#include <sys/stat.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/common/status.h"
#include "engine/io/absl_compat.h"
#include "engine/io/file_util.h"
#include "nlohmann/json.hpp"

namespace sfd {
namespace {

constexpr size_t kMaxListed = 20;  // names listed per category in a mismatch error

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string ListSome(const std::vector<std::string>& items) {
  if (items.size() <= kMaxListed) return absl::StrJoin(items, ", ");
  std::vector<std::string> head(items.begin(), items.begin() + kMaxListed);
  return absl::StrCat(absl::StrJoin(head, ", "), " (and ", items.size() - kMaxListed, " more)");
}

// Reads model.safetensors.index.json: tensor name -> shard file name.
absl::StatusOr<std::map<std::string, std::string>> ReadIndex(const std::string& path) {
  SFD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON: ", e.what()));
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": expected an object with a \"weight_map\" object"));
  }
  std::map<std::string, std::string> map;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": weight_map entry \"", it.key(),
                                                     "\" is not a file name"));
    }
    std::string file = it.value().get<std::string>();
    if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..") {
      return absl::InvalidArgumentError(absl::StrCat(path, ": weight_map entry \"", it.key(),
                                                     "\" names \"", file,
                                                     "\", not a file in the model directory"));
    }
    map[it.key()] = std::move(file);
  }
  if (map.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": weight_map is empty"));
  return map;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HfModelDir>> HfModelDir::Open(const std::string& dir) {
  auto m = std::unique_ptr<HfModelDir>(new HfModelDir());
  m->dir_ = dir;
  while (m->dir_.size() > 1 && m->dir_.back() == '/') m->dir_.pop_back();
  const std::string& d = m->dir_;
  struct stat st;
  if (::stat(d.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::NotFoundError(absl::StrCat(d, ": not a directory"));
  }
  SFD_ASSIGN_OR_RETURN(m->config_, LoadModelConfig(d));

  const std::string index_path = d + "/model.safetensors.index.json";
  const std::string single_path = d + "/model.safetensors";
  if (FileExists(index_path)) {
    SFD_ASSIGN_OR_RETURN(auto weight_map, ReadIndex(index_path));
    std::map<std::string, const SafetensorsFile*> by_file;
    std::set<std::string> files;
    for (const auto& [name, file] : weight_map) files.insert(file);
    for (const std::string& file : files) {
      std::string path = absl::StrCat(d, "/", file);
      if (!FileExists(path)) {
        return absl::NotFoundError(absl::StrCat(index_path, ": shard \"", file,
                                                "\" listed in weight_map does not exist"));
      }
      SFD_ASSIGN_OR_RETURN(auto shard, SafetensorsFile::Open(path));
      by_file[file] = shard.get();
      m->shards_.push_back(std::move(shard));
    }
    for (const auto& [name, file] : weight_map) {
      const SafetensorsFile* shard = by_file.at(file);
      const TensorInfo* info = shard->Find(name);
      if (info == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(index_path, ": tensor \"", name,
                                                       "\" is mapped to ", file,
                                                       ", which does not contain it"));
      }
      m->tensors_[name] = Location{shard, info};
    }
  } else if (FileExists(single_path)) {
    SFD_ASSIGN_OR_RETURN(auto shard, SafetensorsFile::Open(single_path));
    for (const TensorInfo& t : shard->tensors()) m->tensors_[t.name] = Location{shard.get(), &t};
    m->shards_.push_back(std::move(shard));
  } else {
    std::string hint;
    if (FileExists(d + "/pytorch_model.bin") || FileExists(d + "/pytorch_model.bin.index.json")) {
      hint = " (found pytorch_model.bin: only safetensors checkpoints are supported; convert it)";
    }
    return absl::NotFoundError(absl::StrCat(
        d, ": neither model.safetensors nor model.safetensors.index.json exists", hint));
  }

  // The checkpoint must hold exactly what the config implies.
  std::vector<std::string> missing, mismatched, bad_dtype;
  for (const auto& [name, shape] : ExpectedTensors(m->config_)) {
    const TensorInfo* t = m->Find(name);
    if (t == nullptr) {
      missing.push_back(name);
    } else if (t->shape != shape) {
      mismatched.push_back(absl::StrCat(name, " is ", ShapeString(t->shape), ", expected ",
                                        ShapeString(shape)));
    } else if (!IsFloatDType(t->dtype)) {
      bad_dtype.push_back(absl::StrCat(name, " (", Sv(DTypeName(t->dtype)), ")"));
    }
  }
  if (!missing.empty() || !mismatched.empty() || !bad_dtype.empty()) {
    std::string msg = absl::StrCat(d, ": checkpoint does not match config.json (",
                                   m->config_.architecture, ")");
    if (!missing.empty()) {
      absl::StrAppend(&msg, "; ", missing.size(), " missing tensors: ", ListSome(missing));
    }
    if (!mismatched.empty()) {
      absl::StrAppend(&msg, "; ", mismatched.size(), " shape mismatches: ", ListSome(mismatched));
    }
    if (!bad_dtype.empty()) {
      absl::StrAppend(&msg, "; ", bad_dtype.size(), " tensors with a non-float dtype: ",
                      ListSome(bad_dtype));
    }
    absl::StrAppend(&msg, ". Supported architectures: ", SupportedArchitecturesString());
    return absl::InvalidArgumentError(msg);
  }
  return m;
}

const TensorInfo* HfModelDir::Find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : it->second.info;
}

const SafetensorsFile* HfModelDir::FileOf(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : it->second.file;
}

std::vector<std::string> HfModelDir::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, loc] : tensors_) names.push_back(name);
  return names;
}

absl::Status HfModelDir::ReadFloat(std::string_view name, absl::Span<float> out) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(
        absl::StrCat(dir_, ": no tensor \"", Sv(name), "\" in the checkpoint"));
  }
  return it->second.file->ReadFloat(*it->second.info, out);
}

}  // namespace sfd
