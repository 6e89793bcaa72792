// Raw-pointer launchers of the fused decoder-layer kernels (fused_ops_cuda.cu). No torch and
// no CUDA headers here: fused_ops.cc wraps them in autograd Functions. On CUDA builds they
// launch on `stream` (a cudaStream_t) and take device pointers; on builds without CUDA,
// fused_ops_host.cc defines the same functions as serial host loops over host pointers (the
// same math, so CI tests the autograd wrappers on CPU; the engine itself never dispatches to
// them — CPU keeps the ATen path). Each returns 0 on success, else an error code that
// FusedOpsErrorString names. Matrices are row-major with unit column stride; dtypes of all
// T-typed buffers are `dtype`; statistics and workspaces are fp32.
#pragma once

#include <cstdint>

namespace sfd::fused {

enum class DType { kF32, kBF16, kF16 };

const char* FusedOpsErrorString(int error);

// RMSNorm forward. x, out: [rows, cols] contiguous; w [cols]; rstd fp32 [rows] (written):
// rstd = rsqrt(mean(x^2) + eps), out = T(w * T(x * rstd)) with every product in fp32.
int RmsNormForward(DType dtype, const void* x, const void* w, void* out, float* rstd,
                   int64_t rows, int64_t cols, float eps, void* stream);
// fp32 elements of the workspace RmsNormBackward needs for these sizes.
int64_t RmsNormBackwardWorkspace(int64_t rows, int64_t cols);
// dy, x, dx: [rows, cols] contiguous; w, dw: [cols]; rstd from the forward. dx = rstd * dy*w -
// rstd^3/cols * sum(dy*w*x) * x per row; dw = sum over rows of dy * T(x*rstd) (fp32 partial
// sums per row chunk in `workspace`, then one reduction).
int RmsNormBackward(DType dtype, const void* dy, const void* x, const void* w, const float* rstd,
                    void* dx, void* dw, float* workspace, int64_t rows, int64_t cols,
                    void* stream);

// SwiGLU: out[r, i] = silu(gate[r, i]) * up[r, i] for r < rows, i < inter. gate/up rows are
// `in_stride` elements apart (2*inter for the halves of one fused gate_up, inter for separate
// tensors); out is [rows, inter] contiguous.
int SwiGluForward(DType dtype, const void* gate, const void* up, int64_t in_stride, void* out,
                  int64_t rows, int64_t inter, void* stream);
// dout [rows, inter] contiguous; writes dgate/dup whose rows are `grad_stride` apart.
int SwiGluBackward(DType dtype, const void* dout, const void* gate, const void* up,
                   int64_t in_stride, void* dgate, void* dup, int64_t grad_stride, int64_t rows,
                   int64_t inter, void* stream);

// RoPE sizes and element strides. x is [b, s, h, d] with strides (x_sb, x_ss, x_sh, 1); the
// cos/sin tables are [b or 1, 1, s, d] with strides (t_sb, -, t_ss, 1) (t_sb 0 broadcasts).
struct RopeShape {
  int64_t b = 0, s = 0, h = 0, d = 0;
  int64_t x_sb = 0, x_ss = 0, x_sh = 0;
  int64_t t_sb = 0, t_ss = 0;
};
// out [b, h, s, d] contiguous = x * cos + rotate_half(x) * sin, in fp32, rounded once.
int RopeForward(DType dtype, const void* x, const void* cos, const void* sin, void* out,
                const RopeShape& shape, void* stream);
// dy [b, h, s, d] contiguous -> dx [b, s, h, d] contiguous (x strides unused).
int RopeBackward(DType dtype, const void* dy, const void* cos, const void* sin, void* dx,
                 const RopeShape& shape, void* stream);

// Token cross-entropy over logits rows (cross_entropy_cuda.cu), in place. logits: [rows, vocab]
// with row stride `ld`; targets int64 [rows], a negative target = no loss. Writes row_ce fp32
// [rows] = logsumexp(row) - row[target] (0 for ignored rows), from fp32 math over the stored
// logits. When grad_scale != 0 it then overwrites each row with its logits gradient
// (softmax(row) - onehot(target)) * grad_scale, rounded once (zeros for ignored rows). A target
// >= vocab gives a NaN row_ce (and a NaN gradient row) rather than an out-of-bounds read.
int CrossEntropy(DType dtype, void* logits, int64_t ld, const int64_t* targets, int64_t rows,
                 int64_t vocab, float grad_scale, float* row_ce, void* stream);

}  // namespace sfd::fused
