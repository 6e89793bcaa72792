// JsonlReader: streams a JSONL file line by line with bounded memory (one line at a time, a
// fixed read buffer), reporting 1-based line numbers for error messages ("file:line: ...").
// Blank lines (only whitespace) are skipped but counted in line numbers. A line longer than
// kMaxLineBytes is an error, not an allocation of unbounded size. Handles \n and \r\n, and a
// UTF-8 BOM at the start of the file.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace sfd {

class JsonlReader {
 public:
  static constexpr size_t kMaxLineBytes = size_t{64} << 20;

  static absl::StatusOr<std::unique_ptr<JsonlReader>> Open(const std::string& path);
  ~JsonlReader();
  JsonlReader(const JsonlReader&) = delete;
  JsonlReader& operator=(const JsonlReader&) = delete;

  // Reads the next non-blank line into *line (without the newline). Returns false at the end
  // of the file. *line_no: 1-based line number of that line.
  absl::StatusOr<bool> Next(std::string* line, int64_t* line_no);

  const std::string& path() const { return path_; }
  int64_t bytes_read() const { return bytes_read_; }
  int64_t file_size() const { return file_size_; }

 private:
  JsonlReader() = default;
  std::string path_;
  std::FILE* f_ = nullptr;
  int64_t line_no_ = 0;
  int64_t bytes_read_ = 0;
  int64_t file_size_ = 0;
};

}  // namespace sfd
