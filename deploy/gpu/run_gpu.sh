#!/usr/bin/env bash
# Runs on the GPU machine (device tool), from the repo root:
#   deploy/gpu/run_gpu.sh [build] [test] [layer] [parity] [bench] [peers]
# build : configure + build engine, tests and benches against torch 2.11+cu130 (-j16)
# test  : engine tests (CPU and CUDA variants)
# layer : bench/layer/layer_bench (one decoder layer, fused ops off vs on; SFD_LAYER_ARGS)
# parity: tests/gpu/parity_1b.py (sfd vs transformers AMP, 20 steps, 1B Llama shape)
# bench : sfd_bench on the 3B/8B shapes of bench/results (SFD_BENCH_RUNS overrides:
#         "shape:batch:seq:budgetGiB[:max_grad_norm[:optimizer]]" ..., max_grad_norm 0 = no
#         clipping, which streams the update during the backward; default 1.0; optimizer adamw
#         (default) or adamw_8bit; SFD_BENCH_FLAGS adds sfd_bench flags to every run)
# trace : Kineto trace of one step per run (SFD_TRACE_RUNS, same format) -> kernel classes, top
#         kernels and the idle gaps (bench/engine/trace_summary.py)
# nvme  : bench/nvme/nvme_bench (raw O_DIRECT io_uring rate vs NvmeStore) on /tmp, then sfd_bench
#         with the AdamW moments on NVMe (SFD_NVME_RUN="shape:batch:seq:budget:clip:fraction")
# stream: weight-streaming rate (SFD_STREAM_RUN="shape:batch:seq:budget"): forward-only passes
#         vs pinned H2D bandwidth measured by torch in the same run
# peers : PyTorch AMP all-GPU and FSDP2 CPU-offload on the same shapes (same run)
# Logs and results go to $OUT (set by the device tool) or ./gpu-out.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/gpu-out}; mkdir -p "$OUT"
source deploy/gpu/env.sh >/dev/null 2>&1
BUILD=/tmp/sfd-build-gpu
stages=" $* "
log() { echo "== $(date +%T) $*"; }
make_shapes() {  # config.json of the Llama shapes the benches use (random init)
  mkdir -p /tmp/sfd-shapes
  python3 - <<'PY'
import json, os
shapes = {
 "llama-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=True),
 "llama-3b": dict(hidden_size=3072, intermediate_size=8192, num_hidden_layers=28, num_attention_heads=24, num_key_value_heads=8, tie_word_embeddings=True),
 "llama-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False),
}
for name, s in shapes.items():
    d = f"/tmp/sfd-shapes/{name}"; os.makedirs(d, exist_ok=True)
    cfg = dict(architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=128256, max_position_embeddings=8192,
               rope_theta=500000.0, rms_norm_eps=1e-5, hidden_act="silu", head_dim=s["hidden_size"] // s["num_attention_heads"],
               torch_dtype="bfloat16", **s)
    json.dump(cfg, open(f"{d}/config.json", "w"))
PY
}

if [[ $stages == *" build "* ]]; then
  log build
  cmake -S . -B $BUILD $SFD_GPU_CMAKE_ARGS > "$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
  # SFD_BUILD_ONLY: these targets instead of the full set (and no sfd_bench_trace), to save device time.
  ninja -C $BUILD -j16 ${SFD_BUILD_ONLY:-sfd_engine ${SFD_BUILD_TARGETS:-} engine_trainer_tests engine_model_tests engine_optim_tests engine_io_tests sfd_bench bench_cpu_adam layer_bench nvme_bench engine_runtime_tests} > "$OUT/build.log" 2>&1 \
    || { grep -E "error|Error" -A3 "$OUT/build.log" | head -60; exit 1; }
  [ -n "${SFD_BUILD_ONLY:-}" ] || ninja -C $BUILD -j16 sfd_bench_trace > "$OUT/build-trace.log" 2>&1 || { echo "sfd_bench_trace did not build (tracing off):"; grep -E "error" "$OUT/build-trace.log" | head -5; }
  log build ok
fi
if [[ $stages == *" test "* ]]; then
  log test
  for t in engine_io_tests engine_optim_tests engine_trainer_tests engine_model_tests; do
    $BUILD/tests/$t > "$OUT/$t.log" 2>&1; rc=$?; echo "$t rc=$rc"; grep -E "PASSED|FAILED|SKIPPED" "$OUT/$t.log" | tail -8
    if [ $rc -ge 128 ]; then  # crashed: get a backtrace (no gdb there; cuda-gdb debugs host code)
      last=$(grep "^\[ RUN" "$OUT/$t.log" | tail -1 | awk '{print $4}')
      cuda-gdb -batch -ex run -ex bt --args $BUILD/tests/$t --gtest_filter="$last" > "$OUT/$t.gdb.log" 2>&1
      grep -E "^#|signal" "$OUT/$t.gdb.log" | head -30
    fi
  done
fi
if [[ $stages == *" layer "* ]]; then  # one decoder layer, fused ops off vs on (bench/layer)
  log layer
  $BUILD/bench/layer/layer_bench ${SFD_LAYER_ARGS:-} > "$OUT/layer_bench.log" 2>&1; echo "rc=$?"
  grep -E "RESULT|DIFF|error" "$OUT/layer_bench.log"
fi
if [[ $stages == *" parity "* ]]; then
  log parity
  PYTHONUNBUFFERED=1 python3 tests/gpu/parity_1b.py $BUILD/bench/engine/sfd_bench /tmp/sfd-parity "$OUT" > "$OUT/parity.log" 2>&1
  grep -E "PARITY|error|Error" "$OUT/parity.log" | tail -30
fi
if [[ $stages == *" bench "* ]]; then
  log bench
  log "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs; $(nvidia-smi --query-gpu=name,pcie.link.gen.current,pcie.link.width.current --format=csv,noheader 2>/dev/null | head -1)"
  make_shapes
  RUNS=${SFD_BENCH_RUNS:-"llama-3b:8:1024:8 llama-3b:8:1024:0"}
  for r in $RUNS; do
    IFS=: read -r shape bs seq budget clip opt <<< "$r"
    clip=${clip:-1.0}
    opt=${opt:-adamw}
    tag="${SFD_BENCH_TAG:-}"; [[ $opt == adamw ]] || tag="-$opt$tag"
    log "sfd $shape bs$bs seq$seq budget=${budget}GiB max_grad_norm=$clip optimizer=$opt"
    $BUILD/bench/engine/sfd_bench --model /tmp/sfd-shapes/$shape --random-init --rows $bs --seq $seq --steps ${SFD_BENCH_STEPS:-7} \
      --timing-warmup 2 --device cuda --budget-gib $budget --max-grad-norm $clip --optimizer $opt ${SFD_BENCH_FLAGS:-} --label "$shape-b$budget-c$clip$tag" \
      > "$OUT/sfd-$shape-$bs-$seq-$budget-c$clip$tag.log" 2>&1
    echo "rc=$?"; grep -E "PLAN|STEP|RESULT|SWEEP|auto:|error|device memory" "$OUT/sfd-$shape-$bs-$seq-$budget-c$clip$tag.log" | tail -${SFD_BENCH_TAIL:-12}
  done
fi
if [[ $stages == *" trace "* && -x $BUILD/bench/engine/sfd_bench_trace ]]; then
  make_shapes
  for r in ${SFD_TRACE_RUNS:-${SFD_TRACE_RUN:-llama-3b:32:1024:7:0}}; do
    IFS=: read -r shape bs seq budget clip <<< "$r"
    log "trace $shape bs$bs seq$seq budget=${budget}GiB max_grad_norm=${clip:-1.0}"
    $BUILD/bench/engine/sfd_bench_trace --model /tmp/sfd-shapes/$shape --random-init --rows $bs --seq $seq --steps 5 \
      --timing-warmup 2 --device cuda --budget-gib $budget --max-grad-norm ${clip:-1.0} --trace /tmp/sfd-trace.json --trace-step 4 \
      > "$OUT/trace-run-$shape-$bs.log" 2>&1
    echo "rc=$?"; grep -E "PLAN|STEP|error|trace" "$OUT/trace-run-$shape-$bs.log" | tail -5
    python3 bench/engine/trace_summary.py /tmp/sfd-trace.json --top ${SFD_TRACE_TOP:-20} --gaps ${SFD_TRACE_GAPS:-30} \
      > "$OUT/trace-summary-$shape-$bs.md" 2>&1; cat "$OUT/trace-summary-$shape-$bs.md"
  done
fi
if [[ $stages == *" nvme "* ]]; then
  log nvme
  $BUILD/bench/nvme/nvme_bench --dir /tmp --gib 4 --unit-numel 33554432 --units 8 --steps 3 > "$OUT/nvme_bench.log" 2>&1
  echo "rc=$?"; cat "$OUT/nvme_bench.log" | tail -6
  IFS=: read -r shape bs seq budget clip frac <<< "${SFD_NVME_RUN:-llama-1b:8:1024:8:0:1}"
  mkdir -p /tmp/sfd-nvme
  $BUILD/bench/engine/sfd_bench --model /tmp/sfd-shapes/$shape --random-init --rows $bs --seq $seq --steps 4 --timing-warmup 1 \
    --device cuda --budget-gib $budget --max-grad-norm $clip --nvme-dir /tmp/sfd-nvme --nvme-fraction $frac \
    --label "$shape-b$budget-c$clip-nvme$frac" > "$OUT/sfd-nvme-$shape-$bs.log" 2>&1
  echo "rc=$?"; grep -E "PLAN|STEP|RESULT|error|device memory" "$OUT/sfd-nvme-$shape-$bs.log" | tail -4
fi
if [[ $stages == *" stream "* ]]; then
  IFS=: read -r shape bs seq budget <<< "${SFD_STREAM_RUN:-llama-8b:1:128:12}"
  log "stream $shape bs$bs seq$seq budget=${budget}GiB"
  python3 -c "
import torch,time
x=torch.empty(1<<30,dtype=torch.uint8).pin_memory(); y=torch.empty_like(x,device='cuda')
for _ in range(3): y.copy_(x,non_blocking=True)
torch.cuda.synchronize(); t=time.time()
for _ in range(10): y.copy_(x,non_blocking=True)
torch.cuda.synchronize(); print('H2D_PINNED_GBPS,%.1f'%(10*(1<<30)/(time.time()-t)/1e9))" 2>&1 | tail -1
  $BUILD/bench/engine/sfd_bench --model /tmp/sfd-shapes/$shape --random-init --rows $bs --seq $seq --steps 2 --timing-warmup 1 \
    --device cuda --budget-gib $budget --stream-passes 5 --label "$shape-b$budget" > "$OUT/stream-$shape.log" 2>&1
  echo "rc=$?"; grep -E "PLAN|STREAM|error" "$OUT/stream-$shape.log" | tail -3
fi
if [[ $stages == *" peers "* ]]; then
  log peers
  PYTHONUNBUFFERED=1 python3 bench/peers/peers_baselines.py --runs "${SFD_PEER_RUNS:-gpu:llama-3b:8:1024,fsdp:llama-3b:8:1024}" > "$OUT/peers.log" 2>&1
  grep RESULT "$OUT/peers.log"
fi
log done
