#include "client/sfctl/connection.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace sfd {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat(what, ": cannot read ", path));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const ConnectionOptions& o) {
  auto c = std::make_unique<Connection>();
  c->options_ = o;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!o.address.empty()) {
    c->target_ = o.address;
    if (!o.tls_ca.empty() || !o.tls_cert.empty()) {
      grpc::SslCredentialsOptions ssl;
      if (!o.tls_ca.empty()) {
        auto ca = ReadPem(o.tls_ca, "--tls_ca");
        if (!ca.ok()) return ca.status();
        ssl.pem_root_certs = *ca;
      }
      if (!o.tls_cert.empty()) {
        auto cert = ReadPem(o.tls_cert, "--tls_cert");
        if (!cert.ok()) return cert.status();
        auto key = ReadPem(o.tls_key, "--tls_key");
        if (!key.ok()) return key.status();
        ssl.pem_cert_chain = *cert;
        ssl.pem_private_key = *key;
      }
      creds = grpc::SslCredentials(ssl);
      if (!o.tls_server_name.empty())
        args.SetSslTargetNameOverride(o.tls_server_name);
    }
  } else {
    if (o.socket.empty()) return absl::InvalidArgumentError("no --socket or --address given");
    c->target_ = "unix:" + o.socket;
  }
  c->channel_ = grpc::CreateCustomChannel(c->target_, creds, args);
  c->stub_ = v1::Sfd::NewStub(c->channel_);
  return c;
}

std::unique_ptr<grpc::ClientContext> Connection::Context(bool unary) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!options_.token.empty()) ctx->AddMetadata("authorization", "Bearer " + options_.token);
  if (unary)
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::seconds(options_.timeout_seconds));
  return ctx;
}

}  // namespace sfd
