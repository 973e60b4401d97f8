#!/usr/bin/env bash
# compare-peer.sh: our core's training step and inference beside the PyTorch
# peer (../shared/peer/torch_simclr.py, or $PEER) on the same CPU, in
# alternating rounds: each round runs ours, PyTorch NCHW and PyTorch
# channels_last one after the other (the order rotates every round), so a
# busy moment slows all three alike; the table gives min / median / max of
# the rounds' figures and the ratio of the medians, with each side's peak
# memory (maximum resident set of its process, GNU time). Then augmentation
# throughput (one process each).
#
# PyTorch's threads lose far more than a C program's when a core is shared
# (issue 14: 427 vs 1173 views/s on one machine busy and quiet): run it on a
# quiet machine for figures to quote; the header prints the load average.
#
# Usage: bench/compare-peer.sh [--quick] [--rounds N] [--w1-rounds N]
#                              [--configs "w0.25-28x1 ..."] [--no-aug]
#   --quick        the two width-0.25 shapes only (about 7 minutes with 3 rounds)
#   --rounds N     rounds per configuration (default 3)
#   --w1-rounds N  rounds of the width-1 configurations (default: --rounds)
#   --no-aug       skip the augmentation table
# A width-1 step takes 11-17 s on a quiet 2-core Zen 5, so there each side
# times ONE step after its warm-up step(s) per round (ours --reps 1
# --min-seconds 0, the peer --reps 1 --rep-seconds 0) and the rounds give
# the spread: a width-1 shape costs about 2.5-3 minutes per round (all four
# shapes with 3 rounds: about 24 minutes). bench/issue14-tables.sh runs the
# issue's whole set in about 18 minutes. Needs python3-torch
# (/usr/bin/python3) and GNU time.
# Width-1 rows also print our step's fraction of the cblas_sgemm peak
# (square 2048^3, OpenBLAS threads as below) measured in the same process.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/bench-lib.sh"
root=$(dirname "$here")
. "$root/scripts/env.sh"
# the peer lives beside the main checkout (../shared); from a git worktree
# elsewhere, beside the repository the worktree belongs to
peer=${PEER:-$root/../shared/peer/torch_simclr.py}
if [ ! -f "$peer" ] && common=$(git -C "$root" rev-parse --path-format=absolute \
    --git-common-dir 2>/dev/null); then
  peer=$(dirname "$(dirname "$common")")/shared/peer/torch_simclr.py
fi
if [ ! -f "$peer" ]; then
  echo "compare-peer: no peer script at $peer (set PEER)" >&2
  exit 2
fi
py=/usr/bin/python3
build=${BUILD:-$root/build}
threads=2
rounds=3
w1_rounds=""
aug=1
configs="w0.25-28x1 w0.25-32x3 w1-28x1 w1-32x3"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) configs="w0.25-28x1 w0.25-32x3" ;;
    --rounds) rounds=$2; shift ;;
    --w1-rounds) w1_rounds=$2; shift ;;
    --configs) configs=$2; shift ;;
    --no-aug) aug=0 ;;
    *) echo "usage: $0 [--quick] [--rounds N] [--w1-rounds N] [--configs LIST] [--no-aug]" >&2; exit 2 ;;
  esac
  shift
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
start_s=$(date +%s)

# run FILE CMD...: CMD's output into FILE, its peak RSS (KiB) into FILE.rss
run () {
  local f=$1; shift
  /usr/bin/time -f '%M' -o "$f.rss" "$@" > "$f" 2>&1
}

peer_field () {  # FILE FIELD.PATH -> the value in its RESULT line
  "$py" -c "import json,sys
r=json.loads(open(sys.argv[1]).read().split('RESULT ',1)[1]); v=r
for k in sys.argv[2].split('.'): v=v[k]
print(f'{v:.1f}')" "$1" "$2" 2>/dev/null || echo nan
}

fmt () {  # "min median max" -> "median (min-max)"
  set -- $1
  printf '%s (%s-%s)' "$2" "$1" "$3"
}

median_of () { set -- $(stats "$@"); echo "$2"; }
mib () { awk '{ printf "%.0f", $1 / 1024 }' "$1"; }

echo "# compare-peer: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# CPU flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_bf16|amx_bf16)$' | tr '\n' ' ')"
echo "# OpenBLAS threads $threads, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; torch threads $threads; $rounds rounds (width 1: ${w1_rounds:-$rounds}); load at start $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# ours: $(OPENBLAS_NUM_THREADS=1 "$build/bench/bench-train" --config w0.25-28x1 \
  --batch 2 --reps 1 --min-seconds 0 --no-sgemm --no-infer 2>&1 | grep '^kernels')"
printf '\n| work | gst-simclr | PyTorch NCHW | PyTorch channels_last | ours / best PyTorch (medians) | peak MiB ours / PyTorch NCHW / channels_last |\n|---|---|---|---|---|---|\n'

for c in $configs; do
  w=${c%%-*}; w=${w#w}; sz=${c#*-}; size=${sz%x*}; ch=${sz#*x}
  sgemm_flag=--no-sgemm
  n_rounds=$rounds
  ours_t=(--reps 3 --min-seconds 2) peer_t=()
  if [ "$w" = 1 ]; then
    sgemm_flag=""
    n_rounds=${w1_rounds:-$rounds}
    ours_t=(--reps 1 --min-seconds 0) peer_t=(--reps 1 --rep-seconds 0)
  fi
  ot=() pt=() pc=() oi=() pi=() pci=() sg=()
  for r in $(seq 1 "$n_rounds"); do
    order="ours nchw cl"
    case $((r % 3)) in
      2) order="nchw cl ours" ;;
      0) order="cl ours nchw" ;;
    esac
    for side in $order; do
      case $side in
        ours)
          run "$out/ot.$r" env OPENBLAS_NUM_THREADS=$threads \
            "$build/bench/bench-train" --config "$c" "${ours_t[@]}" \
            --no-infer $sgemm_flag
          ot+=("$(awk -F'|' '/resnet18/ { gsub(/ /, "", $4); print $4 }' "$out/ot.$r")")
          sg+=("$(awk -F'|' '/resnet18/ { gsub(/[ %]/, "", $7); print $7 }' "$out/ot.$r")")
          run "$out/oi.$r" env OPENBLAS_NUM_THREADS=$threads \
            "$build/bench/bench-train" --config "$c" "${ours_t[@]}" \
            --no-train --no-sgemm
          oi+=("$(sed -n 's/.*| \([0-9.]*\) images\/s.*/\1/p' "$out/oi.$r")")
          ;;
        nchw|cl)
          cl=""
          [ $side = cl ] && cl=--channels-last
          run "$out/pt.$side.$r" "$py" "$peer" --bench train --size "$size" \
            --channels "$ch" --width "$w" --threads $threads $cl "${peer_t[@]}"
          run "$out/pi.$side.$r" "$py" "$peer" --bench infer --size "$size" \
            --channels "$ch" --width "$w" --threads $threads $cl "${peer_t[@]}"
          if [ $side = nchw ]; then
            pt+=("$(peer_field "$out/pt.$side.$r" views_per_s.median)")
            pi+=("$(peer_field "$out/pi.$side.$r" images_per_s.median)")
          else
            pc+=("$(peer_field "$out/pt.$side.$r" views_per_s.median)")
            pci+=("$(peer_field "$out/pi.$side.$r" images_per_s.median)")
          fi
          ;;
      esac
    done
  done
  so=$(stats "${ot[@]}"); sp=$(stats "${pt[@]}"); sc=$(stats "${pc[@]}")
  best=$(awk -v a="$(median_of "${pt[@]}")" -v b="$(median_of "${pc[@]}")" 'BEGIN { print (a > b ? a : b) }')
  ratio=$(awk -v o="$(median_of "${ot[@]}")" -v b="$best" 'BEGIN { printf "%.2fx", o / b }')
  extra=""
  [ "$w" = 1 ] && extra=" (our step: $(median_of "${sg[@]}") % of sgemm peak)"
  printf '| train step views/s, ResNet-18 w%s %sx%sx%s, N=256 | %s | %s | %s | %s%s | %s / %s / %s |\n' \
    "$w" "$size" "$size" "$ch" "$(fmt "$so")" "$(fmt "$sp")" "$(fmt "$sc")" \
    "$ratio" "$extra" "$(mib "$out/ot.$n_rounds.rss")" \
    "$(mib "$out/pt.nchw.$n_rounds.rss")" "$(mib "$out/pt.cl.$n_rounds.rss")"
  so=$(stats "${oi[@]}"); sp=$(stats "${pi[@]}"); sc=$(stats "${pci[@]}")
  best=$(awk -v a="$(median_of "${pi[@]}")" -v b="$(median_of "${pci[@]}")" 'BEGIN { print (a > b ? a : b) }')
  ratio=$(awk -v o="$(median_of "${oi[@]}")" -v b="$best" 'BEGIN { printf "%.2fx", o / b }')
  printf '| inference images/s, w%s %sx%sx%s, batch 256 | %s | %s | %s | %s | %s / %s / %s |\n' \
    "$w" "$size" "$size" "$ch" "$(fmt "$so")" "$(fmt "$sp")" "$(fmt "$sc")" \
    "$ratio" "$(mib "$out/oi.$n_rounds.rss")" "$(mib "$out/pi.nchw.$n_rounds.rss")" \
    "$(mib "$out/pi.cl.$n_rounds.rss")"
done
echo "# load at end $(cut -d' ' -f1-3 /proc/loadavg); steps took $(( ($(date +%s) - start_s + 30) / 60 )) min"

[ $aug = 1 ] || exit 0
printf '\n| augmentation pairs/s, 1 core | gst-simclr | torchvision | ratio |\n|---|---|---|---|\n'
"$build/bench/bench-augment" > "$out/aug.txt" 2>&1
for spec in "28 1" "32 3" "96 3" "224 3"; do
  set -- $spec
  extra=""
  [ "$2" = 1 ] && extra="--fmnist"
  "$py" "$peer" --bench aug --size "$1" --channels "$2" --workers 0 $extra > "$out/pa.txt" 2>&1
  tv=$(peer_field "$out/pa.txt" single_process_pairs_per_s.median)
  ours=$(awk -v s="${1}x${1}x${2}" '$0 ~ s { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/) { print $i; exit } }' "$out/aug.txt")
  printf '| %sx%sx%s | %s | %s | %s |\n' "$1" "$1" "$2" "$ours" "$tv" \
    "$(awk -v o="$ours" -v t="$tv" 'BEGIN { if (t > 0) printf "%.0fx", o / t; else print "?" }')"
done
