#!/usr/bin/python3
"""make-set.py: builds the near-duplicate retrieval set of bench/neardup.

    make-set.py --out DIR [--frames DIR] [--photos DIR] [--seed 1]

Originals: every photo (*.jpg, *.png) of --photos (default OpenCV's samples,
/usr/share/doc/opencv-doc/examples/data) and every JPEG of --frames (frames
taken from a video by run.sh), each saved as DIR/originals/NNN-name.jpg
(quality 95, longest side at most 320 pixels). Also DIR/train/all/ holds
the same files: simclrdatasetsrc reads a folder with one sub-folder per class,
and the encoder trains on these unlabelled originals.

Queries: one edited copy of each original, DIR/queries/NNN-name.jpg, made by
a seeded generator (the same seed gives the same set):
  - a crop keeping a random 40-90 % of the area (aspect ratio 3/4-4/3 of the
    original's, anywhere in the image),
  - a colour change: brightness, contrast and saturation each x [0.6, 1.4],
    hue shifted by up to +-0.08 of the colour wheel,
  - a horizontal flip for every other query (even NNN: flipped),
  - JPEG re-encoding at quality 30.
DIR/edits.csv lists each query's edit (crop area fraction, flip, factors),
so results can be split by edit (score.py does: flips, heavy crops).
Megamind.avi and tree.avi are NOT used (held back for checking).
"""
import argparse
import csv
import glob
import io
import os
import random
import sys

from PIL import Image, ImageEnhance


def load_rgb(path, max_side):
    im = Image.open(path).convert("RGB")
    w, h = im.size
    s = max_side / max(w, h)
    if s < 1:
        im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
    return im


def shift_hue(im, delta):
    hsv = im.convert("HSV")
    h, s, v = hsv.split()
    off = int(round(delta * 255))
    h = h.point(lambda x: (x + off) % 256)
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def edit(im, rng, flip):
    w, h = im.size
    area = rng.uniform(0.4, 0.9)
    for _ in range(50):
        ratio = (w / h) * rng.uniform(3 / 4, 4 / 3)
        cw = int(round((area * w * h * ratio) ** 0.5))
        ch = int(round((area * w * h / ratio) ** 0.5))
        if 0 < cw <= w and 0 < ch <= h:
            break
    else:
        cw, ch = w, h
    x = rng.randint(0, w - cw)
    y = rng.randint(0, h - ch)
    out = im.crop((x, y, x + cw, y + ch))
    b, c, s = (rng.uniform(0.6, 1.4) for _ in range(3))
    hue = rng.uniform(-0.08, 0.08)
    out = ImageEnhance.Brightness(out).enhance(b)
    out = ImageEnhance.Contrast(out).enhance(c)
    out = ImageEnhance.Color(out).enhance(s)
    out = shift_hue(out, hue)
    if flip:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=30)
    return buf.getvalue(), dict(
        crop_area=round(cw * ch / (w * h), 3), flip=int(flip), brightness=round(b, 3),
        contrast=round(c, 3), saturation=round(s, 3), hue=round(hue, 3))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--photos", default="/usr/share/doc/opencv-doc/examples/data")
    ap.add_argument("--frames", default=None, help="folder of video frames (JPEG)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-side", type=int, default=320)
    a = ap.parse_args()

    sources = sorted(glob.glob(os.path.join(a.photos, "*.jpg")) +
                     glob.glob(os.path.join(a.photos, "*.png")))
    if a.frames:
        sources += sorted(glob.glob(os.path.join(a.frames, "*.jpg")))
    if not sources:
        sys.exit("make-set.py: no image in %s" % a.photos)
    for sub in ("originals", "queries", "train/all"):
        os.makedirs(os.path.join(a.out, sub), exist_ok=True)
    rng = random.Random(a.seed)
    rows = []
    n = 0
    for path in sources:
        try:
            im = load_rgb(path, a.max_side)
        except Exception as e:  # a file PIL cannot read is left out, loudly
            print("make-set.py: skipping %s: %s" % (path, e), file=sys.stderr)
            continue
        if min(im.size) < 16:
            continue
        base = os.path.splitext(os.path.basename(path))[0]
        if a.frames and path.startswith(a.frames):
            base = "vtest-" + base
        name = "%03d-%s.jpg" % (n, base)
        im.save(os.path.join(a.out, "originals", name), "JPEG", quality=95)
        im.save(os.path.join(a.out, "train", "all", name), "JPEG", quality=95)
        q, info = edit(im, rng, flip=(n % 2 == 0))
        with open(os.path.join(a.out, "queries", name), "wb") as f:
            f.write(q)  # the quality-30 JPEG itself
        rows.append(dict(name=name, **info))
        n += 1
    with open(os.path.join(a.out, "edits.csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        wr.writeheader()
        wr.writerows(rows)
    print("make-set.py: %d originals and %d edited queries in %s" % (n, n, a.out))


if __name__ == "__main__":
    main()
