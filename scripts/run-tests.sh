#!/usr/bin/env bash
# run-tests.sh: set up (packages, build) and run every test of the default
# suite, then print the plain closing line "N passed, N failed" that CI reads.
# Options: --sanitize  also build with -Db_sanitize=address,undefined into
#                      ./build-asan and run the same suite there.
set -uo pipefail
cd "$(dirname "$0")/.."
sanitize=0
for arg in "$@"; do
  case "$arg" in
    --sanitize) sanitize=1 ;;
    *) echo "run-tests.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

scripts/setup.sh --tests || { echo "0 passed, 1 failed"; exit 1; }
. scripts/env.sh

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

meson test -C build --print-errorlogs --num-processes 2
count build

if [ "$sanitize" = 1 ]; then
  if [ ! -f build-asan/build.ninja ]; then
    meson setup build-asan -Db_sanitize=address,undefined -Dbuildtype=debug
  fi
  if ninja -C build-asan; then
    SIMCLR_TEST_TIME_SCALE=4 meson test -C build-asan --print-errorlogs \
      --num-processes 2 --timeout-multiplier 4
    count build-asan
  else
    failed=$((failed + 1))
  fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
