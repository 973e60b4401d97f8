"""The PyTorch side of the multi-positive NT-Xent fixtures, shared by
make-multiview-fixture.py and make-queue-fixture.py (their docstrings give
the loss, the accuracy and the output format). Float64 throughout.

Rows are view-major: row v * n + j is view v of sample j; every other view
of the sample is a positive. `queue` (Q, D) holds extra negatives used as
given (detached); an empty queue is the plain multi-positive loss.
"""
import torch
import torch.nn.functional as F


def loss(z, views, tau, queue):
    """Mean multi-positive loss; also the logits (rows, rows), the queue's
    logits (rows, Q), detached, and the positives mask."""
    rows = z.shape[0]
    n = rows // views
    u = F.normalize(z, dim=1)
    sim = u @ u.t() / tau
    eye = torch.eye(rows, dtype=torch.bool)
    sample = torch.arange(rows) % n
    pos = (sample[:, None] == sample[None, :]) & ~eye
    qsim = u @ queue.t() / tau          # (rows, Q); queue is detached
    logits = torch.cat([sim.masked_fill(eye, float("-inf")), qsim], dim=1)
    logp = F.log_softmax(logits, dim=1)[:, :rows]
    value = -(logp.masked_fill(~pos, 0.0).sum(1) / pos.sum(1)).mean()
    return value, sim.detach(), qsim.detach(), pos


def topk_acc(sim, qsim, pos, k):
    """Anchors whose most similar positive has fewer than k non-positive
    rows or queue rows more similar."""
    rows = sim.shape[0]
    eye = torch.eye(rows, dtype=torch.bool)
    best = sim.masked_fill(~pos, float("-inf")).max(1).values
    neg = ~pos & ~eye
    above = ((sim > best[:, None]) & neg).sum(1) + (qsim > best[:, None]).sum(1)
    return (above < k).double().mean().item()


def write_step(out, z32, views, tau, queue):
    """Writes the z / loss / top1 / top5 / dz lines of one step; returns z
    (float64, with its gradient)."""
    z = z32.double().clone().requires_grad_(True)
    value, sim, qsim, pos = loss(z, views, tau, queue)
    value.backward()
    out.write("z " + " ".join(f"{v:.9e}" for v in z32.flatten().tolist()) + "\n")
    out.write(f"loss {value.item():.17e}\n")
    out.write(f"top1 {topk_acc(sim, qsim, pos, 1):.17e}\n")
    out.write(f"top5 {topk_acc(sim, qsim, pos, 5):.17e}\n")
    out.write("dz " + " ".join(f"{v:.17e}" for v in z.grad.flatten().tolist()) + "\n")
    return z


def views_of(base, views, noise, g):
    """`views` noisy copies of `base` (n, D), view-major, float32."""
    return torch.cat([base + noise * torch.randn(base.shape, generator=g)
                      for _ in range(views)]).float()
