#include "server/status_mapping.h"

#include "absl/strings/ascii.h"

namespace sfd {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl::StatusCode and grpc::StatusCode are both the canonical google.rpc.Code values.
  return grpc::Status(static_cast<grpc::StatusCode>(static_cast<int>(status.code())),
                      std::string(status.message()));
}

std::string StatusCodeName(absl::StatusCode code) {
  // absl spells them "INVALID_ARGUMENT"-style already (absl::StatusCodeToString).
  return absl::StatusCodeToString(code);
}

}  // namespace sfd
