#!/usr/bin/env bash
# bench/apps/run-speed.sh: speed of the embedding apps beside Python, in one
# run, alternating the two sides (--rounds times) so load hits both:
#   1. search: exact cosine top-10 queries/s of the core index (bench-index)
#      vs FAISS's exact IndexFlatIP (python3-faiss), 1000 queries of 128
#      dimensions against 10^4, 10^5 and 10^6 random unit vectors, 2 threads
#      each; plus a check that FAISS returns our top-10 rows on the same data.
#   2. embedding: frames/s of simclrencoder mode=embed (a gst-launch pipeline:
#      videotestsrc ! simclrencoder ! fakesink, 2 OpenBLAS threads) vs PyTorch
#      inference of the same checkpoint (embed_torch.py, 2 threads, NCHW and
#      channels_last), ResNet-18 width 0.25 at 32x32x3.
# Needs: a build, python3-faiss, python3-torch python3-torchvision.
#   apt-get install --no-install-recommends python3-faiss python3-torch python3-torchvision
# How long it runs: about 5 minutes on 2 quiet cores (the 10^6 database
# needs about 1.5 GB of memory for both sides).
# Options: --rounds R (2), --sizes LIST (10000,100000,1000000), --frames N (4096)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/scripts/env.sh"
build=${BUILD:-$root/build}
rounds=2; sizes=10000,100000,1000000; frames=4096
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --sizes) sizes="$2"; shift 2 ;;
    --frames) frames="$2"; shift 2 ;;
    *) echo "run-speed.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
export OPENBLAS_NUM_THREADS=2 GST_PLUGIN_PATH_1_0="$build/plugins" \
  GST_REGISTRY_1_0="$build/registry.pipelines.bin"
for m in faiss torch torchvision; do
  /usr/bin/python3 -c "import $m" 2>/dev/null || {
    echo "run-speed.sh: /usr/bin/python3 lacks $m: apt-get install --no-install-recommends python3-faiss python3-torch python3-torchvision" >&2
    exit 1; }
done
[ -x "$build/bench/apps/bench-index" ] || { echo "run-speed.sh: no $build/bench/apps/bench-index; build first" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "== CPU: $(lscpu | sed -n 's/^Model name: *//p'); flags: $(grep -ow -E 'avx2|avx512f|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "== load before: $(cut -d' ' -f1-3 /proc/loadavg); OpenBLAS core: ${OPENBLAS_CORETYPE:-auto}"
for r in $(seq 1 "$rounds"); do
  echo "-- round $r: search"
  "$build/bench/apps/bench-index" --sizes "$sizes" --dump "$tmp" | grep RESULT
  /usr/bin/python3 "$here/compare-faiss.py" --sizes "$sizes" --check "$tmp" | grep -E "RESULT|CHECK"
done
"$build/tools/simclr-init" --out "$tmp/enc.safetensors" --size 32 --width 0.25 >/dev/null
for r in $(seq 1 "$rounds"); do
  echo "-- round $r: embedding"
  for rep in 1 2 3; do
    start=$(date +%s.%N)
    gst-launch-1.0 -q videotestsrc pattern=snow num-buffers="$frames" \
      ! video/x-raw,format=RGB,width=32,height=32 \
      ! simclrencoder mode=embed embed-batch=64 checkpoint-location="$tmp/enc.safetensors" \
      ! fakesink
    end=$(date +%s.%N)
    echo "$frames $start $end" | awk '{ printf "%.0f\n", $1 / ($3 - $2) }'
  done | sort -n | tr '\n' ' ' | awk '{ printf "RESULT gst-simclr simclrencoder mode=embed 32x32x3 frames/s %s / %s / %s\n", $1, $2, $3 }'
  /usr/bin/python3 "$here/embed_torch.py" "$tmp/enc.safetensors" --frames "$frames" | grep RESULT
done
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
