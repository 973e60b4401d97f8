#!/usr/bin/env bash
# recipe-fashion-mnist.sh: reproduces the linear-evaluation result of
# gst-simclr on Fashion-MNIST and the curve of accuracy against pretraining
# time. NOT part of the test suite: it runs for --minutes (default 30) plus
# about 2 minutes of evaluation per snapshot.
#
# It pretrains through the GStreamer pipeline (pipelines/pretrain-fashion-mnist.sh)
# with the recipe below, copies the checkpoint every --snapshot-minutes while
# training runs, evaluates every snapshot and the final checkpoint with
# build/tools/simclr-lineval (frozen h, logistic regression, kNN), writes
# OUT/curve.csv and, if matplotlib is there, OUT/curve.png.
#
# Options: --minutes M (30), --snapshot-minutes S (5, 0 = none), --out DIR,
#          --features "h hidden" (the frozen layers to probe: h, and the
#          projection head's hidden layer as SimCLR v2 does; default both),
#          --baselines (also evaluate raw pixels and a random encoder),
#          and any recipe option of the pipeline after `--`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$root/scripts/env.sh"

minutes=30
snap=5
out="$root/out/recipe"
baselines=0
features="h hidden"
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --snapshot-minutes) snap="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --features) features="$2"; shift 2 ;;
    --baselines) baselines=1; shift ;;
    --) shift; break ;;
    *) echo "recipe-fashion-mnist.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
# The recipe, chosen by measurement (see README "Linear evaluation"); any
# option after `--` overrides it.
recipe=(--batch-size 256 --width 0.25 --proj-hidden 2048 --tau 0.2 --crop-min 0.2
        --lr 0.075 --lr-scaling sqrt --blur 0 --warmup-frac 0.05 --interval 20
        --checkpoint-interval 20)
# Two MPI ranks (one per core) run the same steps about 15 % faster than one
# process with two threads; without the MPI build, one process.
if grep -q '#define HAVE_MPI' "$root/build/plugins/config.h" 2>/dev/null \
    && [ "$(nproc)" -ge 2 ]; then
  recipe+=(--ranks 2)
fi
mkdir -p "$out/snapshots"
ckpt="$out/encoder.safetensors"
lineval="$root/build/tools/simclr-lineval"

start=$(date +%s)
if [ "$snap" != 0 ]; then
  # Copies of the checkpoint at each snapshot time: the encoder writes it
  # atomically (temp file + rename) every 20 steps, so a copy is consistent.
  (
    t=$snap
    while sleep $((snap * 60)); do
      [ -f "$ckpt" ] && cp "$ckpt" "$out/snapshots/minute-$(printf %03d "$t").safetensors"
      t=$((t + snap))
    done
  ) &
  snapper=$!
  trap 'kill $snapper 2>/dev/null || true' EXIT
fi
bash "$root/pipelines/pretrain-fashion-mnist.sh" --minutes "$minutes" \
  --checkpoint "$ckpt" --metrics "$out/metrics.csv" --out "$out" "${recipe[@]}" "$@"
wall=$(( $(date +%s) - start ))
[ "$snap" = 0 ] || kill "$snapper" 2>/dev/null || true
cp "$ckpt" "$out/snapshots/final-$(printf %03d "$minutes").safetensors"
echo "== pretraining took $wall s"

echo "minutes,kind,features,test_top1,test_top5,knn_top1" > "$out/curve.csv"
evaluate () {
  local label="$1" minute="$2" layer="$3"; shift 3
  local log="$out/lineval-$label-$layer.txt"
  "$lineval" "$@" --json "$out/lineval.jsonl" | tee "$log"
  awk -v m="$minute" -v k="$label" -v f="$layer" '
    /^linear eval/ { t1 = $5; t5 = $8 }
    /^kNN/ { kn = $8 }
    END { printf "%s,%s,%s,%s,%s,%s\n", m, k, f, t1, t5, kn }' "$log" >> "$out/curve.csv"
}
# The head's width, for the random baseline of the hidden layer.
proj_hidden=0
all=("${recipe[@]}" "$@")
for ((i = 0; i + 1 < ${#all[@]}; i++)); do
  [ "${all[i]}" != --proj-hidden ] || proj_hidden=${all[i + 1]}
done
for f in "$out"/snapshots/*.safetensors; do
  m=$(basename "$f" .safetensors | sed 's/^[a-z]*-0*//')
  for layer in $features; do
    evaluate "$(basename "$f" .safetensors)" "${m:-0}" "$layer" --checkpoint "$f" \
      --features "$layer"
  done
done
if [ "$baselines" = 1 ]; then
  evaluate raw 0 pixels --raw
  for layer in $features; do
    evaluate random 0 "$layer" --random --width 0.25 --proj-hidden "$proj_hidden" \
      --features "$layer"
  done
fi
cat "$out/curve.csv"
/usr/bin/python3 "$here/plot-curve.py" "$out/curve.csv" "$out/curve.png" || \
  echo "(no plot: install python3-matplotlib)"
