#!/bin/sh
# preview-augment.sh: shows what simclraugment does to a real photo. It makes
# 8 SimCLR pairs (16 views of 128 x 128) of one OpenCV sample photo and writes
# them as one 4 x 4 grid image: each row holds two pairs, view 0 then view 1
# of the same sample. Runs in about 2 seconds.
#
# Usage: pipelines/preview-augment.sh [photo.jpg] [grid.png] [build dir]
#   photo     default /usr/share/doc/opencv-doc/examples/data/baboon.jpg
#             (Debian package opencv-doc); exits 77 when it is missing
#   grid.png  default ./augment-grid.png
#   build dir default ./build (holds plugins/libgstsimclr.so)
# Extra element settings can come from SIMCLR_AUGMENT, e.g.
#   SIMCLR_AUGMENT="seed=7 blur-probability=0" pipelines/preview-augment.sh
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
photo=${1:-/usr/share/doc/opencv-doc/examples/data/baboon.jpg}
out=${2:-augment-grid.png}
build=${3:-$root/build}
size=128
gap=4
settings=${SIMCLR_AUGMENT:-seed=1}

if [ ! -f "$photo" ]; then
  echo "preview-augment: no photo at $photo (apt-get install opencv-doc)" >&2
  exit 77
fi
if [ ! -f "$build/plugins/libgstsimclr.so" ]; then
  echo "preview-augment: no plugin in $build/plugins: build first" \
    "(meson setup build && ninja -C build)" >&2
  exit 1
fi

. "$root/scripts/env.sh"
# Our plugin from the build tree, with its own registry so no stale cache
# hides it.
export GST_PLUGIN_PATH_1_0="$build/plugins${GST_PLUGIN_PATH_1_0:+:$GST_PLUGIN_PATH_1_0}"
export GST_REGISTRY_1_0="${GST_REGISTRY_1_0:-$build/registry.preview.bin}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# 1. Eight copies of the photo (sample ids 0..7), two views each.
# shellcheck disable=SC2086 # $settings is a list of name=value words
gst-launch-1.0 -q filesrc location="$photo" ! decodebin ! videoconvert ! \
  video/x-raw,format=RGB ! imagefreeze num-buffers=8 ! \
  simclraugment views=2 size=$size $settings ! videoconvert ! pngenc ! \
  multifilesink location="$tmp/view-%02d.png"

# 2. The 16 views side by side: one compositor pad per view.
side=$((4 * size + 5 * gap))
pads=""
branches=""
i=0
while [ $i -lt 16 ]; do
  x=$((gap + (i % 4) * (size + gap)))
  y=$((gap + (i / 4) * (size + gap)))
  name=$(printf 'view-%02d.png' $i)
  pads="$pads sink_$i::xpos=$x sink_$i::ypos=$y"
  branches="$branches filesrc location=$tmp/$name ! pngdec ! videoconvert !"
  branches="$branches imagefreeze num-buffers=1 ! comp.sink_$i"
  i=$((i + 1))
done
# shellcheck disable=SC2086 # $pads and $branches are launch-line words
gst-launch-1.0 -q compositor name=comp background=black $pads ! \
  video/x-raw,width=$side,height=$side ! videoconvert ! \
  pngenc snapshot=true ! filesink location="$out" $branches

echo "preview-augment: wrote $out ($side x $side: 8 pairs of views of $(basename "$photo"))"
