#!/usr/bin/env bash
# pretrain-video.sh: SimCLR pretraining on an ordinary video file, with
# TEMPORAL positive pairs: the two views of frame t are augmented crops of
# frame t and of frame t + offset, so the encoder learns what stays the same
# across a short time (people walking in OpenCV's vtest.avi, 795 frames):
#
#   filesrc ! decodebin ! videoscale ! video/x-raw,width=64,height=64,pixel-aspect-ratio=1/1
#     ! videoconvert ! video/x-raw,format=RGB
#     ! simclraugment pair-mode=temporal temporal-offset=10 size=32
#     ! simclrencoder replay-size=1024 passes=0 total-steps=STEPS ! ntxentsink
#
# The frames go into the encoder's replay buffer (the whole video fits) and
# every batch is drawn from all of it: consecutive frames are near-copies,
# so a batch of 32 consecutive frames (the encoder's in-order mode) holds
# the positive of each sample among its negatives, and the loss stays at
# chance. The video is played again and again inside the one pipeline (the
# encoder seeks back to its start; each pass gets new augmentations) until
# the run's steps are done; the buffer waits for every frame to be trained
# on before it replaces it.
#
# Progress is printed from ntxentsink's `simclr-train` bus messages and
# logged to a metrics CSV; the encoder writes a checkpoint at the end, which
# pipelines/embed-video.sh then uses. If the loss ends at chance (ln (2N-1))
# the script says so and exits 3: such an encoder is no better than random
# weights.
#
# How long it runs: 240 steps of 32 frame pairs by default (about a minute
# on 2 quiet cores). --steps S or --passes P (P x frames / N steps) for
# longer.
#
# Options:
#   --steps S          training steps (default 240, about 10 passes over vtest.avi)
#   --passes P         size the run as P passes instead (P x frames / batch steps)
#   --batch-size N     frame pairs per step (default 32)
#   --size S           side of the views the encoder sees (default 32)
#   --offset K         frames between the two views of a pair (default 10 = 1 s)
#   --width W          ResNet-18 width multiplier (default 0.25)
#   --lr L             base learning rate, x sqrt (N) (default 0.2: peak 1.13 at N 32)
#   --tau T            NT-Xent temperature (default 0.2)
#   --crop-min C       smallest crop, fraction of the frame (default 0.8: the
#                      people are small; a smaller crop often misses them)
#   --jitter J         colour jitter strength (default 0: on a fixed scene,
#                      colour is what tells frames apart least, and jitter kept
#                      the loss at chance in 240 steps)
#   --replay-size R    replay buffer, in frame pairs (default 1024)
#   --seed N           augmentation and initialisation seed (default 1)
#   --interval K       print / log every K steps (default 20)
#   --video FILE       video (default /usr/share/doc/opencv-doc/examples/data/vtest.avi)
#   --checkpoint FILE  checkpoint to write (default OUT/video.safetensors)
#   --out DIR          output folder (default build/pretrain-video)
#   --allow-chance     exit 0 even if the loss ended at chance
# Environment: BUILD (build folder holding plugins/libgstsimclr.so; default build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$root/scripts/env.sh"

steps=240
passes=""
batch=32
size=32
offset=10
width=0.25
lr=0.2
tau=0.2
crop_min=0.8
jitter=0
replay=1024
seed=1
interval=20
video=/usr/share/doc/opencv-doc/examples/data/vtest.avi
checkpoint=""
out=""
allow_chance=0
build=${BUILD:-$root/build}
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps="$2"; shift 2 ;;
    --passes) passes="$2"; shift 2 ;;
    --batch-size) batch="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --offset) offset="$2"; shift 2 ;;
    --width) width="$2"; shift 2 ;;
    --lr) lr="$2"; shift 2 ;;
    --tau) tau="$2"; shift 2 ;;
    --crop-min) crop_min="$2"; shift 2 ;;
    --jitter) jitter="$2"; shift 2 ;;
    --replay-size) replay="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --interval) interval="$2"; shift 2 ;;
    --video) video="$2"; shift 2 ;;
    --checkpoint) checkpoint="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --allow-chance) allow_chance=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "pretrain-video.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

case "$build" in /*) ;; *) build="$root/$build" ;; esac
if [ ! -f "$build/plugins/libgstsimclr.so" ]; then
  echo "pretrain-video.sh: no $build/plugins/libgstsimclr.so;" \
    "build first (meson setup build && ninja -C build) or set BUILD" >&2
  exit 1
fi
if [ ! -f "$video" ]; then
  echo "pretrain-video.sh: $video not found (Debian package opencv-doc;" \
    "decoding needs gstreamer1.0-libav)" >&2
  exit 1
fi
export GST_PLUGIN_PATH_1_0="$build/plugins"
export GST_REGISTRY_1_0="$build/registry.pipelines.bin"

out=${out:-$build/pretrain-video}
mkdir -p "$out"
checkpoint=${checkpoint:-$out/video.safetensors}
mkdir -p "$(dirname "$checkpoint")"

if [ -n "$passes" ]; then
  # Count the frames once (decoding only, about a second for vtest.avi).
  frames=$(gst-launch-1.0 -v filesrc location="$video" ! decodebin \
    ! video/x-raw ! fakesink silent=false sync=false 2>/dev/null \
    | grep -c ' chain ' || true)
  steps=$((passes * frames / batch))
  echo "== $passes passes over $frames frames: $steps steps"
fi
if [ "$steps" -lt 2 ]; then
  echo "pretrain-video.sh: $steps steps: too few" >&2
  exit 1
fi
warmup=$((steps / 10))
scale=$((2 * size))
metrics="$out/metrics.csv"
rm -f "$metrics"

echo "== $steps steps of $batch pairs from a replay buffer of $replay," \
  "checkpoint $checkpoint"
# -e: Ctrl-C sends EOS, so the checkpoint is still written.
set +e
gst-launch-1.0 -e -m \
  filesrc location="$video" ! decodebin \
  ! videoscale ! video/x-raw,width=$scale,height=$scale,pixel-aspect-ratio=1/1 \
  ! videoconvert ! video/x-raw,format=RGB \
  ! simclraugment pair-mode=temporal temporal-offset="$offset" size="$size" \
      crop-scale-min="$crop_min" jitter-strength="$jitter" blur-probability=0 \
      flip-probability=0 seed="$seed" \
  ! simclrencoder batch-size="$batch" width="$width" seed="$seed" \
      replay-size="$replay" replay-min=$((replay / 2)) replay-overflow=wait passes=0 \
      total-steps="$steps" warmup-steps="$warmup" learning-rate="$lr" \
      lr-scaling=sqrt checkpoint-location="$checkpoint" \
  ! ntxentsink interval="$interval" temperature="$tau" metrics-location="$metrics" \
  | grep --line-buffered -E 'simclr-(train|checkpoint)|ERROR|WARNING' \
  | sed -u -e 's/^Got message #[0-9]* from element "\([^"]*\)" (element): /\1: /' \
           -e 's/([a-z0-9]*)//g' -e 's/, views-per-second=[^,]*//'
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 0 ] || { echo "pretrain-video.sh: gst-launch-1.0 failed ($rc)" >&2; exit "$rc"; }

# Did it learn anything? The loss of the last logged steps against chance,
# ln (2N - 1): the loss of embeddings that tell nothing apart.
verdict=$(awk -F, -v n="$batch" 'NR > 1 { l[++k] = $3 } END {
  chance = log (2 * n - 1); m = 0; c = 0
  for (i = (k > 3 ? k - 2 : 1); i <= k; i++) { m += l[i]; c++ }
  if (c == 0) { print "none"; exit }
  m /= c
  printf "%s %.3f %.3f\n", (m > 0.97 * chance ? "chance" : "learned"), m, chance
}' "$metrics")
set -- $verdict
if [ "$1" = chance ]; then
  echo "pretrain-video.sh: WARNING: the loss ended at chance ($2 against" \
    "ln (2N-1) = $3): this encoder is no better than random weights." >&2
  echo "  Train longer (--steps), raise --lr, or lower augmentation strength." >&2
  [ "$allow_chance" = 1 ] || exit 3
elif [ "$1" = none ]; then
  echo "pretrain-video.sh: no loss was logged (fewer steps than --interval?)" >&2
else
  echo "== final loss $2 (chance: $3)"
fi
echo "== checkpoint: $checkpoint (embed a video with pipelines/embed-video.sh)"
