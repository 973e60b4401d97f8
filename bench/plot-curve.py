#!/usr/bin/python3
"""plot-curve.py CURVE_CSV OUT_PNG: linear-eval accuracy against pretraining time.

Reads the CSV written by bench/recipe-fashion-mnist.sh (minutes, kind,
features, test_top1, test_top5, knn_top1; accuracies in percent; a CSV
without the features column is all h) and draws, for each probed layer (h,
the head's hidden layer), top-1 of the linear probe and of kNN against
minutes of pretraining, with the baselines (kinds 'raw' and 'random') as
horizontal lines and the PyTorch peer's figures as points.
"""
import csv
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TARGET = 88.0  # the linear-eval target for at most 30 minutes
LAYER_NAMES = {"h": "h", "hidden": "head hidden layer", "pixels": "pixels"}
PEER = [(20, 82.6, "PyTorch peer, 20 min (tau 0.5)"),
        (45, 85.7, "PyTorch peer, 45 min (tau 0.2, crop 0.2)")]


def main():
    src, dst = sys.argv[1], sys.argv[2]
    rows = list(csv.DictReader(open(src)))
    for r in rows:
        r.setdefault("features", "h")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    layers = sorted({r["features"] for r in rows if r["kind"] not in ("raw", "random")})
    for layer in layers:
        name = LAYER_NAMES.get(layer, layer)
        curve = sorted((float(r["minutes"]), float(r["test_top1"]),
                        float(r["knn_top1"]) if r["knn_top1"] else None)
                       for r in rows
                       if r["kind"] not in ("raw", "random") and r["features"] == layer)
        line, = ax.plot([c[0] for c in curve], [c[1] for c in curve], "o-",
                        label=f"gst-simclr {name}, linear probe")
        knn = [(c[0], c[2]) for c in curve if c[2] is not None]
        if knn:
            ax.plot([k[0] for k in knn], [k[1] for k in knn], "s--", color=line.get_color(),
                    alpha=0.6, label=f"gst-simclr {name}, kNN (k 200)")
    for r in rows:
        if r["kind"] in ("raw", "random"):
            what = "raw pixels" if r["kind"] == "raw" else \
                f"random encoder, {LAYER_NAMES.get(r['features'], r['features'])}"
            ax.axhline(float(r["test_top1"]), ls=":", color="gray")
            ax.text(0.5, float(r["test_top1"]) + 0.15, what, color="gray", fontsize=8)
    for m, acc, label in PEER:
        ax.plot([m], [acc], "x", color="red")
        ax.annotate(label, (m, acc), textcoords="offset points", xytext=(-10, -14),
                    fontsize=8, color="red")
    ax.axhline(TARGET, ls="--", color="green", alpha=0.5)
    ax.text(0.5, TARGET + 0.15, f"target {TARGET:g} %", color="green", fontsize=8)
    ax.set_xlim(0, max([float(r["minutes"]) for r in rows] + [m for m, _, _ in PEER]) + 3)
    ax.set_xlabel("pretraining wall time (minutes, 2 cores)")
    ax.set_ylabel("Fashion-MNIST test top-1 (%)")
    ax.set_title("Frozen ResNet-18 w0.25 features: linear evaluation")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
