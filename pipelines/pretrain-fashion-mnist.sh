#!/usr/bin/env bash
# pretrain-fashion-mnist.sh: SimCLR pretraining of a small ResNet-18 (width
# 0.25, CIFAR stem, 128-d projection) on the Fashion-MNIST training images,
# entirely as one gst-launch-1.0 pipeline:
#
#   simclrdatasetsrc ! simclraugment size=28 ! queue ! simclrencoder ! ntxentsink
#
# It shows the training loop of gst-simclr: the views flow downstream, the
# NT-Xent gradient flows back upstream as an event, progress is printed from
# the sink's `simclr-train` bus messages (step, epoch, loss, top-1/top-5
# contrastive accuracy, learning rate, views/s) and written to a metrics CSV,
# and the encoder writes a safetensors checkpoint at the end (EOS).
#
# Any data set simclrdatasetsrc reads works with --data (IDX, CIFAR binary,
# JPEG class folders): the script counts its training images (simclr-split
# --info) to size epochs and schedules, and the views take the images' side
# unless --size says otherwise.
#
# The defaults are the recipe of bench/recipe-fashion-mnist.sh (chosen on a
# validation split, README "Linear evaluation"): batch 256, LARS at 0.3 x
# sqrt(N), 5 % warm-up, temperature 0.2, crops of 20-100 % of the area, no
# blur; the elements' own defaults are the same except width (1.0 there:
# torchvision's ResNet-18) and the augmentation's crop and blur (SimCLR's,
# for larger views).
#
# How long it runs: by default 30 steps of 256 samples (about a minute on 2
# cores). Longer: --steps N, --epochs E (whole passes over the training
# images), or --minutes M (a short calibration run measures views/s, then the schedule
# is sized to end in about M minutes; the run is also stopped with EOS at the
# deadline, so the checkpoint is always written). --resume FILE continues a
# stopped run (Ctrl-C also ends with EOS and a checkpoint) where it left off:
# same schedule, and the source skips the samples already seen.
#
# Options:
#   --steps N          optimiser steps (default 30)
#   --epochs E         whole epochs instead of --steps
#   --minutes M        time budget instead of --steps / --epochs (may be
#                      fractional)
#   --resume FILE      continue the run of checkpoint FILE to its total-steps
#                      (its batch size and schedule; writes back to FILE
#                      unless --checkpoint says otherwise)
#   --batch-size N     samples per step (V x N views; default 256)
#   --views V          views per sample (default 2); more than 2: every other
#                      view of a sample is a positive (multi-positive NT-Xent)
#   --small-views K    multi-crop: K more views per sample of --small-size
#                      pixels (simclraugment small-views; default 0 = off);
#                      every view of a sample is a positive of the others
#   --small-size S     side of the small views (default: half the views' side)
#   --small-crop "A B" crop area range of the small views (default "0.05 0.14")
#   --width W          ResNet width multiplier (default 0.25)
#   --stem S           encoder stem: auto (default: cifar up to 64 pixels),
#                      cifar, stride2 or imagenet
#   --interval K       print / log every K steps (default 5)
#   --tau T            NT-Xent temperature (default 0.2)
#   --queue Q          a queue of Q negatives from earlier steps (ntxentsink
#                      queue-size; default 0 = none)
#   --crop-min S       smallest crop area fraction (default 0.2)
#   --lr L             base learning rate (default 0.3)
#   --lr-scaling M     sqrt (base x sqrt N, default) or linear (base x N/256)
#   --blur P           blur probability (default 0)
#   --jitter S         colour-jitter strength (default 1.0)
#   --warmup-frac F    warm-up as a fraction of the steps (default 0.05)
#   --weight-decay W   weight decay (default 1e-6)
#   --optimizer O      lars (default) or sgd
#   --size S           side of the views (default: the images' side)
#   --checkpoint-interval K  also write the checkpoint every K steps (default 100)
#   --threads T        the encoder's worker threads, with OpenBLAS on one
#                      thread (default: the number of cores). Idle OpenBLAS
#                      threads spin (sched_yield) and take cycles from the
#                      workers and the augmentation thread: at width 0.25 one
#                      OpenBLAS thread measured faster
#   --proj-hidden H    hidden units of the projection head (default 0 = the
#                      feature dimension); simclr-lineval --features hidden
#                      probes that layer
#   --ranks K          K > 1: data-parallel over K Open MPI ranks on this
#                      machine (mpirun -np K, one core and one OpenBLAS thread
#                      each; needs the MPI build). --batch-size stays the
#                      global batch (each rank takes N/K samples); the same
#                      step as one process, about 15 % faster on 2 cores.
#                      With --minutes there is no EOS at the deadline (ranks
#                      must end at the same step): the calibrated schedule ends
#                      the run
#   --handoff H        queue (default): the views go through a queue, so
#                      the source and the augmentation run in their own
#                      thread; none: no queue, the encoder's thread runs
#                      them between steps (under --ranks each rank is bound
#                      to one core, where the second thread only adds a
#                      hand-off per view)
#   --monitor          post the kNN accuracy of the frozen h on 1000 test
#                      images every epoch (simclrencoder monitor-location);
#                      also written to monitor.csv beside the metrics CSV
#   --seed S           seed of the data order, the views and the initial
#                      weights (default 1)
#   --checkpoint FILE  checkpoint to write (default OUT/fashion-mnist.safetensors)
#   --metrics FILE     metrics CSV (default OUT/metrics.csv)
#   --out DIR          output folder (default build/pretrain-fashion-mnist)
#   --data DIR         data set folder (default /usr/share/datasets/fashion-mnist)
#   --quiet-progress   print one line per --interval steps instead of one
#                      progress line updated in place
# Output: one progress line updated in place (step/total, epoch, loss,
# contrastive top-1, views/s, elapsed, ETA; on a terminal) or a line every
# --interval steps (otherwise, or --quiet-progress); every metrics row is in
# the metrics CSV, and errors, warnings and checkpoint messages are printed.
# Environment: BUILD (build folder holding plugins/libgstsimclr.so and
# tools/simclr-split; default build); MPIRUN (default mpirun) and
# MPIRUN_ARGS (more mpirun arguments under --ranks, e.g. "--bind-to none";
# by default Open MPI binds rank r to core r). Where the time goes, per rank, printed
# at the end: GST_DEBUG=simclrencoder:4,simclraugment:4 (the encoder's ms per
# step, wall and thread CPU, of input / forward / exchange with the loss /
# apply (backward, gradient sum, optimiser) / after, and every thread's CPU
# seconds; the augmentation's streaming thread CPU) and SIMCLR_MPI_STATS=1
# (time and CPU inside the MPI collectives; Open MPI polls while it waits).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$root/scripts/env.sh"

steps=30
epochs=""
minutes=""
batch=256
width=0.25
stem=auto
views=2
small_views=0
small_size=""
small_crop="0.05 0.14"
interval=5
tau=0.2
queue=0
crop_min=0.2
lr=0.3
lr_scaling=sqrt
blur=0
jitter=1.0
warmup_frac=0.05
weight_decay=1e-6
optimizer=lars
size=""
progress=auto
ckpt_interval=100
threads=$(nproc)
proj_hidden=0
ranks=1
seed=1
monitor=0
handoff=queue
checkpoint=""
metrics=""
data=/usr/share/datasets/fashion-mnist
build=${BUILD:-$root/build}
out=""
resume=""
checkpoint_set=""
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps="$2"; epochs=""; minutes=""; shift 2 ;;
    --epochs) epochs="$2"; minutes=""; shift 2 ;;
    --minutes) minutes="$2"; epochs=""; shift 2 ;;
    --resume) resume="$2"; shift 2 ;;
    --batch-size) batch="$2"; shift 2 ;;
    --width) width="$2"; shift 2 ;;
    --stem) stem="$2"; shift 2 ;;
    --views) views="$2"; shift 2 ;;
    --small-views) small_views="$2"; shift 2 ;;
    --small-size) small_size="$2"; shift 2 ;;
    --small-crop) small_crop="$2"; shift 2 ;;
    --interval) interval="$2"; shift 2 ;;
    --tau) tau="$2"; shift 2 ;;
    --queue) queue="$2"; shift 2 ;;
    --crop-min) crop_min="$2"; shift 2 ;;
    --lr) lr="$2"; shift 2 ;;
    --lr-scaling) lr_scaling="$2"; shift 2 ;;
    --blur) blur="$2"; shift 2 ;;
    --jitter) jitter="$2"; shift 2 ;;
    --warmup-frac) warmup_frac="$2"; shift 2 ;;
    --weight-decay) weight_decay="$2"; shift 2 ;;
    --optimizer) optimizer="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --quiet-progress) progress=lines; shift ;;
    --checkpoint-interval) ckpt_interval="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --proj-hidden) proj_hidden="$2"; shift 2 ;;
    --ranks) ranks="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --monitor) monitor=1; shift ;;
    --handoff) handoff="$2"; shift 2 ;;
    --checkpoint) checkpoint="$2"; checkpoint_set=1; shift 2 ;;
    --metrics) metrics="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "pretrain-fashion-mnist.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

case "$handoff" in
  queue|none) ;;
  *) echo "pretrain-fashion-mnist.sh: --handoff $handoff: queue or none" >&2; exit 2 ;;
esac
case "$build" in /*) ;; *) build="$root/$build" ;; esac
if [ ! -f "$build/plugins/libgstsimclr.so" ]; then
  echo "pretrain-fashion-mnist.sh: no $build/plugins/libgstsimclr.so;" \
    "build first (meson setup build && ninja -C build) or set BUILD" >&2
  exit 1
fi
# Count the training images (and their size) instead of assuming 60000.
if ! info=$("$build/tools/simclr-split" --data "$data" --info); then
  echo "pretrain-fashion-mnist.sh: cannot read the data set in $data" \
    "(Fashion-MNIST: Debian package dataset-fashion-mnist)" >&2
  exit 1
fi
eval "$(echo "$info" | sed 's/\([a-z]*\)=/data_\1=/g')"   # data_images, data_width, ...
if [ -z "$size" ]; then
  if [ "$data_width" -gt 0 ] && [ "$data_width" = "$data_height" ]; then
    size=$data_width
  else
    echo "pretrain-fashion-mnist.sh: the images of $data are not square or vary" \
      "in size ($data_width x $data_height): give --size" >&2
    exit 2
  fi
fi
small_props=""
if [ "$small_views" -gt 0 ]; then
  [ -n "$small_size" ] || small_size=$((size / 2))
  read -r small_min small_max <<< "$small_crop"
  small_props="small-views=$small_views small-size=$small_size"
  small_props="$small_props small-crop-scale-min=$small_min small-crop-scale-max=$small_max"
fi
export GST_PLUGIN_PATH_1_0="$build/plugins"
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export GST_REGISTRY_1_0="$build/registry.pipelines.bin"

# Under MPI each rank runs this pipeline on its shard with N/K samples; the
# encoders and the sink make it one step of N (see pretrain-fashion-mnist-mpi.sh).
launcher=()
if [ "$ranks" -gt 1 ]; then
  if ! grep -q '#define HAVE_MPI' "$build/plugins/config.h" 2>/dev/null; then
    echo "pretrain-fashion-mnist.sh: --ranks needs the MPI build (libopenmpi-dev;" \
      "meson setup --reconfigure -Dmpi=enabled)" >&2
    exit 1
  fi
  if [ $((batch % ranks)) != 0 ]; then
    echo "pretrain-fashion-mnist.sh: --batch-size $batch is not a multiple of --ranks $ranks" >&2
    exit 2
  fi
  threads=1
  export OPENBLAS_NUM_THREADS=1
  # Allow root (containers); only rank 0 posts the training messages.
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  launcher=("${MPIRUN:-mpirun}" -np "$ranks")
  # shellcheck disable=SC2206 # MPIRUN_ARGS is a list of words
  [ -z "${MPIRUN_ARGS:-}" ] || launcher+=($MPIRUN_ARGS)
  [ "$ranks" -le "$(nproc)" ] || launcher+=(--oversubscribe)
  for v in GST_PLUGIN_PATH_1_0 GST_REGISTRY_1_0 OPENBLAS_NUM_THREADS; do
    launcher+=(-x "$v")
  done
fi

out=${out:-$build/pretrain-fashion-mnist}
mkdir -p "$out"
checkpoint=${checkpoint:-$out/fashion-mnist.safetensors}
metrics=${metrics:-$out/metrics.csv}
mkdir -p "$(dirname "$checkpoint")" "$(dirname "$metrics")"
# Each of the K ranks plays n / K images per epoch (the source drops n % K)
# in batches of N / K; the encoder's batches run across epoch boundaries.
per_rank=$((data_images / ranks))
steps_per_epoch=$((per_rank / (batch / ranks)))
if [ "$steps_per_epoch" -lt 1 ]; then
  echo "pretrain-fashion-mnist.sh: $data_images images are fewer than one batch" \
    "of $batch" >&2
  exit 2
fi

# Turns gst-launch -m output into progress: simclr-train messages become one
# line updated in place (a terminal) or a line each (a log); checkpoint and
# monitor messages, errors and warnings are printed as they come. $1 total
# steps, $2 start time (seconds since the epoch). The epoch shown is steps
# done over steps per epoch (the message's epoch field is the source's whole
# epoch number).
progress_filter () {
  local inplace=0
  [ "$progress" = auto ] && [ -t 1 ] && inplace=1
  awk -v total="$1" -v t0="$2" -v inplace="$inplace" -v spe="$steps_per_epoch" \
      -v mcsv="$3" '
    function field(name,   r) {
      if (match($0, name "=\\([a-z0-9]*\\)[^,;]*")) {
        r = substr($0, RSTART, RLENGTH); sub(/^[^)]*\)/, "", r); return r
      }
      return ""
    }
    function hms(s) { s = int(s); return sprintf("%d:%02d", s / 60, s % 60) }
    /simclr-train/ {
      step = field("step"); el = systime() - t0
      eta = step > 0 ? el * (total - step) / step : 0
      line = sprintf("step %d/%d  epoch %.2f  loss %.4f  top-1 %.3f  %.0f views/s  elapsed %s  ETA %s",
                     step, total, step / spe, field("loss"), field("top1"),
                     field("views-per-second"), hms(el), hms(eta))
      if (inplace) { printf "\r%s\033[K", line; pending = 1 } else print line
      fflush(); next
    }
    /simclr-monitor/ && mcsv != "" {
      printf "%d,%s,%s,%s\n", systime() - t0, field("step"), field("epoch"),
        field("knn-top1") >> mcsv; fflush(mcsv)
    }
    /simclr-(checkpoint|monitor)|ERROR|WARNING/ {
      if (pending) { printf "\n"; pending = 0 }
      sub(/^Got message #[0-9]* from element "/, ""); sub(/" \(element\): /, ": ")
      gsub(/\([a-z0-9]*\)/, ""); print; fflush()
    }
    END { if (pending) printf "\n" }'
}

# The pipeline for $1 steps: the source plays enough epochs for them, the
# encoder's cosine schedule (total-steps) is exactly $1 steps, and the encoder
# ends the stream when it is complete (stop-at-end), so EOS writes the final
# checkpoint with the learning rate decayed to 0.
run () {
  local n="$1" csv="$2" ckpt="$3" ivl="$4" deadline="${5:-}" source_props warmup pid rc
  local resume_props=""
  local monitor_props="" mcsv=""
  if [ "$monitor" = 1 ]; then
    monitor_props="monitor-location=$data"
    # The monitor's kNN figures, with the seconds since this run started.
    mcsv="$(dirname "$csv")/monitor.csv"
    echo "seconds,step,epoch,knn_top1" > "$mcsv"
  fi
  local rank_batch=$((batch / ranks))   # a resume takes batch from its file
  local queue_el=""
  [ "$handoff" = queue ] \
    && queue_el="! queue max-size-buffers=$((2 * (views + small_views) * batch))"
  if [ "$n" -le "$steps_per_epoch" ]; then
    source_props="epochs=1 num-samples=$((n * rank_batch))"
  else
    # Enough whole epochs for n batches (stop-at-end ends the stream there).
    source_props="epochs=$(( (n * rank_batch + per_rank - 1) / per_rank ))"
  fi
  warmup=$(awk -v n="$n" -v f="$warmup_frac" 'BEGIN { printf "%d", n * f }')
  [ "$warmup" -ge 1 ] || warmup=0
  if [ -n "$resume" ]; then
    # The schedule comes from the file; the source skips what it has seen.
    source_props="$source_props start-position=$((resume_step * rank_batch))"
    resume_props="resume-from=$resume"
  fi
  if [ -n "$resume" ]; then
    echo "== steps $resume_step..$((n - 1)) of $n ($batch samples each), checkpoint $ckpt, metrics $csv"
  else
    echo "== $n steps of $batch samples (width $width, stem $stem), checkpoint $ckpt, metrics $csv"
  fi
  # -e: Ctrl-C (or the deadline) sends EOS, so the checkpoint is still written.
  # -m prints bus messages; keep the training and checkpoint ones.
  "${launcher[@]}" gst-launch-1.0 -e -m \
    simclrdatasetsrc location="$data" shuffle=true seed="$seed" $source_props \
    ! simclraugment size="$size" views="$views" seed="$seed" crop-scale-min="$crop_min" \
        blur-probability="$blur" jitter-strength="$jitter" $small_props \
    $queue_el \
    ! simclrencoder batch-size="$rank_batch" views="$views" width="$width" stem="$stem" \
        total-steps="$n" \
        proj-hidden="$proj_hidden" seed="$seed" $monitor_props \
        warmup-steps="$warmup" checkpoint-location="$ckpt" \
        learning-rate="$lr" lr-scaling="$lr_scaling" \
        weight-decay="$weight_decay" optimizer="$optimizer" \
        checkpoint-interval="$ckpt_interval" threads="$threads" $resume_props \
    ! ntxentsink interval="$ivl" metrics-location="$csv" temperature="$tau" \
        queue-size="$queue" \
    > >(sed -u 's/\r/\n/g' | progress_filter "$n" "$(date +%s)" "$mcsv") &
  pid=$!
  if [ -n "$deadline" ] && [ "$ranks" = 1 ]; then
    # EOS at the deadline (gst-launch -e turns SIGINT into EOS).
    ( sleep "$deadline"; kill -INT "$pid" 2>/dev/null || true ) &
    local timer=$!
  fi
  rc=0
  wait "$pid" || rc=$?
  [ -z "${timer:-}" ] || kill "$timer" 2>/dev/null || true
  return "$rc"
}

if [ -n "$resume" ]; then
  # Step, batch size and schedule length from the checkpoint's metadata (the
  # safetensors header is JSON at the start of the file).
  meta () {
    head -c 65536 "$resume" | tr ',' '\n' | sed -n "s/^\"$1\":\"\([0-9]*\)\".*/\1/p" | head -1
  }
  resume_step=$(meta step)
  total=$(meta total_steps)
  batch=$(meta batch_size)
  if [ -z "$resume_step" ] || [ -z "$total" ] || [ -z "$batch" ]; then
    echo "pretrain-fashion-mnist.sh: $resume is not a gst-simclr training checkpoint" >&2
    exit 1
  fi
  if [ "$resume_step" -ge "$total" ]; then
    echo "== $resume is at step $resume_step of $total: nothing left to do"
    exit 0
  fi
  [ -n "$checkpoint_set" ] || checkpoint="$resume"
  echo "== resuming $resume at step $resume_step of $total"
  run "$total" "$metrics" "$checkpoint" "$interval"
  exit $?
fi
if [ -n "$epochs" ]; then
  steps=$((epochs * steps_per_epoch))
elif [ -n "$minutes" ]; then
  # Calibrate: 8 steps, then read the steady views/s from the sink's metrics.
  start=$(date +%s)
  budget_s=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')
  cal="$out/calibration"
  mkdir -p "$cal"
  # (without the monitor: its figures at step 8 would mean nothing)
  monitor_wanted=$monitor
  monitor=0
  run 8 "$cal/metrics.csv" "$cal/calibration.safetensors" 1 >/dev/null
  monitor=$monitor_wanted
  vps=$(awk -F, 'NR > 3 { s += $7; n++ } END { if (n) printf "%d", s / n; else print 0 }' \
    "$cal/metrics.csv")
  spent=$(( $(date +%s) - start ))
  left=$(( budget_s - spent ))
  # Start-up (data set load, model init) and the final checkpoint: ~15 s.
  # 0.93: leave room for the machine being busier than during calibration
  # (under MPI nothing stops the run at the deadline).
  steps=$(( (left - 15) * vps * 93 / (100 * views * batch) ))
  [ "$steps" -ge 10 ] || steps=10
  echo "== calibration: $vps views/s; $left s left -> $steps steps"
  run "$steps" "$metrics" "$checkpoint" "$interval" "$left"
  exit $?
fi
run "$steps" "$metrics" "$checkpoint" "$interval"
