#!/usr/bin/env bash
# fuzz.sh: libFuzzer runs of every reader and parser (tests/fuzz, issue 15).
#
# Builds ./build-fuzz with clang (-fsanitize=fuzzer,address,undefined),
# writes the seed corpus, then runs each target for SECONDS (default 600)
# under `nice -n 15` (one target at a time: the machine is shared), and
# prints per target: executions, executions/s, coverage (libFuzzer's "cov"
# edges and "ft" features), new corpus size, and any crash, leak, timeout or
# out-of-memory input. Findings are copied to build-fuzz/findings/<target>/;
# after fixing the bug, move each into tests/fuzz/corpus/<target>/ so the
# default suite replays it.
#
# Usage: scripts/fuzz.sh [--seconds N] [--jobs-per-target 1] [TARGET...]
#   targets: idx cifar jpeg-folder safetensors header-json checkpoint
# Needs: clang libclang-rt-14-dev llvm (scripts/setup.sh --fuzz).
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=600
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --seconds=*) seconds=${1#*=}; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
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

printf '%-12s %10s %8s %7s %7s %7s %s\n' target execs exec/s cov ft corpus findings
for t in "${targets[@]}"; do
  work=build-fuzz/corpus/$t
  art=build-fuzz/findings/$t
  mkdir -p "$work" "$art"
  log=build-fuzz/fuzz-$t.log
  # Working corpus first (libFuzzer adds new inputs to the first folder),
  # then the seeds and the committed regression corpus.
  nice -n 15 build-fuzz/tests/fuzz/fuzz-$t "$work" build-fuzz/seeds/$t \
    tests/fuzz/corpus/$t -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2560 -malloc_limit_mb=2048 -max_len=262144 \
    -print_final_stats=1 -artifact_prefix="$art/" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
  ncorp=$(ls "$work" | wc -l)
  found=$(ls "$art" | wc -l)
  printf '%-12s %10s %8s %7s %7s %7s %s\n' "$t" "${execs:-?}" "${rate:-?}" \
    "${cov:-?}" "${ft:-?}" "$ncorp" "$found (exit $rc, log $log)"
done
