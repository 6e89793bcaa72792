// Host definitions of the fused_ops_cuda.h launchers for builds without CUDA: serial loops with
// the kernels' math (fp32 compute, one rounding per stored value), over host pointers. They
// exist so that CI tests the autograd wrappers of fused_ops.cc against ATen; the engine never
// dispatches to them (FusedKernelsApply is false without CUDA, so CPU keeps the ATen path).
#if !SFD_WITH_CUDA

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "engine/model/fused_ops_cuda.h"

namespace sfd::fused {
namespace {

template <typename T>
float F(T v) {
  return static_cast<float>(v);
}
template <typename T>
T R(float v) {
  return static_cast<T>(v);  // c10::BFloat16 / c10::Half round to nearest even
}

template <typename T>
int RmsNormForwardT(const void* xv, const void* wv, void* outv, float* rstd, int64_t rows,
                    int64_t cols, float eps) {
  const T* x = static_cast<const T*>(xv);
  const T* w = static_cast<const T*>(wv);
  T* out = static_cast<T*>(outv);
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    float ss = 0.f;
    for (int64_t i = 0; i < cols; ++i) ss += F(xr[i]) * F(xr[i]);
    const float rs = 1.f / std::sqrt(ss / static_cast<float>(cols) + eps);
    rstd[r] = rs;
    for (int64_t i = 0; i < cols; ++i) out[r * cols + i] = R<T>(F(w[i]) * F(R<T>(F(xr[i]) * rs)));
  }
  return 0;
}

template <typename T>
int RmsNormBackwardT(const void* dyv, const void* xv, const void* wv, const float* rstd, void* dxv,
                     void* dwv, float* ws, int64_t rows, int64_t cols) {
  const T* dy = static_cast<const T*>(dyv);
  const T* x = static_cast<const T*>(xv);
  const T* w = static_cast<const T*>(wv);
  T* dx = static_cast<T*>(dxv);
  for (int64_t i = 0; i < cols; ++i) ws[i] = 0.f;
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    const T* gr = dy + r * cols;
    float dot = 0.f;
    for (int64_t i = 0; i < cols; ++i) dot += F(gr[i]) * F(w[i]) * F(xr[i]);
    const float rs = rstd[r], c = dot * rs * rs * rs / static_cast<float>(cols);
    for (int64_t i = 0; i < cols; ++i) {
      dx[r * cols + i] = R<T>(rs * F(gr[i]) * F(w[i]) - c * F(xr[i]));
      ws[i] += F(gr[i]) * F(R<T>(F(xr[i]) * rs));
    }
  }
  T* dw = static_cast<T*>(dwv);
  for (int64_t i = 0; i < cols; ++i) dw[i] = R<T>(ws[i]);
  return 0;
}

template <typename T>
int SwiGluForwardT(const void* gv, const void* uv, int64_t in_stride, void* outv, int64_t rows,
                   int64_t inter) {
  const T* g = static_cast<const T*>(gv);
  const T* u = static_cast<const T*>(uv);
  T* out = static_cast<T*>(outv);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < inter; ++i) {
      const float gf = F(g[r * in_stride + i]);
      out[r * inter + i] = R<T>(gf / (1.f + std::exp(-gf)) * F(u[r * in_stride + i]));
    }
  }
  return 0;
}

template <typename T>
int SwiGluBackwardT(const void* dv, const void* gv, const void* uv, int64_t in_stride, void* dgv,
                    void* duv, int64_t grad_stride, int64_t rows, int64_t inter) {
  const T* d = static_cast<const T*>(dv);
  const T* g = static_cast<const T*>(gv);
  const T* u = static_cast<const T*>(uv);
  T* dg = static_cast<T*>(dgv);
  T* du = static_cast<T*>(duv);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < inter; ++i) {
      const float gf = F(g[r * in_stride + i]), df = F(d[r * inter + i]);
      const float sig = 1.f / (1.f + std::exp(-gf));
      du[r * grad_stride + i] = R<T>(df * gf * sig);
      dg[r * grad_stride + i] = R<T>(df * F(u[r * in_stride + i]) * sig * (1.f + gf * (1.f - sig)));
    }
  }
  return 0;
}

template <typename T, bool kForward>
int RopeT(const void* srcv, const void* cv, const void* sv, void* dstv, const RopeShape& p) {
  const T* src = static_cast<const T*>(srcv);
  const T* cs = static_cast<const T*>(cv);
  const T* sn = static_cast<const T*>(sv);
  T* dst = static_cast<T*>(dstv);
  const int64_t half = p.d / 2;
  for (int64_t b = 0; b < p.b; ++b) {
    for (int64_t s = 0; s < p.s; ++s) {
      for (int64_t h = 0; h < p.h; ++h) {
        const int64_t bshd = ((b * p.s + s) * p.h + h) * p.d;
        const int64_t bhsd = ((b * p.h + h) * p.s + s) * p.d;
        const int64_t so = kForward ? b * p.x_sb + s * p.x_ss + h * p.x_sh : bhsd;
        const int64_t dof = kForward ? bhsd : bshd;
        const int64_t t = b * p.t_sb + s * p.t_ss;
        for (int64_t j = 0; j < half; ++j) {
          const float a = F(src[so + j]), bb = F(src[so + half + j]);
          const float c1 = F(cs[t + j]), c2 = F(cs[t + half + j]);
          const float s1 = F(sn[t + j]), s2 = F(sn[t + half + j]);
          if (kForward) {
            dst[dof + j] = R<T>(a * c1 - bb * s1);
            dst[dof + half + j] = R<T>(bb * c2 + a * s2);
          } else {
            dst[dof + j] = R<T>(a * c1 + bb * s2);
            dst[dof + half + j] = R<T>(bb * c2 - a * s1);
          }
        }
      }
    }
  }
  return 0;
}

template <typename T>
int RopeForwardT(const void* x, const void* c, const void* s, void* o, const RopeShape& p) {
  return RopeT<T, true>(x, c, s, o, p);
}
template <typename T>
int RopeBackwardT(const void* x, const void* c, const void* s, void* o, const RopeShape& p) {
  return RopeT<T, false>(x, c, s, o, p);
}

constexpr int kBadDType = 1;

template <typename T>
int CrossEntropyT(void* logitsv, int64_t ld, const int64_t* targets, int64_t rows, int64_t vocab,
                  float grad_scale, float* row_ce) {
  for (int64_t r = 0; r < rows; ++r) {
    T* x = static_cast<T*>(logitsv) + r * ld;
    const int64_t t = targets[r];
    float m = -INFINITY;
    for (int64_t i = 0; i < vocab; ++i) m = std::max(m, F(x[i]));
    double s = 0;
    for (int64_t i = 0; i < vocab; ++i) s += std::exp(F(x[i]) - m);
    const float lse = m + static_cast<float>(std::log(s));
    const float picked = t < 0 ? 0.f : t < vocab ? F(x[t]) : NAN;
    row_ce[r] = t < 0 ? 0.f : lse - picked;
    if (grad_scale == 0.f) continue;
    for (int64_t i = 0; i < vocab; ++i) {
      const float p = std::exp(F(x[i]) - lse) - (i == t ? 1.f : 0.f);
      x[i] = R<T>(t < 0 ? 0.f : t < vocab ? p * grad_scale : NAN);
    }
  }
  return 0;
}

#define SFD_HOST_DISPATCH(dtype, FN, ...)                     \
  switch (dtype) {                                            \
    case DType::kF32: return FN<float>(__VA_ARGS__);          \
    case DType::kBF16: return FN<c10::BFloat16>(__VA_ARGS__); \
    case DType::kF16: return FN<c10::Half>(__VA_ARGS__);      \
  }                                                           \
  return kBadDType

}  // namespace

const char* FusedOpsErrorString(int error) {
  return error == kBadDType ? "unsupported dtype" : "unknown error";
}

int RmsNormForward(DType dtype, const void* x, const void* w, void* out, float* rstd,
                   int64_t rows, int64_t cols, float eps, void* /*stream*/) {
  SFD_HOST_DISPATCH(dtype, RmsNormForwardT, x, w, out, rstd, rows, cols, eps);
}

int64_t RmsNormBackwardWorkspace(int64_t /*rows*/, int64_t cols) { return cols; }

int RmsNormBackward(DType dtype, const void* dy, const void* x, const void* w, const float* rstd,
                    void* dx, void* dw, float* workspace, int64_t rows, int64_t cols,
                    void* /*stream*/) {
  SFD_HOST_DISPATCH(dtype, RmsNormBackwardT, dy, x, w, rstd, dx, dw, workspace, rows, cols);
}

int SwiGluForward(DType dtype, const void* gate, const void* up, int64_t in_stride, void* out,
                  int64_t rows, int64_t inter, void* /*stream*/) {
  SFD_HOST_DISPATCH(dtype, SwiGluForwardT, gate, up, in_stride, out, rows, inter);
}

int SwiGluBackward(DType dtype, const void* dout, const void* gate, const void* up,
                   int64_t in_stride, void* dgate, void* dup, int64_t grad_stride, int64_t rows,
                   int64_t inter, void* /*stream*/) {
  SFD_HOST_DISPATCH(dtype, SwiGluBackwardT, dout, gate, up, in_stride, dgate, dup, grad_stride,
                    rows, inter);
}

int RopeForward(DType dtype, const void* x, const void* cos, const void* sin, void* out,
                const RopeShape& shape, void* /*stream*/) {
  SFD_HOST_DISPATCH(dtype, RopeForwardT, x, cos, sin, out, shape);
}

int RopeBackward(DType dtype, const void* dy, const void* cos, const void* sin, void* dx,
                 const RopeShape& shape, void* /*stream*/) {
  SFD_HOST_DISPATCH(dtype, RopeBackwardT, dy, cos, sin, dx, shape);
}

int CrossEntropy(DType dtype, void* logits, int64_t ld, const int64_t* targets, int64_t rows,
                 int64_t vocab, float grad_scale, float* row_ce, void* /*stream*/) {
  SFD_HOST_DISPATCH(dtype, CrossEntropyT, logits, ld, targets, rows, vocab, grad_scale, row_ce);
}

}  // namespace sfd::fused

#endif  // !SFD_WITH_CUDA
