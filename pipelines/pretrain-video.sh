#!/usr/bin/env bash
# pretrain-video.sh: SimCLR pretraining on an ordinary video file, with
# TEMPORAL positive pairs: the two views of frame t are augmented crops of
# frame t and of frame t + offset, so the encoder learns what stays the same
# across a short time (people walking in OpenCV's vtest.avi, 795 frames):
#
#   filesrc ! decodebin ! videoscale ! video/x-raw,width=64,height=64,pixel-aspect-ratio=1/1
#     ! videoconvert ! video/x-raw,format=RGB
#     ! simclraugment pair-mode=temporal temporal-offset=5 size=32 ! queue
#     ! simclrencoder ! ntxentsink
#
# Progress is printed from ntxentsink's `simclr-train` bus messages and logged
# to a metrics CSV; the encoder writes a checkpoint at the end of the video,
# which pipelines/embed-video.sh then uses.
#
# How long it runs: by default one pass over the video, 24 steps of 32 frame
# pairs (under a minute on 2 cores). Longer: --passes P plays the video P
# times; each pass resumes the previous pass's checkpoint (weights, optimiser,
# schedule sized for all P passes) with a new augmentation seed.
#
# Options:
#   --passes P         passes over the video (default 1)
#   --batch-size N     frame pairs per step (default 32)
#   --size S           side of the views the encoder sees (default 32)
#   --offset K         frames between the two views of a pair (default 5 = 0.5 s)
#   --width W          ResNet-18 width multiplier (default 0.25)
#   --interval K       print / log every K steps (default 4)
#   --video FILE       video (default /usr/share/doc/opencv-doc/examples/data/vtest.avi)
#   --checkpoint FILE  checkpoint to write (default OUT/video.safetensors)
#   --out DIR          output folder (default build/pretrain-video)
# Environment: BUILD (build folder holding plugins/libgstsimclr.so; default build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$root/scripts/env.sh"

passes=1
batch=32
size=32
offset=5
width=0.25
interval=4
video=/usr/share/doc/opencv-doc/examples/data/vtest.avi
checkpoint=""
out=""
build=${BUILD:-$root/build}
while [ $# -gt 0 ]; do
  case "$1" in
    --passes) passes="$2"; shift 2 ;;
    --batch-size) batch="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --offset) offset="$2"; shift 2 ;;
    --width) width="$2"; shift 2 ;;
    --interval) interval="$2"; shift 2 ;;
    --video) video="$2"; shift 2 ;;
    --checkpoint) checkpoint="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
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

# Every frame gives one pair; the encoder drops the partial batch at EOS.
# Count the frames once (decoding only, about a second for vtest.avi) to size
# the learning-rate schedule for all passes.
frames_per_pass=$(gst-launch-1.0 -v filesrc location="$video" ! decodebin \
  ! video/x-raw ! fakesink silent=false sync=false 2>/dev/null \
  | grep -c ' chain ' || true)
steps_per_pass=$((frames_per_pass / batch))
if [ "$steps_per_pass" -lt 1 ]; then
  echo "pretrain-video.sh: $frames_per_pass frames are fewer than one batch of $batch" >&2
  exit 1
fi
total=$((passes * steps_per_pass))
warmup=$((total / 10))
scale=$((2 * size))

for pass in $(seq 1 "$passes"); do
  resume=""
  if [ "$pass" -gt 1 ]; then
    resume="resume-from=$checkpoint"
  fi
  echo "== pass $pass of $passes: $steps_per_pass steps of $batch pairs" \
    "($total steps in all), checkpoint $checkpoint"
  # -e: Ctrl-C sends EOS, so the checkpoint is still written.
  gst-launch-1.0 -e -m \
    filesrc location="$video" ! decodebin \
    ! videoscale ! video/x-raw,width=$scale,height=$scale,pixel-aspect-ratio=1/1 \
    ! videoconvert ! video/x-raw,format=RGB \
    ! simclraugment pair-mode=temporal temporal-offset="$offset" size="$size" \
        seed="$pass" \
    ! queue max-size-buffers=$((4 * batch)) \
    ! simclrencoder batch-size="$batch" width="$width" total-steps="$total" \
        warmup-steps="$warmup" checkpoint-location="$checkpoint" $resume \
    ! ntxentsink interval="$interval" metrics-location="$out/metrics-pass$pass.csv" \
    | grep --line-buffered -E 'simclr-(train|checkpoint)|ERROR|WARNING' \
    | sed -u -e 's/^Got message #[0-9]* from element "\([^"]*\)" (element): /\1: /' \
             -e 's/([a-z0-9]*)//g'
done
echo "== checkpoint: $checkpoint (embed a video with pipelines/embed-video.sh)"
