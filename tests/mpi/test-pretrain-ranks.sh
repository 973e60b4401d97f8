#!/bin/sh
# test-pretrain-ranks.sh: pipelines/pretrain-fashion-mnist.sh --ranks 2 runs
# its pipeline on 2 MPI ranks with --batch-size as the GLOBAL batch (each rank
# N/2), with the recipe options reaching every rank.
# Usage: test-pretrain-ranks.sh SOURCE_ROOT BUILD_DIR DATASET_DIR. TAP output.
#   1. 3 steps of a global batch of 16 exit 0 and the checkpoint says step 3,
#      batch_size 16 (per-rank 8 x 2), the seed given, and a head of 64
#      hidden units (--proj-hidden reached the encoder)
#   2. the metrics CSV has the 3 steps with a finite loss close to ln(2N-1)
#      = ln 31 at the start (the loss over all 32 views of both ranks)
#   3. a batch that does not split over the ranks is refused with a message
#   4. --handoff none (no queue: each rank's encoder thread runs its source
#      and augmentation) trains the same 3 steps: the same losses, digit for
#      digit, as 1.
#   5. an unknown --handoff is refused with a message
set -u
ROOT=$1
BUILD=$2
DATA=$3
if [ ! -e "$DATA/train-images-idx3-ubyte.gz" ] && [ ! -e "$DATA/train-images-idx3-ubyte" ]; then
  echo "1..0 # SKIP data set $DATA missing"
  exit 77
fi
# The script runs as a user would: with the system's plugins (queue) next to
# this build's, not the test environment's restricted plugin set.
unset GST_PLUGIN_SYSTEM_PATH_1_0 GST_PLUGIN_LOADING_WHITELIST GST_REGISTRY_1_0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export BUILD
n=0
failures=0
ok () {
  n=$((n + 1))
  if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failures=$((failures + 1)); fi
}
echo "1..5"

timeout 120 bash "$ROOT/pipelines/pretrain-fashion-mnist.sh" --ranks 2 --steps 3 \
  --batch-size 16 --proj-hidden 64 --seed 7 --interval 1 --data "$DATA" \
  --out "$TMP/run" > "$TMP/log" 2>&1
rc=$?
ck="$TMP/run/fashion-mnist.safetensors"
meta () { head -c 65536 "$ck" | tr ',' '\n' | sed -n "s/^\"$1\":\"\([0-9]*\)\".*/\1/p" | head -1; }
head_shape=$(head -c 65536 "$ck" 2>/dev/null | tr '}' '\n' \
  | sed -n 's/.*"head\.0\.weight":{[^}]*"shape":\[\([0-9]*,[0-9]*\)\].*/\1/p' | head -1)
if [ "$rc" = 0 ] && [ -f "$ck" ] && [ "$(meta step)" = 3 ] && [ "$(meta batch_size)" = 16 ] \
    && [ "$(meta seed)" = 7 ] && [ "$head_shape" = "64,128" ]; then
  ok 0 "2 ranks, global batch 16: exit 0, checkpoint at step 3 of batch 16, seed 7, head 64x128"
else
  sed 's/^/# /' "$TMP/log"
  echo "# rc $rc step '$(meta step)' batch '$(meta batch_size)' seed '$(meta seed)' head '$head_shape'"
  ok 1 "2 ranks, global batch 16: exit 0, checkpoint at step 3 of batch 16, seed 7, head 64x128"
fi

csv="$TMP/run/metrics.csv"
if [ -f "$csv" ] && awk -F, 'NR > 1 { n++; if ($3 != $3 + 0 || $3 > 1e30) bad = 1; if (n == 1) first = $3 }
    END { exit !(n == 3 && !bad && first > 3.0 && first < 4.0) }' "$csv"; then
  ok 0 "metrics: 3 steps, first loss $(awk -F, 'NR == 2 { print $3 }' "$csv") (ln 31 = 3.43)"
else
  [ -f "$csv" ] && sed 's/^/# /' "$csv"
  ok 1 "metrics: 3 steps with a global loss near ln 31"
fi

timeout 60 bash "$ROOT/pipelines/pretrain-fashion-mnist.sh" --ranks 3 --steps 1 \
  --batch-size 16 --data "$DATA" --out "$TMP/bad" > "$TMP/log2" 2>&1
rc=$?
if [ "$rc" != 0 ] && grep -q "not a multiple of --ranks 3" "$TMP/log2"; then
  ok 0 "batch 16 over 3 ranks is refused (exit $rc)"
else
  sed 's/^/# /' "$TMP/log2"
  ok 1 "batch 16 over 3 ranks is refused"
fi
timeout 120 bash "$ROOT/pipelines/pretrain-fashion-mnist.sh" --ranks 2 --steps 3 \
  --batch-size 16 --proj-hidden 64 --seed 7 --interval 1 --data "$DATA" \
  --handoff none --out "$TMP/none" > "$TMP/log3" 2>&1
rc=$?
losses () { awk -F, 'NR > 1 { print $3 }' "$1" 2>/dev/null | tr '\n' ' '; }
if [ "$rc" = 0 ] && [ -n "$(losses "$csv")" ] \
    && [ "$(losses "$TMP/none/metrics.csv")" = "$(losses "$csv")" ]; then
  ok 0 "--handoff none: the same losses ($(losses "$csv"))"
else
  sed 's/^/# /' "$TMP/log3"
  echo "# rc $rc losses '$(losses "$TMP/none/metrics.csv")', with the queue '$(losses "$csv")'"
  ok 1 "--handoff none: the same losses as with the queue"
fi

timeout 60 bash "$ROOT/pipelines/pretrain-fashion-mnist.sh" --ranks 2 --steps 1 \
  --batch-size 16 --handoff fifo --data "$DATA" --out "$TMP/bad2" > "$TMP/log4" 2>&1
rc=$?
if [ "$rc" != 0 ] && grep -q -- "--handoff fifo: queue or none" "$TMP/log4"; then
  ok 0 "--handoff fifo is refused (exit $rc)"
else
  sed 's/^/# /' "$TMP/log4"
  ok 1 "--handoff fifo is refused"
fi
[ "$failures" = 0 ]
