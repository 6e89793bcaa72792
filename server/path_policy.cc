#include "server/path_policy.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace sfd {
namespace {

absl::StatusOr<std::string> RealPath(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) {
    return absl::NotFoundError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  return std::string(buf);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace

bool IsUnder(const std::string& path, const std::string& root) {
  if (root == "/") return !path.empty() && path[0] == '/';
  if (path.size() < root.size() || path.compare(0, root.size(), root) != 0) return false;
  return path.size() == root.size() || path[root.size()] == '/';
}

absl::StatusOr<std::string> CanonicalPath(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("empty path");
  if (path.find('\0') != std::string::npos) return absl::InvalidArgumentError("NUL in path");
  if (path.size() >= PATH_MAX) return absl::InvalidArgumentError("path too long");
  std::string abs = path;
  if (abs[0] != '/') abs = absl::StrCat(std::filesystem::current_path().string(), "/", path);
  // Split into components; find the longest existing prefix.
  std::vector<std::string> parts = absl::StrSplit(abs, '/', absl::SkipEmpty());
  size_t existing = 0;
  std::string prefix = "/";
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string next = absl::StrCat(prefix == "/" ? "" : prefix, "/", parts[i]);
    if (!Exists(next)) break;
    prefix = next;
    existing = i + 1;
  }
  auto real = RealPath(prefix);
  if (!real.ok()) return real.status();
  std::string out = *real;
  for (size_t i = existing; i < parts.size(); ++i) {
    if (parts[i] == "..")
      return absl::InvalidArgumentError("'..' after a component that does not exist");
    if (parts[i] == ".") continue;
    out = absl::StrCat(out == "/" ? "" : out, "/", parts[i]);
  }
  return out;
}

absl::StatusOr<PathPolicy> PathPolicy::Create(std::vector<std::string> model_roots,
                                              std::vector<std::string> data_roots,
                                              std::string output_root) {
  PathPolicy p;
  if (output_root.empty()) return absl::InvalidArgumentError("output_root: must be set");
  std::error_code ec;
  std::filesystem::create_directories(output_root, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("output_root: cannot create ", output_root, ": ", ec.message()));
  auto out = RealPath(output_root);
  if (!out.ok()) return absl::InvalidArgumentError(absl::StrCat("output_root: ", out.status().message()));
  p.output_root_ = *out;
  for (auto* list : {&model_roots, &data_roots}) {
    for (const std::string& r : *list) {
      auto real = RealPath(r);
      if (!real.ok())
        return absl::InvalidArgumentError(absl::StrCat(list == &model_roots ? "model_roots" : "data_roots",
                                                       ": ", real.status().message()));
      (list == &model_roots ? p.model_roots_ : p.data_roots_).push_back(*real);
    }
  }
  return p;
}

absl::StatusOr<std::string> PathPolicy::ResolveUnder(const std::string& path,
                                                     const std::string& field,
                                                     const std::vector<std::string>& roots,
                                                     bool must_exist) const {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": must be set"));
  std::string full = path;
  if (full[0] != '/') {
    if (roots.empty())
      return absl::InvalidArgumentError(absl::StrCat(field, ": relative path '", path,
                                                     "' but no root is configured"));
    full = absl::StrCat(roots.front(), "/", path);
  }
  auto canon = CanonicalPath(full);
  if (!canon.ok())
    return absl::InvalidArgumentError(absl::StrCat(field, ": '", path, "': ", canon.status().message()));
  bool ok = false;
  for (const std::string& root : roots) ok = ok || IsUnder(*canon, root);
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": '", path, "' resolves to '", *canon, "', which is outside the allowed roots [",
        absl::StrJoin(roots, ", "), "]"));
  }
  if (must_exist && !Exists(*canon))
    return absl::InvalidArgumentError(absl::StrCat(field, ": '", path, "' does not exist"));
  return *canon;
}

absl::StatusOr<std::string> PathPolicy::ResolveModel(const std::string& path,
                                                     const std::string& field) const {
  std::vector<std::string> roots = model_roots_;
  roots.push_back(output_root_);
  return ResolveUnder(path, field, roots, /*must_exist=*/true);
}

absl::StatusOr<std::string> PathPolicy::ResolveData(const std::string& path,
                                                    const std::string& field) const {
  std::vector<std::string> roots = data_roots_;
  roots.push_back(output_root_);
  return ResolveUnder(path, field, roots, /*must_exist=*/true);
}

absl::StatusOr<std::string> PathPolicy::ResolveOutput(const std::string& path,
                                                      const std::string& field) const {
  return ResolveUnder(path, field, {output_root_}, /*must_exist=*/false);
}

}  // namespace sfd
