#!/usr/bin/python3
"""compare-faiss.py: FAISS's exact inner-product index (IndexFlatIP on unit
vectors = exact cosine) on the same work as bench-index: random Gaussian
vectors, normalised, top-k of a batch of queries, queries/s (min / median /
max of --repeat runs). With --check DIR it loads the database and queries
bench-index dumped and reports how many of bench-index's top-k rows FAISS
returns too (ties aside, all).

Needs Debian's python3-faiss and python3-numpy; use /usr/bin/python3.
"""
import argparse
import os
import sys
import time

import numpy as np

try:
    import faiss
except ImportError:
    print("compare-faiss.py: python3-faiss is not installed (apt-get install python3-faiss)")
    sys.exit(77)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--check", default=None)
    a = ap.parse_args()
    faiss.omp_set_num_threads(a.threads)
    rng = np.random.default_rng(1)
    for n in [int(s) for s in a.sizes.split(",")]:
        x = rng.standard_normal((n, a.dim), dtype=np.float32)
        q = rng.standard_normal((a.queries, a.dim), dtype=np.float32)
        faiss.normalize_L2(x)
        index = faiss.IndexFlatIP(a.dim)
        index.add(x)
        del x
        qps = []
        for _ in range(a.repeat):
            qq = q.copy()
            t0 = time.perf_counter()
            faiss.normalize_L2(qq)  # our search normalises its queries too
            index.search(qq, a.k)
            qps.append(a.queries / (time.perf_counter() - t0))
        qps.sort()
        print("RESULT faiss-IndexFlatIP n=%d queries/s %.0f / %.0f / %.0f"
              % (n, qps[0], qps[len(qps) // 2], qps[-1]), flush=True)
        if a.check and os.path.exists(os.path.join(a.check, "rows-%d.txt" % n)):
            db = np.load(os.path.join(a.check, "db-%d.npy" % n))
            qs = np.load(os.path.join(a.check, "queries-%d.npy" % n))
            ours = np.loadtxt(os.path.join(a.check, "rows-%d.txt" % n), dtype=np.int64).reshape(len(qs), -1)
            ix = faiss.IndexFlatIP(db.shape[1])
            ix.add(db)
            _, theirs = ix.search(qs, ours.shape[1])
            same = np.mean([len(set(o) & set(t)) / len(o) for o, t in zip(ours, theirs)])
            print("CHECK n=%d: %.4f of our top-%d rows are FAISS's too (same data)"
                  % (n, same, ours.shape[1]))


if __name__ == "__main__":
    main()
