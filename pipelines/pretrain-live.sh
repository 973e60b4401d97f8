#!/usr/bin/env bash
# pretrain-live.sh: SimCLR pretraining from a live source, for as long as it
# runs, with bounded memory and rotating checkpoints (issue 13):
#
#   SOURCE ! videoconvert ! videoscale ! video/x-raw,format=RGB,width=2S,height=2S
#     ! identity name=capture
#     ! simclraugment pair-mode=temporal temporal-offset=K size=S
#     ! simclrencoder replay-size=R lr-schedule=constant
#         checkpoint-location=DIR checkpoint-seconds=T checkpoint-keep=M resume-from=DIR
#     ! ntxentsink
#
# The encoder files every frame's two views in a replay buffer of R samples
# (memory fixed at start) and trains from it in a thread of its own: the
# capture is never held up by a training step, each batch draws its
# negatives from the last R frames (not the last N near-identical ones),
# and frames that come while a step runs are buffered or, once the buffer
# is full, replace the oldest. Every simclr-train message (printed) reports
# frames seen, buffered, trained on and dropped. Checkpoints go to DIR every
# T seconds (and at the end), the newest M kept; started again with the same
# command, the run resumes from the newest complete checkpoint in DIR
# (--fresh starts anew). Stop it with Ctrl-C: the final checkpoint is
# written. If the source fails (camera unplugged, stream lost) the run ends
# with an error and its progress saved.
#
# Sources (one of):
#   (default)        the camera /dev/video0 (v4l2src), if there is one
#   --device DEV     another V4L2 camera
#   --test           videotestsrc is-live=true pattern=ball (a demonstration)
#   --uri URI        anything uridecodebin plays: rtsp://host/path,
#                    http(s)://..., udp://@:5000 (MPEG-TS over UDP), a file
#                    (path or file://). A file is played at real time
#                    (clocksync), each frame once, as a camera would deliver
#                    it; network streams are live already.
#   --source DESC    a gst-launch description of your own, e.g. RTP/H.264
#                    over UDP: 'udpsrc port=5000 caps="application/x-rtp,
#                    media=video,encoding-name=H264,payload=96" !
#                    rtph264depay ! avdec_h264'
# For RTSP: --uri rtsp://camera/stream (rtspsrc inside uridecodebin; add
# "?tcp" style options your camera needs to the URI, or use --source
# 'rtspsrc location=... protocols=tcp ! decodebin'). A stream that stops
# sending ends the run as the source reports it (an error or EOS), with the
# checkpoint written.
#
# How long it runs: until Ctrl-C, the end of a file, or --minutes M.
#
# Options:
#   --minutes M        stop after M minutes (Ctrl-C equivalent; default 0 = no limit)
#   --size S           side of the views the encoder sees (default 32)
#   --batch-size N     samples per step (default 32)
#   --width W          ResNet-18 width multiplier (default 0.25)
#   --replay-size R    samples in the replay buffer (default 1024)
#   --replay-policy P  ring (newest R, default) or reservoir (uniform over all seen)
#   --offset K         frames between the two views of a pair (default 5)
#   --lr L             base learning rate, x sqrt (N) (default 0.2)
#   --tau T            NT-Xent temperature (default 0.2)
#   --schedule S       constant (default) or cosine-restarts
#   --restart-period P steps per cosine cycle (default 1000)
#   --warmup W         warm-up steps (default 50)
#   --crop-min C       smallest crop, fraction of the frame (default 0.8)
#   --jitter J         colour jitter strength (default 0; 0.4 and up slow learning
#                      on a fixed scene)
#   --checkpoint-seconds T  checkpoint every T seconds (default 60)
#   --keep M           checkpoints kept (default 3)
#   --fresh            do not resume from the checkpoint folder
#   --out DIR          output folder (default build/pretrain-live): checkpoints in
#                      DIR/checkpoints, metrics in DIR/metrics.csv
#   --print            print the gst-launch-1.0 description and exit
# Environment: BUILD (build folder holding plugins/libgstsimclr.so; default build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$root/scripts/env.sh"

source_kind=""
device=/dev/video0
uri=""
custom=""
minutes=0
size=32
batch=32
width=0.25
replay=1024
policy=ring
offset=5
lr=0.2
tau=0.2
schedule=constant
period=1000
warmup=50
crop_min=0.8
jitter=0
ckpt_seconds=60
keep=3
fresh=0
out=""
print=0
build=${BUILD:-$root/build}
while [ $# -gt 0 ]; do
  case "$1" in
    --device) source_kind=camera; device="$2"; shift 2 ;;
    --test) source_kind=test; shift ;;
    --uri) source_kind=uri; uri="$2"; shift 2 ;;
    --source) source_kind=custom; custom="$2"; shift 2 ;;
    --minutes) minutes="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --batch-size) batch="$2"; shift 2 ;;
    --width) width="$2"; shift 2 ;;
    --replay-size) replay="$2"; shift 2 ;;
    --replay-policy) policy="$2"; shift 2 ;;
    --offset) offset="$2"; shift 2 ;;
    --lr) lr="$2"; shift 2 ;;
    --tau) tau="$2"; shift 2 ;;
    --schedule) schedule="$2"; shift 2 ;;
    --restart-period) period="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --crop-min) crop_min="$2"; shift 2 ;;
    --jitter) jitter="$2"; shift 2 ;;
    --checkpoint-seconds) ckpt_seconds="$2"; shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    --fresh) fresh=1; shift ;;
    --out) out="$2"; shift 2 ;;
    --print) print=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "pretrain-live.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

case "$build" in /*) ;; *) build="$root/$build" ;; esac
if [ ! -f "$build/plugins/libgstsimclr.so" ]; then
  echo "pretrain-live.sh: no $build/plugins/libgstsimclr.so;" \
    "build first (meson setup build && ninja -C build) or set BUILD" >&2
  exit 1
fi
export GST_PLUGIN_PATH_1_0="$build/plugins"
export GST_REGISTRY_1_0="$build/registry.pipelines.bin"

if [ -z "$source_kind" ]; then
  if [ -e "$device" ]; then
    source_kind=camera
  else
    echo "pretrain-live.sh: no camera at $device; use --test for a" \
      "demonstration source, --uri URI for a stream or file, or --device DEV" >&2
    exit 1
  fi
fi
# Everything up to the capture point (the frames as the source delivers
# them, timed by the pipeline clock).
case "$source_kind" in
  camera)
    [ -e "$device" ] || { echo "pretrain-live.sh: $device not found" >&2; exit 1; }
    src="v4l2src device=$device ! decodebin" ;;
  test)
    src="videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1" ;;
  uri)
    case "$uri" in
      *://*) ;;
      *)
        [ -f "$uri" ] || { echo "pretrain-live.sh: $uri: no such file" >&2; exit 1; }
        uri="file://$(cd "$(dirname "$uri")" && pwd)/$(basename "$uri")" ;;
    esac
    if [ "${uri#file://}" != "$uri" ]; then
      # a file plays at real time, each frame once, like a camera
      src="uridecodebin uri=$uri ! videoconvert ! clocksync"
    else
      src="uridecodebin uri=$uri"
    fi ;;
  custom)
    src="$custom" ;;
esac

out=${out:-$build/pretrain-live}
ckdir="$out/checkpoints"
mkdir -p "$ckdir"
resume="resume-from=$ckdir"
[ "$fresh" = 1 ] && resume=""
scale=$((2 * size))

desc="$src ! identity name=capture ! videoconvert ! videoscale \
! video/x-raw,format=RGB,width=$scale,height=$scale,pixel-aspect-ratio=1/1 \
! simclraugment pair-mode=temporal temporal-offset=$offset size=$size \
crop-scale-min=$crop_min jitter-strength=$jitter blur-probability=0 flip-probability=0 \
! simclrencoder batch-size=$batch width=$width replay-size=$replay \
replay-policy=$policy learning-rate=$lr lr-scaling=sqrt lr-schedule=$schedule \
restart-period=$period warmup-steps=$warmup checkpoint-location=$ckdir \
checkpoint-seconds=$ckpt_seconds checkpoint-keep=$keep $resume \
! ntxentsink temperature=$tau interval=10 metrics-location=$out/metrics.csv"

if [ "$print" = 1 ]; then
  echo "$desc"
  exit 0
fi

echo "== $source_kind source; replay buffer of $replay samples; checkpoints in $ckdir" \
  "every ${ckpt_seconds} s (newest $keep kept)"
[ -n "$resume" ] && ls "$ckdir"/ckpt-*.safetensors >/dev/null 2>&1 \
  && echo "== resuming from the newest checkpoint in $ckdir"
limit=()
if [ "$minutes" != 0 ]; then
  # SIGINT with -e: EOS, then the final checkpoint, as Ctrl-C does
  limit=(timeout -s INT --kill-after=300 "$(awk "BEGIN { print $minutes * 60 }")")
fi
set +e
# eval: the description's quotes (a --source with caps="...") are gst-launch's
eval "${limit[*]} gst-launch-1.0 -e -m $desc" 2>&1 \
  | grep --line-buffered -E 'simclr-(train|checkpoint|replay)|ERROR|WARNING|error:' \
  | sed -u -e 's/^Got message #[0-9]* from element "\([^"]*\)" (element): /\1: /' \
           -e 's/([a-z0-9]*)//g'
rc=${PIPESTATUS[0]}
set -e
newest=$(ls "$ckdir"/ckpt-*.safetensors 2>/dev/null | tail -1)
echo "== newest checkpoint: ${newest:-none} (resume: run this again; embed a video" \
  "with pipelines/embed-video.sh --checkpoint FILE)"
# 124/130: stopped by --minutes or Ctrl-C, which is how a live run ends
case "$rc" in 0|124|130) exit 0 ;; *) exit "$rc" ;; esac
