// The one place where sfd's C++ depends on the libtorch version: Debian's 1.13 (CPU, CI)
// and pip's 2.11+cu130 (GPU machine). Everything else calls these helpers.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/version.h>

#include <optional>
#include <string>

#include "absl/status/status.h"

#define SFD_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||      \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace sfd::compat {

// Attention over q [B,H,S,D], k/v [B,Hkv,S,D] (GQA when Hkv < H), causal, plus an optional
// boolean keep-mask [B,1,S,S] (true = attend) for packed documents. Returns [B,H,S,D].
// On torch >= 2.0 this is scaled_dot_product_attention (flash / memory-efficient kernels);
// on 1.13 the same math in plain ops, with softmax in fp32.
inline at::Tensor Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const std::optional<at::Tensor>& keep_mask, double scale) {
  const int64_t groups = q.size(1) / k.size(1);
#if SFD_TORCH_AT_LEAST(2, 5)
  if (!keep_mask) {
    return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                            /*is_causal=*/true, scale, /*enable_gqa=*/groups > 1);
  }
  at::Tensor kk = groups > 1 ? k.repeat_interleave(groups, 1) : k;
  at::Tensor vv = groups > 1 ? v.repeat_interleave(groups, 1) : v;
  return at::scaled_dot_product_attention(q, kk, vv, *keep_mask, 0.0, false, scale);
#else
  at::Tensor kk = groups > 1 ? k.repeat_interleave(groups, 1) : k;
  at::Tensor vv = groups > 1 ? v.repeat_interleave(groups, 1) : v;
  at::Tensor scores = at::matmul(q, kk.transpose(-2, -1)).mul_(scale).to(at::kFloat);
  const int64_t s = q.size(2);
  if (keep_mask) {
    scores.masked_fill_(keep_mask->logical_not(), -std::numeric_limits<float>::infinity());
  } else {
    at::Tensor causal = at::ones({s, s}, q.options().dtype(at::kBool)).triu(1);
    scores.masked_fill_(causal, -std::numeric_limits<float>::infinity());
  }
  at::Tensor probs = at::softmax(scores, -1).to(q.scalar_type());
  return at::matmul(probs, vv);
#endif
}

// Runs `fn` and converts a c10::Error (libtorch's exception) into a Status: the engine
// boundary never lets a torch exception escape. Running out of device memory (past
// engine.gpu_memory_budget, which caps the allocator, or the GPU's own size) is
// RESOURCE_EXHAUSTED and says what to change.
template <typename Fn>
absl::Status CatchTorch(const char* what, Fn&& fn) {
  try {
    fn();
    return absl::OkStatus();
  } catch (const c10::OutOfMemoryError& e) {
    return absl::ResourceExhaustedError(
        std::string(what) + ": " + e.what_without_backtrace() +
        " (the device ran out: engine.gpu_memory_budget caps what a job holds on the GPU; lower "
        "micro_batch_size or max_seq_len, or raise the budget)");
  } catch (const c10::Error& e) {
    return absl::InternalError(std::string(what) + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return absl::InternalError(std::string(what) + ": " + e.what());
  }
}

}  // namespace sfd::compat
