#!/usr/bin/env bash
# Run HERE (Debian 12): downloads the Debian packages the GPU machine (Ubuntu 24.04, no network)
# lacks into .deps/debs/, to be carried there and unpacked by deploy/gpu/env.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .deps/debs
cd .deps/debs
PKGS=(libabsl-dev libabsl20220623 liburing-dev liburing2 libgtest-dev libgmock-dev
      nlohmann-json3-dev libpcre2-dev libsentencepiece-dev libsentencepiece0 libutf8proc-dev libutf8proc2
      # the daemon (deploy/gpu/scrape_gpu_job.sh): gRPC, protoc, prometheus-cpp, civetweb, SQLite
      libgrpc++-dev libgrpc-dev libgrpc++1.51 libgrpc29 protobuf-compiler-grpc protobuf-compiler
      libprotoc32 libprotobuf-dev libprotobuf32 libre2-9 libre2-dev libc-ares2 libc-ares-dev libssl-dev
      zlib1g-dev prometheus-cpp-dev libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0
      libprometheus-cpp-push1.0 libcivetweb1 libcivetweb-dev civetweb libsqlite3-dev libcurl4-openssl-dev
      libyaml-cpp-dev libyaml-cpp0.7 libspdlog-dev libspdlog1.10 libfmt-dev libfmt9)
for p in "${PKGS[@]}"; do
  ls "${p}"_*.deb >/dev/null 2>&1 || apt-get download "$p"
done
ls -la
