#!/usr/bin/env bash
# Device-tool driver for exact commits (the device copies the working tree, not a commit):
#   here:  git archive HEAD | gzip > .deps/head.tgz   (deploy/gpu/fetch-debs.sh fills .deps/debs)
#   there: STAGES="tests bench ..." SFD_BENCH_RUNS=... bash deploy/gpu/run_commit.sh head.tgz [fallback.tgz]
#          (run with carry [".deps"]). Unpacks the tarball to /tmp/src (changed files only: a warm
#          machine's build dir then rebuilds what changed), builds with run_gpu.sh
#          (a failed build prints every error, then tries the fallback tarball), then runs each
#          stage in order: base (switch to the second tarball and build it: later stages run
#          that commit; SFD_BENCH_TAG tells its logs apart), tests (runtime/model/trainer binaries, TEST_FILTER),
#          gdbtest (cuda-gdb backtrace of GDB_FILTER), bench-stage-trace (SFD_STAGE_TRACE of
#          SFD_BENCH_RUNS_TRACE), bench-threads (--cpu-threads SFD_THREADS on SFD_BENCH_RUNS_THREADS),
#          bench-unfused (SFD_FUSED_OPS=0 on SFD_BENCH_RUNS_UNFUSED), cpuadam (bench_cpu_adam at
#          SFD_ADAM_THREADS, default 16), or any run_gpu.sh stage.
# The device returns at most 8 files from $OUT per call: print what matters to stdout.
set -u
DEPS=$PWD/.deps  # the repo root on the device
# unpack TARBALL: /tmp/src becomes that tree. Only files whose content changed are written (git
# archive stamps every file with the commit time), so a warm build dir rebuilds what changed.
unpack() {
  rm -rf /tmp/src-new; mkdir -p /tmp/src-new /tmp/src; tar xzf $DEPS/$1 -C /tmp/src-new
  (cd /tmp/src-new && find . -type f | while read -r f; do
     cmp -s "$f" "/tmp/src/$f" || { mkdir -p "/tmp/src/$(dirname "$f")"; cp "$f" "/tmp/src/$f"; }; done)
  (cd /tmp/src && find . -type f -not -path './.deps/*' | while read -r f; do
     [ -e "/tmp/src-new/$f" ] || rm -f "$f"; done)
  ln -sfn $DEPS /tmp/src/.deps
}
unpack $1
cd /tmp/src
source deploy/gpu/env.sh >/dev/null 2>&1
if ! bash deploy/gpu/run_gpu.sh build; then
  ninja -C /tmp/sfd-build-gpu -k 0 -j16 > /tmp/build-k0.log 2>&1; grep -E "error" /tmp/build-k0.log | head -20
  echo "=== BUILD OF $1 FAILED; falling back to ${2:-none}"
  cp $OUT/build.log $OUT/build-failed.log 2>/dev/null
  [ -n "${2:-}" ] || exit 1
  cd /; unpack $2; cd /tmp/src; bash deploy/gpu/run_gpu.sh build || exit 1
fi
for stage in ${STAGES}; do
  case $stage in
    tests) for t in engine_runtime_tests engine_model_tests engine_trainer_tests engine_optim_tests; do
             [ -x /tmp/sfd-build-gpu/tests/$t ] || continue
             /tmp/sfd-build-gpu/tests/$t --gtest_filter="${TEST_FILTER:-*}" > /tmp/$t.log 2>&1; echo "$t rc=$?"
             grep -E "^\[  (PASSED|FAILED|SKIPPED) |Failure|error" /tmp/$t.log | head -20
             grep -q "PASSED" /tmp/$t.log || { echo "--- tail of $t"; grep -vE "^\[2026" /tmp/$t.log | tail -8; }; done ;;
    base) cd /; unpack $2; cd /tmp/src; bash deploy/gpu/run_gpu.sh build || exit 1; echo "=== now at $2" ;;
    gdbtest) cuda-gdb -batch -ex run -ex bt --args /tmp/sfd-build-gpu/tests/engine_trainer_tests --gtest_filter="$GDB_FILTER" > /tmp/gdb.log 2>&1
             grep -E "^#|signal|SIGSEGV" /tmp/gdb.log | head -25 ;;
    bench-stage-trace) SFD_STAGE_TRACE=$OUT/stage-trace.csv SFD_BENCH_TAG=-traced SFD_BENCH_RUNS="$SFD_BENCH_RUNS_TRACE" bash deploy/gpu/run_gpu.sh bench ;;
    bench-threads) SFD_BENCH_FLAGS="--cpu-threads $SFD_THREADS" SFD_BENCH_TAG=-t$SFD_THREADS SFD_BENCH_RUNS="$SFD_BENCH_RUNS_THREADS" bash deploy/gpu/run_gpu.sh bench ;;
    bench-unfused) SFD_FUSED_OPS=0 SFD_BENCH_TAG=-unfused SFD_BENCH_RUNS="$SFD_BENCH_RUNS_UNFUSED" bash deploy/gpu/run_gpu.sh bench ;;
    cpuadam) /tmp/sfd-build-gpu/bench/cpu_adam/bench_cpu_adam --threads=${SFD_ADAM_THREADS:-16} > $OUT/cpu_adam.log 2>&1
             echo "bench_cpu_adam rc=$?"; cat $OUT/cpu_adam.log ;;
    *) bash deploy/gpu/run_gpu.sh $stage ;;
  esac
done
rm -f $OUT/cmake.log $OUT/build.log $OUT/build-trace.log
