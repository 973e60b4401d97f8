#!/usr/bin/python3
"""Cross-check of the C model against PyTorch 1.13 / torchvision 0.14.

Usage: torch-crosscheck.py HELPER   (HELPER = build/tests/core/torch-crosscheck-helper)

Cases (CASES below), B = 8 views each: ResNet-18 width 0.25 with the CIFAR
stem and a 2-layer head, 3 channels 16x16 and 1 channel 12x12; ResNet-50
width 0.125 with the ImageNet stem (7x7/2 + max-pool, bottlenecks), 32x32;
ResNet-18 with the 3-layer SimCLR-v2 head (Linear-BN1d-ReLU x2 - Linear);
ResNet-18 width 0.25 with the stride-2 stem (conv1 3x3 stride 2, no
max-pool), 1 channel 16x16.

Forward direction: the C core writes a checkpoint, a batch, and its h, z,
  NT-Xent loss, every parameter gradient and the model after one LARS step.
  Here a torchvision ResNet (torchvision.models.resnet.ResNet with its
  BasicBlock / Bottleneck, built width-scaled, conv1 3x3 stride 1 and
  maxpool = Identity for the CIFAR stem, fc = Identity) plus a "head"
  Sequential loads that checkpoint with load_state_dict(strict=True), runs
  the same batch in train mode, NT-Xent (the peer's formula), backward and
  one step of the peer's LARS, and every quantity is compared, running
  statistics included.
Reverse direction: PyTorch writes a checkpoint (random weights and running
  statistics); the C core loads it and its eval outputs must match PyTorch's.

Why a subclass of torchvision's ResNet: torchvision's constructor fixes the
widths (64..512) and the 7x7 stem; the subclass only replaces __init__ (the
width-scaled channels, the stem, the head) and reuses torchvision's blocks,
_make_layer and forward, so the module names are torchvision's by
construction and strict loading checks our names and shapes.

The reference runs in float64 (the checkpoint's float32 values widened), so
the tolerances measure the C core's float32 error. Per tensor, with
e = max |C - ref| / max |ref|: h, z, loss, running statistics 1e-4;
gradients 1e-4; LARS update (p_new - p_old, from float32 weights, so
cancellation costs digits) 1e-3; eval outputs 1e-4 -- or, if larger, 4x
PyTorch's own float32 error on the same tensor (deep narrow nets lose digits
in any float32 implementation: ResNet-50 w0.125 on 8 views). Measured
(worst e, and worst ratio to torch float32's error):
  resnet18 p2 c3 16px: forward 2e-6, grad 6.5e-6 (x2.1), step 5e-5, eval 1.6e-7
  resnet18 p2 c1 12px: forward 1.7e-6, grad 6.3e-6 (x2.1), step 5e-5, eval 1.4e-7
  resnet50 imagenet p2 32px: forward 1.3e-4 (x1.7), grad 6.1e-4 (x1.4), eval 2e-7
  resnet18 p3 (BN1d head) 16px: forward 2.9e-6, grad 1.1e-5 (x1.3), eval 1.2e-7

A ReLU input within float32 rounding of 0 may take the other side in
float32 and change a whole channel's gradient: the script measures the
smallest |ReLU input| of the float64 forward and requires > 1e-5 (the seeds
in CASES satisfy it: 2.1e-5, 4.3e-5, 3.0e-5, 2.1e-5).

Multi-crop (issue 11): one SimclrTrainer step with 2 views of 12x12 and 2
of 6x6 per sample (the helper's "multicrop" mode) against ONE PyTorch module
run on both sizes (batch-norm statistics per forward, the running statistics
updated by each, num_batches_tracked counting both) and the multi-positive
NT-Xent over all rows: z, loss, every gradient, running statistics.
Measured: forward 5.9e-6, grad 2.6e-5 (x2.0 torch float32's), running 1.1e-6.

safetensors files are read and written here with json + struct + numpy (the
safetensors package is not installed). Exits 77 (skip) without torch.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
except ImportError as e:  # pragma: no cover
    print("SKIP: no torch/torchvision: %s" % e)
    sys.exit(77)

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}
TOL_FWD, TOL_GRAD, TOL_STEP, TOL_EVAL = 1e-4, 1e-4, 1e-3, 1e-4
MIN_MARGIN = 1e-5
# (in_channels, image size, seed): seeds chosen so no ReLU input lies within
# MIN_MARGIN of 0 (checked at run time).
CASES = (
    dict(arch="resnet18", stem="cifar", width=0.25, proj_layers=2, in_ch=3, size=16, seed=3),
    dict(arch="resnet18", stem="cifar", width=0.25, proj_layers=2, in_ch=1, size=12, seed=4),
    dict(arch="resnet50", stem="imagenet", width=0.125, proj_layers=2, in_ch=3, size=32, seed=9),
    dict(arch="resnet18", stem="cifar", width=0.25, proj_layers=3, in_ch=3, size=16, seed=3),
    dict(arch="resnet18", stem="stride2", width=0.25, proj_layers=2, in_ch=1, size=16, seed=4),
)
PROJ_DIM, TAU, LR, MOMENTUM, WD, ETA = 32, 0.5, 0.8, 0.9, 1e-4, 1e-3


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        a = np.frombuffer(blob[base + b:base + end], dtype=DTYPES[e["dtype"]])
        out[name] = a.reshape(e["shape"]).copy()
    return out, meta


def write_safetensors(path, tensors, meta):
    header, chunks, off = {"__metadata__": meta}, [], 0
    inv = {v: k for k, v in DTYPES.items()}
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        raw = a.tobytes()
        header[name] = {"dtype": inv[a.dtype.type], "shape": list(a.shape),
                        "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))


ARCHS = {"resnet18": (BasicBlock, [2, 2, 2, 2]), "resnet34": (BasicBlock, [3, 4, 6, 3]),
         "resnet50": (Bottleneck, [3, 4, 6, 3])}


class ScaledResNet(ResNet):
    """torchvision ResNet with width-scaled channels, the CIFAR or ImageNet
    stem and a projection head (2 layers, or 3 with BN1d as SimCLR v2)."""

    def __init__(self, arch, stem, width, in_ch, proj_layers, proj_hidden, proj_dim):
        nn.Module.__init__(self)
        block, layers = ARCHS[arch]
        c = [max(1, int(round(p * width))) for p in (64, 128, 256, 512)]
        self._norm_layer = nn.BatchNorm2d
        self.dilation, self.groups, self.base_width = 1, 1, 64
        self.inplanes = c[0]
        if stem == "cifar":
            self.conv1 = nn.Conv2d(in_ch, c[0], 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        elif stem == "stride2":
            self.conv1 = nn.Conv2d(in_ch, c[0], 3, 2, 1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_ch, c[0], 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(c[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, c[0], layers[0])
        self.layer2 = self._make_layer(block, c[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, c[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, c[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Identity()
        d = c[3] * block.expansion
        hid = proj_hidden or d
        if proj_layers == 2:
            self.head = nn.Sequential(nn.Linear(d, hid), nn.ReLU(inplace=True), nn.Linear(hid, proj_dim))
        else:
            self.head = nn.Sequential(nn.Linear(d, hid, bias=False), nn.BatchNorm1d(hid), nn.ReLU(inplace=True),
                                      nn.Linear(hid, hid, bias=False), nn.BatchNorm1d(hid), nn.ReLU(inplace=True),
                                      nn.Linear(hid, proj_dim))

    def forward_both(self, x):
        h = self.forward(x)  # torchvision's forward: ... avgpool, flatten, fc
        return h, self.head(h)


def nt_xent(z, tau):
    """The peer's NT-Xent (torch_simclr.py)."""
    z = F.normalize(z, dim=1)
    n2 = z.shape[0]
    sim = torch.mm(z, z.t()) / tau
    sim = sim.masked_fill(torch.eye(n2, dtype=torch.bool), float("-inf"))
    idx = torch.arange(n2)
    targets = torch.where(idx < n2 // 2, idx + n2 // 2, idx - n2 // 2)
    return F.cross_entropy(sim, targets)


@torch.no_grad()
def lars_step(model, lr):
    """The peer's LARS, first step (velocity 0): conv/linear weights (ndim > 1)
    get weight decay and the trust ratio, the rest plain momentum SGD."""
    for p in model.parameters():
        d = p.grad
        if p.ndim > 1:
            d = d.add(p, alpha=WD)
            wn, gn = torch.linalg.vector_norm(p), torch.linalg.vector_norm(d)
            one = torch.ones_like(wn)
            trust = torch.where(wn > 0, torch.where(gn > 0, ETA * wn / gn, one), one)
            d = d * (trust * lr)
        else:
            d = d * lr
        v = torch.zeros_like(p).mul_(MOMENTUM).add_(d)
        p.sub_(v)


def to_state_dict(tensors, prefix_filter=None):
    return {k: torch.from_numpy(v.copy()) for k, v in tensors.items()}


def rel_err(a, ref):
    a = np.asarray(a, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    scale = max(np.abs(ref).max(), 1e-12)
    return float(np.abs(a - ref).max() / scale)


class Checker:
    def __init__(self):
        self.failures = 0
        self.worst = {}
        self.ratio = {}

    def check(self, kind, name, ours, ref, torch32, tol):
        """Passes if the error is within @tol, or within 4x PyTorch's own
        float32 error on the same problem (deep, narrow, ill-conditioned
        nets lose digits in any float32 implementation)."""
        e = rel_err(ours, ref)
        e32 = rel_err(torch32, ref) if torch32 is not None else float("nan")
        self.worst[kind] = max(self.worst.get(kind, 0.0), e)
        self.ratio[kind] = max(self.ratio.get(kind, 0.0), e / max(e32, 1e-300) if e32 == e32 else 0.0)
        if e32 == e32:
            tol = max(tol, 4 * e32)
        if not e <= tol:
            self.failures += 1
            if self.failures <= 5 or os.environ.get("VERBOSE"):
                flat = np.abs(np.asarray(ours, np.float64) - np.asarray(ref, np.float64)).ravel()
                i = int(flat.argmax())
                print("MISMATCH %s %s: rel err %.3g > %.3g (torch float32: %.3g); worst element %d: "
                      "ours %.9g ref %.9g" % (kind, name, e, tol, e32, i, np.asarray(ours).ravel()[i],
                                              np.asarray(ref).ravel()[i]))
        return e, e32


def build(case, dtype):
    torch.manual_seed(0)
    m = ScaledResNet(case["arch"], case["stem"], case["width"], case["in_ch"], case["proj_layers"], 0, PROJ_DIM)
    return m.to(dtype)


def case_tag(case):
    return "%s-%s-w%g-p%d-c%d-%dpx" % (case["arch"], case["stem"], case["width"], case["proj_layers"],
                                        case["in_ch"], case["size"])


def relu_margin(m, x):
    """Smallest |input| of any ReLU (and of the residual sums it rectifies)
    in a float64 forward: a float32 forward can flip the sign of values
    closer to 0 than about 1e-6, and so a ReLU mask, which changes the
    gradient of a whole channel (not an error of the core)."""
    margin = [float("inf")]

    def pre(mod, inp):
        margin[0] = min(margin[0], inp[0].detach().abs().min().item())
    hooks = [mod.register_forward_pre_hook(pre) for mod in m.modules() if isinstance(mod, nn.ReLU)]
    m.forward_both(x)
    for hk in hooks:
        hk.remove()
    return margin[0]


def forward_direction(helper, tmp, case, ck):
    in_ch = case["in_ch"]
    subprocess.run([helper, "train", tmp, case["arch"], case["stem"], str(case["width"]),
                    str(case["proj_layers"]), str(in_ch), str(case["size"]), str(case["seed"])], check=True)
    init, meta = read_safetensors(os.path.join(tmp, "model.safetensors"))
    batch, _ = read_safetensors(os.path.join(tmp, "batch.safetensors"))
    out, _ = read_safetensors(os.path.join(tmp, "out.safetensors"))
    upd, _ = read_safetensors(os.path.join(tmp, "updated.safetensors"))
    assert meta["arch"] == case["arch"] and meta["stem"] == case["stem"], meta
    x_nhwc = batch["input"]
    x = torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2).copy())
    results = {}
    for dtype in (torch.float64, torch.float32):
        m = build(case, dtype)
        sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in to_state_dict(init).items()}
        m.load_state_dict(sd, strict=True)
        m.train()
        if dtype == torch.float64:
            # On a copy: the margin forward would move the running statistics.
            mc = build(case, dtype)
            mc.load_state_dict(sd, strict=True)
            margin = relu_margin(mc.train(), x.to(dtype))
        h, z = m.forward_both(x.to(dtype))
        loss = nt_xent(z, TAU)
        m.zero_grad()
        loss.backward()
        grads = {n: p.grad.detach().numpy().copy() for n, p in m.named_parameters()}
        before = {n: p.detach().numpy().copy() for n, p in m.named_parameters()}
        lars_step(m, LR)
        after = {k: v.detach().numpy().copy() for k, v in m.state_dict().items()}
        results[dtype] = dict(h=h.detach().numpy(), z=z.detach().numpy(), loss=loss.item(),
                              grads=grads, before=before, after=after)
    r64, r32 = results[torch.float64], results[torch.float32]
    tag = case_tag(case)
    print("%s: smallest |ReLU input| %.3g (needs > %g for a sign-stable comparison)" % (tag, margin, MIN_MARGIN))
    if margin < MIN_MARGIN:
        ck.failures += 1
        print("MISMATCH %s: test data too close to a ReLU kink; pick another seed" % tag)
    ck.check("forward", tag + " h", out["h"], r64["h"], r32["h"], TOL_FWD)
    ck.check("forward", tag + " z", out["z"], r64["z"], r32["z"], TOL_FWD)
    ck.check("forward", tag + " loss", out["loss"], r64["loss"], r32["loss"], TOL_FWD)
    for n, g in r64["grads"].items():
        ck.check("grad", tag + " " + n, out["grad." + n], g, r32["grads"][n], TOL_GRAD)
    for n, p0 in r64["before"].items():
        ck.check("step", tag + " " + n, upd[n].astype(np.float64) - init[n], r64["after"][n] - p0,
                 r32["after"][n] - r32["before"][n], TOL_STEP)
    for n, v in r64["after"].items():
        if n.endswith("running_mean") or n.endswith("running_var"):
            ck.check("running", tag + " " + n, upd[n], v, r32["after"][n], TOL_FWD)
        if n.endswith("num_batches_tracked") and int(upd[n]) != int(v):
            ck.failures += 1
            print("MISMATCH %s %s: %d vs %d" % (tag, n, int(upd[n]), int(v)))
    print("%s: loss ours %.9f torch64 %.9f torch32 %.9f" % (tag, float(out["loss"]), r64["loss"], r32["loss"]))


def reverse_direction(helper, tmp, case, ck):
    """PyTorch writes, C loads: random weights and running statistics."""
    m = build(case, torch.float32)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for n, b in m.named_buffers():
            if n.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif n.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
            elif n.endswith("num_batches_tracked"):
                b.fill_(17)
        for n, p in m.named_parameters():
            if p.ndim == 1:
                p.copy_((1.0 if n.endswith("weight") else 0.0) + 0.2 * torch.randn(p.shape, generator=g))
    sd = {k: v.numpy() for k, v in m.state_dict().items()}
    meta = {"arch": case["arch"], "width": str(case["width"]), "stem": case["stem"],
            "in_channels": str(case["in_ch"]), "image_size": str(case["size"]),
            "proj_layers": str(case["proj_layers"]), "proj_hidden": "0", "proj_dim": str(PROJ_DIM)}
    write_safetensors(os.path.join(tmp, "torch.safetensors"), sd, meta)
    subprocess.run([helper, "eval", tmp], check=True)
    ev, _ = read_safetensors(os.path.join(tmp, "eval.safetensors"))
    batch, _ = read_safetensors(os.path.join(tmp, "batch.safetensors"))
    x = torch.from_numpy(batch["input"].transpose(0, 3, 1, 2).copy())
    m64 = m.to(torch.float64).eval()
    m32 = build(case, torch.float32)
    m32.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    m32.eval()
    with torch.no_grad():
        h64, z64 = m64.forward_both(x.to(torch.float64))
        h32, z32 = m32.forward_both(x)
    tag = "eval " + case_tag(case)
    ck.check("eval", tag + " h", ev["h"], h64.numpy(), h32.numpy(), TOL_EVAL)
    ck.check("eval", tag + " z", ev["z"], z64.numpy(), z32.numpy(), TOL_EVAL)


MULTICROP = dict(arch="resnet18", stem="cifar", width=0.25, proj_layers=3, in_ch=1, size=12, seed=4)
MC_VIEWS = 4


def multi_positive(z, tau, views):
    """The multi-positive NT-Xent of SimclrLoss (loss.h): rows view-major,
    an anchor's positives are the other views of its sample, the softmax
    over every other row; an anchor's loss averages over its positives."""
    z = F.normalize(z, dim=1)
    rows = z.shape[0]
    n = rows // views
    sim = torch.mm(z, z.t()) / tau
    eye = torch.eye(rows, dtype=torch.bool)
    logp = torch.log_softmax(sim.masked_fill(eye, float("-inf")), dim=1)
    idx = torch.arange(rows)
    pos = (idx[:, None] % n == idx[None, :] % n) & ~eye
    return -(logp.masked_fill(~pos, 0.0).sum(1) / (views - 1)).mean()


def multicrop_direction(helper, tmp, ck):
    """One multi-crop step: 2 views at 12x12 and 2 at 6x6 through ONE
    module (two forwards, the BN statistics per forward, the running
    statistics updated by each), the multi-positive loss over all rows."""
    case = MULTICROP
    subprocess.run([helper, "multicrop", tmp, str(case["seed"])], check=True)
    init, _ = read_safetensors(os.path.join(tmp, "model.safetensors"))
    batch, _ = read_safetensors(os.path.join(tmp, "batch.safetensors"))
    out, _ = read_safetensors(os.path.join(tmp, "out.safetensors"))
    upd, _ = read_safetensors(os.path.join(tmp, "updated.safetensors"))
    xf = torch.from_numpy(batch["full"].transpose(0, 3, 1, 2).copy())
    xs = torch.from_numpy(batch["small"].transpose(0, 3, 1, 2).copy())
    res = {}
    for dtype in (torch.float64, torch.float32):
        m = build(case, dtype)
        sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in to_state_dict(init).items()}
        m.load_state_dict(sd, strict=True)
        m.train()
        with torch.no_grad():   # the helper's forward before its step
            m.forward_both(xf.to(dtype))
            m.forward_both(xs.to(dtype))
        _, zf = m.forward_both(xf.to(dtype))
        _, zs = m.forward_both(xs.to(dtype))
        z = torch.cat([zf, zs])
        loss = multi_positive(z, TAU, MC_VIEWS)
        m.zero_grad()
        loss.backward()
        res[dtype] = dict(z=z.detach().numpy(), loss=loss.item(),
                          grads={n: p.grad.detach().numpy().copy() for n, p in m.named_parameters()},
                          state={k: v.detach().numpy().copy() for k, v in m.state_dict().items()})
    r64, r32 = res[torch.float64], res[torch.float32]
    tag = "multicrop 2x12+2x6px"
    ck.check("forward", tag + " z", out["z"], r64["z"], r32["z"], TOL_FWD)
    ck.check("forward", tag + " loss", out["loss"], r64["loss"], r32["loss"], TOL_FWD)
    for n, g in r64["grads"].items():
        ck.check("grad", tag + " " + n, out["grad." + n], g, r32["grads"][n], TOL_GRAD)
    for n, v in r64["state"].items():
        if n.endswith("running_mean") or n.endswith("running_var"):
            ck.check("running", tag + " " + n, upd[n], v, r32["state"][n], TOL_FWD)
        if n.endswith("num_batches_tracked") and int(upd[n]) != int(v):
            ck.failures += 1
            print("MISMATCH %s %s: %d vs %d" % (tag, n, int(upd[n]), int(v)))
    print("%s: loss ours %.9f torch64 %.9f torch32 %.9f" % (tag, float(out["loss"]), r64["loss"], r32["loss"]))


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    helper = sys.argv[1]
    torch.set_num_threads(1)
    ck = Checker()
    with tempfile.TemporaryDirectory(prefix="torch-crosscheck-") as tmp:
        for case in CASES:
            forward_direction(helper, tmp, case, ck)
            reverse_direction(helper, tmp, case, ck)
        multicrop_direction(helper, tmp, ck)
    for kind, e in sorted(ck.worst.items()):
        print("worst relative error %-8s %.3g (worst ratio to torch float32's error %.3g)" % (kind, e, ck.ratio[kind]))
    print("%s: %d mismatches" % ("FAIL" if ck.failures else "PASS", ck.failures))
    return 1 if ck.failures else 0


if __name__ == "__main__":
    sys.exit(main())
