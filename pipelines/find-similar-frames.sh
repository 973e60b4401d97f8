#!/usr/bin/env bash
# find-similar-frames.sh: search a video by example. Trains a small encoder
# on the video's own frames (or loads --checkpoint), turns every frame into
# an embedding with the GStreamer pipeline
#
#   filesrc ! decodebin ! videoconvert ! videoscale add-borders=false method=bilinear2
#     ! video/x-raw,width=S,height=S ! simclrencoder mode=embed ! simclrnpysink location=index.npy
#
# (simclrnpysink's .npy + CSV is the index), then asks simclr-search for the
# frames most like one frame of the video (--at seconds), and writes a
# contact sheet JPEG of the query beside its matches and a CSV (query, rank,
# row, id = frame number, pts_ns, score).
#
# Training (no labels; the views are crops, flips and colour changes of two
# frames a second of the video, bench/neardup's recipe):
#   simclrdatasetsrc location=FRAMES target-width=64 target-height=64 epochs=E
#     ! simclraugment size=32 crop-scale-min=0.3 jitter-strength=0.5 ! queue
#     ! simclrencoder ... ! ntxentsink temperature=0.2
#
# The index and the queries must be scaled alike: simclr-search squeezes the
# whole frame into the encoder's square with an antialiased filter, which
# videoscale does with add-borders=false method=bilinear2. With videoscale's
# defaults (2-tap bilinear, black borders) the frame at 30 s did not even find
# itself first (rank 1 was a frame at 8 s); with these settings it does
# (cosine 0.9997).
#
# How long it runs: --steps 150 training steps of 32 pairs (about a minute on
# 2 quiet cores), a few seconds to embed vtest.avi's 795 frames and to search.
#
# Options:
#   --video FILE       default /usr/share/doc/opencv-doc/examples/data/vtest.avi
#   --checkpoint FILE  use this encoder (no training)
#   --steps N          training steps (150)
#   --at SECONDS       the query frame's time (30)
#   -k K               matches (8)
#   --out DIR          output folder (default build/find-similar-frames)
# Environment: BUILD (build folder; default build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$root/scripts/env.sh"
video=/usr/share/doc/opencv-doc/examples/data/vtest.avi
checkpoint=""; steps=150; at=30; k=8; out=""
build=${BUILD:-$root/build}
while [ $# -gt 0 ]; do
  case "$1" in
    --video) video="$2"; shift 2 ;;
    --checkpoint) checkpoint="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --at) at="$2"; shift 2 ;;
    -k) k="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "find-similar-frames.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$build" in /*) ;; *) build="$root/$build" ;; esac
for f in "$build/plugins/libgstsimclr.so" "$build/tools/simclr-search"; do
  [ -e "$f" ] || { echo "find-similar-frames.sh: no $f; build first (scripts/setup.sh)" >&2; exit 1; }
done
[ -f "$video" ] || { echo "find-similar-frames.sh: $video not found (opencv-doc)" >&2; exit 1; }
export GST_PLUGIN_PATH_1_0="$build/plugins"
export GST_REGISTRY_1_0="$build/registry.pipelines.bin"
out=${out:-$build/find-similar-frames}
mkdir -p "$out"

if [ -z "$checkpoint" ]; then
  checkpoint="$out/encoder.safetensors"
  echo "== training $steps steps on the frames of $video"
  # Two frames a second, as a one-class JPEG folder, played for as many
  # epochs as the steps need (the encoder stops at total-steps).
  rm -rf "$out/frames"; mkdir -p "$out/frames/all"
  gst-launch-1.0 -q filesrc location="$video" ! decodebin ! videorate \
    ! video/x-raw,framerate=2/1 ! videoconvert ! jpegenc quality=95 \
    ! multifilesink location="$out/frames/all/%05d.jpg"
  n=$(ls "$out/frames/all" | wc -l)
  epochs=$(( steps * 32 / n + 2 ))
  gst-launch-1.0 -e -q simclrdatasetsrc location="$out/frames" shuffle=true seed=1 \
      epochs="$epochs" target-width=64 target-height=64 \
    ! simclraugment size=32 crop-scale-min=0.3 jitter-strength=0.5 seed=1 \
    ! queue max-size-buffers=128 \
    ! simclrencoder batch-size=32 width=0.25 learning-rate=0.3 lr-scaling=sqrt \
        total-steps="$steps" warmup-steps=$((steps / 20)) checkpoint-location="$checkpoint" \
    ! ntxentsink temperature=0.2 interval=$(( steps < 25 ? 1 : 25 )) metrics-location="$out/metrics.csv"
  echo "== trained: $checkpoint (last step: $(tail -1 "$out/metrics.csv" | cut -d, -f1,3 | tr , ' ' | awk '{ printf "step %s, loss %.3f", $1, $2 }'))"
fi

# The encoder's input side, from the checkpoint's metadata ("image_size").
size=$(head -c 65536 "$checkpoint" | grep -ao '"image_size": *"[0-9]*"' | grep -o '[0-9]*' | head -1)
size=${size:-32}
echo "== indexing every frame with simclrencoder mode=embed ! simclrnpysink"
gst-launch-1.0 -q filesrc location="$video" ! decodebin ! videoconvert \
  ! videoscale add-borders=false method=bilinear2 ! video/x-raw,width="$size",height="$size" \
  ! simclrencoder mode=embed checkpoint-location="$checkpoint" \
  ! simclrnpysink location="$out/index.npy"
echo "== $(($(wc -l < "$out/index.npy.csv") - 1)) frames in $out/index.npy (+ .csv)"

# The query: the frame at --at seconds, written as a JPEG.
rm -f "$out"/query-*.jpg
gst-launch-1.0 -q filesrc location="$video" ! decodebin ! videorate \
  ! video/x-raw,framerate=1/1 ! videoconvert ! jpegenc \
  ! multifilesink location="$out/query-%03d.jpg"
query=$(printf '%s/query-%03d.jpg' "$out" "$at")
[ -f "$query" ] || { echo "find-similar-frames.sh: the video is shorter than $at s" >&2; exit 1; }
cp "$query" "$out/query.jpg"; rm -f "$out"/query-*.jpg
echo "== frames most like the one at $at s:"
"$build/tools/simclr-search" --checkpoint "$checkpoint" --index "$out/index.npy" \
  --query "$out/query.jpg" -k "$k" --source "$video" \
  --csv "$out/matches.csv" --sheet "$out/matches.jpg"
echo "== $out/matches.jpg: the query (left) and its $k nearest frames; $out/matches.csv"
