// Tests server/ipc/frame_io.cc over a real socketpair: round trips, clean end of stream,
// truncated and oversized frames.
#include "server/ipc/frame_io.h"

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "sfd/v1/worker.pb.h"

namespace sfd {
namespace {

class FrameIoTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds_), 0); }
  void TearDown() override {
    ::close(fds_[0]);
    if (fds_[1] >= 0) ::close(fds_[1]);
  }
  int fds_[2];
};

TEST_F(FrameIoTest, RoundTripsSeveralFramesThenCleanEnd) {
  FrameWriter w(fds_[1]);
  for (int i = 1; i <= 3; ++i) {
    worker::v1::WorkerReport r;
    r.mutable_step()->set_step(i);
    r.mutable_step()->set_loss(1.0 / i);
    ASSERT_TRUE(w.Write(r).ok());
  }
  worker::v1::WorkerReport f;
  f.mutable_final()->set_message(std::string(100000, 'x'));
  ASSERT_TRUE(w.Write(f).ok());
  ::close(fds_[1]);
  fds_[1] = -1;
  for (int i = 1; i <= 3; ++i) {
    worker::v1::WorkerReport r;
    ASSERT_TRUE(ReadFrame(fds_[0], &r).ok());
    EXPECT_EQ(r.step().step(), i);
    EXPECT_DOUBLE_EQ(r.step().loss(), 1.0 / i);
  }
  worker::v1::WorkerReport r;
  ASSERT_TRUE(ReadFrame(fds_[0], &r).ok());
  EXPECT_EQ(r.final().message().size(), 100000u);
  EXPECT_EQ(ReadFrame(fds_[0], &r).code(), absl::StatusCode::kOutOfRange);
}

TEST_F(FrameIoTest, TruncatedAndOversizedFramesAreDataLoss) {
  const unsigned char partial[] = {10, 0, 0, 0, 1, 2};  // says 10 bytes, sends 2
  ASSERT_EQ(::write(fds_[1], partial, sizeof(partial)), static_cast<ssize_t>(sizeof(partial)));
  ::close(fds_[1]);
  fds_[1] = -1;
  worker::v1::WorkerReport r;
  EXPECT_EQ(ReadFrame(fds_[0], &r).code(), absl::StatusCode::kDataLoss);

  int p[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
  const unsigned char huge[] = {0xff, 0xff, 0xff, 0x7f};
  ASSERT_EQ(::write(p[1], huge, 4), 4);
  EXPECT_EQ(ReadFrame(p[0], &r).code(), absl::StatusCode::kDataLoss);
  ::close(p[0]);
  ::close(p[1]);
}

}  // namespace
}  // namespace sfd
