#!/usr/bin/python3
"""plot-curve.py CURVE_CSV OUT_PNG [--title T] [--target PCT] [--peer]:
accuracy of the frozen features against pretraining time.

Reads the CSV written by bench/recipe-fashion-mnist.sh (minutes, kind,
features, test_top1, test_top5, knn_top1; accuracies in percent; a CSV
without the features column is all h) and draws, for each probed layer (h,
the head's hidden layer), top-1 of the linear probe and of kNN against
minutes of pretraining; the kNN monitor (kind 'monitor': 1000 training and
1000 test images, every epoch) as a thin line; the baselines (kinds 'raw' and
'random') as horizontal lines; --target a dashed line; --peer the PyTorch
peer's Fashion-MNIST test figures (its README) as points.
"""
import argparse
import csv

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LAYER_NAMES = {"h": "h", "hidden": "head hidden layer", "pixels": "pixels"}
PEER = [(20, 82.6, "PyTorch peer, 20 min (tau 0.5)"),
        (45, 85.7, "PyTorch peer, 45 min (tau 0.2, crop 0.2)")]
BASELINE_KINDS = ("raw", "random")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("png")
    ap.add_argument("--title", default="Frozen encoder features: linear probe and kNN")
    ap.add_argument("--ylabel", default="top-1 (%)")
    ap.add_argument("--target", type=float, default=None)
    ap.add_argument("--peer", action="store_true")
    ap.add_argument("--xlabel", default="pretraining wall time (minutes, 2 cores)",
                    help="e.g. when the CSV's minutes are steps at a measured rate")
    a = ap.parse_args()

    rows = list(csv.DictReader(open(a.csv)))
    for r in rows:
        r.setdefault("features", "h")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    trained = [r for r in rows if r["kind"] not in BASELINE_KINDS + ("monitor",)]
    for layer in sorted({r["features"] for r in trained}):
        name = LAYER_NAMES.get(layer, layer)
        curve = sorted((float(r["minutes"]), float(r["test_top1"]),
                        float(r["knn_top1"]) if r["knn_top1"] else None)
                       for r in trained if r["features"] == layer)
        line, = ax.plot([c[0] for c in curve], [c[1] for c in curve], "o-",
                        label=f"gst-simclr {name}, linear probe")
        knn = [(c[0], c[2]) for c in curve if c[2] is not None]
        if knn:
            ax.plot([k[0] for k in knn], [k[1] for k in knn], "s--", color=line.get_color(),
                    alpha=0.6, label=f"gst-simclr {name}, kNN (k 200)")
    mon = sorted((float(r["minutes"]), float(r["knn_top1"]))
                 for r in rows if r["kind"] == "monitor" and r["knn_top1"])
    if mon:
        ax.plot([m[0] for m in mon], [m[1] for m in mon], ".-", color="purple", lw=0.8,
                alpha=0.7, label="kNN monitor while training (1000 images)")
    for r in rows:
        if r["kind"] in BASELINE_KINDS:
            what = "raw pixels" if r["kind"] == "raw" else \
                f"random encoder, {LAYER_NAMES.get(r['features'], r['features'])}"
            ax.axhline(float(r["test_top1"]), ls=":", color="gray")
            ax.text(0.2, float(r["test_top1"]) + 0.15, what + " (linear)", color="gray",
                    fontsize=8)
    xmax = max([float(r["minutes"]) for r in rows] + [1])
    if a.peer:
        for m, acc, label in PEER:
            ax.plot([m], [acc], "x", color="red")
            ax.annotate(label, (m, acc), textcoords="offset points", xytext=(-10, -14),
                        fontsize=8, color="red")
        xmax = max([xmax] + [m for m, _, _ in PEER])
    if a.target is not None:
        ax.axhline(a.target, ls="--", color="green", alpha=0.5)
        ax.text(0.2, a.target + 0.15, f"target {a.target:g} %", color="green", fontsize=8)
    ax.set_xlim(0, xmax * 1.08 + 0.5)
    ax.set_xlabel(a.xlabel)
    ax.set_ylabel(a.ylabel)
    ax.set_title(a.title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(a.png, dpi=110)
    print(f"wrote {a.png}")


if __name__ == "__main__":
    main()
