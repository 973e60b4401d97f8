#!/usr/bin/env bash
# ab-pretrain.sh: A/B of the end-to-end Fashion-MNIST pretraining pipeline
# (pipelines/pretrain-fashion-mnist.sh, augmentation included) between two
# source trees with their builds (e.g. main and a branch's worktree), or one
# tree under two environments (e.g. SIMCLR_MPI_WAIT=nap), alternated
# A B, B A, A B, ... so that a drifting load hits both sides alike. Each run
# gives the sustained views/s as bench/compare-peer-pretrain.sh measures it:
# the mean of the sink's per-interval views-per-second (metrics CSV) after
# the first two intervals. Beside it, each run's work CPU in ms per step
# (bench-lib.sh work_cpu: every thread's CPU minus what MPI polled away,
# mean and max over the ranks, set-up included), which other jobs on the
# cores disturb far less than views/s. Prints each run, then min / median /
# max per side and the ratios of the medians B / A. On a shared machine the
# ratios are the figures to quote, with the load printed at start and end.
#
# Usage: bench/ab-pretrain.sh [--rounds R] [--steps S] [--ranks K]
#            [--a-env "VAR=value ..."] [--b-env "VAR=value ..."]
#            A_TREE [B_TREE]
#   A_TREE, B_TREE  source trees holding pipelines/ and build/ (B_TREE
#                   defaults to A_TREE: then only the environments differ)
#   --rounds R      alternations (default 3: 6 runs)
#   --steps S       steps per run (default 60; intervals of 10 steps, so the
#                   sustained rate averages steps 30..S)
#   --ranks K       MPI ranks (default 2, the main job's set-up; 1 = one
#                   process with 2 encoder threads)
#   --a-env, --b-env  environment of each side's runs (words VAR=value)
#   --args "..."    more pretrain-fashion-mnist.sh options for both sides
#   --a-args "...", --b-args "..."  options for one side (given after
#                   --args; e.g. --b-args "--ranks 1 --threads 2" against
#                   the default 2 ranks)
# Example (main against this worktree, both built):
#   bench/ab-pretrain.sh /work/main .
set -uo pipefail
. "$(dirname "$0")/bench-lib.sh"
rounds=3 steps=60 ranks=2 a_env="" b_env="" extra="" a_args="" b_args=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --a-env) a_env=$2; shift 2 ;;
    --b-env) b_env=$2; shift 2 ;;
    --args) extra=$2; shift 2 ;;
    --a-args) a_args=$2; shift 2 ;;
    --b-args) b_args=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "ab-pretrain: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 [options] A_TREE [B_TREE] (see --help)" >&2
  exit 2
fi
a_tree=$(cd "$1" && pwd) || exit 2
b_tree=$(cd "${2:-$1}" && pwd) || exit 2
for t in "$a_tree" "$b_tree"; do
  if [ ! -f "$t/pipelines/pretrain-fashion-mnist.sh" ] \
      || [ ! -f "$t/build/plugins/libgstsimclr.so" ]; then
    echo "ab-pretrain: $t has no pipelines/pretrain-fashion-mnist.sh or no" \
      "build/plugins/libgstsimclr.so (build it first)" >&2
    exit 2
  fi
done
if [ "$a_tree" = "$b_tree" ] && [ "$a_env" = "$b_env" ] \
    && [ "$a_args" = "$b_args" ]; then
  echo "ab-pretrain: A and B are the same tree with the same environment" >&2
  exit 2
fi
if [ "$ranks" -gt 1 ]; then ranks_args=(--ranks "$ranks"); else ranks_args=(--threads 2); fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# run SIDE TREE ENV ARGS: one run, prints its sustained views/s ("nan" if
# none), then its work CPU ms per step, mean and max over the ranks
run () {
  local side=$1 tree=$2 envw=$3 args=$4
  rm -rf "$out/$side"
  # shellcheck disable=SC2086 # envw, extra and args are lists of words
  env GST_DEBUG=simclrencoder:4 GST_DEBUG_NO_COLOR=1 SIMCLR_MPI_STATS=1 \
    $envw BUILD="$tree/build" OPENBLAS_NUM_THREADS=1 \
    bash "$tree/pipelines/pretrain-fashion-mnist.sh" --steps "$steps" \
    --batch-size 256 --crop-min 0.2 --interval 10 --checkpoint-interval 100000 \
    "${ranks_args[@]}" $extra $args --out "$out/$side" > "$out/$side.log" 2>&1
  echo "$(sustained_views "$out/$side/metrics.csv") $(work_cpu "$out/$side.log" "$steps")"
}

echo "# ab-pretrain: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# A: $a_tree ${a_env:+($a_env)} ${a_args:+[$a_args]} at $(git -C "$a_tree" rev-parse --short HEAD 2>/dev/null)"
echo "# B: $b_tree ${b_env:+($b_env)} ${b_args:+[$b_args]} at $(git -C "$b_tree" rev-parse --short HEAD 2>/dev/null)"
echo "# each: pretrain-fashion-mnist.sh --steps $steps --batch-size 256 --crop-min 0.2 ${ranks_args[*]} $extra"
echo "# load at start $(cut -d' ' -f1-3 /proc/loadavg)"
as=() bs=() acs=() bcs=() acx=() bcx=()
for r in $(seq 1 "$rounds"); do
  order="a b"
  [ $((r % 2)) = 0 ] && order="b a"
  for side in $order; do
    if [ "$side" = a ]; then
      set -- $(run a "$a_tree" "$a_env" "$a_args"); as+=("$1"); acs+=("$2"); acx+=("$3")
    else
      set -- $(run b "$b_tree" "$b_env" "$b_args"); bs+=("$1"); bcs+=("$2"); bcx+=("$3")
    fi
    echo "# round $r $side: $1 views/s, work CPU $2 ms/step (max over ranks $3) (load $(cut -d' ' -f1 /proc/loadavg))"
  done
done
echo "# load at end $(cut -d' ' -f1-3 /proc/loadavg)"
ratio () { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b / a }'; }
set -- $(stats "${as[@]}"); a_min=$1 a_med=$2 a_max=$3
set -- $(stats "${bs[@]}"); b_min=$1 b_med=$2 b_max=$3
set -- $(stats "${acs[@]}"); ac_min=$1 ac_med=$2 ac_max=$3
set -- $(stats "${bcs[@]}"); bc_min=$1 bc_med=$2 bc_max=$3
set -- $(stats "${acx[@]}"); ax_min=$1 ax_med=$2 ax_max=$3
set -- $(stats "${bcx[@]}"); bx_min=$1 bx_med=$2 bx_max=$3
printf '| side | sustained views/s median (min-max) | work CPU ms/step, mean over ranks | max over ranks |\n|---|---|---|---|\n'
printf '| A | %s (%s-%s) | %s (%s-%s) | %s (%s-%s) |\n' "$a_med" "$a_min" "$a_max" \
  "$ac_med" "$ac_min" "$ac_max" "$ax_med" "$ax_min" "$ax_max"
printf '| B | %s (%s-%s) | %s (%s-%s) | %s (%s-%s) |\n' "$b_med" "$b_min" "$b_max" \
  "$bc_med" "$bc_min" "$bc_max" "$bx_med" "$bx_min" "$bx_max"
printf '| B / A (medians) | %s | %s | %s |\n' "$(ratio "$a_med" "$b_med")" \
  "$(ratio "$ac_med" "$bc_med")" "$(ratio "$ax_med" "$bx_med")"
