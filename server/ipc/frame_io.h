// Length-delimited protobuf frames over a stream file descriptor (the daemon<->worker
// socketpair): 4-byte little-endian length, then the serialized message. Blocking I/O;
// EINTR is retried; frames above kMaxFrameBytes are rejected.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include <google/protobuf/message_lite.h>

#include "absl/status/status.h"

namespace sfd {

inline constexpr uint32_t kMaxFrameBytes = 16u << 20;

// Writes one frame. Safe to call from several threads on the same FrameWriter.
class FrameWriter {
 public:
  explicit FrameWriter(int fd) : fd_(fd) {}
  absl::Status Write(const google::protobuf::MessageLite& message);

 private:
  int fd_;
  std::mutex mu_;
};

// Reads one frame into `message`. OUT_OF_RANGE at a clean end of stream (peer closed between
// frames); DATA_LOSS for truncated or oversized frames or unparsable bytes.
absl::Status ReadFrame(int fd, google::protobuf::MessageLite* message);

}  // namespace sfd
