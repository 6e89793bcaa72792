// POSIX file helpers for engine/io: a read-only memory map (RAII), a write-only file that
// reports every failure as a Status naming the path, directory fsync, and whole-file reads.
// Everything that writes model files goes through WritableFile so that errors (ENOSPC, EIO)
// are never silently dropped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sfd {

// A whole file mapped read-only (MAP_PRIVATE). An empty file maps to data()==nullptr, size 0.
class MappedFile {
 public:
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::string_view view() const {
    return std::string_view(reinterpret_cast<const char*>(data_), size_);
  }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// A file opened for writing (created or truncated, mode 0644). Close() must be called to see
// close errors; the destructor closes silently.
class WritableFile {
 public:
  static absl::StatusOr<std::unique_ptr<WritableFile>> Create(const std::string& path);
  ~WritableFile();
  WritableFile(const WritableFile&) = delete;
  WritableFile& operator=(const WritableFile&) = delete;

  absl::Status Append(const void* data, size_t n);
  absl::Status Sync();   // fsync
  absl::Status Close();  // idempotent
  const std::string& path() const { return path_; }
  uint64_t bytes_written() const { return written_; }

 private:
  WritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_ = -1;
  uint64_t written_ = 0;
};

// fsyncs a directory so that renames/creations inside it are durable.
absl::Status FsyncDir(const std::string& dir);

// Directory part of `path` ("." when there is none).
std::string ParentDir(const std::string& path);

// Reads a whole (small) file; the error names the path.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Writes `contents` to path+".tmp", fsyncs it, renames it over `path` and fsyncs the parent.
absl::Status WriteFileAtomic(const std::string& path, std::string_view contents);

// Copies a regular file byte for byte (fsynced). The error names both paths.
absl::Status CopyFile(const std::string& from, const std::string& to);

}  // namespace sfd
