#include "engine/model/fused_ops.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include <torch/csrc/autograd/custom_function.h>

#include "engine/model/fused_ops_cuda.h"

#if SFD_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace sfd {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct Switch {
  std::atomic<bool> gemm{true}, kernels{true};
  Switch() {
    const char* v = std::getenv("SFD_FUSED_OPS");
    if (v != nullptr && std::strcmp(v, "0") == 0) gemm = kernels = false;
  }
};
Switch& GlobalSwitch() {
  static Switch s;
  return s;
}

fused::DType DTypeOf(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return fused::DType::kF32;
    case at::kBFloat16: return fused::DType::kBF16;
    case at::kHalf: return fused::DType::kF16;
    default: TORCH_CHECK(false, "fused ops: unsupported dtype ", t.scalar_type());
  }
  return fused::DType::kF32;
}

// The device and stream a launch runs on: torch's current stream of the tensor's device (a
// null stream on builds without CUDA, whose host launchers ignore it).
class Launch {
 public:
  explicit Launch(const at::Tensor& t)
#if SFD_WITH_CUDA
      : guard_(t.device()), stream_(c10::cuda::getCurrentCUDAStream(t.device().index()).stream())
#endif
  {
    TORCH_CHECK(t.is_cuda() == kCudaBuild, "fused ops: tensor on ", t.device(),
                kCudaBuild ? " (CUDA build: needs CUDA tensors)" : " (built without CUDA: host tensors only)");
  }
  void* stream() const { return stream_; }
  static void Check(int err, const char* what) {
    TORCH_CHECK(err == 0, what, ": ", fused::FusedOpsErrorString(err));
  }

 private:
#if SFD_WITH_CUDA
  static constexpr bool kCudaBuild = true;
  c10::cuda::CUDAGuard guard_;
  void* stream_;
#else
  static constexpr bool kCudaBuild = false;
  void* stream_ = nullptr;
#endif
};

const void* Offset(const at::Tensor& t, int64_t elems) {
  return static_cast<const char*>(t.data_ptr()) + elems * t.element_size();
}
void* OffsetMut(at::Tensor& t, int64_t elems) {
  return static_cast<char*>(t.data_ptr()) + elems * t.element_size();
}
std::vector<int64_t> WithLast(at::IntArrayRef sizes, int64_t last) {
  std::vector<int64_t> out(sizes.begin(), sizes.end());
  out.back() = last;
  return out;
}

struct RmsNormFn : public torch::autograd::Function<RmsNormFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            double eps) {
    at::Tensor xc = x.contiguous(), wc = weight.contiguous();
    const int64_t cols = xc.size(-1), rows = xc.numel() / cols;
    at::Tensor out = at::empty_like(xc);
    at::Tensor rstd = at::empty({rows}, xc.options().dtype(at::kFloat));
    Launch l(xc);
    Launch::Check(fused::RmsNormForward(DTypeOf(xc), xc.data_ptr(), wc.data_ptr(), out.data_ptr(),
                                        rstd.data_ptr<float>(), rows, cols,
                                        static_cast<float>(eps), l.stream()),
                  "FusedRmsNorm forward");
    ctx->save_for_backward({xc, wc, rstd});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& w = saved[1];
    const at::Tensor& rstd = saved[2];
    at::Tensor dy = grads[0].contiguous();
    const int64_t cols = x.size(-1), rows = x.numel() / cols;
    at::Tensor dx = at::empty_like(x), dw = at::empty_like(w);
    at::Tensor ws = at::empty({fused::RmsNormBackwardWorkspace(rows, cols)},
                              x.options().dtype(at::kFloat));
    Launch l(x);
    Launch::Check(fused::RmsNormBackward(DTypeOf(x), dy.data_ptr(), x.data_ptr(), w.data_ptr(),
                                         rstd.data_ptr<float>(), dx.data_ptr(), dw.data_ptr(),
                                         ws.data_ptr<float>(), rows, cols, l.stream()),
                  "FusedRmsNorm backward");
    return {dx, dw, at::Tensor()};
  }
};

// SwiGLU over one [..., 2*inter] tensor (gate columns first).
struct SwiGluFusedFn : public torch::autograd::Function<SwiGluFusedFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gate_up) {
    at::Tensor gu = gate_up.contiguous();
    const int64_t inter = gu.size(-1) / 2, rows = gu.numel() / gu.size(-1);
    at::Tensor out = at::empty(WithLast(gu.sizes(), inter), gu.options());
    Launch l(gu);
    Launch::Check(fused::SwiGluForward(DTypeOf(gu), gu.data_ptr(), Offset(gu, inter), 2 * inter,
                                       out.data_ptr(), rows, inter, l.stream()),
                  "FusedSwiGlu forward");
    ctx->save_for_backward({gu});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    at::Tensor gu = ctx->get_saved_variables()[0];
    at::Tensor dout = grads[0].contiguous();
    const int64_t inter = gu.size(-1) / 2, rows = gu.numel() / gu.size(-1);
    at::Tensor dgu = at::empty_like(gu);
    Launch l(gu);
    Launch::Check(fused::SwiGluBackward(DTypeOf(gu), dout.data_ptr(), gu.data_ptr(),
                                        Offset(gu, inter), 2 * inter, dgu.data_ptr(),
                                        OffsetMut(dgu, inter), 2 * inter, rows, inter, l.stream()),
                  "FusedSwiGlu backward");
    return {dgu};
  }
};

// SwiGLU over separate gate and up tensors [..., inter].
struct SwiGluPairFn : public torch::autograd::Function<SwiGluPairFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gate, const at::Tensor& up) {
    TORCH_CHECK(gate.sizes() == up.sizes(), "FusedSwiGlu: gate ", gate.sizes(), " vs up ", up.sizes());
    at::Tensor g = gate.contiguous(), u = up.contiguous();
    const int64_t inter = g.size(-1), rows = g.numel() / inter;
    at::Tensor out = at::empty_like(g);
    Launch l(g);
    Launch::Check(fused::SwiGluForward(DTypeOf(g), g.data_ptr(), u.data_ptr(), inter,
                                       out.data_ptr(), rows, inter, l.stream()),
                  "FusedSwiGlu forward");
    ctx->save_for_backward({g, u});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list saved = ctx->get_saved_variables();
    const at::Tensor& g = saved[0];
    const at::Tensor& u = saved[1];
    at::Tensor dout = grads[0].contiguous();
    const int64_t inter = g.size(-1), rows = g.numel() / inter;
    at::Tensor dg = at::empty_like(g), du = at::empty_like(u);
    Launch l(g);
    Launch::Check(fused::SwiGluBackward(DTypeOf(g), dout.data_ptr(), g.data_ptr(), u.data_ptr(),
                                        inter, dg.data_ptr(), du.data_ptr(), inter, rows, inter,
                                        l.stream()),
                  "FusedSwiGlu backward");
    return {dg, du};
  }
};

fused::RopeShape RopeShapeOf(const at::Tensor& x, const at::Tensor& table) {
  fused::RopeShape p;
  p.b = x.size(0);
  p.s = x.size(1);
  p.h = x.size(2);
  p.d = x.size(3);
  p.x_sb = x.stride(0);
  p.x_ss = x.stride(1);
  p.x_sh = x.stride(2);
  p.t_sb = table.size(0) == 1 ? 0 : table.stride(0);
  p.t_ss = table.stride(2);
  return p;
}

// x [B,S,H,D] (unit stride on D) -> [B,H,S,D] contiguous.
struct RopeFn : public torch::autograd::Function<RopeFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos,
                            const at::Tensor& sin) {
    TORCH_CHECK(x.dim() == 4 && cos.dim() == 4 && cos.sizes() == sin.sizes() &&
                    cos.size(2) == x.size(1) && cos.size(3) == x.size(3) &&
                    (cos.size(0) == 1 || cos.size(0) == x.size(0)) && x.size(3) % 2 == 0,
                "FusedRope: x ", x.sizes(), " and tables ", cos.sizes());
    TORCH_CHECK(cos.scalar_type() == x.scalar_type() && sin.scalar_type() == x.scalar_type(),
                "FusedRope: tables must have the dtype of x");
    at::Tensor xs = x.stride(3) == 1 ? x : x.contiguous();
    at::Tensor c = cos, s = sin;
    if (c.stride(3) != 1 || s.stride(3) != 1 || c.strides() != s.strides()) {
      c = c.contiguous();
      s = s.contiguous();
    }
    at::Tensor out = at::empty({x.size(0), x.size(2), x.size(1), x.size(3)}, x.options());
    Launch l(xs);
    Launch::Check(fused::RopeForward(DTypeOf(xs), xs.data_ptr(), c.data_ptr(), s.data_ptr(),
                                     out.data_ptr(), RopeShapeOf(xs, c), l.stream()),
                  "FusedRope forward");
    ctx->save_for_backward({c, s});
    ctx->saved_data["b"] = x.size(0);
    ctx->saved_data["s"] = x.size(1);
    ctx->saved_data["h"] = x.size(2);
    ctx->saved_data["d"] = x.size(3);
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list saved = ctx->get_saved_variables();
    const at::Tensor& c = saved[0];
    const at::Tensor& s = saved[1];
    at::Tensor dy = grads[0].contiguous();
    at::Tensor dx = at::empty({ctx->saved_data["b"].toInt(), ctx->saved_data["s"].toInt(),
                               ctx->saved_data["h"].toInt(), ctx->saved_data["d"].toInt()},
                              dy.options());
    Launch l(dy);
    Launch::Check(fused::RopeBackward(DTypeOf(dy), dy.data_ptr(), c.data_ptr(), s.data_ptr(),
                                      dx.data_ptr(), RopeShapeOf(dx, c), l.stream()),
                  "FusedRope backward");
    return {dx, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

FusedOpsOptions GetFusedOps() {
  Switch& s = GlobalSwitch();
  return {s.gemm.load(), s.kernels.load()};
}

void SetFusedOps(const FusedOpsOptions& options) {
  Switch& s = GlobalSwitch();
  s.gemm = options.fused_gemm;
  s.kernels = options.fused_kernels;
}

bool FusedKernelsApply(const at::Tensor& x) {
#if SFD_WITH_CUDA
  const at::ScalarType t = x.scalar_type();
  return x.is_cuda() && GlobalSwitch().kernels.load() &&
         (t == at::kFloat || t == at::kBFloat16 || t == at::kHalf);
#else
  (void)x;
  return false;
#endif
}

at::Tensor FusedRmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == x.size(-1) &&
                  weight.scalar_type() == x.scalar_type(),
              "FusedRmsNorm: x ", x.sizes(), " ", x.scalar_type(), ", weight ", weight.sizes(),
              " ", weight.scalar_type());
  return RmsNormFn::apply(x, weight, eps);
}

at::Tensor FusedSwiGlu(const at::Tensor& gate_up) {
  TORCH_CHECK(gate_up.size(-1) % 2 == 0, "FusedSwiGlu: odd last dim ", gate_up.sizes());
  return SwiGluFusedFn::apply(gate_up);
}

at::Tensor FusedSwiGlu(const at::Tensor& gate, const at::Tensor& up) {
  return SwiGluPairFn::apply(gate, up);
}

at::Tensor FusedRope(const at::Tensor& x, const RopeTables& rope) {
  return RopeFn::apply(x, rope.cos, rope.sin);
}

at::Tensor FusedCrossEntropy(at::Tensor& logits, const at::Tensor& targets, double grad_scale) {
  TORCH_CHECK(logits.dim() == 2 && logits.stride(1) == 1 && targets.dim() == 1 &&
                  targets.size(0) == logits.size(0) && targets.scalar_type() == at::kLong &&
                  targets.device() == logits.device(),
              "FusedCrossEntropy: logits ", logits.sizes(), " strides ", logits.strides(),
              ", targets ", targets.sizes(), " ", targets.scalar_type());
  at::Tensor t = targets.contiguous();
  at::Tensor row_ce = at::empty({logits.size(0)}, logits.options().dtype(at::kFloat));
  Launch l(logits);
  Launch::Check(fused::CrossEntropy(DTypeOf(logits), logits.data_ptr(), logits.stride(0),
                                    t.data_ptr<int64_t>(), logits.size(0), logits.size(1),
                                    static_cast<float>(grad_scale), row_ce.data_ptr<float>(),
                                    l.stream()),
                "FusedCrossEntropy");
  return row_ce;
}

void AddMatmulTransposedA(at::Tensor& c, const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(c.dim() == 2 && a.dim() == 2 && b.dim() == 2 && c.scalar_type() == at::kFloat &&
                  a.scalar_type() == b.scalar_type() && a.size(0) == b.size(0) &&
                  c.size(0) == a.size(1) && c.size(1) == b.size(1),
              "AddMatmulTransposedA: c ", c.sizes(), " ", c.scalar_type(), ", a ", a.sizes(), " ",
              a.scalar_type(), ", b ", b.sizes(), " ", b.scalar_type());
#if SFD_WITH_CUDA
  if (c.is_cuda() && c.stride(1) == 1 && a.stride(1) == 1 && b.stride(1) == 1 && a.size(0) > 0) {
    const cudaDataType t = a.scalar_type() == at::kBFloat16 ? CUDA_R_16BF
                           : a.scalar_type() == at::kHalf   ? CUDA_R_16F
                                                            : CUDA_R_32F;
    c10::cuda::CUDAGuard guard(c.device());
    const float one = 1.f;
    // cuBLAS is column-major: row-major c [m, k] is c^T (k x m) = b^T a, where row-major b
    // [n, k] reads as b^T (k x n, op N) and row-major a [n, m] as a^T (m x n, so op T).
    const cublasStatus_t st = cublasGemmEx(
        at::cuda::getCurrentCUDABlasHandle(), CUBLAS_OP_N, CUBLAS_OP_T,
        static_cast<int>(c.size(1)), static_cast<int>(c.size(0)), static_cast<int>(a.size(0)),
        &one, b.data_ptr(), t, static_cast<int>(b.stride(0)), a.data_ptr(), t,
        static_cast<int>(a.stride(0)), &one, c.data_ptr(), CUDA_R_32F,
        static_cast<int>(c.stride(0)), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    TORCH_CHECK(st == CUBLAS_STATUS_SUCCESS, "AddMatmulTransposedA: cublasGemmEx failed (", static_cast<int>(st), ")");
    return;
  }
#endif
  c.add_(at::mm(a.t(), b));  // mixed-dtype add: the product is widened inside the add
}

}  // namespace sfd
