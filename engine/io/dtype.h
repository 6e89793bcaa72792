// Element types of tensors stored in safetensors files (the subset sfd reads and writes),
// with their safetensors spellings ("F32", "BF16", ...) and byte sizes. No torch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"

namespace sfd {

enum class DType { kF32, kF16, kBF16, kF64, kI64, kI32, kI16, kI8, kU8, kBool };

// "F32" -> kF32 etc.; an unknown name is an InvalidArgument error that quotes it.
absl::StatusOr<DType> ParseDType(std::string_view safetensors_name);

// The safetensors spelling of `dtype` ("F32", "F16", "BF16", "F64", "I64", ..., "BOOL").
std::string_view DTypeName(DType dtype);

// Bytes per element.
size_t DTypeSize(DType dtype);

// True for F32, F16, BF16, F64: the types ReadFloat() converts to fp32.
bool IsFloatDType(DType dtype);

// The HF config.json spelling ("float32", "float16", "bfloat16", "float64") of a float dtype;
// empty for the others.
std::string_view DTypeTorchName(DType dtype);

// Converts `n` elements of `dtype` at `src` (any alignment, little-endian) to fp32.
// Precondition: IsFloatDType(dtype).
void ConvertToFloat(DType dtype, const uint8_t* src, size_t n, float* dst);
// Converts `n` fp32 values to `dtype` (F32, F16, BF16, F64) at `dst` (any alignment).
void ConvertFromFloat(DType dtype, const float* src, size_t n, uint8_t* dst);

}  // namespace sfd
