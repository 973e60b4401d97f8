#!/usr/bin/python3
"""live-retrieval.py: how well per-frame embeddings of a video retrieve
nearby frames (issue 13's usefulness measure).

For every frame t and each offset k, the candidates are all frames j with
|j - t| >= k (the frames closer in time than k are removed, so the task is
not to find the next frame, which any feature does); a hit at r means frame
t - k or t + k is among the r nearest candidates by cosine similarity.
Recall@1, recall@5 and the median rank of the nearer target are printed per
k, one line per embedding file, and optionally appended as JSON lines.

Usage: live-retrieval.py EMB.npy[:LABEL] ... [--offsets 5,10,20] [--json OUT]
                         [--png OUT.png] [--title TEXT]
The rows of EMB.npy are the frames in order (pipelines/embed-video.sh writes
them so). numpy only; --png (a bar chart of recall@1 and recall@5 per k and
embedding) needs matplotlib.
"""
import argparse
import json
import sys

import numpy as np


def evaluate(emb, k):
    n = len(emb)
    u = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    sim = u @ u.T
    idx = np.arange(n)
    hits1 = hits5 = 0
    ranks = []
    queries = 0
    for t in range(n):
        targets = [j for j in (t - k, t + k) if 0 <= j < n]
        if not targets:
            continue
        cand = np.abs(idx - t) >= k
        s = np.where(cand, sim[t], -np.inf)
        order = np.argsort(-s, kind="stable")
        # rank (0-based) of each target among the candidates
        pos = np.empty(n, dtype=np.int64)
        pos[order] = np.arange(n)
        r = min(pos[j] for j in targets)
        ranks.append(r)
        hits1 += r < 1
        hits5 += r < 5
        queries += 1
    return {"k": k, "queries": queries, "recall1": hits1 / queries,
            "recall5": hits5 / queries, "median_rank": float(np.median(ranks)) + 1}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", help="EMB.npy or EMB.npy:LABEL")
    ap.add_argument("--offsets", default="5,10,20")
    ap.add_argument("--json", help="append one JSON line per file and k")
    ap.add_argument("--png", help="bar chart of recall@1/@5 per k")
    ap.add_argument("--title", default="")
    args = ap.parse_args()
    offsets = [int(x) for x in args.offsets.split(",")]
    out = open(args.json, "a") if args.json else None
    results = []
    print("%-34s %6s %5s %9s %9s %11s" % ("embeddings", "frames", "k",
                                         "recall@1", "recall@5", "median rank"))
    for f in args.files:
        path, _, label = f.partition(":")
        emb = np.load(path).astype(np.float64)
        if emb.ndim != 2 or len(emb) < 2:
            sys.exit("%s: expected a (frames, D) array, got %s" % (path, emb.shape))
        for k in offsets:
            r = evaluate(emb, k)
            r["label"] = label or path
            r["file"] = path
            print("%-34s %6d %5d %8.1f%% %8.1f%% %11.1f" % (
                r["label"][:34], len(emb), k, 100 * r["recall1"],
                100 * r["recall5"], r["median_rank"]))
            results.append(r)
            if out:
                out.write(json.dumps(r) + "\n")
    if out:
        out.close()
    if args.png:
        plot(results, offsets, args.png, args.title)


def plot(results, offsets, png, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = []
    for r in results:
        if r["label"] not in labels:
            labels.append(r["label"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=False)
    width = 0.8 / len(labels)
    for ax, key, name in ((axes[0], "recall1", "recall@1"),
                          (axes[1], "recall5", "recall@5")):
        for i, lab in enumerate(labels):
            ys = [100 * next(r[key] for r in results
                             if r["label"] == lab and r["k"] == k)
                  for k in offsets]
            xs = [j + (i - (len(labels) - 1) / 2) * width
                  for j in range(len(offsets))]
            bars = ax.bar(xs, ys, width, label=lab)
            for b, y in zip(bars, ys):
                ax.text(b.get_x() + b.get_width() / 2, y + 0.5, "%.0f" % y,
                        ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(offsets)))
        ax.set_xticklabels(["k = %d" % k for k in offsets])
        ax.set_ylabel(name + " of frame t+-k (%)")
        ax.grid(axis="y", alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(title or "temporal retrieval: frame t+-k among frames >= k away")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print("wrote", png)


if __name__ == "__main__":
    main()
