// RemoveTree: `rm -rf` for a path (file, symlink or directory tree), with nftw(3).
// Why not std::filesystem::remove_all: in a process that links the pip build of libtorch
// (torch 2.11 on the GPU machine) that symbol binds to a copy inside libtorch.so which calls a
// null function and crashes (seen under cuda-gdb on the H200). Everything in engine/ and its
// tests that deletes trees goes through here. A missing path is not an error. Header-only.
#pragma once

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "absl/status/status.h"

namespace sfd {

namespace remove_tree_internal {
inline int RemoveEntry(const char* path, const struct stat*, int type, struct FTW*) {
  const int rc = (type == FTW_DP) ? ::rmdir(path) : ::unlink(path);
  return rc == 0 || errno == ENOENT ? 0 : -1;
}
}  // namespace remove_tree_internal

inline absl::Status RemoveTree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::InternalError("cannot stat " + path + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return absl::InternalError("cannot remove " + path + ": " + std::strerror(errno));
    }
    return absl::OkStatus();
  }
  if (::nftw(path.c_str(), remove_tree_internal::RemoveEntry, 32, FTW_DEPTH | FTW_PHYS) != 0) {
    return absl::InternalError("cannot remove " + path + ": " + std::strerror(errno));
  }
  return absl::OkStatus();
}

}  // namespace sfd
