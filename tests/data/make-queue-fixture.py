#!/usr/bin/python3
"""Writes tests/data/queue-fixture.txt: NT-Xent with a queue of negatives
over a few consecutive steps, from PyTorch, the reference for
tests/core/test-loss-queue.c (SimclrLoss with queue_size > 0).

Written here independently of the C code. Each step t has rows z_t (R, D),
view-major (row v * n + j is view v of sample j; every other view of the
sample is a positive, as tests/data/make-multiview-fixture.py). The queue
holds the L2-normalised rows of the earlier steps, each step's rows appended
in their order, and keeps the last QUEUE of them; they are extra negatives
of every anchor and constants (detached):
    loss_i = -(1/|P(i)|) sum_{p in P(i)} log softmax(logits_i)[p],
    logits_i = [u_i.u_k / tau for k != i] ++ [u_i.m_q / tau for every q].
Accuracy: the anchor's most similar positive ranks among the non-positive
rows and the queue (top-k: fewer than k of them are more similar). float64:

    /usr/bin/python3 tests/data/make-queue-fixture.py

Output format (whitespace-separated, '#' lines ignored), per case:
    case NAME ROWS DIM TAU VIEWS QUEUE STEPS
then per step:
    z     ROWS*DIM numbers (row-major)
    loss  1 number
    top1  1 number
    top5  1 number
    dz    ROWS*DIM numbers (row-major)
"""
import os
import sys

import torch
import torch.nn.functional as F

from contrastive_ref import views_of, write_step


def case(out, name, zs, views, tau, qsize):
    rows, dim = zs[0].shape
    out.write(f"case {name} {rows} {dim} {tau!r} {views} {qsize} {len(zs)}\n")
    kept = torch.zeros(0, dim, dtype=torch.float64)
    for z32 in zs:
        z = write_step(out, z32, views, tau, kept)
        kept = torch.cat([kept, F.normalize(z.detach(), dim=1)])[-qsize:]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "queue-fixture.txt")
    g = torch.Generator().manual_seed(20261205)
    with open(path, "w") as out:
        out.write("# NT-Xent with a queue of negatives, reference values from "
                  "PyTorch %s (float64); made by "
                  "tests/data/make-queue-fixture.py\n" % torch.__version__)
        # Queue 10 over steps of 8 rows: the third and fourth steps evict
        # part of a step.
        zs = [views_of(torch.randn(4, 5, generator=g), 2, 0.6, g)
              for _ in range(4)]
        case(out, "v2-n4-d5-tau0.2-q10", zs, 2, 0.2, 10)
        # Three views, a queue larger than two steps' rows.
        zs = [views_of(torch.randn(3, 6, generator=g), 3, 0.7, g)
              for _ in range(3)]
        case(out, "v3-n3-d6-tau0.5-q20", zs, 3, 0.5, 20)
        # A queue smaller than one step: only the last 5 rows stay.
        zs = [views_of(torch.randn(6, 4, generator=g), 2, 0.8, g)
              for _ in range(3)]
        case(out, "v2-n6-d4-tau0.1-q5", zs, 2, 0.1, 5)
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
