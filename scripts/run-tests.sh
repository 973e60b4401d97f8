#!/usr/bin/env bash
# run-tests.sh: set up (packages, build) and run every test of the default
# suite, then print the plain closing line "N passed, N failed" that CI reads.
#
# The default suite includes the element tests under the GStreamer leaks
# tracer (GST_TRACERS=leaks: a leaked GstObject fails the test), the replay
# of every fuzz regression input (tests/fuzz/corpus), a short seeded
# GstHarness fuzz of every element, a loop of caps-negotiation failures and
# kill -9 / resume trials of a training pipeline.
#
# Options:
#   --sanitize  also build with -Db_sanitize=address,undefined (optimised,
#               so training tests stay fast) into ./build-asan and run the
#               core, element and fuzz-replay suites there. These cover
#               every source file of core/ and plugins/; the pipeline and MPI
#               suites drive the same code through gst-launch-1.0 / mpirun,
#               which cannot load an ASan plugin without preloading the
#               runtime, and are left to the default build. .ci/run uses it.
#   --long      longer randomised runs: harness fuzz 30 s per element
#               (SIMCLR_HARNESS_FUZZ_SECONDS), 20 kill -9 trials
#               (SIMCLR_KILL_TRIALS), 50 runs per negotiation case
#               (SIMCLR_NEGOTIATION_RUNS); explicit variables win.
set -uo pipefail
cd "$(dirname "$0")/.."
sanitize=0
long=0
for arg in "$@"; do
  case "$arg" in
    --sanitize) sanitize=1 ;;
    --long) long=1 ;;
    *) echo "run-tests.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

scripts/setup.sh --tests || { echo "0 passed, 1 failed"; exit 1; }
. scripts/env.sh
if [ "$long" = 1 ]; then
  export SIMCLR_HARNESS_FUZZ_SECONDS=${SIMCLR_HARNESS_FUZZ_SECONDS:-30}
  export SIMCLR_KILL_TRIALS=${SIMCLR_KILL_TRIALS:-20}
  export SIMCLR_NEGOTIATION_RUNS=${SIMCLR_NEGOTIATION_RUNS:-50}
fi

passed=0
failed=0
count () {
  # meson's testlog.json: one JSON object per line, "result": "OK" | "FAIL" | "SKIP" | ...
  local log="$1/meson-logs/testlog.json" p f
  if [ ! -s "$log" ]; then
    failed=$((failed + 1)); return
  fi
  p=$(grep -c '"result": "OK"' "$log" || true)
  f=$(grep -Ec '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" || true)
  passed=$((passed + p))
  failed=$((failed + f))
}

start=$(date +%s)
meson test -C build --print-errorlogs --num-processes 2
count build
echo "run-tests.sh: default suite took $(( $(date +%s) - start )) s"

if [ "$sanitize" = 1 ]; then
  start=$(date +%s)
  if [ ! -f build-asan/build.ninja ]; then
    meson setup build-asan -Db_sanitize=address,undefined \
      -Dbuildtype=debugoptimized
  else
    meson configure build-asan -Db_sanitize=address,undefined \
      -Dbuildtype=debugoptimized
  fi
  rm -f build-asan/meson-logs/testlog.json
  if ninja -C build-asan; then
    SIMCLR_TEST_TIME_SCALE=4 meson test -C build-asan --print-errorlogs \
      --num-processes 2 --timeout-multiplier 4 \
      --suite core --suite elements --suite fuzz
    count build-asan
  else
    failed=$((failed + 1))
  fi
  echo "run-tests.sh: sanitizer build and suites took $(( $(date +%s) - start )) s"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
