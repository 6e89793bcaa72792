// Request authentication for TCP listeners: when a token file is configured, every RPC that
// arrives over TCP must carry "authorization: Bearer <token>"; the comparison takes constant
// time. The Unix socket (mode 0600, owner only) is trusted as is.
#pragma once

#include <string>

#include <grpcpp/server_context.h>

#include "absl/status/status.h"

namespace sfd {

class TokenAuth {
 public:
  // Empty token = no token required.
  explicit TokenAuth(std::string token) : token_(std::move(token)) {}
  // OK, or UNAUTHENTICATED naming what is wrong (never the expected token).
  absl::Status Check(const grpc::ServerContext& context) const;

 private:
  std::string token_;
};

// Equal-length comparison whose time depends only on the lengths, not on the contents.
bool ConstantTimeEquals(const std::string& a, const std::string& b);

}  // namespace sfd
