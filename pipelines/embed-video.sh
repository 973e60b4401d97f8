#!/usr/bin/env bash
# embed-video.sh: turns every frame of a video into an embedding with a
# trained SimCLR encoder and stores them for applications:
#
#   filesrc ! decodebin ! videoscale ! video/x-raw,pixel-aspect-ratio=1/1
#     ! videoconvert ! simclrencoder mode=embed checkpoint-location=CKPT
#     ! simclrnpysink location=OUT.npy
#
# The encoder's input caps carry the model's image size and format, so
# videoscale and videoconvert adapt the frames. The result is OUT.npy, a
# (frames, D) float32 NumPy array (D = 128 for a width-0.25 ResNet-18's
# representation h), and OUT.npy.csv with one line per row: index, pts_ns
# (the frame's timestamp in nanoseconds), sample_id (frame number), view,
# label.
#
# How long it runs: a few seconds for vtest.avi (795 frames, forward passes
# only). Without a checkpoint it first runs pipelines/pretrain-video.sh with
# its defaults (under a minute).
#
# Options:
#   --checkpoint FILE  trained encoder (default build/pretrain-video/video.safetensors)
#   --video FILE       video (default /usr/share/doc/opencv-doc/examples/data/vtest.avi)
#   --output KIND      representation (h, default) or projection (z)
#   --out FILE         .npy to write (default build/embed-video/<video name>.npy)
# Environment: BUILD (build folder holding plugins/libgstsimclr.so; default build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$root/scripts/env.sh"

build=${BUILD:-$root/build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
checkpoint=""
video=/usr/share/doc/opencv-doc/examples/data/vtest.avi
output=representation
npy=""
while [ $# -gt 0 ]; do
  case "$1" in
    --checkpoint) checkpoint="$2"; shift 2 ;;
    --video) video="$2"; shift 2 ;;
    --output) output="$2"; shift 2 ;;
    --out) npy="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "embed-video.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ ! -f "$build/plugins/libgstsimclr.so" ]; then
  echo "embed-video.sh: no $build/plugins/libgstsimclr.so;" \
    "build first (meson setup build && ninja -C build) or set BUILD" >&2
  exit 1
fi
if [ ! -f "$video" ]; then
  echo "embed-video.sh: $video not found (Debian package opencv-doc;" \
    "decoding needs gstreamer1.0-libav)" >&2
  exit 1
fi
export GST_PLUGIN_PATH_1_0="$build/plugins"
export GST_REGISTRY_1_0="$build/registry.pipelines.bin"

if [ -z "$checkpoint" ]; then
  checkpoint="$build/pretrain-video/video.safetensors"
  if [ ! -f "$checkpoint" ]; then
    echo "== no checkpoint yet: pretraining one with pipelines/pretrain-video.sh"
    BUILD="$build" bash "$here/pretrain-video.sh" --checkpoint "$checkpoint"
  fi
fi
if [ ! -f "$checkpoint" ]; then
  echo "embed-video.sh: checkpoint $checkpoint not found" >&2
  exit 1
fi
name=$(basename "$video")
npy=${npy:-$build/embed-video/${name%.*}.npy}
mkdir -p "$(dirname "$npy")"

echo "== embedding every frame of $video with $checkpoint -> $npy"
start=$(date +%s.%N)
gst-launch-1.0 -q \
  filesrc location="$video" ! decodebin \
  ! videoscale ! video/x-raw,pixel-aspect-ratio=1/1 ! videoconvert \
  ! simclrencoder mode=embed checkpoint-location="$checkpoint" output="$output" \
  ! simclrnpysink location="$npy"
end=$(date +%s.%N)

rows=$(($(wc -l < "$npy.csv") - 1))
echo "== $rows embeddings in $(awk "BEGIN { printf \"%.1f\", $end - $start }") s:" \
  "$npy and $npy.csv"
head -4 "$npy.csv"
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  /usr/bin/python3 - "$npy" <<'EOF'
import sys
import numpy as np
a = np.load(sys.argv[1])
print("numpy.load: shape %s dtype %s; mean |row| %.3f" % (a.shape, a.dtype,
      float(np.linalg.norm(a, axis=1).mean()) if len(a) else 0.0))
if len(a) > 1:
    u = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    near = float((u[:-1] * u[1:]).sum(1).mean())
    far = float((u[: len(u) // 2] * u[len(u) // 2 :][: len(u) // 2]).sum(1).mean())
    print("cosine similarity: consecutive frames %.3f, frames half a video apart %.3f"
          % (near, far))
EOF
fi
