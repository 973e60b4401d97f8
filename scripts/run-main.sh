#!/usr/bin/env bash
# run-main.sh: the main job, about 10 minutes on 2 cores from a fresh machine.
# Installs what is missing, builds, pretrains a ResNet-18 with SimCLR on
# Fashion-MNIST through the GStreamer pipeline (pipelines/pretrain-fashion-mnist.sh
# with the recipe of bench/recipe-fashion-mnist.sh), showing one progress
# line, then evaluates the frozen h with the linear probe and kNN on the test
# set and prints them beside raw pixels and a random encoder, with the curve
# of the kNN monitor and the probe against time (out/main/curve.png).
#
#   bash scripts/run-main.sh [--minutes M] [--total-minutes T] [--baselines]
#
#   --minutes M        pretraining budget (default: what is left of
#                      --total-minutes after set-up and build, less a minute
#                      and a half for start-up and evaluation)
#   --total-minutes T  the whole job's budget (default 10)
#   --baselines        compute the raw-pixel and random-encoder rows instead
#                      of taking them from bench/baselines-fashion-mnist.csv
#                      (several minutes more)
set -euo pipefail
cd "$(dirname "$0")/.."
t_start=$(date +%s)
minutes=""
total=10
baselines=(--known-baselines bench/baselines-fashion-mnist.csv)
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --total-minutes) total="$2"; shift 2 ;;
    --baselines) baselines=(--baselines); shift ;;
    *) echo "run-main.sh: unknown option $1 (see the comment at the top)" >&2; exit 2 ;;
  esac
done

scripts/setup.sh --main
. scripts/env.sh

setup_s=$(( $(date +%s) - t_start ))
if [ -z "$minutes" ]; then
  # Evaluation of h (features of 70000 images, the probe, kNN) and the
  # pipeline's start-up take about 90 s on 2 cores.
  minutes=$(awk -v t="$total" -v s="$setup_s" \
    'BEGIN { m = (t * 60 - s - 90) / 60; if (m < 1) m = 1; printf "%.1f", m }')
fi
echo "== set-up took $setup_s s; pretraining for $minutes minutes"

bash bench/recipe-fashion-mnist.sh --minutes "$minutes" --snapshot-minutes 0 \
  --monitor-curve --out out/main "${baselines[@]}"
echo "== main job: $(( $(date +%s) - t_start )) s in total"
