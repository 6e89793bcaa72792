#!/usr/bin/env bash
# Installs every build, test and runtime dependency of sfd from Debian 12 packages.
# Idempotent: packages already present are skipped by apt; safe to run repeatedly.
set -euo pipefail

PKGS=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git clang libclang-rt-14-dev
  # engine
  libtorch-dev liburing-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libpcre2-dev
  libsentencepiece-dev libabsl-dev libutf8proc-dev
  # BLAS for libtorch's CPU matmuls: libtorch-dev alone pulls netlib's reference libblas3
  # (2.3 GFLOP/s here); OpenBLAS takes over libblas.so.3 through update-alternatives (~120)
  libopenblas0-pthread
  # server
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  prometheus-cpp-dev libsqlite3-dev libyaml-cpp-dev
  # tests
  libgtest-dev libgmock-dev python3 python3-grpcio python3-protobuf python3-yaml prometheus openssl util-linux
  # go client
  golang-go golang-google-grpc-dev golang-google-protobuf-dev protoc-gen-go-grpc protoc-gen-go
  golang-github-golang-protobuf-1-5-dev
)

missing=()
# Node.js (tokenizer oracle tests) is taken from the image when present; Debian's otherwise.
command -v node >/dev/null 2>&1 || PKGS+=(nodejs npm)
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
