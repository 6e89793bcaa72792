// libFuzzer target: SafetensorsFile::FromBytes on arbitrary bytes. Whatever parses must be
// self-consistent (tensors inside the data section, byte sizes matching shapes, every float
// tensor readable); whatever does not must be an error naming the source. Built only with
// -DSFD_BUILD_FUZZERS=ON under clang (tests/fuzz/CMakeLists.txt).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "engine/io/safetensors.h"

namespace {

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "safetensors_fuzz invariant violated: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto file = sfd::SafetensorsFile::FromBytes(bytes, "fuzz.safetensors");
  if (!file.ok()) {
    if (std::string(file.status().message()).find("fuzz.safetensors") == std::string::npos) {
      Die("error message does not name the source");
    }
    return 0;
  }
  const sfd::SafetensorsFile& f = **file;
  uint64_t covered = 0;
  for (const sfd::TensorInfo& t : f.tensors()) {
    if (t.begin > t.end || t.end > f.data_size()) Die("tensor outside the data section");
    if (f.Find(t.name) != &t) Die("Find does not return the tensor");
    auto span = f.Bytes(t);
    if (span.size() != static_cast<size_t>(t.numel()) * sfd::DTypeSize(t.dtype)) {
      Die("byte size does not match shape");
    }
    covered += span.size();
    if (sfd::IsFloatDType(t.dtype) && t.numel() <= (1 << 20)) {
      std::vector<float> out(static_cast<size_t>(t.numel()));
      if (!f.ReadFloat(t, absl::MakeSpan(out)).ok()) Die("ReadFloat failed on a valid tensor");
    }
  }
  if (covered != f.data_size()) Die("tensors do not tile the data section");
  return 0;
}
