#include "engine/model/rope.h"

#include <cmath>

namespace sfd {

at::Tensor RopeInverseFrequencies(const ModelConfig& c) {
  const int64_t dim = c.head_dim;
  at::Tensor exponents = at::arange(0, dim, 2, at::kLong).to(at::kFloat).div(static_cast<double>(dim));
  at::Tensor inv_freq = at::pow(at::Scalar(c.rope_theta), exponents).reciprocal();
  if (c.rope_scaling && c.rope_scaling->rope_type == "llama3") {
    const RopeScaling& s = *c.rope_scaling;
    const double old_len = static_cast<double>(s.original_max_position_embeddings);
    const double low_wavelen = old_len / s.low_freq_factor;
    const double high_wavelen = old_len / s.high_freq_factor;
    at::Tensor wavelen = inv_freq.reciprocal().mul(2 * M_PI);
    at::Tensor scaled = at::where(wavelen > low_wavelen, inv_freq / s.factor, inv_freq);
    at::Tensor smooth = (wavelen.reciprocal().mul(old_len) - s.low_freq_factor) /
                        (s.high_freq_factor - s.low_freq_factor);
    at::Tensor smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
    at::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    inv_freq = at::where(medium, smoothed, scaled);
  }
  return inv_freq;
}

RopeTables MakeRopeTables(const at::Tensor& inv_freq, const at::Tensor& position_ids,
                          at::ScalarType dtype) {
  at::Tensor freqs = position_ids.to(at::kFloat).unsqueeze(-1) *
                     inv_freq.to(position_ids.device()).view({1, 1, -1});  // [B,S,D/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1).unsqueeze(1);                // [B,1,S,D]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

at::Tensor ApplyRope(const at::Tensor& x, const RopeTables& rope) {
  const int64_t half = x.size(-1) / 2;
  at::Tensor x1 = x.narrow(-1, 0, half);
  at::Tensor x2 = x.narrow(-1, half, half);
  at::Tensor rotated = at::cat({x2.neg(), x1}, -1);
  return x * rope.cos + rotated * rope.sin;
}

}  // namespace sfd
