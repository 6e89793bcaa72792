// Benchmark of engine/optim/cpu_adamw.h: sfd's CpuAdamW (T threads, best SIMD level) against
// libtorch's AdamW on the same host buffers with at::set_num_threads(T): the fused CPU kernel
// at::_fused_adamw_ on torch >= 2.4, torch::optim::AdamW before. Prints CSV rows
//   impl,simd,threads,n,steps,ms_per_step,gparam_per_s,gbyte_per_s,max_rel_diff_vs_torch
// plus '#' summary lines (speedup). Bytes per param: 28 (fp32 p,m,v,g read; p,m,v written),
// 30 with the bf16 copy of the new weights.
//
// Usage: bench_cpu_adam [--n=100000000] [--threads=16[,8,...]] [--steps=5] [--warmup=1]
//                       [--chunk=65536] [--simd=scalar|avx2|avx512]
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/common/thread_pool.h"
#include "engine/common/torch_compat.h"
#include "engine/optim/adamw_8bit.h"
#include "engine/optim/cpu_adamw.h"

namespace sfd {
namespace {

struct Options {
  int64_t n = 100'000'000;
  std::vector<int> threads;
  int steps = 5;
  int warmup = 1;
  int64_t chunk = CpuAdamW::kDefaultChunkElems;
  SimdLevel level = DetectSimdLevel();
};

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* key) -> const char* {
      const size_t len = std::strlen(key);
      return a.compare(0, len, key) == 0 ? a.c_str() + len : nullptr;
    };
    if (const char* v = value("--n=")) {
      o->n = static_cast<int64_t>(std::atof(v));
    } else if (const char* v = value("--threads=")) {
      std::string s = v;
      size_t pos = 0;
      while (pos <= s.size()) {
        size_t comma = s.find(',', pos);
        if (comma == std::string::npos) comma = s.size();
        o->threads.push_back(std::atoi(s.substr(pos, comma - pos).c_str()));
        pos = comma + 1;
      }
    } else if (const char* v = value("--steps=")) {
      o->steps = std::atoi(v);
    } else if (const char* v = value("--warmup=")) {
      o->warmup = std::atoi(v);
    } else if (const char* v = value("--chunk=")) {
      o->chunk = std::atoll(v);
    } else if (const char* v = value("--simd=")) {
      const std::string s = v;
      o->level = s == "scalar" ? SimdLevel::kScalar
                 : s == "avx2" ? SimdLevel::kAvx2
                               : SimdLevel::kAvx512;
      if (!SimdLevelSupported(o->level)) {
        std::fprintf(stderr, "SIMD level %s not supported on this CPU\n", v);
        return false;
      }
    } else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return false;
    }
  }
  if (o->threads.empty()) {
    o->threads.push_back(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  }
  return o->n > 0 && o->steps > 0;
}

// 64-byte aligned host buffer, first touched in parallel (the pages land where the workers run).
template <typename T>
struct Buffer {
  explicit Buffer(int64_t n)
      : data(static_cast<T*>(std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64))) {}
  ~Buffer() { std::free(data); }
  T* data;
};

// Cheap deterministic pseudo-random fill in [-scale, scale] (splitmix64), parallel.
void Fill(ThreadPool& pool, float* x, int64_t n, uint64_t seed, float scale) {
  const int64_t chunk = 1 << 20;
  pool.ParallelFor((n + chunk - 1) / chunk, [&](int64_t c) {
    const int64_t end = std::min(n, (c + 1) * chunk);
    for (int64_t i = c * chunk; i < end; ++i) {
      uint64_t z = seed + 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(i + 1);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      z ^= z >> 31;
      x[i] = scale * (static_cast<float>(z >> 40) / 8388608.0f - 1.0f);
    }
  });
}

void Zero(ThreadPool& pool, float* x, int64_t n) {
  const int64_t chunk = 1 << 20;
  pool.ParallelFor((n + chunk - 1) / chunk, [&](int64_t c) {
    const int64_t b = c * chunk;
    std::memset(x + b, 0, std::min(chunk, n - b) * sizeof(float));
  });
}

double Seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

constexpr float kLr = 1e-3f, kBeta1 = 0.9f, kBeta2 = 0.999f, kEps = 1e-8f, kWd = 0.01f;

AdamWStep Hyper(int64_t step) {
  AdamWStep hp;
  hp.lr = kLr;
  hp.beta1 = kBeta1;
  hp.beta2 = kBeta2;
  hp.eps = kEps;
  hp.weight_decay = kWd;
  hp.step = step;
  return hp;
}

// Correctness of sfd vs torch on the final params: max |a - b| / |b| over the elements with
// |b| >= 1e-2 * max|b| (near zero the params are differences of ~1 ulp-rounded terms), and
// max |a - b| / max|b| over all elements. Both are a few 1e-7 when the two agree to rounding.
struct Diff {
  double rel = 0;
  double abs_norm = 0;
};

Diff Compare(const float* a, const float* b, int64_t n) {
  double max_abs = 0;
  for (int64_t i = 0; i < n; ++i) max_abs = std::max(max_abs, std::fabs(double(b[i])));
  Diff d;
  for (int64_t i = 0; i < n; ++i) {
    const double diff = std::fabs(double(a[i]) - double(b[i]));
    d.abs_norm = std::max(d.abs_norm, diff / max_abs);
    if (std::fabs(double(b[i])) >= 1e-2 * max_abs)
      d.rel = std::max(d.rel, diff / std::fabs(double(b[i])));
  }
  return d;
}

void PrintRow(const std::string& impl, const char* simd, int threads, int64_t n, int steps,
              double seconds, double bytes_per_param, const Diff& diff) {
  const double per_step = seconds / steps;
  std::printf("%s,%s,%d,%lld,%d,%.3f,%.3f,%.2f,%.3g,%.3g\n", impl.c_str(), simd, threads,
              static_cast<long long>(n), steps, per_step * 1e3, n / per_step / 1e9,
              n * bytes_per_param / per_step / 1e9, diff.rel, diff.abs_norm);
  std::fflush(stdout);
}

// Timed steps of libtorch's AdamW on (p, m, v) with fp32 grads `g`; optionally widens bf16
// grads into `g` first and/or copies the new params to bf16, as a torch pipeline would.
struct TorchTimes {
  double convert = 0, step = 0, copy = 0;
};

TorchTimes RunTorch(const Options& o, float* p, float* m, float* v, float* g,
                    const uint16_t* g_bf16, int64_t n, const char** impl_name) {
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  torch::Tensor t_p = torch::from_blob(p, {n}, f32);
  torch::Tensor t_m = torch::from_blob(m, {n}, f32);
  torch::Tensor t_v = torch::from_blob(v, {n}, f32);
  torch::Tensor t_g = torch::from_blob(g, {n}, f32);
  torch::Tensor t_gb = torch::from_blob(const_cast<uint16_t*>(g_bf16), {n}, torch::kBFloat16);
  torch::Tensor t_out = torch::empty({n}, torch::kBFloat16);
  TorchTimes t;
#if SFD_TORCH_AT_LEAST(2, 4)
  *impl_name = "torch_fused_adamw";
  torch::Tensor t_step = torch::zeros({}, f32);
  auto step = [&](int) {
    t_step.add_(1);
    at::_fused_adamw_({t_p}, {t_g}, {t_m}, {t_v}, {}, {t_step}, double{kLr}, double{kBeta1},
                      double{kBeta2}, double{kWd}, double{kEps}, /*amsgrad=*/false,
                      /*maximize=*/false);
  };
#else
  *impl_name = "torch_optim_adamw";
  torch::Tensor t_param = t_p.detach();
  torch::optim::AdamW opt({t_param}, torch::optim::AdamWOptions(double{kLr})
                                         .betas(std::make_tuple(double{kBeta1}, double{kBeta2}))
                                         .eps(double{kEps})
                                         .weight_decay(double{kWd}));
  t_param.mutable_grad() = t_g;
  auto step = [&](int) { opt.step(); };
#endif
  for (int s = 1; s <= o.warmup + o.steps; ++s) {
    const double t0 = Seconds();
    t_g.copy_(t_gb);  // bf16 grads -> fp32 (same values: the grads are bf16-representable)
    const double t1 = Seconds();
    step(s);
    const double t2 = Seconds();
    t_out.copy_(t_p);
    const double t3 = Seconds();
    if (s > o.warmup) {
      t.convert += t1 - t0;
      t.step += t2 - t1;
      t.copy += t3 - t2;
    }
  }
  return t;
}

int Main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, &o)) return 2;
  const int64_t n = o.n;
  std::printf("# torch %d.%d, sfd simd %s, n=%lld, steps=%d (+%d warmup), chunk=%lld\n",
              TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, SimdLevelName(o.level),
              static_cast<long long>(n), o.steps, o.warmup, static_cast<long long>(o.chunk));
  std::printf(
      "impl,simd,threads,n,steps,ms_per_step,gparam_per_s,gbyte_per_s,max_rel_diff_vs_torch,"
      "max_abs_diff_vs_torch_norm\n");

  ThreadPool fill_pool(*std::max_element(o.threads.begin(), o.threads.end()));
  Buffer<float> grad(n), p(n), m(n), v(n), tp(n), tm(n), tv(n);
  Buffer<uint16_t> grad_bf16(n), p_bf16(n);
  // bf16-representable grads, so the fp32- and bf16-grad paths see the same values.
  Fill(fill_pool, grad.data, n, 7, 1.0f);
  CpuAdamW converter(&fill_pool, o.level);
  converter.FloatToBf16(grad.data, grad_bf16.data, n);
  converter.Bf16ToFloat(grad_bf16.data, grad.data, n);

  int failures = 0;
  for (int threads : o.threads) {
    at::set_num_threads(threads);
    CpuAdamW adam(threads, o.level);
    adam.set_chunk_elems(o.chunk);

    // torch first: its final params are the reference for the sfd rows.
    Fill(fill_pool, tp.data, n, 1, 1.0f);
    Zero(fill_pool, tm.data, n);
    Zero(fill_pool, tv.data, n);
    const char* torch_impl = "";
    const TorchTimes tt =
        RunTorch(o, tp.data, tm.data, tv.data, grad.data, grad_bf16.data, n, &torch_impl);
    const std::string ti = torch_impl;
    const Diff none;
    PrintRow(ti, "aten", threads, n, o.steps, tt.step, 28, none);
    PrintRow(ti + "+bf16_copy", "aten", threads, n, o.steps, tt.step + tt.copy, 34, none);
    PrintRow("bf16_grad_widen+" + ti + "+bf16_copy", "aten", threads, n, o.steps,
             tt.convert + tt.step + tt.copy, 40, none);

    // sfd: 0 = fp32 grads, 1 = fp32 grads + bf16 out, 2 = bf16 grads + bf16 out.
    const char* names[3] = {"sfd_cpu_adamw", "sfd_cpu_adamw+bf16_out",
                            "sfd_cpu_adamw_bf16_grad+bf16_out"};
    const double bytes[3] = {28, 30, 28};
    double secs[3] = {0, 0, 0};
    Diff diff[3];
    for (int mode = 0; mode < 3; ++mode) {
      Fill(fill_pool, p.data, n, 1, 1.0f);
      Zero(fill_pool, m.data, n);
      Zero(fill_pool, v.data, n);
      for (int s = 1; s <= o.warmup + o.steps; ++s) {
        const double t0 = Seconds();
        if (mode == 2) {
          adam.UpdateBf16Grad(Hyper(s), p.data, m.data, v.data, grad_bf16.data, p_bf16.data, n);
        } else {
          adam.Update(Hyper(s), p.data, m.data, v.data, grad.data,
                      mode == 1 ? p_bf16.data : nullptr, n);
        }
        if (s > o.warmup) secs[mode] += Seconds() - t0;
      }
      diff[mode] = Compare(p.data, tp.data, n);
      PrintRow(names[mode], SimdLevelName(o.level), threads, n, o.steps, secs[mode], bytes[mode],
               diff[mode]);
      if (diff[mode].rel > 1e-5 || diff[mode].abs_norm > 1e-6) {
        std::printf("# CORRECTNESS FAILURE: %s differs from %s (rel %.3g, abs %.3g)\n", names[mode],
                    torch_impl, diff[mode].rel, diff[mode].abs_norm);
        ++failures;
      }
    }
    // 8-bit moments (optimizer adamw_8bit), bf16 grads + bf16 out as in the pipeline: reads and
    // writes p (4+4), m and v codes (2+2), grad and out (2+2) plus 1/16 byte of scales.
    double secs8 = 0;
    {
      Fill(fill_pool, p.data, n, 1, 1.0f);
      Buffer<uint8_t> mq(n), vq(n);
      Buffer<float> ms(Q8Blocks(n)), vs(Q8Blocks(n));
      std::memset(mq.data, 0, n);
      std::memset(vq.data, 0, n);
      std::memset(ms.data, 0, Q8Blocks(n) * sizeof(float));
      std::memset(vs.data, 0, Q8Blocks(n) * sizeof(float));
      const Q8Moments q{mq.data, ms.data, vq.data, vs.data};
      for (int s = 1; s <= o.warmup + o.steps; ++s) {
        AdamWStep hp = Hyper(s);
        hp.seed = Q8Seed(s, 0);
        const double t0 = Seconds();
        adam.Update8bitBf16Grad(hp, p.data, q, grad_bf16.data, p_bf16.data, n);
        if (s > o.warmup) secs8 += Seconds() - t0;
      }
      // Not torch's math: the moments are rounded, coarsely for elements far below their block's
      // largest. Check the total update instead: the RMS of (ours - torch) over the RMS of
      // torch's update (p_final - p_initial) stays below 5%.
      Fill(fill_pool, m.data, n, 1, 1.0f);  // the initial params again
      double err2 = 0, upd2 = 0;
      for (int64_t i = 0; i < n; ++i) {
        err2 += (double(p.data[i]) - tp.data[i]) * (double(p.data[i]) - tp.data[i]);
        upd2 += (double(tp.data[i]) - m.data[i]) * (double(tp.data[i]) - m.data[i]);
      }
      Diff d = Compare(p.data, tp.data, n);
      d.rel = std::sqrt(err2 / upd2);  // reported in the max_rel column for this row
      PrintRow("sfd_cpu_adamw_8bit_bf16_grad+bf16_out(rel=rms_vs_update)", SimdLevelName(o.level),
               threads, n, o.steps, secs8, 16.125, d);
      if (d.rel > 0.05) {
        std::printf("# CORRECTNESS FAILURE: 8-bit moments: update off torch's by %.3g (RMS)\n", d.rel);
        ++failures;
      }
    }
    std::printf(
        "# threads=%d speedup vs %s: fp32 grads %.2fx; +bf16 out %.2fx; bf16 grads + bf16 "
        "out %.2fx; 8-bit moments, bf16 grads + bf16 out %.2fx\n",
        threads, torch_impl, tt.step / secs[0], (tt.step + tt.copy) / secs[1],
        (tt.convert + tt.step + tt.copy) / secs[2], (tt.convert + tt.step + tt.copy) / secs8);
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace sfd

int main(int argc, char** argv) { return sfd::Main(argc, argv); }
