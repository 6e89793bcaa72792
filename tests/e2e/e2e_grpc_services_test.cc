// End to end: the standard gRPC health and reflection services of a real sfd answer over its
// Unix socket (what grpcurl and load balancers use). Calls are made with the generic stub and
// hand-encoded protobuf bytes, so no extra .proto files are needed.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "tests/e2e/sfd_harness.h"

namespace sfd::e2e {
namespace {

grpc::ByteBuffer Bytes(const std::string& s) {
  grpc::Slice slice(s);
  return grpc::ByteBuffer(&slice, 1);
}

std::string Str(const grpc::ByteBuffer& b) {
  std::vector<grpc::Slice> slices;
  (void)b.Dump(&slices);
  std::string out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// Waits for `tag` on `cq` (tags complete in the order the calls are made here).
bool Await(grpc::CompletionQueue* cq, void* want) {
  void* tag;
  bool ok = false;
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(10);
  while (cq->AsyncNext(&tag, &ok, deadline) == grpc::CompletionQueue::GOT_EVENT)
    if (tag == want) return ok;
  return false;
}

class GrpcServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(sfd_.Start().ok());
    channel_ = grpc::CreateChannel("unix:" + sfd_.socket(), grpc::InsecureChannelCredentials());
  }
  Sfd sfd_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(GrpcServicesTest, HealthCheckSaysServing) {
  grpc::GenericStub stub(channel_);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  // HealthCheckRequest{service: ""} is the empty message.
  auto call = stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", Bytes(""), &cq);
  call->StartCall();
  grpc::ByteBuffer resp;
  grpc::Status st;
  call->Finish(&resp, &st, reinterpret_cast<void*>(1));
  ASSERT_TRUE(Await(&cq, reinterpret_cast<void*>(1)));
  ASSERT_TRUE(st.ok()) << st.error_message();
  // HealthCheckResponse{status: SERVING(1)} = field 1, varint 1.
  EXPECT_EQ(Str(resp), std::string("\x08\x01", 2));
}

TEST_F(GrpcServicesTest, ReflectionListsTheSfdService) {
  grpc::GenericStub stub(channel_);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call = stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(Await(&cq, reinterpret_cast<void*>(1)));
  // ServerReflectionRequest{list_services: "*"} = field 7, length-delimited.
  call->Write(Bytes(std::string("\x3a\x01*", 3)), reinterpret_cast<void*>(2));
  ASSERT_TRUE(Await(&cq, reinterpret_cast<void*>(2)));
  call->WritesDone(reinterpret_cast<void*>(3));
  ASSERT_TRUE(Await(&cq, reinterpret_cast<void*>(3)));
  grpc::ByteBuffer resp;
  call->Read(&resp, reinterpret_cast<void*>(4));
  ASSERT_TRUE(Await(&cq, reinterpret_cast<void*>(4)));
  const std::string text = Str(resp);
  EXPECT_NE(text.find("sfd.v1.Sfd"), std::string::npos);
  EXPECT_NE(text.find("grpc.health.v1.Health"), std::string::npos);
  grpc::Status st;
  call->Finish(&st, reinterpret_cast<void*>(5));
  ASSERT_TRUE(Await(&cq, reinterpret_cast<void*>(5)));
  EXPECT_TRUE(st.ok()) << st.error_message();
}

}  // namespace
}  // namespace sfd::e2e
