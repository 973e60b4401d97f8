#!/usr/bin/env bash
# fuzz.sh: libFuzzer runs of every reader and parser (tests/fuzz, issue 15).
#
# Builds ./build-fuzz with clang (-fsanitize=fuzzer,address,undefined),
# writes the seed corpus, then runs each target for SECONDS (default 600)
# under `nice -n NICE` (--nice, default 19: the machine is shared; give 0
# for a campaign that should get whole cores) with --parallel P targets at
# a time (default 1; each fuzzer is one process on one core), and
# prints per target: executions, executions/s (per wall second, libFuzzer's
# figure), wall and CPU seconds, coverage (libFuzzer's "cov" edges and "ft"
# features), working corpus size, and any crash, leak, timeout or
# out-of-memory input. Findings are copied to build-fuzz/findings/<target>/;
# after fixing the bug, move each into tests/fuzz/corpus/<target>/ so the
# default suite replays it.
#
# The table also goes to build-fuzz/fuzz-summary.txt, with the wall time.
#
# Usage: scripts/fuzz.sh [--seconds N] [--parallel P] [--nice NICE] [TARGET...]
#   targets: idx cifar jpeg-folder safetensors header-json checkpoint
# Needs: clang libclang-rt-14-dev llvm (scripts/setup.sh --fuzz).
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=600
parallel=1
niceness=19
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --seconds=*) seconds=${1#*=}; shift ;;
    --parallel) parallel=$2; shift 2 ;;
    --parallel=*) parallel=${1#*=}; shift ;;
    --nice) niceness=$2; shift 2 ;;
    --nice=*) niceness=${1#*=}; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(idx cifar jpeg-folder safetensors header-json checkpoint)

have_libfuzzer () {
  command -v clang >/dev/null && echo 'int LLVMFuzzerTestOneInput (const char *d, unsigned long n) { return 0; }' \
    | clang -fsanitize=fuzzer -x c - -o /dev/null 2>/dev/null
}
if ! have_libfuzzer; then
  scripts/setup.sh --fuzz || exit 1
  have_libfuzzer || { echo "fuzz.sh: clang cannot build a libFuzzer program" >&2; exit 2; }
fi

if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined \
    -Db_lundef=false -Dbuildtype=debugoptimized -Dmpi=disabled || exit 1
fi
exes=()
for t in "${targets[@]}"; do exes+=("tests/fuzz/fuzz-$t"); done
nice -n 5 ninja -C build-fuzz "${exes[@]}" tests/fuzz/fuzz-make-seeds || exit 1
rm -rf build-fuzz/seeds
build-fuzz/tests/fuzz/fuzz-make-seeds build-fuzz/seeds || exit 1

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp
export OPENBLAS_NUM_THREADS=1

# One target: libFuzzer for SECONDS, then its row of the table in
# build-fuzz/fuzz-$t.row (rows are printed in the order of the targets).
run_target () {
  local t=$1 work=build-fuzz/corpus/$1 art=build-fuzz/findings/$1
  local log=build-fuzz/fuzz-$1.log
  mkdir -p "$work" "$art"
  local t0 t1
  t0=$(date +%s)
  # Working corpus first (libFuzzer adds new inputs to the first folder),
  # then the seeds and the committed regression corpus.
  # bash's `time` gives the fuzzer's CPU seconds (user + system): on a
  # loaded machine a niced process gets a small share of its wall time.
  local TIMEFORMAT='%U %S' rc cpu
  cpu=$( { time nice -n "$niceness" build-fuzz/tests/fuzz/fuzz-$t "$work" \
      build-fuzz/seeds/$t tests/fuzz/corpus/$t -max_total_time="$seconds" \
      -timeout=10 -rss_limit_mb=2560 -malloc_limit_mb=2048 -max_len=262144 \
      -print_final_stats=1 -artifact_prefix="$art/" >"$log" 2>&1; \
      echo "rc $?" >"$log.rc"; } 2>&1 | awk '{ printf "%.0f", $1 + $2 }')
  rc=$(sed -n 's/^rc //p' "$log.rc")
  t1=$(date +%s)
  local execs rate last cov ft ncorp found
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
  ncorp=$(ls "$work" | wc -l)
  found=$(ls "$art" | wc -l)
  # libFuzzer's timeouts are wall time: a niced fuzzer on a loaded machine
  # can spend 10 s on a unit it runs in a fraction of a second. Replay each
  # timeout / slow unit once at our own priority and give its CPU seconds.
  local f note=""
  for f in "$art"/timeout-* "$art"/slow-unit-*; do
    [ -e "$f" ] || continue
    note="$note $(basename "$f" | cut -d- -f1-2): $( { time \
        build-fuzz/tests/fuzz/fuzz-$t "$f" >/dev/null 2>&1; } 2>&1 \
        | awk '{ printf "%.2f", $1 + $2 }') s CPU on replay;"
  done
  [ -z "$note" ] || found="$found [$note ]"
  printf '%-12s %10s %8s %6s %6s %7s %7s %7s %s\n' "$t" "${execs:-?}" "${rate:-?}" \
    "$((t1 - t0))" "${cpu:-?}" "${cov:-?}" "${ft:-?}" "$ncorp" \
    "$found (exit $rc, log $log)" >"build-fuzz/fuzz-$t.row"
}

header=$(printf '%-12s %10s %8s %6s %6s %7s %7s %7s %s' target execs exec/s wall_s cpu_s cov ft corpus findings)
started=$(date -u +%FT%TZ)
i=0
for t in "${targets[@]}"; do
  rm -f "build-fuzz/fuzz-$t.row"
  run_target "$t" &
  i=$((i + 1))
  if [ $((i % parallel)) -eq 0 ]; then wait; fi
done
wait
{
  echo "fuzz.sh: $seconds s per target, $parallel at a time, nice $niceness, started $started, ended $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "$header"
  for t in "${targets[@]}"; do cat "build-fuzz/fuzz-$t.row"; done
} | tee build-fuzz/fuzz-summary.txt
