// Fused decoder-layer ops: the switch that selects them (env SFD_FUSED_OPS, or SetFusedOps at
// run time for benches/tests) and, on CUDA builds, autograd Functions over the raw CUDA kernels
// of fused_ops_cuda.cu (RMSNorm, SwiGLU, RoPE). Every op returns what the ATen composition in
// decoder_layer.cc / rope.cc returns, computed in fp32 and rounded once; inputs and outputs are
// device-tier tensors in the compute dtype (bf16, fp16 or fp32).
#pragma once

#include <ATen/ATen.h>

#include "engine/model/rope.h"

namespace sfd {

struct FusedOpsOptions {
  // One GEMM over adjacent q/k/v (and gate/up) weights of the flat buffer; CPU and CUDA.
  bool fused_gemm = true;
  // The CUDA kernels below instead of ATen compositions; CUDA tensors only.
  bool fused_kernels = true;
};

// Initialised once from the environment: SFD_FUSED_OPS=0 turns both off, anything else (or
// unset) leaves both on.
FusedOpsOptions GetFusedOps();
// Overrides the options for the whole process (benches, tests). Not meant to change while a
// layer is being computed.
void SetFusedOps(const FusedOpsOptions& options);

// True when the fused CUDA kernels apply to `x`: a CUDA build, a CUDA tensor of a supported
// dtype, and fused_kernels on.
bool FusedKernelsApply(const at::Tensor& x);

// x [..., n], weight [n], same dtype: weight * (x_fp32 * rsqrt(mean(x_fp32^2) + eps)).to(dtype).
// Saves x and rstd (fp32, one per row) for backward.
at::Tensor FusedRmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps);

// gate_up [..., 2*inter] (gate columns first) -> silu(gate) * up [..., inter].
at::Tensor FusedSwiGlu(const at::Tensor& gate_up);
// The same from separate gate and up tensors [..., inter] (biased MLPs: separate GEMMs).
at::Tensor FusedSwiGlu(const at::Tensor& gate, const at::Tensor& up);

// x [B, S, H, D] with a unit stride on D (e.g. a split of the fused qkv output, no copy) ->
// RoPE applied, [B, H, S, D] contiguous (what attention wants); equals
// ApplyRope(x.transpose(1, 2), rope).
at::Tensor FusedRope(const at::Tensor& x, const RopeTables& rope);

// LM-head cross-entropy over one chunk, in place (no autograd). logits [n, V] (compute dtype,
// device tier, unit column stride), targets int64 [n] (negative = no loss). Returns the per-row
// CE, fp32 [n] (0 for ignored rows). With grad_scale != 0 the logits are overwritten by
// (softmax - onehot) * grad_scale (ignored rows: 0), i.e. d(grad_scale * CE)/d(logits).
at::Tensor FusedCrossEntropy(at::Tensor& logits, const at::Tensor& targets, double grad_scale);

// c += a^T b with c fp32 [m, k], a [n, m] and b [n, k] in one dtype (all unit column stride).
// On CUDA one cuBLAS GEMM accumulates into c in fp32 (beta = 1): no [m, k] product in the
// compute dtype and no separate add. Elsewhere c.add_(a^T b). Used for the LM-head weight
// gradient, whose accumulator is fp32.
void AddMatmulTransposedA(at::Tensor& c, const at::Tensor& a, const at::Tensor& b);

}  // namespace sfd
