#include "server/auth.h"

#include "absl/strings/match.h"

namespace sfd {

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  // Walk the expected string fully whatever the input is; fold every difference in.
  volatile unsigned char diff = static_cast<unsigned char>(a.size() != b.size());
  for (size_t i = 0; i < b.size(); ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    diff = diff | (x ^ static_cast<unsigned char>(b[i]));
  }
  return diff == 0;
}

absl::Status TokenAuth::Check(const grpc::ServerContext& context) const {
  if (token_.empty()) return absl::OkStatus();
  if (absl::StartsWith(context.peer(), "unix:")) return absl::OkStatus();
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end())
    return absl::UnauthenticatedError("missing 'authorization: Bearer <token>' metadata");
  const std::string value(it->second.data(), it->second.size());
  constexpr absl::string_view kPrefix = "Bearer ";
  if (!absl::StartsWith(value, kPrefix))
    return absl::UnauthenticatedError("authorization metadata must be 'Bearer <token>'");
  if (!ConstantTimeEquals(value.substr(kPrefix.size()), token_))
    return absl::UnauthenticatedError("invalid bearer token");
  return absl::OkStatus();
}

}  // namespace sfd
