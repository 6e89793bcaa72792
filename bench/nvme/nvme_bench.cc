// nvme_bench: what the NVMe tier for AdamW moments can deliver on a given disk.
//   1. raw: sequential O_DIRECT write, then read, of --gib GiB in --block-mib blocks through
//      io_uring with registered buffers and --qd blocks in flight (the disk's rate; each block
//      carries its index, checked on read);
//   2. store: NvmeStore in the optimizer's pattern (prefetch next unit, acquire, fake AdamW
//      moment update in place, write back) over --units units of --unit-numel floats for
//      --steps steps (the first is a warm-up and not timed); the moments' final values are
//      checked against the closed form of the fake update.
// Prints CSV: test,io_mode,direct,bytes,seconds,gb_per_s and a ratio row store/raw, where raw
// is read+write bytes over write+read seconds.
//
//   nvme_bench [--dir /tmp] [--gib 1] [--block-mib 8] [--qd 8] [--unit-numel 8388608]
//              [--units 12] [--steps 3] [--buffers 3] [--chunk-mib 8] [--store-qd 8]
#include <fcntl.h>
#include <liburing.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/runtime/nvme_store.h"

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int Die(const std::string& msg) {
  std::fprintf(stderr, "nvme_bench: %s\n", msg.c_str());
  return 1;
}

struct Raw {
  double write_s = 0, read_s = 0;
  int64_t bytes = 0;
};

// Sequential O_DIRECT write then read of `total` bytes, `qd` blocks in flight.
int RawRate(const std::string& dir, int64_t total, int64_t block, int qd, Raw* out) {
  const std::string path = dir + "/nvme_bench_raw." + std::to_string(::getpid());
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0600);
  if (fd < 0) return Die("open " + path + " (O_DIRECT): " + std::strerror(errno));
  ::unlink(path.c_str());  // gone when closed
  if (::fallocate(fd, 0, 0, total) != 0) return Die("fallocate " + path + ": " + std::strerror(errno));
  io_uring ring;
  int rc = io_uring_queue_init(qd, &ring, 0);
  if (rc < 0) return Die(std::string("io_uring_queue_init: ") + std::strerror(-rc));
  std::vector<iovec> iov(qd);
  for (auto& v : iov) {
    v.iov_base = ::mmap(nullptr, block, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    v.iov_len = block;
    if (v.iov_base == MAP_FAILED) return Die("mmap");
  }
  const bool fixed = io_uring_register_buffers(&ring, iov.data(), qd) == 0;
  const int64_t blocks = total / block;
  int bad = 0;
  for (int pass = 0; pass < 2; ++pass) {
    const bool write = pass == 0;
    const double t0 = Now();
    int64_t next = 0, done = 0;
    std::vector<int64_t> slot_block(qd, -1);
    std::vector<int> free_slots;
    for (int i = 0; i < qd; ++i) free_slots.push_back(i);
    while (done < blocks) {
      while (!free_slots.empty() && next < blocks) {
        const int s = free_slots.back();
        free_slots.pop_back();
        slot_block[s] = next;
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        char* p = static_cast<char*>(iov[s].iov_base);
        if (write) {
          for (int64_t off = 0; off < block; off += 4096) std::memcpy(p + off, &next, sizeof(next));
          fixed ? io_uring_prep_write_fixed(sqe, fd, p, block, next * block, s)
                : io_uring_prep_write(sqe, fd, p, block, next * block);
        } else {
          fixed ? io_uring_prep_read_fixed(sqe, fd, p, block, next * block, s)
                : io_uring_prep_read(sqe, fd, p, block, next * block);
        }
        io_uring_sqe_set_data64(sqe, s);
        ++next;
      }
      io_uring_submit(&ring);
      io_uring_cqe* cqe;
      if ((rc = io_uring_wait_cqe(&ring, &cqe)) < 0) return Die(std::string("wait_cqe: ") + std::strerror(-rc));
      const int s = static_cast<int>(io_uring_cqe_get_data64(cqe));
      if (cqe->res != block) return Die("short or failed I/O: " + std::to_string(cqe->res));
      io_uring_cqe_seen(&ring, cqe);
      if (!write) {
        const char* p = static_cast<const char*>(iov[s].iov_base);
        for (int64_t off = 0; off < block; off += 4096) {
          int64_t b;
          std::memcpy(&b, p + off, sizeof(b));
          bad += b != slot_block[s];
        }
      }
      free_slots.push_back(s);
      ++done;
    }
    (write ? out->write_s : out->read_s) = Now() - t0;
  }
  out->bytes = blocks * block;
  io_uring_queue_exit(&ring);
  ::close(fd);
  for (auto& v : iov) ::munmap(v.iov_base, block);
  if (bad != 0) return Die("raw read-back mismatch in " + std::to_string(bad) + " pages");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/tmp";
  double gib = 1;
  int64_t block_mib = 8, unit_numel = int64_t{8} << 20, chunk_mib = 8;
  int qd = 8, units = 12, steps = 3, buffers = 3, store_qd = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--dir") dir = v;
    else if (k == "--gib") gib = std::atof(v.c_str());
    else if (k == "--block-mib") block_mib = std::atoll(v.c_str());
    else if (k == "--qd") qd = std::atoi(v.c_str());
    else if (k == "--unit-numel") unit_numel = std::atoll(v.c_str());
    else if (k == "--units") units = std::atoi(v.c_str());
    else if (k == "--steps") steps = std::atoi(v.c_str());
    else if (k == "--buffers") buffers = std::atoi(v.c_str());
    else if (k == "--chunk-mib") chunk_mib = std::atoll(v.c_str());
    else if (k == "--store-qd") store_qd = std::atoi(v.c_str());
    else return Die("unknown flag " + k);
  }
  if (steps < 2 || units < 1 || unit_numel < 1 || qd < 1 || block_mib < 1) return Die("bad arguments");

  Raw raw;
  const int64_t block = block_mib << 20;
  const int64_t total = std::max<int64_t>(block, static_cast<int64_t>(gib * (1 << 30)) / block * block);
  if (int rc = RawRate(dir, total, block, qd, &raw)) return rc;

  sfd::NvmeStoreOptions o;
  o.staging_buffers = buffers;
  o.chunk_bytes = chunk_mib << 20;
  o.queue_depth = store_qd;
  auto store_or = sfd::NvmeStore::Create(dir, std::vector<int64_t>(units, unit_numel), o);
  if (!store_or.ok()) return Die(std::string(store_or.status().message()));
  sfd::NvmeStore& store = **store_or;
  double t0 = 0;
  int64_t bytes0 = 0;
  for (int step = 0; step < steps; ++step) {
    if (step == 1) {  // step 0 is a warm-up (first touch of the staging buffers)
      if (!store.Flush().ok()) return Die("flush");
      t0 = Now();
      bytes0 = store.bytes_read() + store.bytes_written();
    }
    if (auto st = store.Prefetch(0); !st.ok()) return Die(std::string(st.message()));
    for (int u = 0; u < units; ++u) {
      auto lease = store.Acquire(u);
      if (!lease.ok()) return Die(std::string(lease.status().message()));
      if (u + 1 < units) {
        if (auto st = store.Prefetch(u + 1); !st.ok()) return Die(std::string(st.message()));
      }
      for (int64_t i = 0; i < lease->numel; ++i) {  // fake moment update: m -> 0.9m + 0.1
        lease->m[i] = 0.9f * lease->m[i] + 0.1f;
        lease->v[i] = 0.5f * lease->v[i] + 1.0f;
      }
      if (auto st = store.WriteBack(*lease); !st.ok()) return Die(std::string(st.message()));
    }
  }
  if (auto st = store.Flush(); !st.ok()) return Die(std::string(st.message()));
  const double store_s = Now() - t0;
  const int64_t store_bytes = store.bytes_read() + store.bytes_written() - bytes0;

  // Check: after `steps` updates from 0, m = 1 - 0.9^steps and v = 2 (1 - 0.5^steps) in fp32.
  float m_ref = 0, v_ref = 0;
  for (int s = 0; s < steps; ++s) {
    m_ref = 0.9f * m_ref + 0.1f;
    v_ref = 0.5f * v_ref + 1.0f;
  }
  std::vector<float> m(unit_numel), v(unit_numel);
  for (int u : {0, units - 1}) {
    if (auto st = store.ReadInto(u, m.data(), v.data()); !st.ok()) return Die(std::string(st.message()));
    for (int64_t i = 0; i < unit_numel; i += 997) {
      if (m[i] != m_ref || v[i] != v_ref) return Die("store check failed at unit " + std::to_string(u));
    }
  }

  const double raw_gbps = 2.0 * raw.bytes / (raw.write_s + raw.read_s) / 1e9;
  const double store_gbps = store_bytes / store_s / 1e9;
  std::printf("test,io_mode,direct,bytes,seconds,gb_per_s\n");
  std::printf("raw_write,io_uring,1,%lld,%.4f,%.3f\n", static_cast<long long>(raw.bytes), raw.write_s,
              raw.bytes / raw.write_s / 1e9);
  std::printf("raw_read,io_uring,1,%lld,%.4f,%.3f\n", static_cast<long long>(raw.bytes), raw.read_s,
              raw.bytes / raw.read_s / 1e9);
  std::printf("raw_rw,io_uring,1,%lld,%.4f,%.3f\n", static_cast<long long>(2 * raw.bytes),
              raw.write_s + raw.read_s, raw_gbps);
  std::printf("store_loop,%s,%d,%lld,%.4f,%.3f\n", sfd::NvmeIoModeName(store.io_mode()),
              store.direct_io() ? 1 : 0, static_cast<long long>(store_bytes), store_s, store_gbps);
  std::printf("ratio_store_over_raw,,,,,%.3f\n", store_gbps / raw_gbps);
  if (!store.fallback_reason().empty()) std::fprintf(stderr, "store fallback: %s\n", store.fallback_reason().c_str());
  return 0;
}
