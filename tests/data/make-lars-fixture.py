#!/usr/bin/python3
"""Writes tests/data/lars-fixture.txt: five LARS steps in PyTorch over three
parameter tensors, the reference for tests/core/test-optim.c.

The optimiser is the peer's LARS class (/work/shared/peer/torch_simclr.py,
SimCLR's TF LARS): adapt groups get weight decay and the trust ratio
eta ||p|| / ||g + wd p|| (1 if a norm is 0), the others plain momentum
without decay; v = m v + lr * trust * d; p -= v. Computed in float64 so the
fixture's rounding is far below the C test's float32 tolerance. Run with
Debian's interpreter:

    /usr/bin/python3 tests/data/make-lars-fixture.py

Format (whitespace-separated, '#' lines ignored):
    hyper MOMENTUM WEIGHT_DECAY ETA
    groups G, then G lines: group OFFSET NUMEL ADAPT
    p0 NUMEL numbers (all groups, back to back)
    steps S, then per step: lr LR grad NUMEL numbers
    p NUMEL numbers (after the last step)
    v NUMEL numbers
"""
import os
import sys

import torch


class LARS(torch.optim.Optimizer):
    """The peer's LARS, unchanged in substance."""

    def __init__(self, groups, lr, momentum=0.9, weight_decay=1e-6, eta=1e-3):
        super().__init__(groups, dict(lr=lr, momentum=momentum,
                                      weight_decay=weight_decay, eta=eta, lars=True))

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            lr, m, wd, eta, adapt = g["lr"], g["momentum"], g["weight_decay"], g["eta"], g["lars"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if adapt:
                    if wd != 0:
                        d = d.add(p, alpha=wd)
                    wn = torch.linalg.vector_norm(p)
                    gn = torch.linalg.vector_norm(d)
                    one = torch.ones_like(wn)
                    trust = torch.where(wn > 0, torch.where(gn > 0, eta * wn / gn, one), one)
                    d = d * (trust * lr)
                else:
                    d = d * lr
                st = self.state[p]
                if "v" not in st:
                    st["v"] = torch.zeros_like(p)
                v = st["v"]
                v.mul_(m).add_(d)
                p.sub_(v)


def fmt(t):
    return " ".join(f"{v:.17e}" for v in t.flatten().tolist())


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "lars-fixture.txt")
    g = torch.Generator().manual_seed(7)
    m, wd, eta = 0.9, 1e-2, 1e-3
    # A conv weight (adapt), its batch-norm scale (plain), a linear weight
    # (adapt). Values are rounded to float32 so C starts from the same ones.
    shapes = [((4, 3, 3, 2), True), ((4,), False), ((5, 6), True)]
    params = [torch.randn(s, generator=g).float().double().requires_grad_(True)
              for s, _ in shapes]
    p0 = torch.cat([p.detach().flatten() for p in params])
    opt = LARS([dict(params=[params[0], params[2]], lars=True),
                dict(params=[params[1]], lars=False, weight_decay=0.0)],
               lr=0.0, momentum=m, weight_decay=wd, eta=eta)
    lrs = [0.06, 0.12, 0.18, 0.3, 0.25]
    steps = []
    for lr in lrs:
        for grp in opt.param_groups:
            grp["lr"] = lr
        for p in params:
            p.grad = (0.1 * torch.randn(p.shape, generator=g)).float().double()
        steps.append((lr, torch.cat([p.grad.flatten() for p in params])))
        opt.step()
    with open(path, "w") as out:
        out.write("# LARS reference from PyTorch %s (float64); made by "
                  "tests/data/make-lars-fixture.py\n" % torch.__version__)
        out.write(f"hyper {m!r} {wd!r} {eta!r}\n")
        out.write(f"groups {len(shapes)}\n")
        off = 0
        for (s, adapt), p in zip(shapes, params):
            out.write(f"group {off} {p.numel()} {int(adapt)}\n")
            off += p.numel()
        out.write("p0 " + fmt(p0) + "\n")
        out.write(f"steps {len(steps)}\n")
        for lr, grad in steps:
            out.write(f"lr {lr!r} grad " + fmt(grad) + "\n")
        out.write("p " + fmt(torch.cat([p.detach().flatten() for p in params])) + "\n")
        out.write("v " + fmt(torch.cat([opt.state[p]["v"].flatten() for p in params])) + "\n")
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
