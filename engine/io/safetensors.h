// Reading and writing safetensors files without torch.
//
// Format: 8-byte little-endian header length N, N bytes of JSON header
//   {"__metadata__": {str: str}, "<tensor>": {"dtype": "BF16", "shape": [..],
//    "data_offsets": [begin, end]}, ...}
// then the data section; offsets are relative to its start. Like the reference (Rust)
// implementation we require the tensors to tile the data section exactly: no overlaps, no
// holes, no trailing bytes. Every violation is an InvalidArgument error naming the file (and
// the tensor); nothing here crashes or allocates according to an untrusted length.
//
// SafetensorsFile maps the file read-only (host memory, page cache): Bytes() views point into
// the mapping and stay valid as long as the object lives. Its const methods are thread-safe,
// so tensors can be read in parallel.
//
// Writers keep tensors in the order given. The header is padded so the data section starts
// 8-byte aligned; a tensor's own alignment then depends on the sizes before it, so callers
// mixing dtypes should put larger element sizes first (as the Python writer does).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/io/dtype.h"

namespace sfd {

class MappedFile;
class WritableFile;

// Largest JSON header accepted (same limit as the reference implementation).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets relative to the data section
  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

// numel of `shape`, or an error when a dimension is negative or the product overflows int64
// (or its byte size at `elem_size` bytes per element overflows).
absl::StatusOr<int64_t> CheckedNumel(const std::vector<int64_t>& shape, size_t elem_size);

// "[2, 3]" for error messages.
std::string ShapeString(const std::vector<int64_t>& shape);

class SafetensorsFile {  // read-only; file mmapped
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  // Parses an in-memory image (used by the fuzzer and tests); `source` names it in errors.
  // Bytes must outlive the object.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> FromBytes(std::string_view bytes,
                                                                    std::string source);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in header order
  const TensorInfo* Find(std::string_view name) const;                 // nullptr if absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Raw little-endian bytes of `t` (which must come from this file).
  absl::Span<const uint8_t> Bytes(const TensorInfo& t) const;
  // Converts F32/F16/BF16 (and F64) to fp32 into out (size must equal numel); any other
  // dtype or size is an error naming file + tensor.
  absl::Status ReadFloat(const TensorInfo& t, absl::Span<float> out) const;
  // Size of the data section in bytes.
  uint64_t data_size() const { return data_size_; }

 private:
  SafetensorsFile() = default;
  absl::Status Parse(std::string_view image);

  std::string path_;
  std::unique_ptr<MappedFile> mapping_;  // null for FromBytes
  const uint8_t* data_ = nullptr;        // start of the data section
  uint64_t data_size_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;  // numel * DTypeSize(dtype) bytes
};

// Writes a valid safetensors file (header padded to 8 bytes, tensors in the given order,
// `metadata` as __metadata__, omitted when empty). Writes path+".tmp", fsyncs, then renames.
absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata);

// Streams a safetensors file whose header is known up front: the caller appends the data of
// each tensor in order (in as many chunks as it likes), so a large shard never has to be in
// memory at once. Writes path+".tmp"; Finish() checks the byte count, fsyncs and renames it
// to `path`. Destroying an unfinished writer removes the temp file.
class SafetensorsWriter {
 public:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
  };
  static absl::StatusOr<std::unique_ptr<SafetensorsWriter>> Create(
      const std::string& path, const std::vector<Entry>& entries,
      const std::map<std::string, std::string>& metadata);
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  absl::Status Append(const void* data, size_t n);
  // Converts fp32 values to the dtype of the tensor being written and appends them.
  absl::Status AppendFloat(DType dtype, const float* data, size_t n);
  absl::Status Finish();
  // Bytes of the data section (sum of the tensors' byte sizes).
  uint64_t data_bytes() const { return data_bytes_; }

 private:
  SafetensorsWriter() = default;
  std::string path_;
  std::unique_ptr<WritableFile> file_;
  uint64_t header_bytes_ = 0;  // 8 + padded JSON
  uint64_t data_bytes_ = 0;
  uint64_t appended_ = 0;
  bool finished_ = false;
};

}  // namespace sfd
