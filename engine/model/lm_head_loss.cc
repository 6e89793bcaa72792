#include "engine/model/lm_head_loss.h"

#include <algorithm>

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "engine/model/decoder_layer.h"
#include "engine/model/fused_ops.h"

namespace sfd {
namespace {

// CE over one chunk with ATen ops (CPU, or SFD_FUSED_OPS=0). Returns the chunk's CE sum (fp32 scalar tensor); when `dlogits_scale` > 0
// also returns the logits gradient (softmax - onehot) * scale for target rows, 0 elsewhere.
at::Tensor ChunkCe(const at::Tensor& h, const at::Tensor& w, const at::Tensor& targets,
                   double dlogits_scale, at::Tensor* dlogits) {
  at::Tensor logits = at::matmul(h, w.t()).to(at::kFloat);  // [n, V]
  at::Tensor lse = at::logsumexp(logits, -1);                // [n]
  at::Tensor valid = targets.ne(-100);
  at::Tensor tgt = targets.clamp_min(0).unsqueeze(1);
  at::Tensor picked = logits.gather(1, tgt).squeeze(1);
  at::Tensor ce = ((lse - picked) * valid.to(at::kFloat)).sum();
  if (dlogits != nullptr) {
    logits.sub_(lse.unsqueeze(1)).exp_();  // softmax, in place
    logits.scatter_add_(1, tgt, at::full_like(tgt, -1, logits.options()));
    logits.mul_((valid.to(at::kFloat) * dlogits_scale).unsqueeze(1));
    *dlogits = logits.to(h.scalar_type());
  }
  return ce;
}

}  // namespace

HeadOutputs HeadForward(const HeadInputs& in, const at::Tensor& hidden) {
  at::Tensor hn = RmsNorm(hidden, in.norm_weight, in.config->rms_norm_eps);
  const int64_t t = hn.size(0);
  const bool fused = FusedKernelsApply(hn);
  at::Tensor ce = at::zeros({}, hidden.options().dtype(at::kFloat));
  for (int64_t s = 0; s < t; s += in.chunk_tokens) {
    const int64_t n = std::min(in.chunk_tokens, t - s);
    at::Tensor tgt = in.targets.narrow(0, s, n);
    if (fused) {
      at::Tensor logits = at::mm(hn.narrow(0, s, n), in.lm_weight.t());
      ce += FusedCrossEntropy(logits, tgt, 0).sum();
    } else {
      ce += ChunkCe(hn.narrow(0, s, n), in.lm_weight, tgt, 0, nullptr);
    }
  }
  return {ce, at::Tensor()};
}

HeadOutputs HeadForwardBackward(const HeadInputs& in, const at::Tensor& hidden, double grad_scale,
                                at::Tensor& lm_grad_accum, at::Tensor& norm_grad_accum) {
  torch::autograd::AutoGradMode enable(true);
  at::Tensor h = hidden.detach().requires_grad_(true);
  at::Tensor nw = in.norm_weight.detach().requires_grad_(true);
  at::Tensor hn = RmsNorm(h, nw, in.config->rms_norm_eps);
  at::Tensor hn_data = hn.detach();
  const int64_t t = hn.size(0);
  at::Tensor dhn = at::empty_like(hn_data);
  // CUDA: logits in the compute dtype become their own gradient (FusedCrossEntropy), and the
  // weight gradient accumulates into the fp32 accumulator inside the GEMM.
  const bool fused = FusedKernelsApply(hn_data);
  at::Tensor ce = at::zeros({}, hidden.options().dtype(at::kFloat));
  for (int64_t s = 0; s < t; s += in.chunk_tokens) {
    const int64_t n = std::min(in.chunk_tokens, t - s);
    at::Tensor hc = hn_data.narrow(0, s, n);
    at::Tensor tgt = in.targets.narrow(0, s, n);
    at::Tensor dl;
    if (fused) {
      dl = at::mm(hc, in.lm_weight.t());
      ce += FusedCrossEntropy(dl, tgt, grad_scale).sum();
    } else {
      ce += ChunkCe(hc, in.lm_weight, tgt, grad_scale, &dl);
    }
    at::Tensor dhn_chunk = dhn.narrow(0, s, n);  // rows of a contiguous matrix: contiguous
    at::mm_out(dhn_chunk, dl, in.lm_weight);
    AddMatmulTransposedA(lm_grad_accum, dl, hc);
  }
  std::vector<at::Tensor> g = torch::autograd::grad({hn}, {h, nw}, {dhn});
  norm_grad_accum.add_(g[1].to(at::kFloat));
  return {ce, g[0]};
}

at::Tensor HeadLogits(const HeadInputs& in, const at::Tensor& hidden) {
  at::Tensor hn = RmsNorm(hidden, in.norm_weight, in.config->rms_norm_eps);
  return at::matmul(hn, in.lm_weight.t()).to(at::kFloat);
}

}  // namespace sfd
