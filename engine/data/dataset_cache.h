// DocumentCache: tokenized documents of a dataset spilled to an unlinked temporary file, so
// that datasets larger than RAM keep only offsets and lengths in memory (12 bytes per
// document). Tokens are stored as uint32 (id | trained << 31). Appends are buffered and
// single-threaded; reads (pread) are thread-safe. The file disappears with the process.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/data/dataset_encoder.h"

namespace sfd {

class DocumentCache {
 public:
  // `dir`: where the temporary file lives; "" = $TMPDIR, else /tmp.
  static absl::StatusOr<std::unique_ptr<DocumentCache>> Create(const std::string& dir = "");
  ~DocumentCache();
  DocumentCache(const DocumentCache&) = delete;
  DocumentCache& operator=(const DocumentCache&) = delete;

  absl::Status Append(const Document& d);
  absl::Status Flush();  // before reading
  absl::StatusOr<Document> Read(int64_t index) const;

  int64_t size() const { return static_cast<int64_t>(lengths_.size()); }
  const std::vector<int32_t>& lengths() const { return lengths_; }
  int64_t total_tokens() const { return next_offset_; }

 private:
  DocumentCache() = default;
  int fd_ = -1;
  std::vector<int64_t> offsets_;  // in tokens
  std::vector<int32_t> lengths_;
  std::vector<uint32_t> buffer_;
  int64_t next_offset_ = 0;
  int64_t flushed_ = 0;
};

}  // namespace sfd
