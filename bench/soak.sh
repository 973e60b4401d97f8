#!/usr/bin/env bash
# soak.sh: a long training run on Fashion-MNIST with the resident memory of
# the pipeline process sampled every few seconds (issue 15): is memory flat
# once the run has warmed up?
#
#   simclrdatasetsrc (epochs forever, shuffled) ! simclraugment ! queue
#     ! simclrencoder (checkpoint every K steps) ! ntxentsink (metrics CSV)
#
# It runs for --minutes M (default 60), then ends the pipeline with EOS
# (SIGINT to gst-launch-1.0 -e) and writes, in --out DIR:
#   rss.csv      t_s, rss_mib, hwm_mib, step (the last step the sink logged)
#   soak.png     resident memory against time, warm-up shaded, with the
#                least-squares line fitted after warm-up
#   summary.txt  samples, steps, RSS at the end of warm-up and at the end,
#                growth after warm-up in MiB/hour (slope of the fit) and the
#                largest rise over any window after warm-up
# A benchmark prints, it never asserts; the verdict is the reader's.
# Memory flatness does not need a quiet machine: run it under `nice`.
#
# Options: --minutes M (60)  --interval S (30)  --warmup-minutes W (M/6)
#          --batch-size N (64)  --checkpoint-interval K (50)  --out DIR
#          (out/soak)  --threads T (1: one core; OpenBLAS on one thread)
# Needs: Fashion-MNIST and python3-matplotlib (scripts/setup.sh --soak).
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=60
interval=30
warmup=""
batch=64
ckpt_interval=50
out=out/soak
threads=1
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --interval) interval=$2; shift 2 ;;
    --warmup-minutes) warmup=$2; shift 2 ;;
    --batch-size) batch=$2; shift 2 ;;
    --checkpoint-interval) ckpt_interval=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$warmup" ] || warmup=$(awk -v m="$minutes" 'BEGIN { print m / 6 }')

scripts/setup.sh --soak >/dev/null
. scripts/env.sh
export GST_PLUGIN_PATH_1_0=$PWD/build/plugins
export GST_REGISTRY_1_0=$PWD/build/registry.soak.bin
export OPENBLAS_NUM_THREADS=1
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out/rss.csv" "$out/metrics.csv" "$out/soak.png" "$out/summary.txt"

# total-steps far beyond the run: the schedule stays near its peak and
# stop-at-end never ends the stream; EOS comes from the deadline.
gst-launch-1.0 -e -q \
  simclrdatasetsrc location=/usr/share/datasets/fashion-mnist shuffle=true \
    seed=1 epochs=0 \
  ! simclraugment size=28 crop-scale-min=0.2 blur-probability=0 seed=1 \
  ! queue \
  ! simclrencoder batch-size="$batch" width=0.25 threads="$threads" \
    total-steps=10000000 warmup-steps=100 learning-rate=0.3 \
    checkpoint-interval="$ckpt_interval" \
    checkpoint-location="$out/soak.safetensors" \
  ! ntxentsink temperature=0.2 interval=10 metrics-location="$out/metrics.csv" \
  >"$out/pipeline.log" 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null || true' INT TERM

echo "t_s,rss_mib,hwm_mib,step" >"$out/rss.csv"
t0=$(date +%s)
end=$((t0 + minutes * 60))
echo "soak.sh: pid $pid, $minutes min, a sample every $interval s -> $out"
while kill -0 "$pid" 2>/dev/null; do
  now=$(date +%s)
  rss=$(awk '/^VmRSS:/ { printf "%.2f", $2 / 1024 }' /proc/$pid/status 2>/dev/null || true)
  hwm=$(awk '/^VmHWM:/ { printf "%.2f", $2 / 1024 }' /proc/$pid/status 2>/dev/null || true)
  [ -n "$rss" ] || break
  step=$(tail -n 1 "$out/metrics.csv" 2>/dev/null | cut -d, -f1 | grep -E '^[0-9]+$' || echo 0)
  echo "$((now - t0)),$rss,$hwm,$step" >>"$out/rss.csv"
  if [ "$now" -ge "$end" ]; then
    kill -INT "$pid" 2>/dev/null || true
    break
  fi
  sleep "$interval"
done
wait "$pid" || echo "soak.sh: gst-launch-1.0 exited with $? (see $out/pipeline.log)"

/usr/bin/python3 - "$out" "$warmup" <<'EOF'
import csv, sys
out, warmup_min = sys.argv[1], float(sys.argv[2])
rows = list(csv.DictReader(open(out + "/rss.csv")))
t = [float(r["t_s"]) / 60 for r in rows]
rss = [float(r["rss_mib"]) for r in rows]
steps = [int(r["step"]) for r in rows]
after = [(x, y) for x, y in zip(t, rss) if x >= warmup_min]
lines = ["samples %d over %.1f min, steps %d (last logged)" % (len(rows), t[-1] if t else 0, steps[-1] if steps else 0)]
slope = None
if len(after) >= 3:
    n = len(after)
    mx = sum(x for x, _ in after) / n
    my = sum(y for _, y in after) / n
    sxx = sum((x - mx) ** 2 for x, _ in after)
    slope = sum((x - mx) * (y - my) for x, y in after) / sxx  # MiB per minute
    rise = max(b - a for i, (_, a) in enumerate(after) for (_, b) in after[i:])
    lines.append("RSS at the end of warm-up (%.1f min) %.1f MiB, at the end %.1f MiB, peak %.1f MiB"
                 % (warmup_min, after[0][1], after[-1][1], max(rss)))
    lines.append("growth after warm-up: %.2f MiB/hour (least-squares slope over %d samples); "
                 "largest rise over any window after warm-up %.1f MiB" % (slope * 60, n, rise))
else:
    lines.append("too few samples after warm-up for a slope")
open(out + "/summary.txt", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib missing (scripts/setup.sh --soak): no plot")
    sys.exit(0)
fig, ax = plt.subplots(figsize=(8, 4.5))
ax.plot(t, rss, ".-", label="resident memory (VmRSS)")
ax.axvspan(0, warmup_min, color="0.9", label="warm-up")
if slope is not None:
    mx = sum(x for x, _ in after) / len(after)
    my = sum(y for _, y in after) / len(after)
    xs = [after[0][0], after[-1][0]]
    ax.plot(xs, [my + slope * (x - mx) for x in xs], "r--",
            label="fit after warm-up: %+.2f MiB/hour" % (slope * 60))
ax.set_xlabel("minutes")
ax.set_ylabel("MiB")
ax.set_title("gst-simclr training soak on Fashion-MNIST (%d steps)" % (steps[-1] if steps else 0))
lo, hi = min(rss), max(rss)
ax.set_ylim(0, hi * 1.15)
ax.legend(loc="lower right")
fig.tight_layout()
fig.savefig(out + "/soak.png", dpi=100)
print("plot: %s/soak.png" % out)
EOF
