#!/usr/bin/python3
"""score.py: recall@1 and recall@5 of a near-duplicate search.

    score.py SEARCH.csv EDITS.csv [--label NAME] [--json FILE]

SEARCH.csv is simclr-search's output for the queries of make-set.py against
an index of the originals; a query finds its original when the match's file
name equals the query's (both NNN-name.jpg). Prints one line per split:
all queries, flipped / not flipped, heavy crops (under 60 % of the area) /
light crops, photos / video frames.
"""
import argparse
import csv
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("search")
    ap.add_argument("edits")
    ap.add_argument("--label", default="")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    edits = {r["name"]: r for r in csv.DictReader(open(a.edits))}
    ranks = {}
    for r in csv.DictReader(open(a.search)):
        q = os.path.basename(r["query"])
        ranks.setdefault(q, None)
        if os.path.basename(r["name"]) == q and ranks[q] is None:
            ranks[q] = int(r["rank"])
    missing = set(edits) - set(ranks)
    if missing:
        sys.exit("score.py: %d queries have no result (e.g. %s)" % (len(missing), sorted(missing)[0]))

    def recall(names):
        names = list(names)
        if not names:
            return None, None, 0
        r1 = sum(1 for n in names if ranks[n] == 1) / len(names)
        r5 = sum(1 for n in names if ranks[n] is not None and ranks[n] <= 5) / len(names)
        return r1, r5, len(names)

    splits = [
        ("all", edits),
        ("flipped", [n for n in edits if edits[n]["flip"] == "1"]),
        ("not flipped", [n for n in edits if edits[n]["flip"] == "0"]),
        ("crop < 60 %", [n for n in edits if float(edits[n]["crop_area"]) < 0.6]),
        ("crop >= 60 %", [n for n in edits if float(edits[n]["crop_area"]) >= 0.6]),
        ("photos", [n for n in edits if "-vtest-" not in n]),
        ("video frames", [n for n in edits if "-vtest-" in n]),
    ]
    out = {"label": a.label}
    for name, names in splits:
        r1, r5, n = recall(names)
        out[name] = {"recall@1": r1, "recall@5": r5, "n": n}
        if r1 is not None:
            print("%-28s %-13s n %3d  recall@1 %5.1f %%  recall@5 %5.1f %%"
                  % (a.label, name, n, 100 * r1, 100 * r5))
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
