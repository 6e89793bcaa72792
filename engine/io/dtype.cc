// DType names and sizes.
#include "engine/io/dtype.h"

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/io/absl_compat.h"
#include "engine/common/half.h"

namespace sfd {
namespace {

struct DTypeEntry {
  DType dtype;
  std::string_view name;
  size_t size;
  std::string_view torch_name;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::kF32, "F32", 4, "float32"},  {DType::kF16, "F16", 2, "float16"},
    {DType::kBF16, "BF16", 2, "bfloat16"}, {DType::kF64, "F64", 8, "float64"},
    {DType::kI64, "I64", 8, ""},         {DType::kI32, "I32", 4, ""},
    {DType::kI16, "I16", 2, ""},         {DType::kI8, "I8", 1, ""},
    {DType::kU8, "U8", 1, ""},           {DType::kBool, "BOOL", 1, ""},
};

const DTypeEntry& Entry(DType dtype) {
  for (const DTypeEntry& e : kDTypes) {
    if (e.dtype == dtype) return e;
  }
  return kDTypes[0];  // unreachable for valid enum values
}

}  // namespace

absl::StatusOr<DType> ParseDType(std::string_view safetensors_name) {
  for (const DTypeEntry& e : kDTypes) {
    if (e.name == safetensors_name) return e.dtype;
  }
  std::string known;
  for (const DTypeEntry& e : kDTypes) absl::StrAppend(&known, known.empty() ? "" : ", ", Sv(e.name));
  return absl::InvalidArgumentError(absl::StrCat("unsupported dtype \"", Sv(safetensors_name),
                                                 "\" (supported: ", known, ")"));
}

std::string_view DTypeName(DType dtype) { return Entry(dtype).name; }

size_t DTypeSize(DType dtype) { return Entry(dtype).size; }

bool IsFloatDType(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16 ||
         dtype == DType::kF64;
}

std::string_view DTypeTorchName(DType dtype) { return Entry(dtype).torch_name; }

// Little-endian host assumed (x86-64, aarch64), like safetensors itself.
void ConvertToFloat(DType dtype, const uint8_t* src, size_t n, float* dst) {
  if (n == 0) return;  // dst/src may be null (empty vectors); memcpy(null, ..., 0) is UB
  switch (dtype) {
    case DType::kF32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = Bf16ToFloat(h);
      }
      return;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = Fp16ToFloat(h);
      }
      return;
    case DType::kF64:
      for (size_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, src + 8 * i, 8);
        dst[i] = static_cast<float>(d);
      }
      return;
    default:
      return;  // callers check IsFloatDType first
  }
}

void ConvertFromFloat(DType dtype, const float* src, size_t n, uint8_t* dst) {
  if (n == 0) return;  // dst/src may be null (empty vectors); memcpy(null, ..., 0) is UB
  switch (dtype) {
    case DType::kF32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h = FloatToBf16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h = FloatToFp16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case DType::kF64:
      for (size_t i = 0; i < n; ++i) {
        double d = src[i];
        std::memcpy(dst + 8 * i, &d, 8);
      }
      return;
    default:
      return;
  }
}

}  // namespace sfd
