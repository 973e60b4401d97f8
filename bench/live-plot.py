#!/usr/bin/python3
"""live-plot.py: draws and summarises a run recorded by bench/live-monitor
(issue 13): resident memory against time with the bound it stayed in, the
lateness of every captured frame (a stall shows as a spike), and the
training progress and frame counts from the simclr-train messages.

Usage: live-plot.py DIR [--warmup SECONDS] [--png FILE] [--title TEXT]
Reads DIR/rss.csv, DIR/arrivals.csv, DIR/messages.csv; writes DIR/live.png
(or --png) and prints a summary, also as DIR/summary.json.
"""
import argparse
import csv
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def fields(text):
    out = {}
    for kv in text.split(";"):
        if "=" in kv:
            k, v = kv.split("=", 1)
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--warmup", type=float, default=60.0,
                    help="seconds excluded from the memory bound (60)")
    ap.add_argument("--png")
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    d = a.dir

    rss = [(float(r["t_s"]), int(r["rss_bytes"]) / 2**20, r["loadavg"])
           for r in csv.DictReader(open(os.path.join(d, "rss.csv")))]
    arr = [(float(r["running_s"]), float(r["late_s"]), float(r["gap_s"]))
           for r in csv.DictReader(open(os.path.join(d, "arrivals.csv")))]
    train, ckpt = [], []
    for r in csv.DictReader(open(os.path.join(d, "messages.csv"))):
        if r["name"] == "simclr-train":
            f = fields(r["fields"])
            f["t"] = float(r["t_s"])
            train.append(f)
        elif r["name"] == "simclr-checkpoint":
            ckpt.append(float(r["t_s"]))

    steady = [m for t, m, _ in rss if t >= a.warmup] or [m for _, m, _ in rss]
    lo, hi = min(steady), max(steady)
    lates = [x[1] for x in arr]
    gaps = [x[2] for x in arr]
    summary = {
        "seconds": rss[-1][0] if rss else 0,
        "rss_samples": len(rss),
        "rss_after_warmup_mib": [round(lo, 1), round(hi, 1)],
        "rss_spread_mib": round(hi - lo, 1),
        "rss_max_mib": round(max(m for _, m, _ in rss), 1) if rss else 0,
        "frames_captured": len(arr),
        "max_gap_s": round(max(gaps), 3) if gaps else None,
        "max_late_s": round(max(lates), 3) if lates else None,
        "frames_late_over_100ms": sum(1 for x in lates if x > 0.1),
        "loadavg_start": rss[0][2] if rss else "",
        "loadavg_end": rss[-1][2] if rss else "",
        "checkpoints": len(ckpt),
    }
    if train:
        last = train[-1]
        first = train[0]
        dt = last["t"] - first["t"]
        summary["steps"] = int(last.get("step", 0)) + 1
        summary["steps_per_s"] = round((last["step"] - first["step"]) / dt, 3) if dt > 0 else None
        for k in ("frames-seen", "frames-buffered", "frames-trained",
                  "frames-dropped", "frames-dropped-capture", "replay-held",
                  "replay-bytes"):
            if k in last:
                summary[k] = int(last[k])
        summary["last_loss"] = last.get("loss")

    fig, ax = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    ax[0].plot([t for t, _, _ in rss], [m for _, m, _ in rss], "o-", ms=3)
    ax[0].axhspan(lo, hi, color="tab:green", alpha=0.15,
                  label="after %.0f s: %.1f-%.1f MiB" % (a.warmup, lo, hi))
    ax[0].set_ylabel("resident memory (MiB)")
    ax[0].set_ylim(0, max(hi * 1.3, 1))
    ax[0].legend(loc="lower right")
    ax[1].plot([x[0] for x in arr], lates, ",", color="tab:red")
    ax[1].set_ylabel("frame lateness at capture (s)")
    ax[1].axhline(0.1, color="gray", lw=0.5, ls="--")
    if train:
        ts = [f["t"] for f in train]
        ax[2].plot(ts, [f.get("step", 0) for f in train], label="steps")
        for k in ("frames-seen", "frames-trained", "frames-dropped"):
            if k in train[-1]:
                ax[2].plot(ts, [f.get(k, 0) for f in train], label=k)
        ax[2].legend(loc="upper left")
    ax[2].set_ylabel("count")
    ax[2].set_xlabel("seconds (memory, messages: since start; frames: running time)")
    fig.suptitle(a.title or d)
    fig.tight_layout()
    png = a.png or os.path.join(d, "live.png")
    fig.savefig(png, dpi=100)
    summary["png"] = png
    json.dump(summary, open(os.path.join(d, "summary.json"), "w"), indent=1)
    for k, v in summary.items():
        print("%-24s %s" % (k, v))


if __name__ == "__main__":
    main()
