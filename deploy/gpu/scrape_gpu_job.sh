#!/usr/bin/env bash
# Runs on the GPU machine: builds sfd, sfd-worker, sfctl and make_tiny_model with CUDA (the
# server's Debian libraries — gRPC, protoc, prometheus-cpp, civetweb, SQLite — carried as .debs
# in .deps/, see fetch-debs.sh), starts sfd with its metrics endpoint on loopback, submits a
# job that trains on the GPU, and scrapes http://127.0.0.1:9464/metrics while it runs.
# sfd links no torch (its exporter's civetweb threads fail in processes that loaded torch
# 2.11); the job's worker does, and feeds the metrics over its pipe.
# Output: $OUT/scrape-*.txt, $OUT/sfd.log, $OUT/job.txt. Tokenizer: .deps/tok/tokenizer.json.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/gpu-out}; mkdir -p "$OUT"
source deploy/gpu/env.sh >/dev/null 2>&1
export PATH=$SFD_DEPS_PREFIX/usr/bin:$PATH
B=/tmp/sfd-build-srv
cmake -S . -B $B ${SFD_GPU_CMAKE_ARGS/-DSFD_BUILD_SERVER=OFF/-DSFD_BUILD_SERVER=ON} -DSFD_BUILD_TESTS=OFF \
  -DProtobuf_PROTOC_EXECUTABLE=$SFD_DEPS_PREFIX/usr/bin/protoc > "$OUT/cmake-srv.log" 2>&1 || { tail -40 "$OUT/cmake-srv.log"; exit 1; }
ninja -C $B -j16 sfd sfd-worker sfctl make_tiny_model > "$OUT/build-srv.log" 2>&1 || { grep -E "error|Error" -A3 "$OUT/build-srv.log" | head -40; exit 1; }
echo "== built"; ldd $B/bin/sfd | grep -c torch | sed 's/^/torch libs in sfd: /'
S=/tmp/sfd-state; rm -rf $S; mkdir -p $S/models $S/data/ex
$B/bin/make_tiny_model --out=$S/models/gpu-qwen3 --tokenizer_json=.deps/tok/tokenizer.json \
  --tokenizer_config=tests/fixtures/tokenizers/qwen3/tokenizer_config.json --hidden=2048 --layers=16 \
  --intermediate=6144 --heads=16 --kv_heads=8 > "$OUT/model.log" 2>&1 || { cat "$OUT/model.log"; exit 1; }
cp deploy/example/instructions.jsonl $S/data/ex/
cat > $S/job.yaml <<YAML
name: gpu-scrape
model: gpu-qwen3
data: {train: ex/instructions.jsonl, format: alpaca, max_seq_len: 512, packing: true}
training:
  max_steps: 60
  micro_batch_size: 8
  optimizer: {lr: 1.0e-4}
  lr_scheduler: constant
engine: {device: cuda, gpu_memory_budget: 4GiB}
YAML
printf 'state_dir: %s\nmetrics_address: 127.0.0.1:9464\n' $S > $S/sfd.yaml
(cd /tmp && setsid $B/bin/sfd --config=$S/sfd.yaml > "$OUT/sfd.log" 2>&1 &)
for _ in $(seq 1 100); do $B/bin/sfctl --socket=$S/sfd.sock info > /dev/null 2>&1 && break; sleep 0.2; done
$B/bin/sfctl --socket=$S/sfd.sock submit $S/job.yaml 2>&1 | tee "$OUT/job.txt"
for i in 1 2 3 4 5 6; do
  sleep 8
  curl -s http://127.0.0.1:9464/metrics > "$OUT/scrape-$i.txt"
  echo "scrape $i: $(grep -c '^sfd_' "$OUT/scrape-$i.txt") sfd_ samples; $(grep -E '^sfd_job_(steps_total|loss|tokens_per_second|memory_bytes)' "$OUT/scrape-$i.txt" | tr '\n' ' ' | cut -c1-400)"
done
$B/bin/sfctl --socket=$S/sfd.sock list 2>&1 | tee -a "$OUT/job.txt"
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
