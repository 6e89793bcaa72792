// End to end, transport security of a real sfd: TCP with a bearer token (missing or wrong
// token refused with UNAUTHENTICATED, right token accepted, the Unix socket needs none), TCP
// with TLS and client certificates (certificates made by openssl at test time), and refusal
// to start on a non-loopback address without TLS or token.
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/e2e/sfd_harness.h"

namespace sfd::e2e {
namespace {

grpc::Status Info(v1::Sfd::Stub* stub, const std::string& token = "") {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  v1::ServerInfo info;
  return stub->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info);
}

std::unique_ptr<v1::Sfd::Stub> TcpStub(const std::string& address,
                                       std::shared_ptr<grpc::ChannelCredentials> creds,
                                       const std::string& server_name = "") {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  if (!server_name.empty()) args.SetSslTargetNameOverride(server_name);
  return v1::Sfd::NewStub(grpc::CreateCustomChannel(address, creds, args));
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(AuthTest, TokenIsRequiredOnTcpAndComparedExactly) {
  Sfd probe;  // only for its temp dir
  const std::string token_file = probe.dir() + "/token";
  std::ofstream(token_file) << "s3cret-token-0123456789\n";
  ::chmod(token_file.c_str(), 0600);
  Sfd sfd(absl::StrCat("tcp_address: 127.0.0.1:0\ntoken_file: ", token_file, "\n"));
  absl::Status st = sfd.Start();
  ASSERT_TRUE(st.ok()) << st;
  ASSERT_FALSE(sfd.tcp_address().empty());
  auto tcp = TcpStub(sfd.tcp_address(), grpc::InsecureChannelCredentials());
  grpc::Status none = Info(tcp.get());
  EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED) << none.error_message();
  grpc::Status wrong = Info(tcp.get(), "s3cret-token-0123456780");
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED) << wrong.error_message();
  EXPECT_FALSE(absl::StrContains(wrong.error_message(), "s3cret")) << "token leaked in error";
  grpc::Status prefix = Info(tcp.get(), "s3cret-token");
  EXPECT_EQ(prefix.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(Info(tcp.get(), "s3cret-token-0123456789").ok());
  // Other RPCs are guarded too.
  grpc::ClientContext ctx;
  v1::ListJobsResponse resp;
  EXPECT_EQ(tcp->ListJobs(&ctx, v1::ListJobsRequest(), &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  {
    grpc::ClientContext ictx;
    ictx.AddMetadata("authorization", "Bearer s3cret-token-0123456789");
    v1::ServerInfo info;
    ASSERT_TRUE(tcp->GetServerInfo(&ictx, v1::GetServerInfoRequest(), &info).ok());
    bool listed = false;
    for (const auto& a : info.listen_addresses()) listed |= a == sfd.tcp_address();
    EXPECT_TRUE(listed) << info.DebugString();
  }
  // The owner-only Unix socket needs no token.
  EXPECT_TRUE(Info(sfd.stub()).ok());
}

TEST(AuthTest, NonLoopbackTcpWithoutTlsOrTokenRefusesToStart) {
  Sfd sfd("tcp_address: 0.0.0.0:0\n");
  absl::Status st = sfd.Start();
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(absl::StrContains(st.message(), "not loopback")) << st;
}

TEST(AuthTest, TlsWithClientCertificates) {
  Sfd sfd_dir_holder;  // temp dir for the certificates
  const std::string d = sfd_dir_holder.dir() + "/pki";
  const std::string script = absl::StrCat(
      "set -e; mkdir -p ", d, "; cd ", d, "; "
      "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext; "
      "for ca in ca other; do openssl req -x509 -newkey rsa:2048 -nodes -keyout $ca.key "
      "-out $ca.crt -days 2 -subj /CN=sfd-test-$ca 2>/dev/null; done; "
      "for n in server client; do openssl req -newkey rsa:2048 -nodes -keyout $n.key -out $n.csr "
      "-subj /CN=$n 2>/dev/null; openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key "
      "-CAcreateserial -out $n.crt -days 2 -extfile san.ext 2>/dev/null; done; "
      "openssl req -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.csr -subj /CN=rogue 2>/dev/null; "
      "openssl x509 -req -in rogue.csr -CA other.crt -CAkey other.key -CAcreateserial -out rogue.crt "
      "-days 2 2>/dev/null");
  std::ofstream(sfd_dir_holder.dir() + "/pki.sh") << script << "\n";
  ASSERT_EQ(std::system(("bash " + sfd_dir_holder.dir() + "/pki.sh").c_str()), 0) << "openssl failed";
  Sfd sfd(absl::StrCat("tcp_address: 127.0.0.1:0\ntls: {cert: ", d, "/server.crt, key: ", d,
                       "/server.key, client_ca: ", d, "/ca.crt}\n"));
  absl::Status st = sfd.Start();
  ASSERT_TRUE(st.ok()) << st;

  grpc::SslCredentialsOptions good;
  good.pem_root_certs = ReadAll(d + "/ca.crt");
  good.pem_cert_chain = ReadAll(d + "/client.crt");
  good.pem_private_key = ReadAll(d + "/client.key");
  EXPECT_TRUE(Info(TcpStub(sfd.tcp_address(), grpc::SslCredentials(good), "localhost").get()).ok());

  grpc::SslCredentialsOptions no_cert;
  no_cert.pem_root_certs = good.pem_root_certs;
  EXPECT_FALSE(Info(TcpStub(sfd.tcp_address(), grpc::SslCredentials(no_cert), "localhost").get()).ok());

  grpc::SslCredentialsOptions rogue = good;
  rogue.pem_cert_chain = ReadAll(d + "/rogue.crt");
  rogue.pem_private_key = ReadAll(d + "/rogue.key");
  EXPECT_FALSE(Info(TcpStub(sfd.tcp_address(), grpc::SslCredentials(rogue), "localhost").get()).ok());

  grpc::SslCredentialsOptions wrong_ca = good;
  wrong_ca.pem_root_certs = ReadAll(d + "/other.crt");
  EXPECT_FALSE(Info(TcpStub(sfd.tcp_address(), grpc::SslCredentials(wrong_ca), "localhost").get()).ok());

  EXPECT_FALSE(Info(TcpStub(sfd.tcp_address(), grpc::InsecureChannelCredentials()).get()).ok());
}

}  // namespace
}  // namespace sfd::e2e
