#!/usr/bin/env bash
# recipe-fashion-mnist.sh: the linear-evaluation result of gst-simclr and the
# curve of accuracy against pretraining time. NOT part of the test suite: it
# runs for --minutes (default 30) plus the evaluation (under a minute per
# checkpoint for h on 2 cores).
#
# It pretrains through the GStreamer pipeline (pipelines/pretrain-fashion-mnist.sh)
# with the recipe below, copies the checkpoint every --snapshot-minutes while
# training runs, evaluates every snapshot and the final checkpoint with
# build/tools/simclr-lineval (frozen h, logistic regression, kNN), writes
# OUT/curve.csv, OUT/summary.txt and, if matplotlib is there, OUT/curve.png.
#
# Options:
#   --minutes M        pretraining budget in minutes (default 30)
#   --steps N          a fixed budget of N steps instead (ablations on a busy
#                      machine: compare recipes at equal work, not equal time)
#   --data DIR         data set (default Fashion-MNIST; any IDX, CIFAR binary
#                      or JPEG class folder set)
#   --validation [H]   choose hyperparameters without the test set: hold out
#                      H (default 10000, or a fraction below 1) of the
#                      training images (tools/simclr-split), pretrain on the
#                      rest and report accuracy on the held-out images
#                      (the split is written beside OUT and reused)
#   --snapshot-minutes S  copy the checkpoint every S minutes (default 5,
#                      0 = none; evaluated as points of the curve)
#   --features "h hidden"  the frozen layers to probe (default h; "hidden" is
#                      the projection head's hidden layer, as SimCLR v2)
#   --baselines        also evaluate raw pixels and a random encoder (cached
#                      in OUT/../baselines/ per data set and probe)
#   --known-baselines FILE  instead, take the baseline rows from FILE (a
#                      curve CSV of an earlier --baselines run on the same
#                      data set and split, e.g. bench/baselines-fashion-mnist.csv)
#   --monitor-curve    also draw the kNN monitor (1000 training and 1000
#                      test images, every epoch while training runs: cheap)
#   --out DIR          output folder (default out/recipe)
#   -- ...             any option of the pipeline script, after the recipe
# Environment: LINEVAL_EXTRA, more simclr-lineval options (e.g. a quick check
# with "--train-limit 2000 --test-limit 1000").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$root/scripts/env.sh"

minutes=30
steps=""
snap=5
out="$root/out/recipe"
baselines=0
features="h"
data=/usr/share/datasets/fashion-mnist
holdout=""
known=""
monitor_curve=0
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; steps=""; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --validation)
      if [ $# -gt 1 ] && [[ "$2" =~ ^[0-9.]+$ ]]; then holdout="$2"; shift 2
      else holdout=10000; shift; fi ;;
    --snapshot-minutes) snap="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --features) features="$2"; shift 2 ;;
    --baselines) baselines=1; shift ;;
    --monitor-curve) monitor_curve=1; shift ;;
    --known-baselines) known="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "recipe-fashion-mnist.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
build="$root/build"
lineval="$build/tools/simclr-lineval"
split="$build/tools/simclr-split"
for t in "$lineval" "$split"; do
  [ -x "$t" ] || { echo "recipe-fashion-mnist.sh: no $t; build first" >&2; exit 1; }
done
mkdir -p "$out/snapshots"
rm -f "$out"/snapshots/*.safetensors

# The validation split: a data set whose "test" images are held-out training
# images (simclr-split); the real test split is never read.
split_name=test
if [ -n "$holdout" ]; then
  # Shared by the runs beside this one (same data set, same held-out part).
  vdir="$(dirname "$out")/validation-$(basename "$data")-$holdout"
  if [ ! -f "$vdir/split.txt" ] || ! grep -qx "source $data" "$vdir/split.txt"; then
    rm -rf "$vdir"
    "$split" --data "$data" --holdout "$holdout" --out "$vdir"
  fi
  data="$vdir"
  split_name=validation
fi

# The recipe, chosen on the validation split (see README "Linear
# evaluation", the ablation table: LARS at 0.3 x sqrt(N) = 4.8 gave +2.2
# points of linear top-1 over 0.075 x sqrt(N) at 200 steps); any option
# after `--` overrides it.
recipe=(--batch-size 256 --width 0.25 --tau 0.2 --crop-min 0.2
        --lr 0.3 --lr-scaling sqrt --blur 0 --warmup-frac 0.05 --interval 20
        --checkpoint-interval 20)
# Two MPI ranks (one per core) run the same steps about 15 % faster than one
# process with two threads; without the MPI build, one process.
if grep -q '#define HAVE_MPI' "$build/plugins/config.h" 2>/dev/null \
    && [ "$(nproc)" -ge 2 ]; then
  recipe+=(--ranks 2)
fi
ckpt="$out/encoder.safetensors"
if [ -n "$steps" ]; then
  budget=(--steps "$steps")
  snap=0
else
  budget=(--minutes "$minutes")
fi

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
rm -f "$ckpt" "$out/monitor.csv"
[ "$monitor_curve" = 0 ] || recipe+=(--monitor)
bash "$root/pipelines/pretrain-fashion-mnist.sh" "${budget[@]}" --data "$data" \
  --checkpoint "$ckpt" --metrics "$out/metrics.csv" --out "$out" "${recipe[@]}" "$@"
wall=$(( $(date +%s) - start ))
[ "$snap" = 0 ] || kill "$snapper" 2>/dev/null || true
final_minute=$(( (wall + 30) / 60 ))
cp "$ckpt" "$out/snapshots/final-$(printf %03d "$final_minute").safetensors"
wall_minutes=$(awk -v w="$wall" 'BEGIN { printf "%.2f", w / 60 }')
echo "== pretraining took $wall s"

echo "minutes,kind,features,test_top1,test_top5,knn_top1" > "$out/curve.csv"
# evaluate LABEL MINUTE LAYER LOG lineval-options...: one curve row.
evaluate () {
  local label="$1" minute="$2" layer="$3" log="$4"; shift 4
  if [ ! -s "$log" ]; then
    "$lineval" --data "$data" "$@" ${LINEVAL_EXTRA:-} --json "$out/lineval.jsonl" > "$log.tmp"
    mv "$log.tmp" "$log"
  fi
  cat "$log"
  awk -v m="$minute" -v k="$label" -v f="$layer" '
    /^linear eval/ { t1 = $5; t5 = $8 }
    /^kNN/ { kn = $8 }
    END { printf "%s,%s,%s,%s,%s,%s\n", m, k, f, t1, t5, kn }' "$log" >> "$out/curve.csv"
}
for f in "$out"/snapshots/*.safetensors; do
  m=$(basename "$f" .safetensors | sed 's/^[a-z]*-0*//')
  case "$f" in */final-*) m=$wall_minutes ;; esac
  for layer in $features; do
    log="$out/lineval-$(basename "$f" .safetensors)-$layer.txt"
    rm -f "$log"
    evaluate "$(basename "$f" .safetensors)" "${m:-0}" "$layer" "$log" \
      --checkpoint "$f" --features "$layer"
  done
done
if [ "$baselines" = 1 ]; then
  # The baselines depend only on the data set, the probe and (random) the
  # architecture: cache them beside the output folder.
  # The random encoder has the architecture of the run (the last value of
  # each option wins, as in the pipeline script).
  proj_hidden=0 width=0.25 stem=auto
  all=("${recipe[@]}" "$@")
  for ((i = 0; i + 1 < ${#all[@]}; i++)); do
    case "${all[i]}" in
      --proj-hidden) proj_hidden=${all[i + 1]} ;;
      --width) width=${all[i + 1]} ;;
      --stem) stem=${all[i + 1]} ;;
    esac
  done
  stem_opt=()
  [ "$stem" = auto ] || stem_opt=(--stem "$stem")
  cache="$(dirname "$out")/baselines/$(echo "$data" | tr '/' '_')"
  mkdir -p "$cache"
  evaluate raw 0 pixels "$cache/raw.txt" --raw
  for layer in $features; do
    evaluate random 0 "$layer" "$cache/random-w$width-$stem-p$proj_hidden-$layer.txt" \
      --random --width "$width" "${stem_opt[@]}" --proj-hidden "$proj_hidden" \
      --features "$layer"
  done
fi
if [ -f "$out/monitor.csv" ]; then
  # The monitor's seconds count from the start of the training run, which
  # began after the calibration: shift them to the script's clock.
  offset=$(( wall - $(awk -F, 'END { print $1 + 0 }' "$out/monitor.csv") ))
  awk -F, -v off="$offset" 'NR > 1 && $4 != "" {
      printf "%.2f,monitor,h,,,%.2f\n", ($1 + off) / 60, 100 * $4 }' \
    "$out/monitor.csv" >> "$out/curve.csv"
fi
if [ -n "$known" ] && [ "$baselines" = 0 ]; then
  if [ -f "$known" ]; then
    grep -E '^[^,]*,(raw|random),' "$known" >> "$out/curve.csv" || true
  else
    echo "(no $known: baselines not shown; --baselines computes them)"
    known=""
  fi
fi

# The summary: the final checkpoint's layers beside the baselines.
budget_line=$(cat "$out"/lineval-final-*.txt 2>/dev/null | sed -n 's/^budget: //p' | head -1)
{
  echo "== $split_name top-1 of the frozen features ($data)"
  echo "   pretraining: ${budget_line:-?}; script wall time $wall s"
  printf '   %-34s %12s %10s\n' features "linear top-1" "kNN top-1"
  awk -F, -v fm="$final_minute" '
    NR == 1 { next }
    $2 ~ /^final/ { printf "   %-34s %10.2f %% %8.2f %%\n", "gst-simclr, " $3, $4, $6 }
    $2 == "raw" { printf "   %-34s %10.2f %% %8.2f %%%s\n", "raw pixels", $4, $6, src }
    $2 == "random" { printf "   %-34s %10.2f %% %8.2f %%%s\n", "random encoder, " $3, $4, $6, src }
  ' src="${known:+   (cached: $known)}" "$out/curve.csv"
  echo "   curve: $out/curve.png"
} | tee "$out/summary.txt"
plot_args=(--ylabel "$split_name top-1 (%), $(basename "$data")")
case "$data" in
  */fashion-mnist) [ "$split_name" != test ] || plot_args+=(--peer --target 88) ;;
esac
/usr/bin/python3 "$here/plot-curve.py" "$out/curve.csv" "$out/curve.png" "${plot_args[@]}" \
  > /dev/null || echo "(no plot: install python3-matplotlib)"
