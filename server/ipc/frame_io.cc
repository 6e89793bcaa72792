#include "server/ipc/frame_io.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace sfd {
namespace {

// Returns bytes read (< n only at end of stream) or -1 on error.
ssize_t ReadFull(int fd, char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(got);
}

}  // namespace

absl::Status FrameWriter::Write(const google::protobuf::MessageLite& message) {
  std::string body;
  if (!message.SerializeToString(&body)) return absl::InternalError("frame: serialize failed");
  if (body.size() > kMaxFrameBytes)
    return absl::InvalidArgumentError(absl::StrCat("frame: ", body.size(), " bytes is too large"));
  const uint32_t n = static_cast<uint32_t>(body.size());
  std::string frame(4 + body.size(), '\0');
  for (int i = 0; i < 4; ++i) frame[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  std::memcpy(frame.data() + 4, body.data(), body.size());
  std::lock_guard<std::mutex> lock(mu_);
  size_t sent = 0;
  while (sent < frame.size()) {
    // MSG_NOSIGNAL: a dead peer gives EPIPE instead of killing us with SIGPIPE.
    const ssize_t w = ::send(fd_, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return absl::UnavailableError(absl::StrCat("frame write: ", std::strerror(errno)));
    sent += static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

absl::Status ReadFrame(int fd, google::protobuf::MessageLite* message) {
  unsigned char hdr[4];
  const ssize_t h = ReadFull(fd, reinterpret_cast<char*>(hdr), 4);
  if (h < 0) return absl::UnavailableError(absl::StrCat("frame read: ", std::strerror(errno)));
  if (h == 0) return absl::OutOfRangeError("end of stream");
  if (h < 4) return absl::DataLossError("frame: truncated header");
  const uint32_t n = hdr[0] | (hdr[1] << 8) | (hdr[2] << 16) | (static_cast<uint32_t>(hdr[3]) << 24);
  if (n > kMaxFrameBytes) return absl::DataLossError(absl::StrCat("frame: length ", n, " too large"));
  std::string body(n, '\0');
  const ssize_t b = ReadFull(fd, body.data(), n);
  if (b < 0) return absl::UnavailableError(absl::StrCat("frame read: ", std::strerror(errno)));
  if (static_cast<uint32_t>(b) < n) return absl::DataLossError("frame: truncated body");
  if (!message->ParseFromString(body)) return absl::DataLossError("frame: unparsable message");
  return absl::OkStatus();
}

}  // namespace sfd
