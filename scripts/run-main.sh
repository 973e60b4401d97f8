#!/usr/bin/env bash
# run-main.sh: the main job. Installs what is missing, builds, pretrains a
# ResNet-18 (width 0.25) with SimCLR on Fashion-MNIST through the GStreamer
# pipeline (pipelines/pretrain-fashion-mnist.sh), printing progress, then
# evaluates the frozen encoder with a linear probe and kNN on the test set.
# Default budget: about 5 minutes of pretraining on 2 cores, then the
# evaluation (10-25 minutes, most of it the 2048-wide layer); pass --minutes M
# for longer pretraining.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=5
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    *) echo "run-main.sh: unknown option $1 (use --minutes M)" >&2; exit 2 ;;
  esac
done

scripts/setup.sh --data
. scripts/env.sh

# The recipe measured for Fashion-MNIST (README, "Linear evaluation"), in
# bench/recipe-fashion-mnist.sh: pretraining through the pipeline on 2 MPI
# ranks, then the linear probe and kNN on the frozen h and on the projection
# head's hidden layer.
bash bench/recipe-fashion-mnist.sh --minutes "$minutes" --snapshot-minutes 0 \
  --out out/main
