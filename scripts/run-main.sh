#!/usr/bin/env bash
# run-main.sh: the main job. Installs what is missing, builds, pretrains a
# ResNet-18 (width 0.25) with SimCLR on Fashion-MNIST through the GStreamer
# pipeline (pipelines/pretrain-fashion-mnist.sh), printing progress, then
# evaluates the frozen encoder with a linear probe and kNN on the test set.
# Default budget: about 5 minutes on 2 cores; pass --minutes M for longer.
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

out=out/main
mkdir -p "$out"
# The recipe measured for Fashion-MNIST (README, "Linear evaluation"):
# N 256, temperature 0.2, crops of at least 20 % of the 28x28 image, LARS with
# 0.075 x sqrt (N), no blur, 5 % warm-up.
bash pipelines/pretrain-fashion-mnist.sh --minutes "$minutes" \
  --batch-size 256 --tau 0.2 --crop-min 0.2 --lr 0.075 --lr-scaling sqrt \
  --blur 0 --warmup-frac 0.05 --interval 20 \
  --checkpoint "$out/encoder.safetensors" --metrics "$out/metrics.csv" --out "$out"
build/tools/simclr-lineval --checkpoint "$out/encoder.safetensors" \
  --data /usr/share/datasets/fashion-mnist
