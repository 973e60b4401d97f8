#!/usr/bin/python3
"""test-mpi-pipeline.py: the whole training pipeline, 2 ranks of N/2 samples
against 1 rank of N samples (issue 6).

    simclrdatasetsrc ! simclraugment ! queue ! simclrencoder ! ntxentsink

A 16-image IDX data set (the first 16 Fashion-MNIST training images) makes
one step per epoch: one rank plays all 16 shuffled images with batch-size=16,
two ranks play shards of 8 (simclrdatasetsrc defaults shard-index/count to
rank/size) with batch-size=8, so every step trains on the same 16 samples
with the same augmented views (simclraugment draws by sample id and epoch).
20 steps of SGD at a tiny rate (base 1e-5 x 16/256): a ReLU input within
float noise of 0 flips between the two runs (their sums run in other
orders) and changes one row's share of a gradient by a few percent; with
Fashion-MNIST's flat black backgrounds this happens often, and from base
rate 1e-4 on the two runs drift apart chaotically after ~15 steps (the
1-rank run does the same against itself with weights perturbed by 1e-7;
see test-mpi-equivalence.c, LOCKSTEP=1). So the accumulated update is
checked through the optimiser velocity (sum of lr x gradients), whose
relative error does not shrink with the rate.

The noise floor is measured in the same run: the 1-rank job again under
two other kernel tables (floor_settings below), each of which rounds the
3x3 layers' forward differently from this run's table: every convolution
direct at this level (what simclr_cpu_kernels_other picks for the in-process
equivalence tests) and the other forward routing at this level (by default
Winograd F(4x4, 3x3) in the forward, so SIMCLR_WINOGRAD=f23; under f23 the
default; with every convolution direct, SIMCLR_CPU=generic and the default
routing; at the generic level, avx2 direct and avx2 default). The 2-rank job
may differ from the 1-rank job by at most max(TOL, FLOOR_FACTOR x floor),
TOL being the fixed tolerance below and the floor the larger deviation of
the two floor runs; a floor lifting a tolerance above FLOOR_CEILING x TOL
fails (the floor must never make a check vacuous). A level the CPU lacks
falls back to its best (core/cpu.c), and then a floor run may be the same
computation, floor 0.
Why: with fixed tolerances alone, which kernel table passed was an accident
of its rounding, and the floor must measure the kernels in use. F(4x4, 3x3)
in the forward (about 10x F(2x2, 3x3)'s rounding error) makes the free run
more sensitive to the order of its sums: more ReLU inputs within rounding
noise of 0 flip between the two runs. Measured on AMD EPYC Zen 5 (avx512,
default = F(4x4, 3x3) forward / SIMCLR_WINOGRAD=f23): 2 ranks vs 1: losses
1.1e-5 / 1.4e-6, weights and BN statistics 5.5e-6 / 2.6e-7, velocity 4.3% /
0.25%; the floor (1 rank at f23 / default, and direct): losses 4.2e-6 and
7.2e-6 / 4.2e-6 and 4.3e-6, weights 2.5e-6 and 1.9e-6 / 2.5e-6 and 7.0e-7,
velocity 0.85% and 0.96% / 0.85% and 0.41%. (The former floor, one run at
SIMCLR_CPU=generic, measured weights 9.4e-7 against the F(4x4, 3x3) run on an
earlier build, where 2 ranks were 4.8e-6 apart: a table whose forward rounds
unlike the one in use, and one chaotic sample.) The mutations this test must
catch are 10x or more above the tolerances (at both routings: a 1/K
gradient scale: losses 1.1e-3, weights 1.9e-4, velocity 51%; without SyncBN
0.23 / 0.064 / 178%; without the gradient sum 5.7e-3 / 1.1e-3 / 99%;
overlapping shards 0.56 / 0.95 / 192%). A 1% gradient scale (losses 2.8e-5,
weights 2.7e-6, velocity 2%) is within the noise of a free run and is left
to the lockstep tests (test-mpi-equivalence, test-multicrop). Checked:
  1. the four jobs exit 0 and write the metrics and the checkpoint (rank 0);
     no floor lifts a tolerance above FLOOR_CEILING x the fixed one
  2. the 20 global losses of the metrics CSV agree within
     max(TOL_LOSS, FLOOR_FACTOR x floor)
  3. the final weights and BN running statistics agree: max |a - b| /
     (1 + |b|) <= max(TOL_W, FLOOR_FACTOR x floor)
  4. the optimiser velocity agrees within max(TOL_V, FLOOR_FACTOR x floor)
     relative (2-norm); a missing gradient sum, SyncBN or a wrong loss scale
     is off by tens of percent
Usage: test-mpi-pipeline.py MPIRUN DATASET_DIR. TAP output; exit 77 without
the data set or numpy.
"""
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

TOL_LOSS = 1e-5
TOL_W = 2e-6
TOL_V = 5e-2
FLOOR_FACTOR = 4
FLOOR_CEILING = 20
LR = 1e-5
STEPS = 20
N = 16


def skip(why):
    print("1..0 # SKIP " + why)
    sys.exit(77)


try:
    import numpy as np
except ImportError:
    skip("numpy missing")

mpirun, data = sys.argv[1], sys.argv[2]
images = os.path.join(data, "train-images-idx3-ubyte.gz")
labels = os.path.join(data, "train-labels-idx1-ubyte.gz")
if not os.path.exists(images):
    skip(images + " missing")


def make_dataset(folder):
    """N images + labels as an uncompressed IDX pair."""
    with gzip.open(images) as f:
        magic, n, h, w = struct.unpack(">IIII", f.read(16))
        pix = f.read(N * h * w)
    with gzip.open(labels) as f:
        f.read(8)
        lab = f.read(N)
    with open(os.path.join(folder, "train-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", magic, N, h, w) + pix)
    with open(os.path.join(folder, "train-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 2049, N) + lab)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        buf = raw[8 + hlen + a:8 + hlen + b]
        dt = {"F32": np.float32, "I64": np.int64}.get(t["dtype"])
        if dt is None:
            continue
        out[name] = np.frombuffer(buf, dtype=dt).astype(np.float64)
    return out


def read_losses(path):
    with open(path) as f:
        rows = f.read().strip().split("\n")[1:]
    return [float(r.split(",")[2]) for r in rows]


def pipeline(folder, batch, ckpt, csv):
    return ["gst-launch-1.0", "-q",
            "simclrdatasetsrc", "location=" + folder, "shuffle=true", "seed=3",
            "epochs=%d" % STEPS, "!",
            "simclraugment", "size=12", "seed=3", "!",
            "queue", "!",
            "simclrencoder", "batch-size=%d" % batch, "width=0.25",
            "proj-dim=16", "proj-layers=3", "optimizer=sgd",
            # The scaling and temperature the tolerances were measured at
            # (not the elements' defaults, which are the recipe's).
            "learning-rate=%g" % LR, "lr-scaling=linear", "warmup-steps=0",
            "total-steps=100",
            "seed=5", "threads=1", "checkpoint-location=" + ckpt, "!",
            "ntxentsink", "temperature=0.5", "interval=1",
            "metrics-location=" + csv]


def floor_settings(environ):
    """The two kernel settings of the noise floor's 1-rank runs (see the
    header): each rounds the 3x3 layers' forward unlike this run's table."""
    level = environ.get("SIMCLR_CPU", "").lower()
    wino = environ.get("SIMCLR_WINOGRAD", "").lower()
    if level == "generic":
        # no Winograd at the generic level
        return [{"SIMCLR_CPU": "avx2", "SIMCLR_WINOGRAD": "0"},
                {"SIMCLR_CPU": "avx2", "SIMCLR_WINOGRAD": "f43"}]
    if wino in ("0", "off"):
        return [{"SIMCLR_CPU": "generic"}, {"SIMCLR_WINOGRAD": "f43"}]
    return [{"SIMCLR_WINOGRAD": "0"},
            {"SIMCLR_WINOGRAD": "f43" if wino == "f23" else "f23"}]


def describe(setting):
    return " ".join("%s=%s" % kv for kv in sorted(setting.items()))


failures = 0
tests = 0


def check(ok, what):
    global failures, tests
    tests += 1
    print("%s %d - %s" % ("ok" if ok else "not ok", tests, what))
    failures += 0 if ok else 1


with tempfile.TemporaryDirectory() as tmp:
    make_dataset(tmp)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    runs = {}
    floors = floor_settings(os.environ)
    jobs = [(1, None), (2, None)] + [(1, f) for f in floors]
    for j, (nr, setting) in enumerate(jobs):
        run_env = env
        if setting:
            run_env = dict(env, **setting)
        ckpt = os.path.join(tmp, "r%d.safetensors" % j)
        csv = os.path.join(tmp, "r%d.csv" % j)
        cmd = [mpirun, "--oversubscribe", "-np", str(nr)] + \
            pipeline(tmp, N // nr, ckpt, csv)
        t0 = time.time()
        p = subprocess.run(cmd, env=run_env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=180)
        secs = time.time() - t0
        out = p.stdout.decode(errors="replace")
        ok = p.returncode == 0 and os.path.exists(ckpt) \
            and os.path.exists(csv)
        if not ok:
            print("# " + "\n# ".join(out.strip().split("\n")[-30:]))
        check(ok, "%d rank(s) x batch %d%s: exit %d after %.1f s, checkpoint "
              "and metrics written" % (nr, N // nr, " at " + describe(setting)
                                       if setting else "",
                                       p.returncode, secs))
        if not ok:
            print("1..%d" % tests)
            sys.exit(1)
        runs[j] = (read_losses(csv), read_safetensors(ckpt))

    def deviation(run, ref, label):
        """(worst |loss diff|, worst weight/BN error, velocity error) of
        run against ref."""
        (l2, w2), (l1, w1) = run, ref
        lworst = 0.0 if len(l1) == len(l2) == STEPS else float("inf")
        for s, (a, b) in enumerate(zip(l2, l1)):
            lworst = max(lworst, abs(a - b))
            if label:
                print("#   step %2d: loss 1 rank %.7f  %s %.7f" % (s, b, label,
                                                                  a))
        worst, where = 0.0, ""
        vnum = vden = 0.0
        for name, b in w1.items():
            a = w2.get(name)
            if a is None or a.shape != b.shape:
                worst, where = float("inf"), name + " missing or reshaped"
                break
            if name.startswith("optim.velocity."):
                # the momentum buffer is the sum of lr x gradients: its
                # relative error is the error of the accumulated update
                vnum += float(np.sum((a - b) ** 2))
                vden += float(np.sum(b * b))
                continue
            d = np.abs(a - b) / (1 + np.abs(b))
            i = int(np.argmax(d))
            if d[i] > worst:
                worst = float(d[i])
                where = "%s[%d]: %.9g vs %.9g" % (name, i, a[i], b[i])
        vrel = (vnum / vden) ** 0.5 if vden > 0 else float("inf")
        if label:
            print("# %s: worst weight %s" % (label, where))
        return lworst, worst, vrel

    fl = fw = fv = 0.0
    for j in range(2, len(jobs)):
        l, w, v = deviation(runs[j], runs[0], "")
        print("# noise floor (1 rank at %s vs 1 rank): losses %.3g, weights "
              "and BN statistics %.3g, velocity %.3g"
              % (describe(jobs[j][1]), l, w, v))
        fl, fw, fv = max(fl, l), max(fw, w), max(fv, v)
    dl, dw, dv = deviation(runs[1], runs[0], "2 ranks")

    def tolerance(fixed, floor, what):
        t = max(fixed, FLOOR_FACTOR * floor)
        check(t <= FLOOR_CEILING * fixed, "%s: the floor %.3g lifts the "
              "tolerance to %.3g, at most %g x the fixed %g"
              % (what, floor, t, FLOOR_CEILING, fixed))
        return min(t, FLOOR_CEILING * fixed)

    tl = tolerance(TOL_LOSS, fl, "losses")
    tw = tolerance(TOL_W, fw, "weights")
    tv = tolerance(TOL_V, fv, "velocity")
    check(dl <= tl, "%d global losses agree within %.3g = max(%g, %g x floor) "
          "(max |diff| %.3g)" % (STEPS, tl, TOL_LOSS, FLOOR_FACTOR, dl))
    check(dw <= tw, "final weights and BN statistics agree within %.3g = "
          "max(%g, %g x floor) (max %.3g)" % (tw, TOL_W, FLOOR_FACTOR, dw))
    check(dv <= tv, "accumulated updates (optimiser velocity, all tensors) "
          "agree within %.3g = max(%g, %g x floor) relative (%.3g)"
          % (tv, TOL_V, FLOOR_FACTOR, dv))

print("1..%d" % tests)
sys.exit(1 if failures else 0)
