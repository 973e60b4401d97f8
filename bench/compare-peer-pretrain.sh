#!/usr/bin/env bash
# compare-peer-pretrain.sh: end-to-end Fashion-MNIST pretraining throughput,
# augmentation included, of our pipeline (pipelines/pretrain-fashion-mnist.sh:
# simclrdatasetsrc ! simclraugment ! queue ! simclrencoder ! ntxentsink) beside
# the PyTorch peer's own loop (torch_simclr.py --bench pretrain: DataLoader
# with torchvision's SimCLR transform, the same ResNet-18 w0.25 and NT-Xent),
# alternating the two for several rounds, as views per second (2 views per
# image) with min / median / max over the rounds and the ratio of medians.
#
# Ours: the sustained rate is the mean of the sink's per-interval
# views-per-second (metrics CSV) after the first two intervals (start-up:
# data set load, model set-up). Peer: likewise its sustained rate, from its
# progress lines (every 20 steps: step, seconds since its loop started):
# 2 N (last step - first step) / (their seconds apart), which leaves out its
# start-up (DataLoader workers, first batch) as ours leaves out ours; its
# RESULT views_per_s (2 N steps / wall time of the whole loop, start-up
# included) is printed beside it. The ratio is of the sustained rates.
# Below each of our rounds: each rank's step profile (ms per step, wall and
# thread CPU, of input / forward / exchange / apply / after), the time and
# CPU inside its MPI collectives and the augmentation thread's CPU.
# Both: batch N = 256 images (512 views), width 0.25, crop scale from 0.2,
# 2 cores. PyTorch suffers far more than we do from other jobs on the
# cores: quote figures from a quiet machine only.
#
# Usage: bench/compare-peer-pretrain.sh [--rounds R] [--steps S] [--minutes M]
#            [--ranks K] [--channels-last | --nchw]
#   --rounds R   alternations (default 3)
#   --steps S    our run's steps (default 240: about 3 minutes at 700 views/s)
#   --minutes M  the peer's time budget (default 3)
#   --ranks K    ours on K MPI ranks (default 2, the main job's set-up; 1 = one
#                process with 2 encoder threads)
#   --nchw       the peer without --channels-last (default channels_last, its
#                faster layout for this model on AVX-512 CPUs)
# About 2 x R x 3.5 minutes. Needs the MPI build for --ranks > 1,
# python3-torch, torchvision and dataset-fashion-mnist.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/bench-lib.sh"
root=$(dirname "$here")
. "$root/scripts/env.sh"
peer=${PEER:-$root/../shared/peer/torch_simclr.py}
if [ ! -f "$peer" ] && common=$(git -C "$root" rev-parse --path-format=absolute \
    --git-common-dir 2>/dev/null); then
  peer=$(dirname "$(dirname "$common")")/shared/peer/torch_simclr.py
fi
py=/usr/bin/python3
rounds=3 steps=240 minutes=3 ranks=2 cl=--channels-last
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift ;;
    --steps) steps=$2; shift ;;
    --minutes) minutes=$2; shift ;;
    --ranks) ranks=$2; shift ;;
    --channels-last) cl=--channels-last ;;
    --nchw) cl="" ;;
    *) echo "usage: $0 [--rounds R] [--steps S] [--minutes M] [--ranks K] [--nchw]" >&2
       exit 2 ;;
  esac
  shift
done
if [ ! -f "$peer" ]; then
  echo "compare-peer-pretrain: no peer script at $peer (set PEER)" >&2
  exit 2
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

if [ "$ranks" -gt 1 ]; then
  ours_args=(--ranks "$ranks")
else
  ours_args=(--threads 2)
fi

echo "# compare-peer-pretrain: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# ours: pretrain-fashion-mnist.sh --steps $steps --batch-size 256 --crop-min 0.2 ${ours_args[*]}"
echo "# peer: torch_simclr.py --bench pretrain --minutes $minutes --batch 256 --width 0.25 --crop-min 0.2 --workers 1 --threads 2 $cl"
echo "# load at start $(cut -d' ' -f1-3 /proc/loadavg)"
ours=() theirs=() whole=()
start_s=$(date +%s)
for r in $(seq 1 "$rounds"); do
  for side in ours peer; do
    [ $((r % 2)) = 0 ] && side=$([ $side = ours ] && echo peer || echo ours)
    if [ $side = ours ]; then
      rm -rf "$out/ours"
      # The step profile of each rank, logged once at the end (see
      # pretrain-fashion-mnist.sh: Environment), printed below the round.
      GST_DEBUG=${GST_DEBUG:-simclrencoder:4,simclraugment:4} GST_DEBUG_NO_COLOR=1 \
      SIMCLR_MPI_STATS=${SIMCLR_MPI_STATS:-1} \
      OPENBLAS_NUM_THREADS=1 bash "$root/pipelines/pretrain-fashion-mnist.sh" \
        --steps "$steps" --batch-size 256 --crop-min 0.2 --interval 10 \
        --checkpoint-interval 100000 "${ours_args[@]}" --out "$out/ours" \
        > "$out/ours.log" 2>&1
      v=$(sustained_views "$out/ours/metrics.csv")
      ours+=("$v")
      echo "# round $r ours: $v views/s ($(tail -n +2 "$out/ours/metrics.csv" 2>/dev/null | wc -l) intervals)"
      # ms per step, wall/thread CPU, per phase; CPU inside the collectives
      # (Open MPI polls while a rank waits for the other); the augmentation
      sed -n 's/.*\(step profile, .*\)/#   \1/p; s/.*\(simclr-mpi: .*\)/#   \1/p;
          s/.*<simclraugment[0-9]*> \(streaming thread: .*\)/#   augmentation \1/p' \
        "$out/ours.log"
    else
      "$py" "$peer" --bench pretrain --minutes "$minutes" --batch 256 \
        --width 0.25 --tau 0.2 --crop-min 0.2 --workers 1 --threads 2 $cl \
        --ckpt "$out/peer.pt" > "$out/peer.log" 2>&1
      v=$("$py" -c "import json,sys
r=json.loads(open(sys.argv[1]).read().split('RESULT ',1)[1]); print(f\"{r['views_per_s']:.1f}\")" \
        "$out/peer.log" 2>/dev/null)
      # sustained: between its first and last progress lines
      s=$(awk '/^step [0-9]+ ep .* t [0-9.]+s / {
          for (i = 1; i < NF; i++) { if ($i == "step") st = $(i + 1); if ($i == "t") tt = $(i + 1) }
          sub(/s$/, "", tt); if (n == 0) { s0 = st; t0 = tt } s1 = st; t1 = tt; n++ }
        END { if (n >= 2 && t1 > t0) printf "%.1f", 512 * (s1 - s0) / (t1 - t0); else print "nan" }' \
        "$out/peer.log")
      if [ "${s:-nan}" = nan ]; then
        # fewer than two progress lines (a short or slow run): its whole loop
        s=${v:-nan}
        echo "# round $r peer: under 40 steps, its whole-loop rate stands in"
      fi
      theirs+=("$s")
      whole+=("${v:-nan}")
      echo "# round $r peer: $s views/s sustained ($v over its whole loop)"
    fi
  done
done
echo "# load at end $(cut -d' ' -f1-3 /proc/loadavg); took $(( ($(date +%s) - start_s + 30) / 60 )) min"
set -- $(stats "${ours[@]}"); o_min=$1 o_med=$2 o_max=$3
set -- $(stats "${theirs[@]}"); p_min=$1 p_med=$2 p_max=$3
set -- $(stats "${whole[@]}"); w_min=$1 w_med=$2 w_max=$3
printf '\n| end-to-end pretraining views/s (Fashion-MNIST, augmentation included) | median (min-max) |\n|---|---|\n'
printf '| gst-simclr pipeline (sustained) | %s (%s-%s) |\n' "$o_med" "$o_min" "$o_max"
printf '| PyTorch peer --bench pretrain (sustained) | %s (%s-%s) |\n' "$p_med" "$p_min" "$p_max"
printf '| PyTorch peer, over its whole loop (RESULT) | %s (%s-%s) |\n' "$w_med" "$w_min" "$w_max"
printf '| ratio of medians | %s |\n' "$(awk -v a="$o_med" -v b="$p_med" 'BEGIN { printf "%.2fx", a / b }')"
