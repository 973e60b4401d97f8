#!/usr/bin/python3
"""embed_torch.py: PyTorch inference frames/s of the same encoder as a
gst-simclr checkpoint: torchvision's ResNet with our widths and stem (the
ScaledResNet of tests/core/torch-crosscheck.py), the checkpoint loaded with
load_state_dict(strict=True), eval mode, no_grad, h for batches of uint8
frames scaled to [0, 1] (as simclrencoder mode=embed). Prints one RESULT line
per layout (NCHW, channels_last): min / median / max frames/s of --repeat
runs. Use /usr/bin/python3 (Debian's torch).
"""
import argparse
import importlib.util
import os
import sys
import time

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "crosscheck", os.path.join(here, "..", "..", "tests", "core", "torch-crosscheck.py"))
cc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--frames", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tensors, meta = cc.read_safetensors(a.checkpoint)
    size, ch = int(meta.get("image_size", 32)), int(meta.get("in_channels", 3))
    m = cc.ScaledResNet(meta["arch"], meta.get("stem", "cifar"), float(meta.get("width", 1)), ch,
                        int(meta.get("proj_layers", 2)), int(meta.get("proj_hidden", 0)),
                        int(meta.get("proj_dim", 128)))
    sd = {k: torch.from_numpy(v.copy()) for k, v in tensors.items() if not k.startswith("optim.")}
    m.load_state_dict(sd, strict=True)
    m.eval()
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (a.frames, size, size, ch), dtype=np.uint8))
    for layout in ("nchw", "channels_last"):
        mm = m.to(memory_format=torch.channels_last) if layout == "channels_last" else m
        rates = []
        with torch.no_grad():
            mm(frames[: a.batch].permute(0, 3, 1, 2).float() / 255)  # warm-up
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                for i in range(0, a.frames, a.batch):
                    x = frames[i:i + a.batch].permute(0, 3, 1, 2).float().div_(255)
                    if layout == "channels_last":
                        x = x.contiguous(memory_format=torch.channels_last)
                    else:
                        x = x.contiguous()
                    mm(x)
                rates.append(a.frames / (time.perf_counter() - t0))
        rates.sort()
        print("RESULT pytorch-%s %dx%dx%d frames/s %.0f / %.0f / %.0f" % (
            layout, size, size, ch, rates[0], rates[len(rates) // 2], rates[-1]), flush=True)


if __name__ == "__main__":
    main()
