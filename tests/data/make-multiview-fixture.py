#!/usr/bin/python3
"""Writes tests/data/multiview-fixture.txt: the multi-positive NT-Xent loss
(K views per sample, every other view of the sample a positive), dL/dz and
contrastive top-1/top-5 from PyTorch for small fixed z, the reference for
tests/core/test-ntxent.c (simclr_ntxent_forward_groups) and
tests/core/test-loss.c.

The loss is SupCon's L_out (Khosla et al. 2020, eq. 2) with the sample as the
label, written here independently of the C code: logits z z^T / tau of the
L2-normalised rows with the diagonal masked to -inf, log-softmax over each
row, and each anchor's loss the mean of -log p over its positives:
    loss_i = -(1/|P(i)|) sum_{p in P(i)} log softmax_{k != i}(s_ik)[p].
Accuracy: the anchor's most similar positive ranks among the non-positive
rows (top-k: fewer than k non-positives are more similar). Rows are
view-major: row v * n + j is view v of sample j. Evaluated in float64 so the
fixture's own rounding is far below the C test's float32 tolerance:

    /usr/bin/python3 tests/data/make-multiview-fixture.py

Output format, one record per case (whitespace-separated, '#' lines ignored):
    case NAME ROWS DIM TAU VIEWS
    z     ROWS*DIM numbers (row-major)
    loss  1 number
    top1  1 number
    top5  1 number
    dz    ROWS*DIM numbers (row-major)
"""
import os
import sys

import torch

from contrastive_ref import views_of, write_step


def case(out, name, z32, views, tau):
    rows, dim = z32.shape
    out.write(f"case {name} {rows} {dim} {tau!r} {views}\n")
    write_step(out, z32, views, tau, torch.zeros(0, dim, dtype=torch.float64))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "multiview-fixture.txt")
    g = torch.Generator().manual_seed(20261205)
    # Views of a sample correlated (noise around a base), so accuracy is
    # neither 0 nor 1; rows of odd count (3 x 5) included.
    b5 = torch.randn(5, 6, generator=g)
    b4 = torch.randn(4, 9, generator=g)
    b8 = torch.randn(8, 5, generator=g)
    z2 = views_of(b8, 2, 0.7, g)
    with open(path, "w") as out:
        out.write("# multi-positive NT-Xent reference values from PyTorch %s "
                  "(float64); made by tests/data/make-multiview-fixture.py\n"
                  % torch.__version__)
        case(out, "v3-n5-d6-tau0.5", views_of(b5, 3, 0.6, g), 3, 0.5)
        case(out, "v4-n4-d9-tau0.2", views_of(b4, 4, 0.8, g), 4, 0.2)
        case(out, "v6-n4-d9-tau0.1", views_of(b4, 6, 1.0, g), 6, 0.1)
        # Two views: must equal SimCLR's NT-Xent.
        case(out, "v2-n8-d5-tau0.5", z2, 2, 0.5)
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
