#!/usr/bin/env bash
# bench/live-compare.sh: is training live on a video useful, and what does
# the replay buffer buy? (issue 13). Four encoders, the same model and
# training settings (ResNet-18 w0.25, 32x32 views of 64x64 frames, N 32,
# temporal pairs 1 s apart, constant learning rate after a warm-up):
#
#   live, replay   the video played ONCE at real time (clocksync, as a camera
#                  would deliver it); a replay buffer of 1024 pairs; the
#                  steps the CPU managed in that time
#   live, no replay  the same, with a buffer of one batch (replay-size = N):
#                  every step trains on the newest N frames, near-copies of
#                  one another
#   offline        the same frames decoded as fast as needed, batches drawn
#                  from all of them (a replay buffer holding the whole
#                  video), stopped after as many steps as "live, replay" took
#   random         the same network, untrained
#
# and raw pixels (32x32, centred) for reference. Each checkpoint embeds every
# frame of the video (h, pipelines/embed-video.sh); bench/live-retrieval.py
# scores how well the embeddings retrieve the frames k = 5, 10, 20 away among
# all frames at least k away. Prints a table; writes OUT/results.jsonl.
# About 3 x 80 s of training plus embedding (minutes on 2 cores).
#
# Usage: bench/live-compare.sh [--video FILE] [--out DIR] [--seed N]
# Environment: BUILD (default build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$root/scripts/env.sh"
video=/usr/share/doc/opencv-doc/examples/data/vtest.avi
out=""
seed=1
while [ $# -gt 0 ]; do
  case "$1" in
    --video) video="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "live-compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
build=${BUILD:-$root/build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
out=${out:-$build/live-compare}
mkdir -p "$out"
export GST_PLUGIN_PATH_1_0="$build/plugins"
export GST_REGISTRY_1_0="$build/registry.pipelines.bin"
uri="file://$(cd "$(dirname "$video")" && pwd)/$(basename "$video")"

aug="simclraugment pair-mode=temporal temporal-offset=10 size=32 crop-scale-min=0.8 \
jitter-strength=0 blur-probability=0 flip-probability=0 grayscale-probability=0 seed=$seed"
enc="simclrencoder batch-size=32 width=0.25 seed=$seed learning-rate=0.2 lr-scaling=sqrt \
lr-schedule=constant warmup-steps=20"
frames="videoscale ! video/x-raw,width=64,height=64,pixel-aspect-ratio=1/1 ! videoconvert \
! video/x-raw,format=RGB"
info="$out/info.txt"
{
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'); flags: $(grep -o -w 'avx2\|avx512f\|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "load at start: $(cat /proc/loadavg)"
} | tee "$info"

# Steps of a run, from its metrics CSV (step is 0-based).
steps_of () { tail -1 "$1" | cut -d, -f1 | awk '{ print $1 + 1 }'; }

live_arm () {   # name, replay-size
  local name=$1 r=$2
  rm -f "$out/$name.safetensors" "$out/$name.csv"
  echo "== $name: $video once at real time, replay-size $r"
  nice -n 5 gst-launch-1.0 -e -q uridecodebin uri="$uri" ! videoconvert ! clocksync \
    ! $frames ! $aug ! $enc replay-size="$r" checkpoint-location="$out/$name.safetensors" \
    ! ntxentsink temperature=0.2 interval=1 metrics-location="$out/$name.csv" >/dev/null
  echo "   $(steps_of "$out/$name.csv") steps; $(tail -1 "$out/$name.csv" | cut -d, -f3 | xargs printf 'last loss %.3f')"
}

live_arm live-replay 1024
steps=$(steps_of "$out/live-replay.csv")
live_arm live-noreplay 32

# Offline: batches from the whole video, as many steps as the live run took.
# The constant schedule never completes, so the run is stopped from outside
# once the metrics show that step (EOS: it trains on while the EOS reaches
# the encoder); the model after exactly that many steps is the checkpoint
# the folder received at that step (checkpoint-interval = the steps).
echo "== offline: the same frames shuffled (a buffer holding all), $steps steps"
rm -rf "$out/offline.safetensors" "$out/offline.csv" "$out/offline-ckpts"
mkdir -p "$out/offline-ckpts"
nice -n 5 gst-launch-1.0 -e -q filesrc location="$video" ! decodebin ! $frames ! $aug \
  ! $enc replay-size=1024 replay-min=512 replay-overflow=wait passes=0 \
      checkpoint-location="$out/offline-ckpts" checkpoint-interval="$steps" \
      checkpoint-keep=100 \
  ! ntxentsink temperature=0.2 interval=1 metrics-location="$out/offline.csv" >/dev/null &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  if [ -f "$out/offline.csv" ] && [ "$(steps_of "$out/offline.csv" 2>/dev/null || echo 0)" -ge "$steps" ]; then
    kill -INT "$pid"; break
  fi
  sleep 0.2
done
wait "$pid" || true
at="$out/offline-ckpts/ckpt-$(printf '%012d' "$steps").safetensors"
[ -f "$at" ] || { echo "live-compare.sh: no checkpoint at step $steps ($at)" >&2; exit 1; }
cp "$at" "$out/offline.safetensors"
echo "   stopped at $(steps_of "$out/offline.csv") steps; the model after $steps steps compared"

"$build/tools/simclr-init" --out "$out/random.safetensors" --size 32 --width 0.25 \
  --seed "$seed" >/dev/null
for arm in live-replay live-noreplay offline random; do
  nice -n 5 bash "$root/pipelines/embed-video.sh" --checkpoint "$out/$arm.safetensors" \
    --video "$video" --out "$out/emb-$arm.npy" >/dev/null
done
nice -n 5 "$build/tools/simclr-search" --build "$video" --index "$out/emb-raw.npy" \
  --embed raw >/dev/null
echo "load at end: $(cat /proc/loadavg)" | tee -a "$info"
rm -f "$out/results.jsonl"
/usr/bin/python3 "$here/live-retrieval.py" --json "$out/results.jsonl" \
  "$out/emb-live-replay.npy:live, replay ($steps steps)" \
  "$out/emb-live-noreplay.npy:live, no replay ($(steps_of "$out/live-noreplay.csv") steps)" \
  "$out/emb-offline.npy:offline shuffled ($steps steps)" \
  "$out/emb-random.npy:random encoder" \
  "$out/emb-raw.npy:raw pixels 32x32" --png "$out/retrieval.png" \
  --title "$(basename "$video") played once at real time: live with/without a replay buffer, offline, random, raw" \
  | tee "$out/table.txt"
