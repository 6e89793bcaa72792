// POSIX implementations of the engine/io file helpers.
#include "engine/io/file_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "engine/common/status.h"
#include "engine/io/absl_compat.h"

namespace sfd {
namespace {

absl::Status ErrnoError(std::string_view what, const std::string& path, int err) {
  std::string msg = absl::StrCat(path, ": ", Sv(what), ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(msg);
  if (err == ENOSPC || err == EDQUOT) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoError("cannot stat", path, err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  auto file = std::unique_ptr<MappedFile>(new MappedFile());
  file->size_ = static_cast<size_t>(st.st_size);
  if (file->size_ > 0) {
    void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      file->size_ = 0;
      return ErrnoError("cannot mmap", path, err);
    }
    file->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
  return file;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

absl::StatusOr<std::unique_ptr<WritableFile>> WritableFile::Create(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("cannot create", path, errno);
  return std::unique_ptr<WritableFile>(new WritableFile(path, fd));
}

WritableFile::~WritableFile() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status WritableFile::Append(const void* data, size_t n) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(path_, ": write after close"));
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    size_t chunk = n < (size_t{1} << 30) ? n : (size_t{1} << 30);
    ssize_t w = ::write(fd_, p, chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write failed", path_, errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
    written_ += static_cast<uint64_t>(w);
  }
  return absl::OkStatus();
}

absl::Status WritableFile::Sync() {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(path_, ": sync after close"));
  if (::fsync(fd_) != 0) return ErrnoError("fsync failed", path_, errno);
  return absl::OkStatus();
}

absl::Status WritableFile::Close() {
  if (fd_ < 0) return absl::OkStatus();
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) return ErrnoError("close failed", path_, errno);
  return absl::OkStatus();
}

absl::Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open directory", dir, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  // Some filesystems refuse fsync on directories; that is not a data-loss error.
  if (rc != 0 && err != EINVAL && err != EROFS) return ErrnoError("fsync failed", dir, err);
  return absl::OkStatus();
}

std::string ParentDir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  SFD_ASSIGN_OR_RETURN(auto mapped, MappedFile::Open(path));
  return std::string(mapped->view());
}

absl::Status WriteFileAtomic(const std::string& path, std::string_view contents) {
  std::string tmp = path + ".tmp";
  {
    SFD_ASSIGN_OR_RETURN(auto file, WritableFile::Create(tmp));
    absl::Status st = file->Append(contents.data(), contents.size());
    if (st.ok()) st = file->Sync();
    if (st.ok()) st = file->Close();
    if (!st.ok()) {
      ::unlink(tmp.c_str());
      return st;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoError(absl::StrCat("cannot rename ", tmp, " to"), path, err);
  }
  return FsyncDir(ParentDir(path));
}

absl::Status CopyFile(const std::string& from, const std::string& to) {
  SFD_ASSIGN_OR_RETURN(auto src, MappedFile::Open(from));
  SFD_ASSIGN_OR_RETURN(auto dst, WritableFile::Create(to));
  SFD_RETURN_IF_ERROR(dst->Append(src->data(), src->size()));
  SFD_RETURN_IF_ERROR(dst->Sync());
  return dst->Close();
}

}  // namespace sfd
