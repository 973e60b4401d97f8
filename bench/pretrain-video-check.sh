#!/usr/bin/env bash
# bench/pretrain-video-check.sh: does pipelines/pretrain-video.sh, with its
# defaults, give an encoder measurably better than random weights on the
# video it trained on? (issue 13). Trains with the defaults (only --seed and
# --out passed), embeds every frame of the video with the checkpoint
# (pipelines/embed-video.sh), does the same with an untrained network of the
# same seed (tools/simclr-init) and with raw 32x32 pixels, and scores them
# by temporal retrieval (bench/live-retrieval.py: frame t+-k among all
# frames at least k away, k = 5, 10, 20). Prints the table, writes
# OUT/table.txt, OUT/results.jsonl and OUT/retrieval.png. Measures, asserts
# nothing (pretrain-video.sh itself exits 3 if its loss ends at chance).
#
# Usage: bench/pretrain-video-check.sh [--seed N] [--out DIR] [--video FILE]
# Environment: BUILD (default build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$root/scripts/env.sh"
seed=1
out=""
video=/usr/share/doc/opencv-doc/examples/data/vtest.avi
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) seed="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --video) video="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "pretrain-video-check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
build=${BUILD:-$root/build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
out=${out:-$build/pretrain-video-check}
mkdir -p "$out"
export BUILD="$build"
{
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'); flags: $(grep -o -w 'avx2\|avx512f\|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "load at start: $(cat /proc/loadavg)"
} | tee "$out/info.txt"
t0=$(date +%s)
bash "$root/pipelines/pretrain-video.sh" --seed "$seed" --video "$video" \
  --out "$out/train" | tail -3
echo "training: $(( $(date +%s) - t0 )) s" | tee -a "$out/info.txt"
"$build/tools/simclr-init" --out "$out/random.safetensors" --size 32 --width 0.25 \
  --seed "$seed" >/dev/null
for arm in train/video random; do
  bash "$root/pipelines/embed-video.sh" --checkpoint "$out/$arm.safetensors" \
    --video "$video" --out "$out/emb-$(basename "$arm").npy" >/dev/null
done
"$build/tools/simclr-search" --build "$video" --index "$out/emb-raw.npy" \
  --embed raw >/dev/null
echo "load at end: $(cat /proc/loadavg)" | tee -a "$out/info.txt"
steps=$(tail -1 "$out/train/metrics.csv" | cut -d, -f1 | awk '{ print $1 + 1 }')
rm -f "$out/results.jsonl"
/usr/bin/python3 "$here/live-retrieval.py" --json "$out/results.jsonl" \
  --png "$out/retrieval.png" \
  --title "pretrain-video.sh defaults ($steps steps) vs random weights, $(basename "$video")" \
  "$out/emb-video.npy:pretrain-video.sh ($steps steps)" \
  "$out/emb-random.npy:random encoder (seed $seed)" \
  "$out/emb-raw.npy:raw pixels 32x32" | tee "$out/table.txt"
