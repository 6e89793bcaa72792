// The head unit: final RMSNorm, LM head and token cross-entropy, run in chunks of tokens so
// that full [tokens, vocab] logits never exist. The CE gradient is computed in closed form
// per chunk (softmax - onehot), so only one chunk of logits is alive at a time: on CUDA
// [chunk, vocab] in the compute dtype, overwritten by its own gradient (FusedCrossEntropy), with
// the LM-head weight gradient accumulated in fp32 inside the GEMM; on CPU (or SFD_FUSED_OPS=0)
// the ATen composition over fp32 [chunk, vocab] logits. Loss = sum of CE over target tokens * grad_scale (1 / target tokens of
// the whole optimizer step), which makes gradient accumulation token-weighted.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

#include "engine/io/model_config.h"

namespace sfd {

struct HeadInputs {
  const ModelConfig* config = nullptr;
  at::Tensor norm_weight;   // [d] compute dtype, device
  at::Tensor lm_weight;     // [V, d] compute dtype, device (the embedding when tied)
  at::Tensor targets;       // int64 [T] device, -100 = no loss
  int64_t chunk_tokens = 4096;
};

struct HeadOutputs {
  at::Tensor ce_sum;        // fp32 scalar on the device: sum of CE over target tokens
  at::Tensor dhidden;       // [T, d] compute dtype: grad wrt the head's input (backward only)
};

// Forward only (evaluation, logits-free): returns ce_sum; dhidden undefined.
HeadOutputs HeadForward(const HeadInputs& in, const at::Tensor& hidden /*[T,d]*/);

// Forward + backward. Adds d(loss)/d(lm_weight) into `lm_grad_accum` (fp32 [V,d], device) and
// d(loss)/d(norm_weight) into `norm_grad_accum` (fp32 [d], device), where
// loss = ce_sum * grad_scale. Returns ce_sum and dhidden.
HeadOutputs HeadForwardBackward(const HeadInputs& in, const at::Tensor& hidden, double grad_scale,
                                at::Tensor& lm_grad_accum, at::Tensor& norm_grad_accum);

// Full logits [T, V] fp32 (tests and small models only).
at::Tensor HeadLogits(const HeadInputs& in, const at::Tensor& hidden);

}  // namespace sfd
