// The one place where absl::Status becomes grpc::Status (and status codes become their
// names). Every RPC handler returns ToGrpcStatus(...) of an absl::Status; nothing else in the
// daemon constructs a grpc::Status from an error.
#pragma once

#include <string>

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace sfd {

// Same code, same message. absl and gRPC share the canonical code numbering.
grpc::Status ToGrpcStatus(const absl::Status& status);

// "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", ... for events and stored job errors.
std::string StatusCodeName(absl::StatusCode code);

}  // namespace sfd
