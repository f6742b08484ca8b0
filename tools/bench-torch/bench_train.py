"""PyTorch (CPU) baseline of `lightsnn bench train`: the same single-path network and training
step, timed in images per second.

The model follows lightsnn's semantics (docs/design.md, 'The cell' and 'Training'):
- LIF: V = 0.25 V + 0.75 X, fire where V >= th, hard reset to 0 with the reset detached, ATan
  surrogate (alpha 2): dS/dV = 1 / (1 + (pi V')^2) at V' = V - th; th = 1 except for the
  thresholded conv ops (conv3@0.5: 0.5, conv3@1.5: 1.5);
- one LIF layer per cell node and threshold, shared by every conv op of that threshold reading
  the node; conv ops are LIF -> conv (no bias) -> BatchNorm; skip, avgpool 3x3 and maxpool 3x3
  edges read the value;
- the backward cell (12 edges): back states B0..B2 carry this timestep's node values into the
  next one; the forward cell (6 edges, the SpikeNAS-Bench network) has none;
- skeleton: stem conv3 + BN (once, static input) -> cell 1 -> BN -> LIF -> conv3 + BN ->
  Pool2 -> cell 2 -> BN -> LIF -> Pool(2) -> Dropout(0.5, one mask per sequence) ->
  Linear(no bias) -> LIF -> Linear -> voting; the pools are max pools, average pools for the
  SpikeNAS-Bench network; BatchNorm in train mode, per timestep;
- loss: cross-entropy on the mean over T of the voted outputs; SGD momentum 0.9, weight
  decay 5e-4, lr 0.1.

Networks: the demo configuration (CIFAR-10's 256/512 channels at width 1/32: C1/C2 8/16,
H 1024, V 10, backward cell) or, with --preset spikenas-bench, SpikeNAS-Bench's (128/256 at
--width, default 1/16: C1/C2 8/16; H 1024, V 10: 100 outputs voted to 10; forward cell over
zero, skip, conv3@0.5, conv3, conv3@1.5; average pools), as `lightsnn bench train`.

Input: the real CIFAR-10 sample of the repository (data/cifar10-sample), normalised, random
crop 32 with padding 4 and horizontal flip per sample, as `lightsnn bench train`.

Prints one line `torch: X images/s ...` (and with --json, a JSON object on the last line).
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

EDGES = [(0, 1), (0, 2), (0, 3), (1, 0), (1, 2), (1, 3), (2, 0), (2, 1), (2, 3), (3, 0), (3, 1), (3, 2)]
# The forward cell's edges (to, from): 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2.
FORWARD_EDGES = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]
# Conv ops: kernel size and LIF threshold.
CONVS = {"conv1": (1, 1.0), "conv3": (3, 1.0), "conv3@0.5": (3, 0.5), "conv3@1.5": (3, 1.5)}
OPS = {"zero", "skip", "avgpool", "maxpool"} | set(CONVS)
DEMO_GENOTYPE = "conv3,conv3,conv3,skip,zero,zero,skip,conv3,conv3,skip,zero,conv3"
# SpikeNAS-Bench's best cell (id 12617), `lightsnn bench train --preset spikenas-bench`'s default.
PRESET_GENOTYPE = "conv3@0.5,conv3,zero,conv3@1.5,zero,conv3@1.5"
MEAN = (0.4913, 0.4821, 0.4465)
STD = (0.2470, 0.2434, 0.2615)


class ATanSpike(torch.autograd.Function):
    """Heaviside forward, ATan surrogate backward (alpha 2)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        alpha = 2.0
        return g * (alpha / 2) / (1 + (math.pi / 2 * alpha * x) ** 2)


class Lif:
    """One LIF layer's membrane over a sequence, firing at `th`."""

    def __init__(self, th=1.0):
        self.v = None
        self.th = th

    def step(self, x):
        v = 0.75 * x if self.v is None else 0.25 * self.v + 0.75 * x
        s = ATanSpike.apply(v - self.th)
        self.v = v * (1.0 - s.detach())
        return s


def conv_bn(cin, cout, k):
    conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
    nn.init.kaiming_uniform_(conv.weight, a=2)
    return nn.Sequential(conv, nn.BatchNorm2d(cout))


class Cell(nn.Module):
    def __init__(self, c, ops, edges):
        super().__init__()
        self.ops = ops
        self.edges = edges
        self.convs = nn.ModuleDict()
        for ei, op in enumerate(ops):
            if op in CONVS:
                self.convs[str(ei)] = conv_bn(c, c, CONVS[op][0])

    def reset(self):
        self.back = [None, None, None]
        # One LIF layer per node and threshold, made when a conv first reads it.
        self.lif = {}

    def edge(self, ei, u, spikes):
        op = self.ops[ei]
        if op == "skip":
            return u
        if op == "avgpool":
            return F.avg_pool2d(u, 3, 1, 1, count_include_pad=True)
        if op == "maxpool":
            return F.max_pool2d(u, 3, 1, 1)
        return self.convs[str(ei)](spikes)

    def step(self, x0):
        u = [None] * 4
        spikes = {}

        def add(a, b):
            if a is None:
                return b
            return a if b is None else a + b

        def out(ei):
            j = self.edges[ei][1]
            op = self.ops[ei]
            if op not in CONVS:
                return self.edge(ei, u[j], None)
            key = (j, CONVS[op][1])
            if key not in spikes:
                spikes[key] = self.lif.setdefault(key, Lif(key[1])).step(u[j])
            return self.edge(ei, u[j], spikes[key])

        u[0] = add(x0, self.back[0])
        for i in range(1, 4):
            x = None
            for ei, (to, frm) in enumerate(self.edges):
                if to == i and frm < to and self.ops[ei] != "zero":
                    x = add(x, out(ei))
            if x is None:
                x = torch.zeros_like(x0)
            u[i] = add(x, self.back[i]) if i < 3 else x
        back = [None, None, None]
        for i in range(3):
            for ei, (to, frm) in enumerate(self.edges):
                if to == i and frm > to and self.ops[ei] != "zero":
                    back[i] = add(back[i], out(ei))
        self.back = back
        return u[3]


class Net(nn.Module):
    def __init__(self, ops, c1, c2, hidden, classes, votes, timesteps, edges=EDGES, avg=False):
        super().__init__()
        self.t = timesteps
        self.classes, self.votes = classes, votes
        # The downsampling pools: max, or average (the SpikeNAS-Bench network).
        self.pool = F.avg_pool2d if avg else F.max_pool2d
        self.stem = conv_bn(3, c1, 3)
        self.cell1 = Cell(c1, ops, edges)
        self.bn1 = nn.BatchNorm2d(c1)
        self.down = conv_bn(c1, c2, 3)
        self.cell2 = Cell(c2, ops, edges)
        self.bn2 = nn.BatchNorm2d(c2)
        self.fc1 = nn.Linear(c2 * 8 * 8, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, classes * votes)
        nn.init.normal_(self.fc1.weight, 0, 0.01)
        nn.init.normal_(self.fc2.weight, 0, 0.01)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x):
        n = x.shape[0]
        self.cell1.reset()
        self.cell2.reset()
        out1, out2, hid = Lif(), Lif(), Lif()
        x0 = self.stem(x)
        mask = torch.bernoulli(torch.full((n, self.fc1.in_features), 0.5)) * 2.0
        acc = 0
        for _ in range(self.t):
            s1 = out1.step(self.bn1(self.cell1.step(x0)))
            x2 = self.pool(self.down(s1), 2)
            s2 = out2.step(self.bn2(self.cell2.step(x2)))
            f = self.pool(s2, 2).flatten(1) * mask
            sh = hid.step(self.fc1(f))
            o = self.fc2(sh)
            acc = acc + o.view(n, self.classes, self.votes).mean(2)
        return acc / self.t


def load_sample(path):
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 3073)
    labels = torch.from_numpy(raw[:, 0].astype(np.int64))
    images = torch.from_numpy(raw[:, 1:].astype(np.float32) / 255.0).view(-1, 3, 32, 32)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (images - mean) / std, labels


def augment(x, gen):
    """Random crop 32 (padding 4) and horizontal flip, per sample."""
    n = x.shape[0]
    p = F.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=gen)
    dx = torch.randint(0, 9, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        img = p[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
        out[i] = img.flip(2) if flip[i] else img
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--genotype", help=f"default: {DEMO_GENOTYPE}, with --preset {PRESET_GENOTYPE}")
    ap.add_argument("--preset", choices=["spikenas-bench"],
                    help="SpikeNAS-Bench's network (forward cell, thresholded convs, average pools)")
    ap.add_argument("--width", type=float,
                    help="C1/C2 multiplier of 256/512 (preset: 128/256), as lightsnn's --width; "
                         "default 1/32 (preset: 1/16), C1/C2 8/16")
    ap.add_argument("--c1", type=int, help="C1 (default: from --width)")
    ap.add_argument("--c2", type=int, help="C2 (default: from --width)")
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--votes", type=int, default=10)
    ap.add_argument("--timesteps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "data",
                                                   "cifar10-sample", "data_batch_1.bin"))
    ap.add_argument("--json", action="store_true", help="also print a JSON line")
    ap.add_argument("--dry-run", action="store_true",
                    help="one step at batch 4 and T 2: checks the script, times nothing")
    a = ap.parse_args()
    preset = a.preset == "spikenas-bench"
    edges = FORWARD_EDGES if preset else EDGES
    genotype = a.genotype or (PRESET_GENOTYPE if preset else DEMO_GENOTYPE)
    ops = [o.strip() for o in genotype.replace(" ", ",").split(",") if o.strip()]
    if len(ops) != len(edges) or any(o not in OPS for o in ops):
        sys.exit(f"--genotype: expected {len(edges)} ops of {sorted(OPS)}, got {genotype!r}")
    # lightsnn's channel scaling: round half away from zero, at least 1.
    width = a.width if a.width is not None else (1 / 16 if preset else 1 / 32)
    full = (128, 256) if preset else (256, 512)
    c1 = a.c1 or max(1, math.floor(full[0] * width + 0.5))
    c2 = a.c2 or max(1, math.floor(full[1] * width + 0.5))
    if a.dry_run:
        a.batch, a.timesteps, a.steps = 4, 2, 1
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    images, labels = load_sample(a.data)
    net = Net(ops, c1, c2, a.hidden, 10, a.votes, a.timesteps, edges, avg=preset)
    net.train()
    params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

    def step(i):
        idx = torch.arange(i * a.batch, (i + 1) * a.batch) % images.shape[0]
        x = augment(images[idx], gen)
        y = labels[idx]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    step(0)
    start = time.perf_counter()
    for i in range(a.steps):
        loss = step(i + 1)
    seconds = time.perf_counter() - start
    ips = a.steps * a.batch / seconds
    if not math.isfinite(loss):
        sys.exit(f"the loss became {loss}")
    print(f"torch: {ips:.1f} images/s ({a.steps} steps of batch {a.batch} in {seconds:.2f} s; "
          f"C1/C2 {c1}/{c2}, H {a.hidden}, T {a.timesteps}, genotype {','.join(ops)}, "
          f"{params} trainable parameters, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads)")
    if a.json:
        print(json.dumps({"images_per_s": ips, "steps": a.steps, "batch": a.batch, "seconds": seconds,
                          "params": params, "timesteps": a.timesteps, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
