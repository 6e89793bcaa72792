// SafetensorsFile: header parsing/validation and tensor reads.
#include "engine/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/common/status.h"
#include "engine/io/absl_compat.h"
#include "engine/io/file_util.h"
#include "nlohmann/json.hpp"

namespace sfd {
namespace {

using OrderedJson = nlohmann::ordered_json;

// Shapes deeper than this are not tensors anyone stores; refusing them bounds the work done
// on a hostile header.
constexpr size_t kMaxDims = 64;

// Thrown from the parser callback to stop parsing early; turned into a Status below.
struct HeaderShapeError {
  std::string message;
};

absl::Status HeaderError(const std::string& source, std::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": invalid safetensors header: ", Sv(msg)));
}

absl::Status TensorError(const std::string& source, std::string_view tensor,
                         std::string_view msg) {
  return absl::InvalidArgumentError(
      absl::StrCat(source, ": invalid safetensors header: tensor \"", Sv(tensor), "\": ", Sv(msg)));
}

// Reads an unsigned JSON integer (rejecting negatives, floats, other types).
bool JsonToU64(const OrderedJson& j, uint64_t* out) {
  if (j.is_number_unsigned()) {
    *out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer()) {
    int64_t v = j.get<int64_t>();
    if (v < 0) return false;
    *out = static_cast<uint64_t>(v);
    return true;
  }
  return false;
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated at parse time
  return n;
}

absl::StatusOr<int64_t> CheckedNumel(const std::vector<int64_t>& shape, size_t elem_size) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(absl::StrCat("negative dimension in shape ",
                                                     ShapeString(shape)));
    }
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n) ||
        n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::InvalidArgumentError(absl::StrCat("shape ", ShapeString(shape),
                                                     " overflows int64"));
    }
  }
  uint64_t bytes;
  if (__builtin_mul_overflow(n, static_cast<uint64_t>(elem_size), &bytes) ||
      bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return absl::InvalidArgumentError(absl::StrCat("byte size of shape ", ShapeString(shape),
                                                   " overflows int64"));
  }
  return static_cast<int64_t>(n);
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  SFD_ASSIGN_OR_RETURN(auto mapping, MappedFile::Open(path));
  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  file->path_ = path;
  std::string_view image = mapping->view();
  file->mapping_ = std::move(mapping);
  SFD_RETURN_IF_ERROR(file->Parse(image));
  return file;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::FromBytes(
    std::string_view bytes, std::string source) {
  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  file->path_ = std::move(source);
  SFD_RETURN_IF_ERROR(file->Parse(bytes));
  return file;
}

SafetensorsFile::~SafetensorsFile() = default;

absl::Status SafetensorsFile::Parse(std::string_view image) {
  const std::string& src = path_;
  if (image.size() < 8) {
    return HeaderError(src, absl::StrCat("file is ", image.size(),
                                         " bytes, shorter than the 8-byte header length"));
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(image[i]);
  if (n > kMaxSafetensorsHeaderBytes) {
    return HeaderError(src, absl::StrCat("header length ", n, " exceeds the limit of ",
                                         kMaxSafetensorsHeaderBytes, " bytes"));
  }
  if (n > image.size() - 8) {
    return HeaderError(src, absl::StrCat("header length ", n, " exceeds the file size (",
                                         image.size(), " bytes); file truncated?"));
  }
  std::string_view text = image.substr(8, n);
  data_ = reinterpret_cast<const uint8_t*>(image.data()) + 8 + n;
  data_size_ = image.size() - 8 - n;

  // Parse, rejecting duplicate top-level keys (nlohmann would keep the last silently) and
  // nesting or shape lengths no valid header has.
  std::set<std::string> seen_keys;
  std::string duplicate;
  size_t array_elems = 0;
  auto callback = [&](int depth, nlohmann::detail::parse_event_t event, OrderedJson& parsed) {
    using E = nlohmann::detail::parse_event_t;
    if ((event == E::object_start || event == E::array_start) && depth >= 3) {
      throw HeaderShapeError{"nesting deeper than {name: {field: [values]}}"};
    }
    if (event == E::array_start) array_elems = 0;
    if (event == E::value && depth == 3 && ++array_elems > kMaxDims) {
      throw HeaderShapeError{absl::StrCat("an array has more than ", kMaxDims, " elements")};
    }
    if (event == E::key && depth == 1 && parsed.is_string()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!seen_keys.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  OrderedJson header;
  try {
    header = OrderedJson::parse(text.begin(), text.end(), callback);
  } catch (const HeaderShapeError& e) {
    return HeaderError(src, e.message);
  } catch (const nlohmann::json::exception& e) {
    return HeaderError(src, absl::StrCat("not valid JSON: ", e.what()));
  }
  if (!header.is_object()) {
    return HeaderError(src, absl::StrCat("JSON is not an object (got ", header.type_name(), ")"));
  }
  if (!duplicate.empty()) {
    return HeaderError(src, absl::StrCat("key \"", duplicate, "\" appears more than once"));
  }

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const OrderedJson& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) return HeaderError(src, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) {
          return HeaderError(src, absl::StrCat("__metadata__ value of \"", m.key(),
                                               "\" is a ", m.value().type_name(),
                                               ", not a string"));
        }
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object()) return TensorError(src, name, "entry is not an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end()) return TensorError(src, name, "missing \"dtype\"");
    if (sh == v.end()) return TensorError(src, name, "missing \"shape\"");
    if (off == v.end()) return TensorError(src, name, "missing \"data_offsets\"");
    if (!dt->is_string()) return TensorError(src, name, "\"dtype\" is not a string");
    TensorInfo t;
    t.name = name;
    absl::StatusOr<DType> dtype = ParseDType(dt->get_ref<const std::string&>());
    if (!dtype.ok()) return TensorError(src, name, Sv(dtype.status().message()));
    t.dtype = *dtype;
    if (!sh->is_array()) return TensorError(src, name, "\"shape\" is not an array");
    for (const OrderedJson& d : *sh) {
      uint64_t dim;
      if (!JsonToU64(d, &dim) || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return TensorError(src, name, absl::StrCat("\"shape\" element ", d.dump(),
                                                   " is not a non-negative integer"));
      }
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    absl::StatusOr<int64_t> numel = CheckedNumel(t.shape, DTypeSize(t.dtype));
    if (!numel.ok()) return TensorError(src, name, Sv(numel.status().message()));
    if (!off->is_array() || off->size() != 2 || !JsonToU64((*off)[0], &t.begin) ||
        !JsonToU64((*off)[1], &t.end)) {
      return TensorError(src, name, absl::StrCat("\"data_offsets\" ", off->dump(),
                                                 " is not [begin, end] of unsigned integers"));
    }
    if (t.begin > t.end) {
      return TensorError(src, name, absl::StrCat("data_offsets [", t.begin, ", ", t.end,
                                                 "] has begin > end"));
    }
    if (t.end > data_size_) {
      return TensorError(src, name, absl::StrCat("data_offsets end ", t.end,
                                                 " is beyond the data section (", data_size_,
                                                 " bytes); file truncated?"));
    }
    uint64_t expected = static_cast<uint64_t>(*numel) * DTypeSize(t.dtype);
    if (t.end - t.begin != expected) {
      return TensorError(src, name, absl::StrCat("data_offsets span ", t.end - t.begin,
                                                 " bytes but shape ", ShapeString(t.shape), " of ",
                                                 Sv(DTypeName(t.dtype)), " needs ", expected));
    }
    index_[name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }

  // The tensors must tile the data section exactly, as the reference implementation demands.
  std::vector<size_t> order(tensors_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const TensorInfo& x = tensors_[a];
    const TensorInfo& y = tensors_[b];
    return x.begin != y.begin ? x.begin < y.begin : x.end < y.end;
  });
  uint64_t pos = 0;
  const TensorInfo* prev = nullptr;
  for (size_t i : order) {
    const TensorInfo& t = tensors_[i];
    if (t.begin < pos) {
      return TensorError(src, t.name, absl::StrCat("data_offsets [", t.begin, ", ", t.end,
                                                   "] overlap tensor \"", prev->name, "\" [",
                                                   prev->begin, ", ", prev->end, "]"));
    }
    if (t.begin > pos) {
      return TensorError(src, t.name, absl::StrCat("data_offsets [", t.begin, ", ", t.end,
                                                   "] leave a hole of ", t.begin - pos,
                                                   " bytes after offset ", pos));
    }
    pos = t.end;
    prev = &t;
  }
  if (pos != data_size_) {
    return HeaderError(src, absl::StrCat("data section is ", data_size_,
                                         " bytes but the tensors cover ", pos));
  }
  return absl::OkStatus();
}

const TensorInfo* SafetensorsFile::Find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::Span<const uint8_t> SafetensorsFile::Bytes(const TensorInfo& t) const {
  SFD_CHECK(t.begin <= t.end && t.end <= data_size_) << path_ << ": tensor " << t.name;
  return absl::Span<const uint8_t>(data_ + t.begin, t.end - t.begin);
}

absl::Status SafetensorsFile::ReadFloat(const TensorInfo& t, absl::Span<float> out) const {
  if (!IsFloatDType(t.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": tensor \"", t.name, "\" has dtype ", Sv(DTypeName(t.dtype)),
        "; only F32, F16, BF16, F64 convert to fp32"));
  }
  if (t.begin > t.end || t.end > data_size_) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": tensor \"", t.name, "\" is not a tensor of this file"));
  }
  int64_t n = t.numel();
  if (static_cast<int64_t>(out.size()) != n) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": tensor \"", t.name, "\" of shape ",
                                                   ShapeString(t.shape), " has ", n,
                                                   " elements, destination has ", out.size()));
  }
  ConvertToFloat(t.dtype, data_ + t.begin, static_cast<size_t>(n), out.data());
  return absl::OkStatus();
}

}  // namespace sfd
