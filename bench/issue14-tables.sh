#!/usr/bin/env bash
# issue14-tables.sh: issue 14's speed tables against the PyTorch peer in one
# command, for a quiet machine (the coordinator's closing run). About 18
# minutes on a quiet 2-core AMD EPYC Zen 5 (estimated from the step times
# there; each part prints how long it took):
#   0. where a step's time goes: bench-train --config w0.25-28x1 --profile
#      --units on 2 threads and on 1 (the main job's ranks run one thread
#      each), under a minute;
#   1. bench/compare-peer.sh --rounds 3 --w1-rounds 1 --no-aug
#      train step and inference, ResNet-18 w0.25 and w1 at 28x28x1 and
#      32x32x3: ours beside PyTorch NCHW and channels_last in alternating
#      rounds, min / median / max, the ratio of medians, each side's peak
#      memory, and at width 1 our step's fraction of the cblas_sgemm peak
#      measured in the same process (about 7 minutes for width 0.25, 5 for
#      width 1 with one round: a width-1 step takes 11-17 s);
#   2. bench/compare-peer-pretrain.sh --rounds 2 --steps 100 --minutes 1
#      end-to-end Fashion-MNIST pretraining, augmentation included: our
#      pipeline (2 MPI ranks, the main job's set-up) against the peer's
#      --bench pretrain, sustained views/s of both (about 5 minutes).
# Usage: bench/issue14-tables.sh [--w1-rounds N] [--e2e-rounds N]
#   --w1-rounds N   width-1 rounds (default 1; each adds about 5 minutes)
#   --e2e-rounds N  end-to-end rounds (default 2; each adds about 2.6 minutes)
# Needs the build (scripts/setup.sh; the MPI build for 2 ranks),
# python3-torch, torchvision, dataset-fashion-mnist and GNU time. Figures
# are only worth quoting when the load average stays near 0 throughout
# (both scripts print it at start and end).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
w1_rounds=1 e2e_rounds=2
while [ $# -gt 0 ]; do
  case "$1" in
    --w1-rounds) w1_rounds=$2; shift ;;
    --e2e-rounds) e2e_rounds=$2; shift ;;
    *) echo "usage: $0 [--w1-rounds N] [--e2e-rounds N]" >&2; exit 2 ;;
  esac
  shift
done
t0=$(date +%s)
root=$(dirname "$here")
. "$root/scripts/env.sh"
build=${BUILD:-$root/build}
for th in 2 1; do
  echo "# bench-train --profile --units, $th thread(s), load $(cut -d' ' -f1-3 /proc/loadavg)"
  OPENBLAS_NUM_THREADS=$th "$build/bench/bench-train" --config w0.25-28x1 \
    --threads $th --reps 3 --min-seconds 2 --no-infer --no-sgemm --profile --units
  echo
done
bash "$here/compare-peer.sh" --rounds 3 --w1-rounds "$w1_rounds" --no-aug
rc=$?
echo
bash "$here/compare-peer-pretrain.sh" --rounds "$e2e_rounds" --steps 100 \
  --minutes 1
rc2=$?
echo
echo "# issue14-tables: $(( ($(date +%s) - t0 + 30) / 60 )) minutes in all"
[ $rc = 0 ] && [ $rc2 = 0 ]
