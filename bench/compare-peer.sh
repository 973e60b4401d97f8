#!/usr/bin/env bash
# compare-peer.sh: our core's training step, inference and augmentation
# throughput beside the PyTorch peer (../shared/peer/torch_simclr.py, or
# $PEER) on the same CPU in the same run, as a table of ratios. The machine
# may be shared and noisy: read the ratios, and repeat when in doubt.
# Runs about 10 minutes (w1 steps take seconds each). Needs python3-torch.
# Usage: bench/compare-peer.sh [--quick]   (--quick: w0.25 only)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$root/scripts/env.sh"
peer=${PEER:-$root/../shared/peer/torch_simclr.py}
py=/usr/bin/python3
threads=2
configs="w0.25-28x1 w0.25-32x3 w1-28x1 w1-32x3"
[ "${1:-}" = "--quick" ] && configs="w0.25-28x1 w0.25-32x3"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

median_of () {  # JSON field path of a peer RESULT line
  "$py" -c "import json,sys; r=json.loads(open(sys.argv[1]).read().split('RESULT ',1)[1]); v=r
for k in sys.argv[2].split('.'): v=v[k]
print(f'{v:.1f}')" "$1" "$2"
}

echo "OpenBLAS threads $threads; torch threads $threads; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '\n| work | gst-simclr | PyTorch NCHW | PyTorch channels_last | ours / best PyTorch |\n|---|---|---|---|---|\n'
for c in $configs; do
  w=${c%%-*}; w=${w#w}; sz=${c#*-}; size=${sz%x*}; ch=${sz#*x}
  OPENBLAS_NUM_THREADS=$threads "$root/build/bench/bench-train" --config "$c" \
    --reps 3 --min-seconds 3 --no-sgemm > "$out/ours-$c.txt" 2>&1
  ours=$(awk -F'|' '/resnet18/ { gsub(/ /, "", $4); print $4 }' "$out/ours-$c.txt")
  inf=$(sed -n 's/.*batch [0-9]*: \([0-9.]*\) images.*/\1/p' "$out/ours-$c.txt")
  "$py" "$peer" --bench train --size "$size" --channels "$ch" --width "$w" \
    --threads $threads > "$out/pt.txt" 2>&1
  "$py" "$peer" --bench train --size "$size" --channels "$ch" --width "$w" \
    --threads $threads --channels-last > "$out/ptcl.txt" 2>&1
  pt=$(median_of "$out/pt.txt" views_per_s.median)
  ptcl=$(median_of "$out/ptcl.txt" views_per_s.median)
  best=$(awk -v a="$pt" -v b="$ptcl" 'BEGIN { print (a > b ? a : b) }')
  printf '| train step views/s, ResNet-18 w%s %sx%sx%s, N=256 | %s | %s | %s | %.2fx |\n' \
    "$w" "$size" "$size" "$ch" "$ours" "$pt" "$ptcl" "$(awk -v o="$ours" -v b="$best" 'BEGIN { print o / b }')"
  "$py" "$peer" --bench infer --size "$size" --channels "$ch" --width "$w" \
    --threads $threads > "$out/pi.txt" 2>&1
  "$py" "$peer" --bench infer --size "$size" --channels "$ch" --width "$w" \
    --threads $threads --channels-last > "$out/picl.txt" 2>&1
  pi=$(median_of "$out/pi.txt" images_per_s.median)
  picl=$(median_of "$out/picl.txt" images_per_s.median)
  best=$(awk -v a="$pi" -v b="$picl" 'BEGIN { print (a > b ? a : b) }')
  printf '| inference images/s, w%s %sx%sx%s, batch 256 | %s | %s | %s | %.2fx |\n' \
    "$w" "$size" "$size" "$ch" "$inf" "$pi" "$picl" "$(awk -v o="$inf" -v b="$best" 'BEGIN { print o / b }')"
  grep -h "GFLOP" "$out/ours-$c.txt" | sed 's/^/    ours: /' >&2
done

printf '\n| augmentation pairs/s, 1 core | gst-simclr | torchvision | ratio |\n|---|---|---|---|\n'
"$root/build/bench/bench-augment" > "$out/aug.txt" 2>&1
for spec in "28 1" "32 3" "96 3" "224 3"; do
  set -- $spec
  extra=""
  [ "$2" = 1 ] && extra="--fmnist"
  "$py" "$peer" --bench aug --size "$1" --channels "$2" --workers 0 $extra > "$out/pa.txt" 2>&1
  tv=$(median_of "$out/pa.txt" single_process_pairs_per_s.median)
  ours=$(awk -v s="${1}x${1}x${2}" '$0 ~ s { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/) { print $i; exit } }' "$out/aug.txt")
  printf '| %sx%sx%s | %s | %s | %s |\n' "$1" "$1" "$2" "$ours" "$tv" \
    "$(awk -v o="$ours" -v t="$tv" 'BEGIN { if (t > 0) printf "%.0fx", o / t; else print "?" }')"
done
echo
cat "$out/aug.txt" | head -20
