#!/usr/bin/python3
"""Writes tests/data/ntxent-fixture.txt: NT-Xent loss, dL/dz and contrastive
top-1/top-5 from PyTorch for small fixed z, the reference for
tests/core/test-ntxent.c.

The loss is the peer's formulation (/work/shared/peer/torch_simclr.py nt_xent:
F.normalize, z z^T / tau, diagonal masked to -inf, cross-entropy with targets
i <-> i+N), evaluated in float64 so the fixture's own rounding is far below the
C test's float32 tolerance. Run with Debian's interpreter:

    /usr/bin/python3 tests/data/make-ntxent-fixture.py

Output format, one record per case (whitespace-separated, '#' lines ignored):
    case NAME ROWS DIM TAU
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


def nt_xent(z, tau=0.5):
    # Same steps as the peer's nt_xent.
    z = F.normalize(z, dim=1)
    n2 = z.shape[0]
    n = n2 // 2
    sim = torch.mm(z, z.t()) / tau
    eye = torch.eye(n2, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, float("-inf"))
    idx = torch.arange(n2, device=z.device)
    targets = torch.where(idx < n, idx + n, idx - n)
    return F.cross_entropy(sim, targets), sim, targets


def topk_acc(sim, targets, k):
    # The positive is among the k most similar OTHER rows (self is -inf).
    top = sim.topk(k, dim=1).indices
    return (top == targets[:, None]).any(dim=1).double().mean().item()


def case(out, name, z32, tau):
    # z is stored as float32 values so C and torch see the same inputs.
    z = z32.double().clone().requires_grad_(True)
    loss, sim, targets = nt_xent(z, tau)
    loss.backward()
    rows, dim = z.shape
    out.write(f"case {name} {rows} {dim} {tau!r}\n")
    out.write("z " + " ".join(f"{v:.9e}" for v in z32.flatten().tolist()) + "\n")
    out.write(f"loss {loss.item():.17e}\n")
    out.write(f"top1 {topk_acc(sim.detach(), targets, 1):.17e}\n")
    out.write(f"top5 {topk_acc(sim.detach(), targets, 5):.17e}\n")
    out.write("dz " + " ".join(f"{v:.17e}" for v in z.grad.flatten().tolist()) + "\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "ntxent-fixture.txt")
    g = torch.Generator().manual_seed(20260101)
    z8 = torch.randn(8, 5, generator=g, dtype=torch.float32)
    # Correlated views: positives close, so accuracy is not trivially 0.
    base = torch.randn(6, 7, generator=g, dtype=torch.float32)
    z12 = torch.cat([base + 0.6 * torch.randn(6, 7, generator=g),
                     base + 0.6 * torch.randn(6, 7, generator=g)]).float()
    with open(path, "w") as out:
        out.write("# NT-Xent reference values from PyTorch %s (float64); made by "
                  "tests/data/make-ntxent-fixture.py\n" % torch.__version__)
        case(out, "r8-d5-tau0.5", z8, 0.5)
        case(out, "r8-d5-tau0.1", z8, 0.1)
        case(out, "r12-d7-tau0.2", z12, 0.2)
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
