#include "engine/runtime/nvme_store.h"

#include <fcntl.h>
#include <liburing.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "engine/common/status.h"
#include "spdlog/spdlog.h"

namespace sfd {
namespace {

constexpr int64_t kAlign = 4096;
constexpr int64_t kSegmentBytes = int64_t{1} << 30;  // io_uring registers at most 1 GiB per iovec

int64_t RoundUp(int64_t n, int64_t a) { return (n + a - 1) / a * a; }

absl::Status ErrnoStatus(int err, const std::string& what) {
  const std::string msg = absl::StrCat("NVMe store: ", what, ": ", std::strerror(err));
  switch (err) {
    case ENOSPC:
    case EFBIG:
    case EDQUOT:
    case ENOMEM:
      return absl::ResourceExhaustedError(msg);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(msg);
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(msg);
    case EIO:
      return absl::DataLossError(msg);
    default:
      return absl::InternalError(msg);
  }
}

// mkdir -p, new components with mode 0700.
absl::Status MakeDirs(const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError("NVMe store: empty directory name");
  std::string path;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    path = dir.substr(0, pos);
    if (path.empty()) continue;
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, "cannot create directory " + path);
    }
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return ErrnoStatus(errno, "cannot stat " + dir);
  if (!S_ISDIR(st.st_mode)) return ErrnoStatus(ENOTDIR, dir);
  return absl::OkStatus();
}

// Logs a fallback once per process and kind.
void LogFallbackOnce(std::atomic<bool>* flag, const std::string& msg) {
  if (!flag->exchange(true)) spdlog::warn("{}", msg);
}
std::atomic<bool> g_logged_thread{false}, g_logged_unregistered{false}, g_logged_buffered{false};

}  // namespace

const char* NvmeIoModeName(NvmeIoMode mode) {
  switch (mode) {
    case NvmeIoMode::kIoUringFixed: return "io_uring (registered buffers)";
    case NvmeIoMode::kIoUring: return "io_uring";
    case NvmeIoMode::kThread: return "pread/pwrite thread";
  }
  return "?";
}

int64_t NvmeStore::UnitFileBytes(int64_t numel) { return 2 * RoundUp(numel * 4, kAlign); }

absl::StatusOr<std::unique_ptr<NvmeStore>> NvmeStore::Create(const std::string& dir,
                                                             const std::vector<int64_t>& unit_numels,
                                                             const NvmeStoreOptions& options) {
  std::unique_ptr<NvmeStore> store(new NvmeStore());
  SFD_RETURN_IF_ERROR(store->Init(dir, unit_numels, options));
  return store;
}

absl::Status NvmeStore::Init(const std::string& dir, const std::vector<int64_t>& unit_numels,
                             const NvmeStoreOptions& options) {
  options_ = options;
  const int64_t cb = options.chunk_bytes;
  if (options.staging_buffers < 1 || options.queue_depth < 1 || options.queue_depth > 4096 ||
      cb < kAlign || cb > kSegmentBytes || (cb & (cb - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "NVMe store options: need staging_buffers >= 1, queue_depth 1..4096 and chunk_bytes a power "
        "of two in 4096..1 GiB (got ", options.staging_buffers, ", ", options.queue_depth, ", ", cb, ")"));
  }
  SFD_RETURN_IF_ERROR(MakeDirs(dir));
  std::string tmpl = dir + "/sfd-moments-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return ErrnoStatus(errno, "cannot create a directory in " + dir);
  }
  subdir_ = tmpl;
  direct_ = !options.force_buffered;
  if (options.force_buffered) {
    fallback_reason_ = "buffered I/O forced by options";
  }
  units_.resize(unit_numels.size());
  int64_t largest = 0;
  for (size_t u = 0; u < unit_numels.size(); ++u) {
    if (unit_numels[u] < 0) {
      return absl::InvalidArgumentError(absl::StrCat("NVMe store: unit ", u, " has negative size"));
    }
    units_[u].numel = unit_numels[u];
    if (unit_numels[u] == 0) continue;
    units_[u].half = RoundUp(unit_numels[u] * 4, kAlign);
    char name[64];
    std::snprintf(name, sizeof(name), "/unit-%05zu.moments", u);
    units_[u].path = subdir_ + name;
    SFD_RETURN_IF_ERROR(OpenUnitFile(static_cast<int>(u)));
    file_bytes_ += 2 * units_[u].half;
    largest = std::max(largest, 2 * units_[u].half);
  }
  buffer_bytes_ = largest;
  segments_per_buffer_ = static_cast<int>((largest + kSegmentBytes - 1) / kSegmentBytes);
  if (largest > 0) {
    buffers_.resize(options.staging_buffers);
    for (Staging& s : buffers_) {
      void* p = ::mmap(nullptr, largest, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) {
        return ErrnoStatus(errno, absl::StrCat("cannot allocate a ", largest, "-byte staging buffer"));
      }
      s.data = static_cast<char*>(p);
      staging_bytes_ += largest;
    }
  }
  SetupIo();
  io_thread_ = std::thread([this] { IoLoop(); });
  return absl::OkStatus();
}

absl::Status NvmeStore::OpenUnitFile(int u) {
  Unit& unit = units_[u];
  const int base = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC;
  unit.fd = ::open(unit.path.c_str(), base | (direct_ ? O_DIRECT : 0), 0600);
  if (unit.fd < 0 && direct_ && errno == EINVAL) {
    direct_ = false;
    fallback_reason_ = absl::StrCat(fallback_reason_.empty() ? "" : "; ",
                                    "O_DIRECT not supported in ", subdir_, ": buffered I/O");
    LogFallbackOnce(&g_logged_buffered, "NVMe store: " + subdir_ +
                                            " does not support O_DIRECT (tmpfs?); using buffered I/O");
    ::unlink(unit.path.c_str());
    unit.fd = ::open(unit.path.c_str(), base, 0600);
  }
  if (unit.fd < 0) return ErrnoStatus(errno, "cannot create " + unit.path);
  const int64_t size = 2 * unit.half;
  if (::fallocate(unit.fd, 0, 0, size) != 0) {
    const int err = errno;
    if (err != EOPNOTSUPP && err != ENOSYS) {
      return ErrnoStatus(err, absl::StrCat("cannot reserve ", size, " bytes for ", unit.path));
    }
    if (::ftruncate(unit.fd, size) != 0) {
      return ErrnoStatus(errno, absl::StrCat("cannot extend ", unit.path, " to ", size, " bytes"));
    }
  }
  return absl::OkStatus();
}

void NvmeStore::SetupIo() {
  const int slots = options_.queue_depth;
  auto note = [&](const std::string& why) {
    fallback_reason_ = fallback_reason_.empty() ? why : fallback_reason_ + "; " + why;
  };
  mode_ = NvmeIoMode::kThread;
  if (options_.force_thread_io) {
    note("pread/pwrite forced by options");
  } else {
    ring_ = std::make_unique<io_uring>();
    const int rc = io_uring_queue_init(static_cast<unsigned>(slots), ring_.get(), 0);
    if (rc < 0) {
      ring_.reset();
      const std::string why = absl::StrCat("io_uring_queue_init failed (", std::strerror(-rc),
                                           "): pread/pwrite on the I/O thread");
      note(why);
      LogFallbackOnce(&g_logged_thread, "NVMe store: " + why);
    } else {
      mode_ = NvmeIoMode::kIoUring;
      if (options_.force_unregistered) {
        note("unregistered buffers forced by options");
      } else if (!buffers_.empty()) {
        std::vector<iovec> iov;
        for (Staging& s : buffers_) {
          for (int64_t off = 0; off < buffer_bytes_; off += kSegmentBytes) {
            iov.push_back({s.data + off, static_cast<size_t>(std::min(kSegmentBytes, buffer_bytes_ - off))});
          }
        }
        const int r = io_uring_register_buffers(ring_.get(), iov.data(), static_cast<unsigned>(iov.size()));
        if (r < 0) {
          const std::string why = absl::StrCat("io_uring_register_buffers failed (", std::strerror(-r),
                                               "; RLIMIT_MEMLOCK?): unregistered buffers");
          note(why);
          LogFallbackOnce(&g_logged_unregistered, "NVMe store: " + why);
        } else {
          mode_ = NvmeIoMode::kIoUringFixed;
        }
      }
    }
  }
  const int n = mode_ == NvmeIoMode::kThread ? 1 : slots;
  slots_.assign(n, Chunk{});
  for (int i = n - 1; i >= 0; --i) free_slots_.push_back(i);
}

NvmeStore::~NvmeStore() {
  if (io_thread_.joinable()) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      done_cv_.wait(lock, [&] {
        if (inflight_ > 0) return false;
        for (const Staging& s : buffers_) {
          if (s.state == BufState::kReading || s.state == BufState::kWriting) return false;
        }
        return true;
      });
      stop_ = true;
    }
    work_cv_.notify_all();
    io_thread_.join();
  }
  if (ring_) io_uring_queue_exit(ring_.get());
  for (Staging& s : buffers_) {
    if (s.data != nullptr) ::munmap(s.data, buffer_bytes_);
  }
  for (Unit& u : units_) {
    if (u.fd >= 0) ::close(u.fd);
    if (!u.path.empty()) ::unlink(u.path.c_str());
  }
  if (!subdir_.empty() && ::rmdir(subdir_.c_str()) != 0) {
    spdlog::warn("NVMe store: cannot remove {}: {}", subdir_, std::strerror(errno));
  }
}

// ---- caller side (mu_ held unless stated) ----

int NvmeStore::FindBuffer(int unit, BufState state) const {
  for (size_t b = 0; b < buffers_.size(); ++b) {
    if (buffers_[b].unit == unit && buffers_[b].state == state) return static_cast<int>(b);
  }
  return -1;
}

bool NvmeStore::WriteInFlight(int unit) const { return FindBuffer(unit, BufState::kWriting) >= 0; }

absl::StatusOr<int> NvmeStore::TakeBuffer(std::unique_lock<std::mutex>& lock, int unit) {
  while (true) {
    SFD_RETURN_IF_ERROR(error_);
    int writing = -1, reading = -1, ready = -1;
    for (size_t b = 0; b < buffers_.size(); ++b) {
      const Staging& s = buffers_[b];
      if (s.state == BufState::kFree) return static_cast<int>(b);
      if (s.state == BufState::kWriting) writing = static_cast<int>(b);
      if (s.state == BufState::kReading) reading = static_cast<int>(b);
      if (s.state == BufState::kReady && !s.claimed && s.unit != unit &&
          (ready < 0 || s.prefetch_seq < buffers_[ready].prefetch_seq)) {
        ready = static_cast<int>(b);
      }
    }
    if (writing < 0 && ready >= 0) {  // evict the oldest unclaimed prefetch
      buffers_[ready].state = BufState::kFree;
      buffers_[ready].unit = -1;
      return ready;
    }
    if (writing < 0 && reading < 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "NVMe store: all ", buffers_.size(), " staging buffers are leased; cannot stage unit ", unit));
    }
    done_cv_.wait(lock);
  }
}

void NvmeStore::StartTransfer(int b, int unit, BufState state) {
  Staging& s = buffers_[b];
  s.state = state;
  s.unit = unit;
  s.bytes = 2 * units_[unit].half;
  s.next = 0;
  s.inflight = 0;
  s.done = 0;
  s.failed = false;
  s.claimed = false;
  s.start_seq = ++start_seq_;
  if (state == BufState::kReading) s.prefetch_seq = ++prefetch_seq_;
  work_cv_.notify_all();
}

absl::Status NvmeStore::CheckUnit(int unit) const {
  if (!on_nvme(unit)) {
    return absl::InvalidArgumentError(absl::StrCat("NVMe store: unit ", unit, " is not on NVMe"));
  }
  return absl::OkStatus();
}

absl::Status NvmeStore::Prefetch(int unit) {
  SFD_RETURN_IF_ERROR(CheckUnit(unit));
  std::unique_lock<std::mutex> lock(mu_);
  SFD_RETURN_IF_ERROR(error_);
  auto staged = [&] {
    return FindBuffer(unit, BufState::kReading) >= 0 || FindBuffer(unit, BufState::kReady) >= 0 ||
           FindBuffer(unit, BufState::kLeased) >= 0;
  };
  if (staged()) return absl::OkStatus();
  absl::StatusOr<int> b = TakeBuffer(lock, unit);
  if (b.status().code() == absl::StatusCode::kFailedPrecondition) return absl::OkStatus();  // all leased
  SFD_RETURN_IF_ERROR(b.status());
  if (staged()) return absl::OkStatus();  // another thread staged it while we waited
  StartTransfer(*b, unit, BufState::kReading);
  return absl::OkStatus();
}

absl::StatusOr<NvmeStore::Lease> NvmeStore::Acquire(int unit) {
  SFD_RETURN_IF_ERROR(CheckUnit(unit));
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    SFD_RETURN_IF_ERROR(error_);
    if (FindBuffer(unit, BufState::kLeased) >= 0) {
      return absl::FailedPreconditionError(absl::StrCat("NVMe store: unit ", unit, " is already leased"));
    }
    int b = FindBuffer(unit, BufState::kReady);
    if (b < 0) b = FindBuffer(unit, BufState::kReading);
    if (b < 0) {
      SFD_ASSIGN_OR_RETURN(b, TakeBuffer(lock, unit));
      if (FindBuffer(unit, BufState::kReading) >= 0 || FindBuffer(unit, BufState::kReady) >= 0) continue;
      StartTransfer(b, unit, BufState::kReading);
    }
    Staging& s = buffers_[b];
    const uint64_t seq = s.start_seq;
    s.claimed = true;
    done_cv_.wait(lock, [&] { return !error_.ok() || s.start_seq != seq || s.state != BufState::kReading; });
    SFD_RETURN_IF_ERROR(error_);
    if (s.start_seq != seq || s.state != BufState::kReady) continue;  // lost it; start over
    s.state = BufState::kLeased;
    return LeaseOf(unit, b);
  }
}

NvmeStore::Lease NvmeStore::LeaseOf(int unit, int b) const {
  Lease lease;
  lease.unit = unit;
  lease.buffer = b;
  lease.numel = units_[unit].numel;
  lease.m = reinterpret_cast<float*>(buffers_[b].data);
  lease.v = reinterpret_cast<float*>(buffers_[b].data + units_[unit].half);
  return lease;
}

absl::Status NvmeStore::CheckLease(const Lease& lease) const {
  if (lease.buffer < 0 || lease.buffer >= static_cast<int>(buffers_.size()) ||
      buffers_[lease.buffer].state != BufState::kLeased || buffers_[lease.buffer].unit != lease.unit) {
    return absl::FailedPreconditionError(
        absl::StrCat("NVMe store: lease of unit ", lease.unit, " is not held (returned twice?)"));
  }
  return absl::OkStatus();
}

absl::Status NvmeStore::WriteBack(const Lease& lease) {
  std::lock_guard<std::mutex> lock(mu_);
  SFD_RETURN_IF_ERROR(CheckLease(lease));
  if (!error_.ok()) {
    buffers_[lease.buffer].state = BufState::kFree;
    buffers_[lease.buffer].unit = -1;
    done_cv_.notify_all();
    return error_;
  }
  StartTransfer(lease.buffer, lease.unit, BufState::kWriting);
  return absl::OkStatus();
}

void NvmeStore::Release(const Lease& lease) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!CheckLease(lease).ok()) return;
  buffers_[lease.buffer].state = BufState::kFree;
  buffers_[lease.buffer].unit = -1;
  done_cv_.notify_all();
}

absl::Status NvmeStore::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] {
    for (const Staging& s : buffers_) {
      if (s.state == BufState::kReading || s.state == BufState::kWriting) return false;
    }
    return inflight_ == 0;
  });
  return error_;
}

absl::Status NvmeStore::ReadInto(int unit, float* m, float* v) {
  SFD_ASSIGN_OR_RETURN(Lease lease, Acquire(unit));
  std::memcpy(m, lease.m, lease.numel * sizeof(float));
  std::memcpy(v, lease.v, lease.numel * sizeof(float));
  Release(lease);
  return absl::OkStatus();
}

absl::StatusOr<NvmeStore::Lease> NvmeStore::AcquireForWrite(int unit) {
  SFD_RETURN_IF_ERROR(CheckUnit(unit));
  std::unique_lock<std::mutex> lock(mu_);
  SFD_RETURN_IF_ERROR(error_);
  if (FindBuffer(unit, BufState::kLeased) >= 0) {
    return absl::FailedPreconditionError(absl::StrCat("NVMe store: unit ", unit, " is already leased"));
  }
  // A staged copy would go stale: wait for its read, then drop it.
  done_cv_.wait(lock, [&] { return !error_.ok() || FindBuffer(unit, BufState::kReading) < 0; });
  SFD_RETURN_IF_ERROR(error_);
  for (int b; (b = FindBuffer(unit, BufState::kReady)) >= 0;) {
    buffers_[b].state = BufState::kFree;
    buffers_[b].unit = -1;
  }
  SFD_ASSIGN_OR_RETURN(const int b, TakeBuffer(lock, unit));
  Staging& s = buffers_[b];
  s.state = BufState::kLeased;
  s.unit = unit;
  return LeaseOf(unit, b);
}

absl::Status NvmeStore::WriteFrom(int unit, const float* m, const float* v) {
  SFD_ASSIGN_OR_RETURN(Lease lease, AcquireForWrite(unit));
  std::memcpy(lease.m, m, lease.numel * sizeof(float));
  std::memcpy(lease.v, v, lease.numel * sizeof(float));
  SFD_RETURN_IF_ERROR(WriteBack(lease));
  std::unique_lock<std::mutex> lock(mu_);
  Staging& s = buffers_[lease.buffer];
  const uint64_t seq = s.start_seq;
  done_cv_.wait(lock, [&] { return !error_.ok() || s.start_seq != seq || s.state != BufState::kWriting; });
  return error_;
}

// ---- I/O thread ----

bool NvmeStore::NextChunk(Chunk* c) {
  while (!retry_.empty()) {
    *c = retry_.back();
    retry_.pop_back();
    if (!buffers_[c->buffer].failed) return true;
  }
  int best = -1;
  for (size_t b = 0; b < buffers_.size(); ++b) {
    const Staging& s = buffers_[b];
    if (s.state != BufState::kReading && s.state != BufState::kWriting) continue;
    if (s.failed || s.next >= s.bytes) continue;
    if (s.state == BufState::kReading && WriteInFlight(s.unit)) continue;  // read after write
    if (best < 0 || s.start_seq < buffers_[best].start_seq) best = static_cast<int>(b);
  }
  if (best < 0) return false;
  Staging& s = buffers_[best];
  c->buffer = best;
  c->fd = units_[s.unit].fd;
  c->read = s.state == BufState::kReading;
  c->offset = s.next;
  c->length = std::min(options_.chunk_bytes, s.bytes - s.next);
  s.next += c->length;
  return true;
}

void NvmeStore::Fail(absl::Status st) {
  if (!error_.ok()) return;  // the first failure is the one reported
  spdlog::error("{}", std::string(st.message()));
  error_ = std::move(st);
}

void NvmeStore::Complete(const Chunk& c, int64_t result) {
  Staging& s = buffers_[c.buffer];
  const bool read = c.read;
  const Unit& u = units_[s.unit];
  s.inflight--;
  const std::string what = absl::StrCat(read ? "read of " : "write of ", c.length, " bytes at offset ",
                                        c.offset, (read ? " from " : " to "), u.path);
  if (result < 0) {
    s.failed = true;
    Fail(ErrnoStatus(static_cast<int>(-result), what));
  } else if (result == 0) {
    s.failed = true;
    Fail(read ? absl::DataLossError(absl::StrCat("NVMe store: short read: ", what,
                                                 " returned 0 bytes (file truncated?)"))
              : ErrnoStatus(ENOSPC, what + " wrote 0 bytes"));
  } else {
    (read ? bytes_read_ : bytes_written_) += result;
    s.done += result;
    if (result < c.length) {
      Chunk rest = c;
      rest.offset += result;
      rest.length -= result;
      retry_.push_back(rest);
    }
  }
  if (s.inflight > 0) return;
  if (s.failed) {
    retry_.erase(std::remove_if(retry_.begin(), retry_.end(),
                                [&](const Chunk& r) { return r.buffer == c.buffer; }),
                 retry_.end());
    if (s.next < s.bytes) s.next = s.bytes;  // nothing more is submitted
    s.state = BufState::kFree;
    s.unit = -1;
  } else if (s.done == s.bytes) {
    s.state = read ? BufState::kReady : BufState::kFree;
    if (!read) s.unit = -1;
  }
}

void NvmeStore::IoLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  std::vector<int> batch;
  std::vector<Completion> done;
  while (true) {
    batch.clear();
    Chunk c;
    while (!free_slots_.empty() && NextChunk(&c)) {
      const int slot = free_slots_.back();
      free_slots_.pop_back();
      slots_[slot] = c;
      buffers_[c.buffer].inflight++;
      ++inflight_;
      batch.push_back(slot);
    }
    if (batch.empty() && inflight_ == 0) {
      if (stop_) return;
      work_cv_.wait(lock);
      continue;
    }
    lock.unlock();
    done.clear();
    if (mode_ == NvmeIoMode::kThread) {
      RunThreadIo(batch, &done);
    } else {
      SubmitUring(batch, &done);
    }
    lock.lock();
    for (const Completion& d : done) {
      const Chunk ch = slots_[d.slot];
      free_slots_.push_back(d.slot);
      --inflight_;
      Complete(ch, d.result);
    }
    done_cv_.notify_all();
  }
}

// Called without mu_: slots_ entries in `slots` are owned by the I/O thread until completed,
// and buffers_[b].data / units_ never change after Init.
void NvmeStore::RunThreadIo(const std::vector<int>& slots, std::vector<Completion>* out) {
  for (int slot : slots) {
    const Chunk c = slots_[slot];
    const int fd = c.fd;
    const bool read = c.read;
    char* p = buffers_[c.buffer].data + c.offset;
    ssize_t r;
    do {
      r = read ? ::pread(fd, p, c.length, c.offset) : ::pwrite(fd, p, c.length, c.offset);
    } while (r < 0 && errno == EINTR);
    out->push_back({slot, r < 0 ? -static_cast<int64_t>(errno) : static_cast<int64_t>(r)});
  }
}

void NvmeStore::SubmitUring(const std::vector<int>& slots, std::vector<Completion>* out) {
  io_uring* ring = ring_.get();
  for (int slot : slots) {
    const Chunk c = slots_[slot];
    const int fd = c.fd;
    const bool read = c.read;
    char* p = buffers_[c.buffer].data + c.offset;
    io_uring_sqe* sqe = io_uring_get_sqe(ring);
    SFD_CHECK(sqe != nullptr) << "io_uring submission queue full";
    const unsigned len = static_cast<unsigned>(c.length);
    if (mode_ == NvmeIoMode::kIoUringFixed) {
      const int index = c.buffer * segments_per_buffer_ + static_cast<int>(c.offset / kSegmentBytes);
      if (read) {
        io_uring_prep_read_fixed(sqe, fd, p, len, c.offset, index);
      } else {
        io_uring_prep_write_fixed(sqe, fd, p, len, c.offset, index);
      }
    } else if (read) {
      io_uring_prep_read(sqe, fd, p, len, c.offset);
    } else {
      io_uring_prep_write(sqe, fd, p, len, c.offset);
    }
    io_uring_sqe_set_data64(sqe, static_cast<uint64_t>(slot));
  }
  if (!slots.empty()) {
    int rc;
    do {
      rc = io_uring_submit(ring);
    } while (rc == -EINTR);
    // In flight never exceeds the ring's size, so the kernel has no reason to refuse.
    SFD_CHECK(rc >= 0) << "io_uring_submit: " << std::strerror(-rc);
  }
  io_uring_cqe* cqe = nullptr;
  int rc;
  do {
    rc = io_uring_wait_cqe(ring, &cqe);
  } while (rc == -EINTR || rc == -EAGAIN);
  SFD_CHECK(rc == 0) << "io_uring_wait_cqe: " << std::strerror(-rc);
  unsigned head;
  unsigned n = 0;
  io_uring_for_each_cqe(ring, head, cqe) {
    out->push_back({static_cast<int>(io_uring_cqe_get_data64(cqe)), static_cast<int64_t>(cqe->res)});
    ++n;
  }
  io_uring_cq_advance(ring, n);
}

}  // namespace sfd
