#include "engine/data/dataset_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace sfd {
namespace {
constexpr size_t kBufferTokens = size_t{1} << 20;
}

absl::StatusOr<std::unique_ptr<DocumentCache>> DocumentCache::Create(const std::string& dir) {
  std::string d = dir;
  if (d.empty()) {
    const char* t = std::getenv("TMPDIR");
    d = (t && *t) ? t : "/tmp";
  }
  std::string tmpl = d + "/sfd-tokens-XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  int fd = ::mkstemp(name.data());
  if (fd < 0)
    return absl::UnavailableError(
        absl::StrCat("cannot create token cache in ", d, ": ", std::strerror(errno)));
  ::unlink(name.data());
  auto c = std::unique_ptr<DocumentCache>(new DocumentCache());
  c->fd_ = fd;
  c->buffer_.reserve(kBufferTokens);
  return c;
}

DocumentCache::~DocumentCache() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status DocumentCache::Append(const Document& d) {
  offsets_.push_back(next_offset_);
  lengths_.push_back(static_cast<int32_t>(d.ids.size()));
  for (size_t i = 0; i < d.ids.size(); ++i) {
    buffer_.push_back(static_cast<uint32_t>(d.ids[i]) | (d.trained[i] ? 0x80000000u : 0u));
    if (buffer_.size() >= kBufferTokens) {
      auto st = Flush();
      if (!st.ok()) return st;
    }
  }
  next_offset_ += static_cast<int64_t>(d.ids.size());
  return absl::OkStatus();
}

absl::Status DocumentCache::Flush() {
  const char* p = reinterpret_cast<const char*>(buffer_.data());
  size_t left = buffer_.size() * sizeof(uint32_t);
  off_t off = static_cast<off_t>(flushed_ * sizeof(uint32_t));
  while (left > 0) {
    ssize_t n = ::pwrite(fd_, p, left, off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(
          absl::StrCat("writing the token cache failed: ", std::strerror(errno)));
    }
    p += n;
    off += n;
    left -= static_cast<size_t>(n);
  }
  flushed_ += static_cast<int64_t>(buffer_.size());
  buffer_.clear();
  return absl::OkStatus();
}

absl::StatusOr<Document> DocumentCache::Read(int64_t index) const {
  if (index < 0 || index >= size())
    return absl::OutOfRangeError(absl::StrCat("document ", index, " not in cache"));
  const int64_t n = lengths_[index];
  if (offsets_[index] + n > flushed_)
    return absl::FailedPreconditionError("token cache read before Flush()");
  std::vector<uint32_t> raw(static_cast<size_t>(n));
  char* p = reinterpret_cast<char*>(raw.data());
  size_t left = raw.size() * sizeof(uint32_t);
  off_t off = static_cast<off_t>(offsets_[index] * sizeof(uint32_t));
  while (left > 0) {
    ssize_t r = ::pread(fd_, p, left, off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0)
      return absl::DataLossError(absl::StrCat("reading the token cache failed: ",
                                              r < 0 ? std::strerror(errno) : "short read"));
    p += r;
    off += r;
    left -= static_cast<size_t>(r);
  }
  Document d;
  d.ids.resize(raw.size());
  d.trained.resize(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    d.ids[i] = static_cast<int32_t>(raw[i] & 0x7fffffffu);
    d.trained[i] = (raw[i] >> 31) != 0;
  }
  return d;
}

}  // namespace sfd
