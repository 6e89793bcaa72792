// libFuzzer target: ParseModelConfig on arbitrary text. Whatever parses must yield a config
// whose ExpectedTensors() shapes are positive and whose JSON form parses back to the same
// tensor list; errors must name the source. Built only with -DSFD_BUILD_FUZZERS=ON under clang.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "engine/io/model_config.h"

namespace {

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "model_config_fuzz invariant violated: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = sfd::ParseModelConfig(text, "fuzz/config.json");
  if (!config.ok()) {
    if (std::string(config.status().message()).find("fuzz/config.json") == std::string::npos) {
      Die("error message does not name the source");
    }
    return 0;
  }
  // Keep the tensor list small enough to enumerate (a fuzzed num_hidden_layers can be 2^62).
  if (config->num_layers > 64) return 0;
  auto tensors = sfd::ExpectedTensors(*config);
  for (const auto& [name, shape] : tensors) {
    for (int64_t d : shape) {
      if (d <= 0) Die("non-positive dimension in ExpectedTensors");
    }
  }
  auto again = sfd::ParseModelConfig(sfd::ModelConfigToJson(*config).dump(), "fuzz/rt.json");
  if (!again.ok()) Die("ModelConfigToJson output does not parse");
  if (sfd::ExpectedTensors(*again) != tensors) Die("round trip changed the tensor list");
  return 0;
}
