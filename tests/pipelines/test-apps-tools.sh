#!/usr/bin/env bash
# test-apps-tools.sh: the embedding tools end to end on small generated
# images: simclr-init writes a random encoder; simclr-search builds an index
# of a folder and finds each image first among them, also from a copy of
# another size and from a grayscale copy; simclr-dedup groups an exact
# duplicate; simclr-map writes a PNG; and every bad input is a clear error
# naming the file or option: .npy and CSV disagree, an empty index, a query
# embedding of another dimension, a threshold outside [-1, 1], a corrupt
# image. Usage: test-apps-tools.sh BUILD_DIR
set -uo pipefail
build=$1
tools=$build/tools
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check () {   # description, then a command that must succeed
  local what=$1; shift
  if "$@"; then echo "ok - $what"; else echo "not ok - $what"; fail=1; fi
}
# must_fail DESCRIPTION TEXT command...: non-zero exit and TEXT on stderr.
must_fail () {
  local what=$1 text=$2; shift 2
  if "$@" >"$tmp/out" 2>"$tmp/err"; then
    echo "not ok - $what: succeeded"; fail=1
  elif ! grep -qF -- "$text" "$tmp/err"; then
    echo "not ok - $what: stderr does not name \"$text\":"; cat "$tmp/err"; fail=1
  else
    echo "ok - $what"
  fi
}

mkdir -p "$tmp/imgs"
i=0
for p in 0 1 4 8 13 18 24; do
  gst-launch-1.0 -q videotestsrc pattern=$p num-buffers=1 \
    ! video/x-raw,width=64,height=48 ! videoconvert ! jpegenc quality=95 \
    ! filesink location="$tmp/imgs/img$i.jpg" || { echo "Bail out! gst-launch"; exit 1; }
  i=$((i + 1))
done
# Queries: img2 at another size, img3 in gray (one channel JPEG).
gst-launch-1.0 -q filesrc location="$tmp/imgs/img2.jpg" ! jpegdec ! videoscale \
  ! video/x-raw,width=100,height=90 ! videoconvert ! pngenc ! filesink location="$tmp/q-big.png"
gst-launch-1.0 -q filesrc location="$tmp/imgs/img3.jpg" ! jpegdec ! videoconvert \
  ! video/x-raw,format=GRAY8 ! jpegenc ! filesink location="$tmp/q-gray.jpg"

check "simclr-init writes a random checkpoint" \
  "$tools/simclr-init" --out "$tmp/rand.safetensors" --size 16 --seed 2
check "simclr-search --build indexes a folder" \
  "$tools/simclr-search" --checkpoint "$tmp/rand.safetensors" --build "$tmp/imgs" \
    --index "$tmp/idx.npy"
check "the index has 7 rows and a header" \
  test "$(wc -l < "$tmp/idx.npy.csv")" = 8
check "simclr-search finds every image first, and writes CSV and sheet" \
  "$tools/simclr-search" --checkpoint "$tmp/rand.safetensors" --index "$tmp/idx.npy" \
    --query "$tmp/imgs" -k 3 --csv "$tmp/res.csv" --sheet "$tmp/sheet.jpg" --quiet
check "each query's rank-1 match is itself with score 1" \
  awk -F, 'NR > 1 && $3 == 1 { q = $1; gsub(/"/, "", q); n = $8; gsub(/"/, "", n);
           if (q != n || $7 < 0.9999) bad = 1; c++ } END { exit bad || c != 7 }' "$tmp/res.csv"
check "the contact sheet is a JPEG" \
  bash -c "head -c 3 '$tmp/sheet.jpg' | od -An -tx1 | grep -q 'ff d8 ff'"
# Raw pixels: a resized copy and a gray copy still find their original.
"$tools/simclr-search" --embed raw --build "$tmp/imgs" --index "$tmp/raw.npy" >/dev/null
check "a query of another size finds its original (resized to the input)" \
  bash -c "'$tools/simclr-search' --embed raw --index '$tmp/raw.npy' --query '$tmp/q-big.png' -k 1 | grep -q 'img2.jpg'"
check "a one-channel query runs through a 3-channel encoder" \
  bash -c "'$tools/simclr-search' --checkpoint '$tmp/rand.safetensors' --index '$tmp/idx.npy' --query '$tmp/q-gray.jpg' -k 1 | grep -q 'score'"
cp "$tmp/imgs/img4.jpg" "$tmp/imgs/img9-dup.jpg"
"$tools/simclr-search" --embed raw --build "$tmp/imgs" --index "$tmp/dup.npy" >/dev/null
check "simclr-dedup groups an exact duplicate with its original" \
  bash -c "'$tools/simclr-dedup' --index '$tmp/dup.npy' --threshold 0.999 --sheet '$tmp/dd.jpg' >/dev/null &&
           grep -q '^4,2,' '$tmp/dup-kept.csv' && test \$(wc -l < '$tmp/dup-kept.csv') = 8"
check "simclr-map writes a PNG" \
  bash -c "'$tools/simclr-map' --index '$tmp/idx.npy' --out '$tmp/map.png' >/dev/null &&
           head -c 4 '$tmp/map.png' | od -An -c | grep -q 'P   N   G'"

# Bad input.
head -n 5 "$tmp/idx.npy.csv" > "$tmp/short.npy.csv"; cp "$tmp/idx.npy" "$tmp/short.npy"
must_fail "search: .npy and CSV disagree" "$tmp/short.npy.csv" \
  "$tools/simclr-search" --checkpoint "$tmp/rand.safetensors" --index "$tmp/short.npy" \
    --query "$tmp/imgs/img0.jpg"
must_fail "dedup: .npy and CSV disagree" "$tmp/short.npy.csv" \
  "$tools/simclr-dedup" --index "$tmp/short.npy" --threshold 0.9
/usr/bin/python3 - "$tmp/empty.npy" <<'EOF' 2>/dev/null || printf '\x93NUMPY\x01\x00\x76\x00{'"'"'descr'"'"': '"'"'<f4'"'"', '"'"'fortran_order'"'"': False, '"'"'shape'"'"': (0, 4), }%*s\n' 61 '' > "$tmp/empty.npy"
import sys
import numpy
numpy.save(sys.argv[1], numpy.zeros((0, 4), numpy.float32))
EOF
echo "index,pts_ns,sample_id,view,label" > "$tmp/empty.npy.csv"
must_fail "search: an empty index" "$tmp/empty.npy" \
  "$tools/simclr-search" --embed raw --index "$tmp/empty.npy" --query "$tmp/imgs/img0.jpg"
must_fail "search: query embedding of another dimension names the index" "$tmp/raw.npy" \
  "$tools/simclr-search" --checkpoint "$tmp/rand.safetensors" --index "$tmp/raw.npy" \
    --query "$tmp/imgs/img0.jpg"
must_fail "dedup: threshold above 1" "--threshold 1.5" \
  "$tools/simclr-dedup" --index "$tmp/idx.npy" --threshold 1.5
must_fail "dedup: threshold below -1" "--threshold -2" \
  "$tools/simclr-dedup" --index "$tmp/idx.npy" --threshold -2
echo "not a jpeg" > "$tmp/bad.jpg"
must_fail "search: a corrupt query image is named" "$tmp/bad.jpg" \
  "$tools/simclr-search" --embed raw --index "$tmp/raw.npy" --query "$tmp/bad.jpg"
must_fail "search: a missing checkpoint is named" "$tmp/none.safetensors" \
  "$tools/simclr-search" --checkpoint "$tmp/none.safetensors" --index "$tmp/idx.npy" \
    --query "$tmp/imgs/img0.jpg"

# The two pipelines of the apps, on vtest.avi when opencv-doc is installed
# (they set GST_PLUGIN_PATH_1_0 themselves and need the system plugins,
# which the test environment hides).
vtest=/usr/share/doc/opencv-doc/examples/data/vtest.avi
if [ -f "$vtest" ]; then
  root=$(cd "$(dirname "$0")/../.." && pwd)
  check "curate-video.sh keeps about 3 % of vtest.avi as JPEG files" \
    bash -c "env -u GST_PLUGIN_SYSTEM_PATH_1_0 BUILD='$build' bash '$root/pipelines/curate-video.sh' --out '$tmp/curated' >/dev/null &&
             n=\$(ls '$tmp/curated' | wc -l) && [ \$n -ge 10 ] && [ \$n -le 50 ]"
  "$tools/simclr-init" --out "$tmp/rand32.safetensors" --size 32 >/dev/null
  check "find-similar-frames.sh finds the query frame itself first" \
    bash -c "env -u GST_PLUGIN_SYSTEM_PATH_1_0 BUILD='$build' bash '$root/pipelines/find-similar-frames.sh' --checkpoint '$tmp/rand32.safetensors' \
               --at 30 -k 3 --out '$tmp/fsf' >/dev/null &&
             awk -F, 'NR == 2 { exit !(\$5 == 300) }' '$tmp/fsf/matches.csv'"
else
  echo "ok - pipelines skipped: no $vtest (opencv-doc)"
fi
exit $fail
