#!/bin/sh
# bench-augment-element.sh: throughput of the simclraugment element in a
# pipeline, `videotestsrc ! video/x-raw,format=RGB,WxH ! simclraugment views=2
# size=S ! fakesink`, as pairs (input frames) per second. Each case also runs
# the same pipeline without simclraugment and prints the element's own cost
# per pair (total minus baseline). Prints a table, asserts nothing.
# Runs about 10-20 seconds with the default 300 frames per case.
#
# Usage: bench/bench-augment-element.sh [build dir] [frames]
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
frames=${2:-300}

if [ ! -f "$build/plugins/libgstsimclr.so" ]; then
  echo "bench-augment-element: no plugin in $build/plugins: build first" >&2
  exit 1
fi
. "$root/scripts/env.sh"
export GST_PLUGIN_PATH_1_0="$build/plugins${GST_PLUGIN_PATH_1_0:+:$GST_PLUGIN_PATH_1_0}"
export GST_REGISTRY_1_0="${GST_REGISTRY_1_0:-$build/registry.bench.bin}"

# Wall time of one gst-launch run in seconds, from its own report
# ("Execution ended after 0:00:01.234567890").
run_seconds () {
  # shellcheck disable=SC2068 # the arguments are launch-line words
  gst-launch-1.0 $@ 2>&1 | sed -n 's/.*Execution ended after \([0-9]*\):\([0-9]*\):\([0-9.]*\).*/\1 \2 \3/p' |
    awk '{ printf "%.6f\n", $1 * 3600 + $2 * 60 + $3 }'
}

printf '%-10s %-6s %-5s %10s %12s %14s\n' input format size pairs/s views/s "us/pair(net)"
for spec in "320x240 RGB 32" "320x240 RGB 96" "320x240 RGB 224" "640x480 RGB 224" \
    "96x96 RGB 32" "28x28 GRAY8 28"; do
  set -- $spec
  w=${1%x*}
  h=${1#*x}
  src="videotestsrc num-buffers=$frames pattern=smpte ! video/x-raw,format=$2,width=$w,height=$h,framerate=30/1"
  base=$(run_seconds "$src ! fakesink")
  total=$(run_seconds "$src ! simclraugment views=2 size=$3 seed=1 ! fakesink")
  awk -v n="$frames" -v b="$base" -v t="$total" -v input="$1" -v f="$2" -v s="$3" 'BEGIN {
    net = (t - b) > 0 ? (t - b) / n * 1e6 : 0;
    printf "%-10s %-6s %-5s %10.1f %12.1f %14.1f\n", input, f, s, n / t, 2 * n / t, net }'
done
