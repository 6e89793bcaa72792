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
  const std::string yaml = sfd::JobSpecToYaml(*spec);
  auto again = sfd::ParseJobYaml(yaml);
  if (!again.ok()) {
    std::fprintf(stderr, "round trip failed: %s\n%s\n",
                 std::string(again.status().message()).c_str(), yaml.c_str());
    std::abort();
  }
  google::protobuf::util::MessageDifferencer diff;
  std::string report;
  diff.ReportDifferencesToString(&report);
  if (!diff.Compare(*spec, *again)) {
    std::fprintf(stderr, "round trip changed the spec:\n%s\n%s\n", report.c_str(), yaml.c_str());
    std::abort();
  }
  return 0;
}
