#!/usr/bin/env bash
# curate-video.sh: a video becomes a folder of distinct frames. Each frame
# is embedded and passes only if it is novel compared with the frames kept so
# far (simclrnoveltyfilter), and multifilesink writes the kept frames:
#
#   filesrc ! decodebin ! videoconvert ! video/x-raw,format=RGB
#     ! simclrnoveltyfilter checkpoint-location=CKPT keep-ratio=R (or threshold=T)
#     ! videoconvert ! jpegenc ! multifilesink location=OUT/frame-%05d.jpg
#
# The element posts one `simclr-novelty` message per kept frame (frame
# number, time, score) and a summary at EOS, printed here. Without
# --checkpoint the filter uses its checkpoint-free pixel embedding
# (embedding=raw: correlation of 32x32 pixels); with one, the encoder's h
# (e.g. build/find-similar-frames/encoder.safetensors written by
# pipelines/find-similar-frames.sh).
#
# How long it runs: a few seconds for vtest.avi (795 frames).
#
# Options:
#   --video FILE        default /usr/share/doc/opencv-doc/examples/data/vtest.avi
#   --checkpoint FILE   encoder (default: none, pixel embedding)
#   --keep-ratio R      keep about this fraction of the frames (0.03)
#   --threshold T       instead: keep frames whose best cosine similarity to
#                       the kept ones is below T (in [-1, 1])
#   --memory M          kept frames remembered (100)
#   --out DIR           folder of kept frames (default build/curate-video)
# Environment: BUILD (build folder; default build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$root/scripts/env.sh"
video=/usr/share/doc/opencv-doc/examples/data/vtest.avi
checkpoint=""; ratio=0.03; threshold=""; memory=100; out=""
build=${BUILD:-$root/build}
while [ $# -gt 0 ]; do
  case "$1" in
    --video) video="$2"; shift 2 ;;
    --checkpoint) checkpoint="$2"; shift 2 ;;
    --keep-ratio) ratio="$2"; shift 2 ;;
    --threshold) threshold="$2"; shift 2 ;;
    --memory) memory="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "curate-video.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$build" in /*) ;; *) build="$root/$build" ;; esac
if [ ! -f "$build/plugins/libgstsimclr.so" ]; then
  echo "curate-video.sh: no $build/plugins/libgstsimclr.so; build first (scripts/setup.sh)" >&2
  exit 1
fi
[ -f "$video" ] || { echo "curate-video.sh: $video not found (opencv-doc)" >&2; exit 1; }
export GST_PLUGIN_PATH_1_0="$build/plugins"
export GST_REGISTRY_1_0="$build/registry.pipelines.bin"
out=${out:-$build/curate-video}
rm -rf "$out"
mkdir -p "$out"

embed="embedding=raw"
[ -n "$checkpoint" ] && embed="embedding=h checkpoint-location=$checkpoint"
select="keep-ratio=$ratio"
[ -n "$threshold" ] && select="threshold=$threshold"
echo "== $video -> $out ($embed, $select, memory $memory)"
gst-launch-1.0 -m filesrc location="$video" ! decodebin ! videoconvert ! video/x-raw,format=RGB \
  ! simclrnoveltyfilter $embed $select memory="$memory" \
  ! videoconvert ! jpegenc ! multifilesink location="$out/frame-%05d.jpg" 2>&1 \
  | grep --line-buffered -E 'simclr-novelty|ERROR' \
  | sed -u -e 's/^Got message #[0-9]* from element "\([^"]*\)" (element): //' -e 's/([a-z0-9]*)//g'
echo "== $(ls "$out" | wc -l) distinct frames in $out"
