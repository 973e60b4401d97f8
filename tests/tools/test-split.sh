#!/bin/sh
# test-split.sh: tools/simclr-split (the validation split that keeps the test
# set out of hyperparameter choices) and the pretraining script's counting of
# the data set. Usage: test-split.sh SOURCE_ROOT BUILD_DIR. TAP output.
# Small synthetic data sets are written by /usr/bin/python3 (standard library;
# the JPEG case needs PIL and is skipped without it):
#   1. IDX, 50 images of 10 classes, --holdout 10: train 40 + test 10, the
#      two sides are disjoint and together exactly the original images with
#      their labels, the held-out part spans several classes, the stored order
#      is kept, the same seed gives the same split and another seed another
#   2. --holdout 0.2 (a fraction) holds out 10 of 50; a holdout of all images
#      is refused with a message
#   3. CIFAR-10 (5 training files, 35 images): train 28 in five files + test 7,
#      union and labels as in 1
#   4. JPEG class folders (3 classes, 12 images): links to the originals,
#      every class folder on both sides, 9 + 3 images, and the data-set
#      reader opens the result
#   5. --info prints the training split's count and size
#   6. pipelines/pretrain-fashion-mnist.sh on a 200-image 16x16 IDX set,
#      --epochs 2 --batch-size 16: 24 steps (2 x floor(200 / 16)), not the
#      2 x floor(60000 / 16) a fixed count of 60000 would schedule; the views
#      take the images' side
#   7. simclr-lineval --raw on the split reads 40 training and 10 held-out
#      images
#   8. simclr-lineval --random --width 0.5 --stem stride2 builds that
#      encoder (h of 256); an unknown --stem is refused by name
set -u
ROOT=$1
BUILD=$2
SPLIT="$BUILD/tools/simclr-split"
PY=/usr/bin/python3
if [ ! -x "$PY" ]; then
  echo "1..0 # SKIP no $PY"
  exit 77
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
n=0
failures=0
ok () {
  n=$((n + 1))
  if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failures=$((failures + 1)); fi
}
echo "1..9"

# Fixtures and checks in one Python file: "make-idx DIR N SIDE", "make-cifar
# DIR", "make-jpeg DIR", "check ORIG SPLIT FORMAT" (prints a reason and exits
# 1 on a mismatch).
cat > "$TMP/fx.py" <<'EOF'
import os, struct, sys

def idx_write(path, magic, dims, payload):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload)

def idx_read(d, prefix):
    raw = open(os.path.join(d, prefix + "-images-idx3-ubyte"), "rb").read()
    n, h, w = struct.unpack(">III", raw[4:16])
    lab = open(os.path.join(d, prefix + "-labels-idx1-ubyte"), "rb").read()[8:]
    return [(raw[16 + i * h * w:16 + (i + 1) * h * w], lab[i]) for i in range(n)]

def cifar_read(paths):
    out = []
    for p in paths:
        raw = open(p, "rb").read()
        rec = 1 + 3072
        out += [(raw[i * rec + 1:(i + 1) * rec], raw[i * rec]) for i in range(len(raw) // rec)]
    return out

cmd = sys.argv[1]
if cmd == "make-idx":
    d, n, side = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    os.makedirs(d, exist_ok=True)
    # Image i: every pixel i % 251 and the first two bytes i, so images are
    # distinct; labels i % 10 (sorted by class would also work).
    imgs = b"".join(bytes([i % 256, i // 256]) + bytes([i % 251]) * (side * side - 2) for i in range(n))
    idx_write(os.path.join(d, "train-images-idx3-ubyte"), 0x803, [n, side, side], imgs)
    idx_write(os.path.join(d, "train-labels-idx1-ubyte"), 0x801, [n], bytes(i % 10 for i in range(n)))
    idx_write(os.path.join(d, "t10k-images-idx3-ubyte"), 0x803, [2, side, side], imgs[:2 * side * side])
    idx_write(os.path.join(d, "t10k-labels-idx1-ubyte"), 0x801, [2], bytes([0, 1]))
elif cmd == "make-cifar":
    d = sys.argv[2]
    os.makedirs(d, exist_ok=True)
    k = 0
    for f in range(1, 6):
        with open(os.path.join(d, "data_batch_%d.bin" % f), "wb") as fh:
            for _ in range(7):
                fh.write(bytes([k % 10, k]) + bytes([(k * 7 + c) % 256 for c in range(3071)]))
                k += 1
    with open(os.path.join(d, "test_batch.bin"), "wb") as fh:
        fh.write(bytes([3]) + bytes(3072))
elif cmd == "make-jpeg":
    from PIL import Image
    d = sys.argv[2]
    for c in ("cat", "dog", "eel"):
        os.makedirs(os.path.join(d, c), exist_ok=True)
        for i in range(4):
            Image.new("RGB", (8, 8), (i * 40, 10, 20)).save(os.path.join(d, c, "im%d.jpg" % i))
elif cmd == "check":
    orig, split, fmt = sys.argv[2], sys.argv[3], sys.argv[4]
    if fmt == "idx":
        a = idx_read(orig, "train")
        tr, te = idx_read(split, "train"), idx_read(split, "t10k")
    else:
        a = cifar_read([os.path.join(orig, "data_batch_%d.bin" % f) for f in range(1, 6)])
        tr = cifar_read([os.path.join(split, "data_batch_%d.bin" % f) for f in range(1, 6)])
        te = cifar_read([os.path.join(split, "test_batch.bin")])
    if sorted(tr + te) != sorted(a):
        sys.exit("train + test is not the original set (%d + %d vs %d)" % (len(tr), len(te), len(a)))
    if set(tr) & set(te):
        sys.exit("an image is on both sides")
    pos = {x: i for i, x in enumerate(a)}
    for side in (tr, te):
        order = [pos[x] for x in side]
        if order != sorted(order):
            sys.exit("stored order not kept")
    if len({lab for _, lab in te}) < 3:
        sys.exit("held-out part has fewer than 3 classes")
    print("%d + %d, %d classes held out" % (len(tr), len(te), len({lab for _, lab in te})))
EOF

# 1. IDX
$PY "$TMP/fx.py" make-idx "$TMP/idx" 50 8
"$SPLIT" --data "$TMP/idx" --holdout 10 --seed 3 --out "$TMP/s1" > "$TMP/log1" 2>&1
rc=$?
"$SPLIT" --data "$TMP/idx" --holdout 10 --seed 3 --out "$TMP/s1b" >> "$TMP/log1" 2>&1
"$SPLIT" --data "$TMP/idx" --holdout 10 --seed 4 --out "$TMP/s1c" >> "$TMP/log1" 2>&1
msg=$($PY "$TMP/fx.py" check "$TMP/idx" "$TMP/s1" idx 2>&1)
crc=$?
if [ "$rc" = 0 ] && [ "$crc" = 0 ] && [ "$(wc -c < "$TMP/s1/t10k-labels-idx1-ubyte")" = 18 ] \
    && cmp -s "$TMP/s1/t10k-images-idx3-ubyte" "$TMP/s1b/t10k-images-idx3-ubyte" \
    && ! cmp -s "$TMP/s1/t10k-images-idx3-ubyte" "$TMP/s1c/t10k-images-idx3-ubyte"; then
  ok 0 "IDX: $msg; seed 3 twice the same, seed 4 different"
else
  sed 's/^/# /' "$TMP/log1"; echo "# rc $rc check: $msg"
  ok 1 "IDX split: 40 + 10, disjoint, complete, order kept, reproducible"
fi

# 2. fraction, and a holdout of everything
"$SPLIT" --data "$TMP/idx" --holdout 0.2 --out "$TMP/s2" > "$TMP/log2" 2>&1
rc=$?
"$SPLIT" --data "$TMP/idx" --holdout 50 --out "$TMP/s2b" > "$TMP/log2b" 2>&1
rc2=$?
if [ "$rc" = 0 ] && [ "$(wc -c < "$TMP/s2/t10k-labels-idx1-ubyte")" = 18 ] && [ "$rc2" != 0 ] \
    && grep -q "leaves nothing" "$TMP/log2b"; then
  ok 0 "--holdout 0.2 holds out 10 of 50; --holdout 50 refused: $(cat "$TMP/log2b")"
else
  sed 's/^/# /' "$TMP/log2" "$TMP/log2b"
  ok 1 "--holdout 0.2 holds out 10; --holdout 50 refused"
fi

# 3. CIFAR-10
$PY "$TMP/fx.py" make-cifar "$TMP/cifar"
"$SPLIT" --data "$TMP/cifar" --holdout 7 --out "$TMP/s3" > "$TMP/log3" 2>&1
rc=$?
msg=$($PY "$TMP/fx.py" check "$TMP/cifar" "$TMP/s3" cifar 2>&1)
crc=$?
if [ "$rc" = 0 ] && [ "$crc" = 0 ] && [ -f "$TMP/s3/data_batch_5.bin" ]; then
  ok 0 "CIFAR-10: $msg, five training files"
else
  sed 's/^/# /' "$TMP/log3"; echo "# rc $rc check: $msg"
  ok 1 "CIFAR-10 split: 28 + 7 in the CIFAR layout"
fi

# 4. JPEG folders
if $PY -c "import PIL" 2>/dev/null; then
  $PY "$TMP/fx.py" make-jpeg "$TMP/jpeg"
  "$SPLIT" --data "$TMP/jpeg" --holdout 3 --out "$TMP/s4" > "$TMP/log4" 2>&1
  rc=$?
  ntr=$(find "$TMP/s4/train" -type l | wc -l)
  nte=$(find "$TMP/s4/test" -type l | wc -l)
  ncl=$(ls "$TMP/s4/train" "$TMP/s4/test" 2>/dev/null | grep -c -E '^(cat|dog|eel)$')
  bad=0
  for l in $(find "$TMP/s4" -type l); do
    t=$(readlink "$l")
    case "$t" in "$TMP"/jpeg/*/*.jpg) ;; *) bad=1 ;; esac
    [ "$(basename "$(dirname "$t")")" = "$(basename "$(dirname "$l")")" ] || bad=1
  done
  info=$("$SPLIT" --data "$TMP/s4" --info 2>&1)
  if [ "$rc" = 0 ] && [ "$ntr" = 9 ] && [ "$nte" = 3 ] && [ "$ncl" = 6 ] && [ "$bad" = 0 ] \
      && [ "$info" = "format=jpeg-folder images=9 width=8 height=8 channels=3 classes=3" ]; then
    ok 0 "JPEG: 9 + 3 links into the right class folders, all 3 classes on both sides; read back: $info"
  else
    sed 's/^/# /' "$TMP/log4"; echo "# rc $rc train $ntr test $nte class folders $ncl bad links $bad info $info"
    ok 1 "JPEG split: 9 + 3 links, class folders on both sides"
  fi
else
  n=$((n + 1)); echo "ok $n # SKIP no PIL to write the JPEG fixture"
fi

# 5. --info
info=$("$SPLIT" --data "$TMP/s1" --info 2>&1)
if [ "$info" = "format=idx images=40 width=8 height=8 channels=1 classes=10" ]; then
  ok 0 "--info: $info"
else
  echo "# got: $info"
  ok 1 "--info prints format=idx images=40 width=8 height=8 channels=1 classes=10"
fi

# 6. The pipeline script counts the data set.
if gst-inspect-1.0 --version > /dev/null 2>&1; then
  $PY "$TMP/fx.py" make-idx "$TMP/small" 200 16
  unset GST_PLUGIN_SYSTEM_PATH_1_0 GST_PLUGIN_LOADING_WHITELIST GST_REGISTRY_1_0
  BUILD="$BUILD" timeout 300 bash "$ROOT/pipelines/pretrain-fashion-mnist.sh" --epochs 2 \
    --batch-size 16 --interval 4 --data "$TMP/small" --out "$TMP/run" > "$TMP/log6" 2>&1
  rc=$?
  ck="$TMP/run/fashion-mnist.safetensors"
  meta () { head -c 65536 "$ck" | tr ',' '\n' | sed -n "s/^\"$1\":\"\([0-9]*\)\".*/\1/p" | head -1; }
  if [ "$rc" = 0 ] && [ -f "$ck" ] && [ "$(meta step)" = 24 ] && [ "$(meta total_steps)" = 24 ] \
      && [ "$(meta image_size)" = 16 ]; then
    ok 0 "pretraining script on 200 images, --epochs 2, batch 16: 24 of 24 steps, 16-pixel views"
  else
    sed 's/^/# /' "$TMP/log6"
    echo "# rc $rc step '$(meta step)' total '$(meta total_steps)' size '$(meta image_size)'"
    ok 1 "pretraining script on 200 images, --epochs 2, batch 16: 24 of 24 steps"
  fi
else
  n=$((n + 1)); echo "ok $n # SKIP no gst-inspect-1.0"
fi

# 7. lineval on the split
"$BUILD/tools/simclr-lineval" --raw --data "$TMP/s1" --knn-k 5 > "$TMP/log7" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -q "features: raw pixels, 40 train, 10 test" "$TMP/log7"; then
  ok 0 "simclr-lineval --raw on the split: 40 train, 10 held-out"
else
  sed 's/^/# /' "$TMP/log7"
  ok 1 "simclr-lineval --raw on the split: 40 train, 10 held-out"
fi

# 8. lineval --random --stem: the random encoder of the recipe's architecture
# (the main job's baseline row); a stem it does not know is refused by name
"$BUILD/tools/simclr-lineval" --random --width 0.5 --stem stride2 --data "$TMP/s1" \
  --knn-k 5 > "$TMP/log8" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -q "random-init resnet18 w0.5 stem stride2" "$TMP/log8" \
    && grep -q "features: h, 40 train, 10 test, dimension 256" "$TMP/log8"; then
  ok 0 "simclr-lineval --random --width 0.5 --stem stride2: h of 256"
else
  sed 's/^/# /' "$TMP/log8"
  ok 1 "simclr-lineval --random --width 0.5 --stem stride2: h of 256"
fi
"$BUILD/tools/simclr-lineval" --random --stem bogus --data "$TMP/s1" > "$TMP/log9" 2>&1
rc=$?
if [ "$rc" != 0 ] && grep -q "unknown --stem 'bogus'" "$TMP/log9"; then
  ok 0 "simclr-lineval --stem bogus is refused by name"
else
  sed 's/^/# /' "$TMP/log9"
  ok 1 "simclr-lineval --stem bogus is refused by name (rc $rc)"
fi
[ "$failures" = 0 ]
