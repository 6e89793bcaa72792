// layer_bench: times one decoder layer on the GPU with the fused ops off (SFD_FUSED_OPS=0
// behaviour: separate q/k/v and gate/up GEMMs, ATen RMSNorm/RoPE/SwiGLU) and on (fused GEMMs +
// fused kernels), switched at run time in one process (SetFusedOps), on the same weights and
// inputs. Shapes: Llama-3B layer (d 3072, inter 8192, 24 heads, 8 kv, head_dim 128) and 8B
// (4096, 14336, 32, 8, 128); 8192 and 32768 tokens as [tokens/1024, 1024] rows, bf16.
//
// Timing: CUDA events on the current stream, median of 20 runs after 5 warm-up runs, for
//   forward  = DecoderLayerForward under no-grad (what the executor's forward pass runs), and
//   backward = DecoderLayerBackward (recompute under autograd + backward + grad copy).
// TFLOP/s (model FLOPs, as bench/engine's sfd_bench counts them):
//   F = 2*T*P + 2*T*S*H*hd  (P = matmul params of the layer, T tokens, S = 1024; attention is
//   QK^T and PV over the causal half), forward = F / time, backward = 3F / time (recompute 1F
//   + backward 2F).
// Correctness: max abs (and max-relative) difference of y, dx and the flat parameter gradient
// between the two paths. Usage: layer_bench [--shape 3b|8b|all] [--tokens N]...
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "engine/model/decoder_layer.h"
#include "engine/model/fused_ops.h"
#include "engine/model/model_layout.h"
#include "engine/model/rope.h"

#if SFD_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#endif

namespace sfd {
namespace {

struct Shape {
  const char* name;
  int64_t d, inter, heads, kv_heads, head_dim;
};
constexpr Shape kShapes[] = {{"3b", 3072, 8192, 24, 8, 128}, {"8b", 4096, 14336, 32, 8, 128}};
constexpr int64_t kSeq = 1024;
constexpr int kWarmup = 5, kRuns = 20;

ModelConfig ConfigOf(const Shape& s) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.vocab_size = 128256;
  c.hidden_size = s.d;
  c.intermediate_size = s.inter;
  c.num_layers = 1;
  c.num_heads = s.heads;
  c.num_kv_heads = s.kv_heads;
  c.head_dim = s.head_dim;
  c.max_position_embeddings = 8192;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000.0;
  return c;
}

#if SFD_WITH_CUDA

#define BENCH_CUDA_CHECK(expr)                                                   \
  do {                                                                           \
    cudaError_t e_ = (expr);                                                     \
    if (e_ != cudaSuccess) {                                                     \
      std::fprintf(stderr, "%s: %s\n", #expr, cudaGetErrorString(e_));           \
      std::exit(1);                                                              \
    }                                                                            \
  } while (0)

// Median milliseconds of `fn` over kRuns after kWarmup, CUDA events on the current stream.
template <typename Fn>
double MedianMs(Fn&& fn) {
  cudaStream_t st = c10::cuda::getCurrentCUDAStream().stream();
  for (int i = 0; i < kWarmup; ++i) fn();
  std::vector<double> ms;
  cudaEvent_t a, b;
  BENCH_CUDA_CHECK(cudaEventCreate(&a));
  BENCH_CUDA_CHECK(cudaEventCreate(&b));
  for (int i = 0; i < kRuns; ++i) {
    BENCH_CUDA_CHECK(cudaEventRecord(a, st));
    fn();
    BENCH_CUDA_CHECK(cudaEventRecord(b, st));
    BENCH_CUDA_CHECK(cudaEventSynchronize(b));
    float t = 0;
    BENCH_CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

struct PathResult {
  double fwd_ms = 0, bwd_ms = 0, peak_gib = 0;
  at::Tensor y, dx, grads;
};

void RunShape(const Shape& shape, int64_t tokens) {
  const ModelConfig c = ConfigOf(shape);
  const UnitLayout layout = ModelLayout(c).layout(1);
  const at::Device dev(at::kCUDA, 0);
  const at::ScalarType dt = at::kBFloat16;
  at::manual_seed(0);
  at::Tensor flat = at::zeros({layout.numel()}, at::TensorOptions(dev).dtype(at::kFloat));
  for (const ParamEntry& e : layout.params()) {
    at::Tensor v = flat.narrow(0, e.offset, e.numel);
    if (e.shape.size() == 1) {
      v.normal_(1.0, 0.05);
    } else {
      v.normal_(0.0, 0.02);
    }
  }
  flat = flat.to(dt);
  const int64_t rows = tokens / kSeq;
  at::Tensor x = at::randn({rows, kSeq, c.hidden_size}, at::TensorOptions(dev).dtype(dt));
  at::Tensor dy = at::randn({rows, kSeq, c.hidden_size}, at::TensorOptions(dev).dtype(dt)) * 1e-2;
  AttentionInputs attn;
  at::Tensor pos = at::arange(kSeq, at::TensorOptions(dev).dtype(at::kLong)).unsqueeze(0).repeat({rows, 1});
  attn.rope = MakeRopeTables(RopeInverseFrequencies(c), pos, dt);

  int64_t matmul_params = 0;
  for (const ParamEntry& e : layout.params())
    if (e.shape.size() == 2) matmul_params += e.numel;
  const double flops = 2.0 * tokens * matmul_params +
                       2.0 * tokens * kSeq * c.num_heads * c.head_dim;

  const FusedOpsOptions saved = GetFusedOps();
  PathResult res[2];
  for (int mode = 0; mode < 2; ++mode) {
    SetFusedOps({/*fused_gemm=*/mode == 1, /*fused_kernels=*/mode == 1});
    PathResult& r = res[mode];
    r.grads = at::zeros_like(flat);
    {
      c10::NoGradGuard no_grad;
      r.fwd_ms = MedianMs([&] { r.y = DecoderLayerForward(c, LayerWeights::View(flat, layout), x, attn); });
    }
    c10::cuda::CUDACachingAllocator::resetPeakStats(0);
    r.bwd_ms = MedianMs([&] { r.dx = DecoderLayerBackward(c, layout, flat, x, dy, attn, r.grads); });
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
    r.peak_gib = static_cast<double>(stats.allocated_bytes[0].peak) / (1 << 30);  // [0]: aggregate
  }
  SetFusedOps(saved);

  for (int mode = 0; mode < 2; ++mode) {
    const PathResult& r = res[mode];
    std::printf("RESULT,%s,%lld,%s,fwd_ms=%.3f,fwd_tflops=%.1f,bwd_ms=%.3f,bwd_tflops=%.1f,bwd_peak_gib=%.2f\n",
                shape.name, static_cast<long long>(tokens), mode == 0 ? "unfused" : "fused", r.fwd_ms,
                flops / (r.fwd_ms * 1e-3) / 1e12, r.bwd_ms, 3 * flops / (r.bwd_ms * 1e-3) / 1e12,
                r.peak_gib);
  }
  auto diff = [](const char* what, const at::Tensor& a, const at::Tensor& b) {
    const double d = (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>();
    const double m = b.to(at::kFloat).abs().max().item<double>();
    std::printf("DIFF,%s,max_abs=%.4g,max_ref=%.4g,rel=%.3g\n", what, d, m, d / std::max(m, 1e-30));
  };
  diff("y", res[1].y, res[0].y);
  diff("dx", res[1].dx, res[0].dx);
  diff("grad_flat", res[1].grads, res[0].grads);
  std::fflush(stdout);
}

#endif  // SFD_WITH_CUDA

}  // namespace
}  // namespace sfd

int main(int argc, char** argv) {
#if !SFD_WITH_CUDA
  (void)argc;
  (void)argv;
  std::printf("layer_bench: built without CUDA (SFD_WITH_CUDA off); it times the decoder layer on a GPU. Nothing to do.\n");
  return 0;
#else
  if (!at::hasCUDA()) {
    std::printf("layer_bench: no CUDA device visible. Nothing to do.\n");
    return 0;
  }
  std::string which = "all";
  std::vector<int64_t> tokens;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--shape") == 0 && i + 1 < argc) {
      which = argv[++i];
    } else if (std::strcmp(argv[i], "--tokens") == 0 && i + 1 < argc) {
      tokens.push_back(std::atoll(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: layer_bench [--shape 3b|8b|all] [--tokens N]... (N a multiple of %lld)\n",
                   static_cast<long long>(sfd::kSeq));
      return 2;
    }
  }
  if (tokens.empty()) tokens = {8192, 32768};
  for (int64_t t : tokens) {
    if (t <= 0 || t % sfd::kSeq != 0) {
      std::fprintf(stderr, "layer_bench: --tokens %lld is not a positive multiple of %lld\n",
                   static_cast<long long>(t), static_cast<long long>(sfd::kSeq));
      return 2;
    }
  }
  std::printf("layer_bench: bf16, seq %lld, median of %d after %d warm-up; fwd TFLOP/s = F/t, bwd "
              "(recompute+backward) = 3F/t, F = 2*T*P_matmul + 2*T*S*H*hd\n",
              static_cast<long long>(sfd::kSeq), sfd::kRuns, sfd::kWarmup);
  for (const sfd::Shape& s : sfd::kShapes) {
    if (which != "all" && which != s.name) continue;
    for (int64_t t : tokens) sfd::RunShape(s, t);
  }
  return 0;
#endif
}
