// sfctl's connection to sfd: a channel over the Unix socket (default) or TCP (optionally
// TLS with a CA, client certificate) and a per-call context that carries the bearer token
// and a deadline.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "sfd/v1/sfd.grpc.pb.h"

namespace sfd {

struct ConnectionOptions {
  std::string socket;       // Unix socket path (used when address is empty)
  std::string address;      // host:port for TCP
  std::string token;        // bearer token ("" = none)
  std::string tls_ca;       // PEM file; set = TLS
  std::string tls_cert;     // client certificate (mTLS)
  std::string tls_key;
  std::string tls_server_name;  // override for the certificate's name check
  int timeout_seconds = 30;     // unary calls
};

class Connection {
 public:
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const ConnectionOptions& options);
  v1::Sfd::Stub* stub() { return stub_.get(); }
  // A context with the token and (when `unary`) the deadline.
  std::unique_ptr<grpc::ClientContext> Context(bool unary = true) const;
  const std::string& target() const { return target_; }

 private:
  ConnectionOptions options_;
  std::string target_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Sfd::Stub> stub_;
};

}  // namespace sfd
