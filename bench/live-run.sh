#!/usr/bin/env bash
# bench/live-run.sh: measures a live training run of pipelines/pretrain-live.sh
# (issue 13): resident memory every 10 s, the lateness of every captured
# frame (a stall of the capture shows as a late frame), steps/s, and the
# frames seen, buffered, trained on and dropped. Draws OUT/live.png and
# writes OUT/summary.json (bench/live-plot.py). Measures, asserts nothing.
#
# The pipeline is pretrain-live.sh's (--print), run by build/bench/live-monitor
# for --minutes, then ended with EOS (the final checkpoint is written).
#
# Usage: bench/live-run.sh [--minutes M] [--out DIR] [--warmup S] -- [pretrain-live.sh options]
#   e.g.  bench/live-run.sh --minutes 10 -- --test
#         bench/live-run.sh --minutes 10 -- --uri /usr/share/doc/opencv-doc/examples/data/vtest.avi
# (vtest.avi lasts 79.5 s: a file run ends at its end unless --minutes is shorter.)
# Environment: BUILD (default build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$root/scripts/env.sh"
minutes=10
out=""
warmup=60
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "live-run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
build=${BUILD:-$root/build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
out=${out:-$build/live-run}
mkdir -p "$out"
export GST_PLUGIN_PATH_1_0="$build/plugins"
export GST_REGISTRY_1_0="$build/registry.pipelines.bin"
[ -x "$build/bench/live-monitor" ] || { echo "live-run.sh: build first" >&2; exit 1; }

desc=$(BUILD="$build" bash "$root/pipelines/pretrain-live.sh" --out "$out/train" --fresh --print "$@")
rm -rf "$out/train/checkpoints"; mkdir -p "$out/train/checkpoints"
{
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'); flags: $(grep -o -w 'avx2\|avx512f\|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "load at start: $(cat /proc/loadavg)"
  echo "pipeline: $desc"
} | tee "$out/run-info.txt"
seconds=$(awk "BEGIN { print $minutes * 60 }")
set +e
eval "nice -n 5 \"$build/bench/live-monitor\" --seconds $seconds --rss-interval 10 \
  --warmup $warmup --out \"$out\" --pipeline '$desc'" 2>&1 | tee "$out/monitor.log"
rc=${PIPESTATUS[0]}
set -e
echo "load at end: $(cat /proc/loadavg)" | tee -a "$out/run-info.txt"
/usr/bin/python3 "$here/live-plot.py" "$out" --warmup "$warmup" \
  --title "live run: $* ($minutes min)"
exit "$rc"
