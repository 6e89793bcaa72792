// NvmeStore: the NVMe tier for AdamW moments. Each unit that lives there has one file
//   <dir>/sfd-moments-XXXXXX/unit-00007.moments   (the subdirectory is private, mode 0700)
// holding   m  fp32 [numel]  padded to 4096 bytes   (exp_avg)
//           v  fp32 [numel]  padded to 4096 bytes   (exp_avg_sq)
// The optimizer never sees the files: it gets a unit's m and v in a page-aligned host staging
// buffer (a Lease), updates them in place and hands the buffer back for write-back. A small
// pool of staging buffers (each as big as the largest NVMe unit's m+v) cycles through
//   free -> reading (Prefetch) -> ready -> leased (Acquire) -> writing (WriteBack) -> free,
// so the read of the next unit and the write of the previous one overlap the current update.
//
// I/O: files are opened with O_DIRECT and driven by one I/O thread through io_uring
// (liburing), in chunks of `chunk_bytes` with up to `queue_depth` in flight, using
// read_fixed/write_fixed on the staging buffers registered with io_uring_register_buffers.
// Fallbacks, each logged once and reported by the accessors below:
//   - io_uring_queue_init fails (EPERM/ENOSYS in containers: io_uring_disabled, seccomp):
//     the I/O thread uses pread/pwrite, one chunk at a time;
//   - buffer registration fails (e.g. RLIMIT_MEMLOCK): plain io_uring read/write;
//   - open(O_DIRECT) fails with EINVAL (tmpfs and other filesystems without direct I/O):
//     buffered I/O.
// New files are fallocate()d to their full size (space is reserved up front, so a full disk
// is reported by Create; unwritten extents read as zeros, which is the AdamW initial state);
// where fallocate is unsupported they are extended with ftruncate (sparse, also zeros).
//
// Errors (short read of a truncated file, EIO, ENOSPC, bad directory) are absl::Status naming
// the file and the errno text. A failed asynchronous operation is sticky: the next Prefetch,
// Acquire, Flush (and every call after it) returns it.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct io_uring;

namespace sfd {

struct NvmeStoreOptions {
  int staging_buffers = 3;            // >= 1; 3 lets read-ahead, update and write-back overlap
  int64_t chunk_bytes = 8 << 20;      // bytes per I/O operation; power of two, 4 KiB .. 1 GiB
  int queue_depth = 8;                // I/O operations in flight (io_uring mode)
  bool force_thread_io = false;       // tests: behave as if io_uring_queue_init failed
  bool force_unregistered = false;    // tests: behave as if buffer registration failed
  bool force_buffered = false;        // tests: behave as if open(O_DIRECT) failed with EINVAL
};

enum class NvmeIoMode { kIoUringFixed, kIoUring, kThread };
const char* NvmeIoModeName(NvmeIoMode mode);

class NvmeStore {
 public:
  // One unit's moments in a staging buffer: m and v fp32 [numel], page-aligned, host memory.
  struct Lease {
    int unit = -1;
    int buffer = -1;
    float* m = nullptr;
    float* v = nullptr;
    int64_t numel = 0;
  };

  // Creates `dir` (mode 0700) if missing, a private subdirectory in it, and one zero-initialised
  // file per unit with unit_numels[u] > 0 (0 = the unit's moments are not on NVMe).
  static absl::StatusOr<std::unique_ptr<NvmeStore>> Create(const std::string& dir,
                                                           const std::vector<int64_t>& unit_numels,
                                                           const NvmeStoreOptions& options = {});
  // Waits for outstanding I/O, then removes the files and the private subdirectory.
  ~NvmeStore();
  NvmeStore(const NvmeStore&) = delete;
  NvmeStore& operator=(const NvmeStore&) = delete;

  // Starts reading `unit` into a staging buffer (no-op if it is already there or on its
  // way). May wait for a write-back to free a buffer; evicts an unclaimed prefetch if it has
  // to. A hint: does nothing when every buffer is leased (Acquire then reads).
  absl::Status Prefetch(int unit);
  // Waits for `unit`'s read (starting it if Prefetch was not called) and leases the buffer.
  // FAILED_PRECONDITION if the unit is leased already or every buffer is.
  absl::StatusOr<Lease> Acquire(int unit);
  // Leases a buffer for `unit` without reading it (contents undefined): for overwriting the
  // whole unit (checkpoint load), then WriteBack. Drops any staged copy of the unit.
  absl::StatusOr<Lease> AcquireForWrite(int unit);
  // Starts writing the lease's m and v back; the buffer is free again once that completes.
  absl::Status WriteBack(const Lease& lease);
  // Returns the buffer without writing (the moments on disk stay as they were).
  void Release(const Lease& lease);
  // Waits until no read or write is in flight; returns the first error of any of them.
  absl::Status Flush();

  // Synchronous copies of a unit's moments (checkpoint save/load): m and v are fp32 [numel]
  // anywhere in host memory. Both go through a staging buffer; WriteFrom waits for the write.
  absl::Status ReadInto(int unit, float* m, float* v);
  absl::Status WriteFrom(int unit, const float* m, const float* v);

  bool on_nvme(int unit) const {
    return unit >= 0 && unit < static_cast<int>(units_.size()) && units_[unit].numel > 0;
  }
  int64_t numel(int unit) const { return units_[unit].numel; }
  const std::string& path(int unit) const { return units_[unit].path; }
  const std::string& directory() const { return subdir_; }
  int64_t file_bytes() const { return file_bytes_; }         // all unit files together
  int64_t staging_bytes() const { return staging_bytes_; }   // all staging buffers together
  int64_t bytes_read() const { return bytes_read_.load(); }
  int64_t bytes_written() const { return bytes_written_.load(); }
  NvmeIoMode io_mode() const { return mode_; }
  bool direct_io() const { return direct_; }
  // Why the store runs in a fallback mode ("" when it uses io_uring, fixed buffers, O_DIRECT).
  const std::string& fallback_reason() const { return fallback_reason_; }

  // Bytes of a unit's file: m and v, each padded to 4096.
  static int64_t UnitFileBytes(int64_t numel);

 private:
  enum class BufState { kFree, kReading, kReady, kLeased, kWriting };
  struct Unit {
    int64_t numel = 0;
    int64_t half = 0;   // padded bytes of m (v starts here, in the file and in the buffer)
    int fd = -1;
    std::string path;
  };
  struct Staging {
    char* data = nullptr;
    BufState state = BufState::kFree;
    int unit = -1;
    int64_t bytes = 0;        // transfer size (2 * half of the unit)
    int64_t next = 0;         // offset of the next chunk to submit
    int inflight = 0;         // chunks in flight
    int64_t done = 0;         // bytes transferred
    uint64_t start_seq = 0;     // order of transfers (FIFO submission; identity for waiters)
    uint64_t prefetch_seq = 0;  // order of prefetches (eviction of unclaimed ones)
    bool claimed = false;       // an Acquire waits for this read: never evicted
    bool failed = false;
  };
  struct Chunk {
    int buffer = -1;
    int fd = -1;
    bool read = false;
    int64_t offset = 0;   // in the buffer and in the file
    int64_t length = 0;
  };
  struct Completion {
    int slot;
    int64_t result;   // bytes, or -errno
  };

  NvmeStore() = default;
  absl::Status Init(const std::string& dir, const std::vector<int64_t>& unit_numels,
                    const NvmeStoreOptions& options);
  absl::Status OpenUnitFile(int u);
  void SetupIo();

  absl::Status CheckUnit(int unit) const;
  // All below with mu_ held.
  absl::Status CheckLease(const Lease& lease) const;
  // The lease of staging buffer b holding `unit` (caller marked it leased).
  Lease LeaseOf(int unit, int b) const;
  absl::StatusOr<int> TakeBuffer(std::unique_lock<std::mutex>& lock, int unit);
  int FindBuffer(int unit, BufState state) const;
  bool WriteInFlight(int unit) const;
  void StartTransfer(int b, int unit, BufState state);
  bool NextChunk(Chunk* c);
  void Complete(const Chunk& c, int64_t result);
  void Fail(absl::Status st);

  void IoLoop();
  void SubmitUring(const std::vector<int>& slots, std::vector<Completion>* out);
  void RunThreadIo(const std::vector<int>& slots, std::vector<Completion>* out);

  NvmeStoreOptions options_;
  std::string subdir_;
  std::vector<Unit> units_;
  int64_t file_bytes_ = 0;
  int64_t staging_bytes_ = 0;
  int64_t buffer_bytes_ = 0;
  int segments_per_buffer_ = 1;   // registered iovecs per staging buffer (<= 1 GiB each)
  NvmeIoMode mode_ = NvmeIoMode::kThread;
  bool direct_ = true;
  std::string fallback_reason_;
  std::unique_ptr<io_uring> ring_;

  std::mutex mu_;
  std::condition_variable work_cv_;   // I/O thread: new chunks to submit, or stop
  std::condition_variable done_cv_;   // callers: a buffer changed state
  std::vector<Staging> buffers_;
  std::vector<Chunk> retry_;          // remainders of short transfers
  std::vector<Chunk> slots_;          // in-flight chunk per slot (queue_depth slots)
  std::vector<int> free_slots_;
  int inflight_ = 0;
  uint64_t prefetch_seq_ = 0;
  uint64_t start_seq_ = 0;
  absl::Status error_;                // first failure (sticky)
  bool stop_ = false;
  std::atomic<int64_t> bytes_read_{0};
  std::atomic<int64_t> bytes_written_{0};
  std::thread io_thread_;
};

}  // namespace sfd
