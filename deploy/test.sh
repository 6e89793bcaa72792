#!/usr/bin/env bash
# deploy/test.sh: the whole test suite, as CI runs it (.ci/run calls this).
#   1. installs the Debian dependencies (deploy/install-deps.sh),
#   2. configures build/ (Ninja, ccache via the top CMakeLists), builds everything,
#   3. runs every CTest test (unit, engine, server, end-to-end) with -j2,
#   4. builds the libFuzzer targets with clang in build-fuzz/ and runs each briefly.
# Exits non-zero on the first failing stage.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
jobs="${SFD_TEST_JOBS:-2}"

echo "== install dependencies"
bash deploy/install-deps.sh

echo "== configure + build (build/)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSFD_BUILD_SERVER=ON \
      -DSFD_BUILD_TESTS=ON
ninja -C build -j"$(nproc)"

echo "== tests"
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 1500

echo "== fuzz (clang, build-fuzz/)"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DSFD_BUILD_FUZZERS=ON -DSFD_BUILD_SERVER=ON -DSFD_BUILD_TESTS=ON >/dev/null
fuzz_targets=$(ninja -C build-fuzz -t targets all | sed -n 's/^\([a-z_]*_fuzz\): phony$/\1/p' | grep -v '^cmake_' | sort -u)
if [ -n "$fuzz_targets" ]; then
  # shellcheck disable=SC2086
  ninja -C build-fuzz -j"$(nproc)" $fuzz_targets
  ctest --test-dir build-fuzz -L fuzz --output-on-failure -j"$jobs"
fi
echo "== all tests passed"
