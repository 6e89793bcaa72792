// libFuzzer target: ParseJobYaml must turn any bytes into a JobSpec or an InvalidArgument
// error, never crash, hang or trip a sanitizer; a parsed spec must print back to YAML that
// parses to the same spec. Also linked without libFuzzer into a corpus-replay test.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <google/protobuf/util/message_differencer.h>

#include "server/job_yaml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto spec = sfd::ParseJobYaml(text);
  if (!spec.ok()) {
    if (spec.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  auto again = sfd::ParseJobYaml(sfd::JobSpecToYaml(*spec));
  if (!again.ok() || !google::protobuf::util::MessageDifferencer::Equals(*spec, *again)) {
    std::fprintf(stderr, "round trip failed: %s\n",
                 again.ok() ? "different spec" : std::string(again.status().message()).c_str());
    std::abort();
  }
  return 0;
}
