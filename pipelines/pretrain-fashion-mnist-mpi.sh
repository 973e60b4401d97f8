#!/usr/bin/env bash
# pretrain-fashion-mnist-mpi.sh: data-parallel SimCLR pretraining on
# Fashion-MNIST with Open MPI: `mpirun -np K gst-launch-1.0 ...` runs K copies
# of the training pipeline of pretrain-fashion-mnist.sh, one per rank:
#
#   simclrdatasetsrc ! simclraugment ! queue ! simclrencoder ! ntxentsink
#
# Each rank reads its own shard of every epoch (simclrdatasetsrc defaults
# shard-index/shard-count to rank/size under mpirun), so a step trains on
# K x N samples (N = --batch-size per rank): ntxentsink all-gathers the 2N
# projections of every rank and computes the loss of all 2NK views, the
# encoders sum their gradients and batch-norm statistics over the ranks, so
# K ranks take the step one process would take with a batch of NK. Rank 0
# prints progress (global loss, accuracy, views/s), writes the metrics CSV
# and the checkpoint. A failure on any rank ends every rank (non-zero exit).
#
# Needs the plugin built with MPI (meson feature `mpi`, found automatically
# when libopenmpi-dev is installed).
#
# Options:
#   -np K / --ranks K  number of ranks (default 2)
#   --hostfile FILE    run the ranks on several machines (Open MPI hostfile:
#                      one "host slots=S" line per machine). Every machine
#                      needs this build, the data set and the output folder
#                      at the same paths (e.g. NFS); the checkpoint is written
#                      by rank 0 on its machine
#   --steps N          optimiser steps (default 30)
#   --batch-size N     samples per step PER RANK (global batch K x N; the
#                      learning-rate scaling uses the global batch; default 32)
#   --width W          ResNet width multiplier (default 0.25)
#   --threads T        OpenBLAS threads per rank (default 1; mpirun binds each
#                      rank to a core, add --bind-to none for more)
#   --interval K       print / log every K steps (default 5)
#   --checkpoint FILE  checkpoint (default OUT/fashion-mnist-mpi.safetensors)
#   --resume FILE      continue from a checkpoint (all ranks read FILE)
#   --out DIR          output folder (default BUILD/pretrain-fashion-mnist-mpi)
#   --data DIR         Fashion-MNIST IDX folder (default /usr/share/datasets/fashion-mnist)
#   --stats            each rank prints its time spent in MPI collectives at exit
# Environment: BUILD (build folder with plugins/libgstsimclr.so; default build),
# MPIRUN (default mpirun), MPIRUN_ARGS (extra mpirun arguments).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

ranks=2
hostfile=""
steps=30
batch=32
width=0.25
threads=1
interval=5
checkpoint=""
resume=""
out=""
stats=0
data=/usr/share/datasets/fashion-mnist
build=${BUILD:-$root/build}
while [ $# -gt 0 ]; do
  case "$1" in
    -np|--ranks) ranks="$2"; shift 2 ;;
    --hostfile) hostfile="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --batch-size) batch="$2"; shift 2 ;;
    --width) width="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --interval) interval="$2"; shift 2 ;;
    --checkpoint) checkpoint="$2"; shift 2 ;;
    --resume) resume="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --stats) stats=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "pretrain-fashion-mnist-mpi.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

case "$build" in /*) ;; *) build="$root/$build" ;; esac
if [ ! -f "$build/plugins/libgstsimclr.so" ]; then
  echo "pretrain-fashion-mnist-mpi.sh: no $build/plugins/libgstsimclr.so; build first" >&2
  exit 1
fi
if ! grep -q '#define HAVE_MPI' "$build/plugins/config.h" 2>/dev/null; then
  echo "pretrain-fashion-mnist-mpi.sh: $build was configured without MPI" \
    "(install libopenmpi-dev, then meson setup --reconfigure -Dmpi=enabled)" >&2
  exit 1
fi
mpirun=${MPIRUN:-mpirun}
if ! command -v "$mpirun" >/dev/null; then
  echo "pretrain-fashion-mnist-mpi.sh: $mpirun not found (Debian: openmpi-bin)" >&2
  exit 1
fi

out=${out:-$build/pretrain-fashion-mnist-mpi}
mkdir -p "$out"
checkpoint=${checkpoint:-$out/fashion-mnist-mpi.safetensors}
metrics=$out/metrics.csv
warmup=$((steps / 10))
resume_props=""
start_props=""
if [ -n "$resume" ]; then
  step=$(head -c 65536 "$resume" | tr ',' '\n' | sed -n 's/^"step":"\([0-9]*\)".*/\1/p' | head -1)
  resume_props="resume-from=$resume"
  # samples already seen by each rank's shard: step x N (per rank)
  start_props="start-position=$((step * batch))"
  echo "== resuming $resume at step $step"
fi

export GST_PLUGIN_PATH_1_0="$build/plugins"
export GST_REGISTRY_1_0="$build/registry.pipelines.bin"
export OPENBLAS_NUM_THREADS="$threads"
export SIMCLR_MPI_STATS="$stats"
# Allow root (containers) and more ranks than cores on a small machine.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

args=(-np "$ranks")
[ -z "$hostfile" ] || args+=(--hostfile "$hostfile")
[ "$ranks" -le "$(nproc)" ] || [ -n "$hostfile" ] || args+=(--oversubscribe)
for v in GST_PLUGIN_PATH_1_0 GST_REGISTRY_1_0 OPENBLAS_NUM_THREADS SIMCLR_MPI_STATS; do
  args+=(-x "$v")
done

echo "== $ranks ranks x $batch samples = $((ranks * batch)) per step, $steps steps (width $width)"
echo "== checkpoint $checkpoint, metrics $metrics"
# -e: Ctrl-C (mpirun forwards SIGINT) ends with EOS and a checkpoint.
# Only rank 0 posts simclr-train messages, so the filter shows one line per
# interval.
# shellcheck disable=SC2086
"$mpirun" "${args[@]}" ${MPIRUN_ARGS:-} \
  gst-launch-1.0 -e -m \
    simclrdatasetsrc location="$data" shuffle=true seed=1 epochs=1 \
        num-samples=$((steps * batch)) $start_props \
    ! simclraugment size=28 seed=1 \
    ! queue max-size-buffers=$((4 * batch)) \
    ! simclrencoder batch-size="$batch" width="$width" total-steps="$steps" \
        warmup-steps="$warmup" checkpoint-location="$checkpoint" \
        threads="$threads" $resume_props \
    ! ntxentsink interval="$interval" metrics-location="$metrics" \
  2>&1 | tr '\r' '\n' \
  | grep --line-buffered -E 'simclr-(train|checkpoint)|ERROR|simclr-mpi|MPI_ABORT' \
  | sed -u -e 's/^Got message #[0-9]* from element "\([^"]*\)"[^:]*: /\1: /' \
           -e 's/([a-z0-9]*)//g'
exit "${PIPESTATUS[0]}"
