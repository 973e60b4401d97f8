#!/usr/bin/python3
"""plot-curve.py CURVE_CSV OUT_PNG: linear-eval accuracy against pretraining time.

Reads the CSV written by bench/recipe-fashion-mnist.sh (minutes, kind,
test_top1, test_top5, knn_top1; accuracies in percent) and draws top-1 of the
linear probe and of kNN against minutes of pretraining, with the baselines
(kinds 'raw' and 'random') and the PyTorch peer's figures as horizontal lines.
"""
import csv
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PEER = [(20, 82.6, "PyTorch peer, 20 min (tau 0.5)"),
        (45, 85.7, "PyTorch peer, 45 min (tau 0.2, crop 0.2)")]


def main():
    src, dst = sys.argv[1], sys.argv[2]
    rows = list(csv.DictReader(open(src)))
    curve = sorted((float(r["minutes"]), float(r["test_top1"]),
                    float(r["knn_top1"]) if r["knn_top1"] else None)
                   for r in rows if r["kind"] not in ("raw", "random"))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if curve:
        ax.plot([c[0] for c in curve], [c[1] for c in curve], "o-",
                label="gst-simclr, linear probe")
        knn = [(c[0], c[2]) for c in curve if c[2] is not None]
        if knn:
            ax.plot([k[0] for k in knn], [k[1] for k in knn], "s--",
                    label="gst-simclr, kNN (k 200)")
    for r in rows:
        if r["kind"] in ("raw", "random"):
            ax.axhline(float(r["test_top1"]), ls=":", color="gray")
            ax.text(0.5, float(r["test_top1"]) + 0.15,
                    {"raw": "raw pixels", "random": "random encoder"}[r["kind"]],
                    color="gray", fontsize=8)
    for m, acc, label in PEER:
        ax.plot([m], [acc], "x", color="red")
        ax.annotate(label, (m, acc), textcoords="offset points", xytext=(-10, -14),
                    fontsize=8, color="red")
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
