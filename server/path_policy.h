// PathPolicy: every path a job names is canonicalised (symlinks resolved, "." removed) and
// must lie under one of the configured roots: model and data roots for reading, the output
// root for reading or writing. ".." components and symlinks that leave a root are rejected.
// Relative paths are taken relative to the first root of their kind.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sfd {

class PathPolicy {
 public:
  // Roots are canonicalised here; each must exist (the output root is created if missing).
  static absl::StatusOr<PathPolicy> Create(std::vector<std::string> model_roots,
                                           std::vector<std::string> data_roots,
                                           std::string output_root);

  // A model directory or data file to read: under a model/data root or the output root.
  // `field` names the job field in errors ("model", "data.train").
  absl::StatusOr<std::string> ResolveModel(const std::string& path, const std::string& field) const;
  absl::StatusOr<std::string> ResolveData(const std::string& path, const std::string& field) const;
  // A directory to write (may not exist yet): under the output root.
  absl::StatusOr<std::string> ResolveOutput(const std::string& path, const std::string& field) const;

  const std::vector<std::string>& model_roots() const { return model_roots_; }
  const std::vector<std::string>& data_roots() const { return data_roots_; }
  const std::string& output_root() const { return output_root_; }

 private:
  absl::StatusOr<std::string> ResolveUnder(const std::string& path, const std::string& field,
                                           const std::vector<std::string>& roots,
                                           bool must_exist) const;
  std::vector<std::string> model_roots_;
  std::vector<std::string> data_roots_;
  std::string output_root_;
};

// realpath() of the longest existing prefix of `path` (absolute), followed by the remaining
// components, which must not be "..". Fails on empty paths and NUL bytes.
absl::StatusOr<std::string> CanonicalPath(const std::string& path);

// True if `path` equals `root` or lies below it (both canonical).
bool IsUnder(const std::string& path, const std::string& root);

}  // namespace sfd
