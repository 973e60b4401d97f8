#!/usr/bin/env bash
# bench/neardup/run.sh: near-duplicate retrieval benchmark of the embedding
# apps. Shows whether our encoder, trained for a few minutes on unlabelled
# images through the GStreamer pipeline, finds the original of an edited copy
# among all originals better than raw pixels, an 8x8 average hash and the
# same encoder with random weights.
#
# The set (make-set.py): OpenCV's sample photos and a frame every 2 s of
# vtest.avi (Megamind.avi and tree.avi are left out: held back for checking);
# each original gets one query: a crop (40-90 % of the area), a colour change,
# a horizontal flip for every other one, JPEG quality 30. Recall@1 / @5 of the
# original among all originals (cosine, exact search, simclr-search), split by
# flips, heavy crops and photos / frames (score.py).
#
# Training (our elements, no labels):
#   simclrdatasetsrc location=SET/train target-width=D target-height=D shuffle=true
#   ! simclraugment size=S crop-scale-min=C ... ! queue
#   ! simclrencoder batch-size=N ... ! ntxentsink temperature=T
#
# How long it runs: about 1 minute to make the set, --steps training steps
# (default 1000 of 64 pairs at 32x32: about 6 minutes on 2 quiet cores,
# estimated; 65 minutes measured while 5-6 other jobs shared them), then
# under a minute per method to embed and search.
#
# Options (defaults are the recipe chosen for this use; see README):
#   --steps N        training steps (1000)        --batch-size N  pairs/step (64)
#   --size S         encoder input side (32)     --data-size D   images decoded at DxD (64)
#   --width W        ResNet-18 width (0.25)      --tau T         NT-Xent temperature (0.2)
#   --crop-min C     crop-scale-min (0.3)        --jitter J      jitter-strength (0.5)
#   --blur P         blur-probability (0.5)      --lr L          base learning rate (0.3)
#   --no-flip-average  embed without averaging each image with its mirror
#   --checkpoint F   evaluate this checkpoint instead of training one
#   --out DIR        work folder (default build/neardup)
#   --seed N         set and training seed (1)
# Environment: BUILD (build folder; default build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/scripts/env.sh"

steps=1000; batch=64; size=32; data_size=64; width=0.25; tau=0.2
crop_min=0.3; jitter=0.5; blur=0.5; lr=0.3; flip_avg=1; checkpoint=""
out=""; seed=1
build=${BUILD:-$root/build}
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps="$2"; shift 2 ;;
    --batch-size) batch="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --data-size) data_size="$2"; shift 2 ;;
    --width) width="$2"; shift 2 ;;
    --tau) tau="$2"; shift 2 ;;
    --crop-min) crop_min="$2"; shift 2 ;;
    --jitter) jitter="$2"; shift 2 ;;
    --blur) blur="$2"; shift 2 ;;
    --lr) lr="$2"; shift 2 ;;
    --no-flip-average) flip_avg=0; shift ;;
    --checkpoint) checkpoint="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$build" in /*) ;; *) build="$root/$build" ;; esac
out=${out:-$build/neardup}
tools="$build/tools"
for t in simclr-search simclr-init; do
  [ -x "$tools/$t" ] || { echo "run.sh: no $tools/$t; build first" >&2; exit 1; }
done
data=/usr/share/doc/opencv-doc/examples/data
[ -f "$data/vtest.avi" ] || { echo "run.sh: $data/vtest.avi missing (opencv-doc)" >&2; exit 1; }
/usr/bin/python3 -c 'import PIL' 2>/dev/null || { echo "run.sh: needs python3-pil" >&2; exit 1; }
export GST_PLUGIN_PATH_1_0="$build/plugins"
export GST_REGISTRY_1_0="$build/registry.pipelines.bin"
mkdir -p "$out"
set_dir="$out/set-seed$seed"

echo "== CPU: $(lscpu | sed -n 's/^Model name: *//p'), load: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ ! -f "$set_dir/edits.csv" ]; then
  echo "== making the set in $set_dir"
  rm -rf "$out/frames"; mkdir -p "$out/frames"
  gst-launch-1.0 -q filesrc location="$data/vtest.avi" ! decodebin ! videorate \
    ! video/x-raw,framerate=1/2 ! videoconvert ! jpegenc quality=95 \
    ! multifilesink location="$out/frames/%03d.jpg"
  /usr/bin/python3 "$here/make-set.py" --out "$set_dir" --frames "$out/frames" --seed "$seed"
fi
n=$(ls "$set_dir/originals" | wc -l)

if [ -z "$checkpoint" ]; then
  checkpoint="$out/encoder-s$size-steps$steps.safetensors"
  epochs=$(( (steps * batch + n - 1) / n + 1 ))
  warmup=$(( steps / 20 ))
  echo "== training $steps steps of $batch pairs ($epochs epochs of $n images) at ${size}x$size"
  start=$(date +%s)
  gst-launch-1.0 -e -q simclrdatasetsrc location="$set_dir/train" shuffle=true seed="$seed" \
      epochs="$epochs" target-width="$data_size" target-height="$data_size" \
    ! simclraugment size="$size" crop-scale-min="$crop_min" jitter-strength="$jitter" \
      blur-probability="$blur" seed="$seed" \
    ! queue max-size-buffers=$((4 * batch)) \
    ! simclrencoder batch-size="$batch" width="$width" learning-rate="$lr" \
      lr-scaling=sqrt total-steps="$steps" warmup-steps="$warmup" seed="$seed" \
      checkpoint-location="$checkpoint" \
    ! ntxentsink temperature="$tau" interval=50 metrics-location="$out/metrics.csv"
  echo "== trained in $(( $(date +%s) - start )) s: $checkpoint; last loss $(tail -1 "$out/metrics.csv" | cut -d, -f1-4)"
fi
random="$out/random-s$size.safetensors"
"$tools/simclr-init" --out "$random" --size "$size" --width "$width" --seed "$seed" >/dev/null

fa=""
[ "$flip_avg" = 1 ] && fa="--flip-average"
json="$out/results.jsonl"
: > "$json"
evaluate () {    # tag, label, then simclr-search embedding options
  local tag="$1" label="$2"; shift 2
  "$tools/simclr-search" "$@" --build "$set_dir/originals" --index "$out/idx-$tag.npy" >/dev/null
  "$tools/simclr-search" "$@" --index "$out/idx-$tag.npy" --query "$set_dir/queries" -k 5 \
    --csv "$out/search-$tag.csv" --quiet
  /usr/bin/python3 "$here/score.py" "$out/search-$tag.csv" "$set_dir/edits.csv" \
    --label "$label" --json "$json"
}
echo "== evaluating ($n originals, $n queries)"
evaluate ours "ours h $fa" --checkpoint "$checkpoint" --embed h $fa
if [ -n "$fa" ]; then
  evaluate ours-noflip "ours h" --checkpoint "$checkpoint" --embed h
fi
evaluate ours-z "ours z $fa" --checkpoint "$checkpoint" --embed z $fa
evaluate random "random encoder h $fa" --checkpoint "$random" --embed h $fa
evaluate raw "raw pixels 32x32" --embed raw
evaluate ahash "average hash 8x8" --embed ahash
"$tools/simclr-search" --checkpoint "$checkpoint" --embed h $fa --index "$out/idx-ours.npy" \
  --query "$set_dir/queries" -k 4 --sheet "$out/contact-sheet.jpg" --sheet-queries 12 --quiet >/dev/null 2>&1 || true
echo "== results: $json; contact sheet: $out/contact-sheet.jpg"
