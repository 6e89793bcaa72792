#!/usr/bin/env bash
# Run HERE (Debian 12): downloads the Debian packages the GPU machine (Ubuntu 24.04, no network)
# lacks into .deps/debs/, to be carried there and unpacked by deploy/gpu/env.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .deps/debs
cd .deps/debs
PKGS=(libabsl-dev libabsl20220623 liburing-dev liburing2 libgtest-dev libgmock-dev
      nlohmann-json3-dev libpcre2-dev libsentencepiece-dev libsentencepiece0 libutf8proc-dev libutf8proc2)
for p in "${PKGS[@]}"; do
  ls "${p}"_*.deb >/dev/null 2>&1 || apt-get download "$p"
done
ls -la
