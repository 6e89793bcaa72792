// Writing safetensors files: SafetensorsWriter (streaming) and WriteSafetensors (all at once).
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "engine/common/status.h"
#include "engine/io/absl_compat.h"
#include "engine/io/file_util.h"
#include "engine/io/safetensors.h"
#include "nlohmann/json.hpp"

namespace sfd {
namespace {

// Builds the padded JSON header; sets *data_bytes to the size of the data section.
absl::StatusOr<std::string> BuildHeader(const std::string& path,
                                        const std::vector<SafetensorsWriter::Entry>& entries,
                                        const std::map<std::string, std::string>& metadata,
                                        uint64_t* data_bytes) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string_view> names;
  uint64_t offset = 0;
  for (const auto& e : entries) {
    if (e.name == "__metadata__") {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": \"__metadata__\" cannot be a tensor name"));
    }
    if (!names.insert(e.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor \"", e.name, "\" is listed twice"));
    }
    absl::StatusOr<int64_t> numel = CheckedNumel(e.shape, DTypeSize(e.dtype));
    if (!numel.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor \"", e.name, "\": ", numel.status().message()));
    }
    uint64_t end = offset + static_cast<uint64_t>(*numel) * DTypeSize(e.dtype);
    if (end < offset) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": total size overflows"));
    }
    header[e.name] = {{"dtype", std::string(DTypeName(e.dtype))},
                      {"shape", e.shape},
                      {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // e.g. a name that is not UTF-8
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot encode header: ", e.what()));
  }
  // Pad with spaces so that the data section starts 8-byte aligned (as the reference writer).
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kMaxSafetensorsHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": header of ", text.size(), " bytes exceeds the format's limit"));
  }
  std::string out(8, '\0');
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out += text;
  *data_bytes = offset;
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsWriter>> SafetensorsWriter::Create(
    const std::string& path, const std::vector<Entry>& entries,
    const std::map<std::string, std::string>& metadata) {
  auto writer = std::unique_ptr<SafetensorsWriter>(new SafetensorsWriter());
  writer->path_ = path;
  SFD_ASSIGN_OR_RETURN(std::string header,
                       BuildHeader(path, entries, metadata, &writer->data_bytes_));
  writer->header_bytes_ = header.size();
  SFD_ASSIGN_OR_RETURN(writer->file_, WritableFile::Create(path + ".tmp"));
  SFD_RETURN_IF_ERROR(writer->file_->Append(header.data(), header.size()));
  return writer;
}

SafetensorsWriter::~SafetensorsWriter() {
  if (!finished_ && file_ != nullptr) {
    (void)file_->Close();
    ::unlink(file_->path().c_str());
  }
}

absl::Status SafetensorsWriter::Append(const void* data, size_t n) {
  if (finished_) return absl::FailedPreconditionError(absl::StrCat(path_, ": already finished"));
  if (n > data_bytes_ - appended_) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": appending ", n, " bytes after ",
                                                   appended_, " exceeds the data size ",
                                                   data_bytes_, " declared in the header"));
  }
  SFD_RETURN_IF_ERROR(file_->Append(data, n));
  appended_ += n;
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::AppendFloat(DType dtype, const float* data, size_t n) {
  if (!IsFloatDType(dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": cannot convert fp32 to ", Sv(DTypeName(dtype))));
  }
  if (dtype == DType::kF32) return Append(data, n * 4);
  constexpr size_t kChunk = size_t{1} << 20;  // elements converted per write
  std::vector<uint8_t> buf(std::min(n, kChunk) * DTypeSize(dtype));
  for (size_t i = 0; i < n; i += kChunk) {
    size_t m = std::min(kChunk, n - i);
    ConvertFromFloat(dtype, data + i, m, buf.data());
    SFD_RETURN_IF_ERROR(Append(buf.data(), m * DTypeSize(dtype)));
  }
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Finish() {
  if (finished_) return absl::OkStatus();
  if (appended_ != data_bytes_) {
    return absl::FailedPreconditionError(absl::StrCat(
        path_, ": only ", appended_, " of ", data_bytes_, " data bytes were written"));
  }
  SFD_RETURN_IF_ERROR(file_->Sync());
  SFD_RETURN_IF_ERROR(file_->Close());
  std::string tmp = path_ + ".tmp";
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", path_, ": ",
                                            std::strerror(errno)));
  }
  finished_ = true;
  return FsyncDir(ParentDir(path_));
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  std::vector<SafetensorsWriter::Entry> entries;
  entries.reserve(tensors.size());
  for (const TensorToWrite& t : tensors) entries.push_back({t.name, t.dtype, t.shape});
  SFD_ASSIGN_OR_RETURN(auto writer, SafetensorsWriter::Create(path, entries, metadata));
  for (const TensorToWrite& t : tensors) {
    size_t n = static_cast<size_t>(CheckedNumel(t.shape, DTypeSize(t.dtype)).value()) *
               DTypeSize(t.dtype);  // validated by Create
    if (n > 0 && t.data == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor \"", t.name, "\" has no data"));
    }
    SFD_RETURN_IF_ERROR(writer->Append(t.data, n));
  }
  return writer->Finish();
}

}  // namespace sfd
