#!/usr/bin/env python3
"""Which kernel ranks SpikeNAS-Bench's conv thresholds? Scores table cells from their spike codes.

For each sampled cell it runs `lightsnn score --dump-codes` (the SpikeNAS-Bench preset at
`--width`, batch 32, 2 repeats, seed 0), reads the code sets back (docs/cli.md, "Code dumps")
and computes, over all LIF layers (each counted with its multiplicity) and averaged over the
repeats:

- `sahd`: ln|det K| of the sparsity-aware Hamming kernel (lightsnn's score, as `score` prints);
- `naswot`: ln|det K| of the plain Hamming kernel `n - H` (`--score naswot`);
- `rate`: the mean spike rate; `entropy`: the mean binary entropy of each code's rate;
- `sahd-out`, `naswot-out`: the two kernels over the cells' output LIFs only;
- `spread`: the negated rate spread (`lightsnn score --score spread`): per cell LIF layer (not
  the hidden layer), the standard deviation over the batch of each sample's firing rate, averaged
  over timesteps, then over the layers, each layer once.

Then it prints Kendall's tau against the table's test accuracy, separately for the cells whose
six edges are all convs (where only the thresholds differ) and for the other sampled cells.
Every sampled cell has edge `1<-0` not `zero`, i.e. is a development id (`id % 5 != 0`).

Needs numpy (>= 2.0, for `bitwise_count`).

    python3 tools/nasbench-kernels.py --lightsnn target/release/lightsnn \\
        --table $LIGHTSNN_DATA/spikenas-bench/cifar10.csv --data $LIGHTSNN_DATA/cifar10-jpeg \\
        --all-conv 250 --other 250 --out kernels.csv
"""
import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import tempfile

import numpy as np


def kernels(codes, n_bits):
    """SAHD's and NASWOT's kernels of one code set, and each code's rate."""
    p = np.bitwise_count(codes).sum(axis=1).astype(np.float64)
    h = np.bitwise_count(codes[:, None, :] ^ codes[None, :, :]).sum(axis=2).astype(np.float64)
    e = (p[:, None] + p[None, :]) - 2 * p[:, None] * p[None, :] / n_bits
    return n_bits - 0.5 * h / (e + 1e-3), n_bits - h, p / n_bits


def logdet(k):
    return float(np.linalg.slogdet(k)[1])


def binary_entropy(r):
    r = np.clip(r, 1e-12, 1 - 1e-12)
    return -(r * np.log2(r) + (1 - r) * np.log2(1 - r))


def features(dump):
    """The features of one dump folder, averaged over its repeats."""
    m = json.load(open(os.path.join(dump, "manifest.json")))
    n = m["n"]
    per_repeat = []
    for rep in range(len(m["repeat_scores"])):
        acc = {g: [0.0, 0.0, 0, 0.0, 0.0] for g in ("all", "out")}
        spread = {}
        for e in m["records"]:
            if e["repeat"] != rep:
                continue
            codes = np.load(os.path.join(dump, e["file"]))
            assert codes.shape == (n, e["words_per_code"])
            ks, kn, rate = kernels(codes, e["n_bits"])
            mult = e["multiplicity"]
            if e["layer"] != "hidden":
                spread.setdefault(e["layer"], []).append(float(rate.std()))
            groups = ["all"] + (["out"] if e["layer"].endswith(".out") else [])
            for g in groups:
                a = acc[g]
                a[0] = a[0] + mult * ks
                a[1] = a[1] + mult * kn
                a[2] += mult
                a[3] += mult * float(rate.mean())
                a[4] += mult * float(binary_entropy(rate).mean())
        a, o = acc["all"], acc["out"]
        per_repeat.append({
            "sahd": logdet(a[0] / a[2]),
            "naswot": logdet(a[1] / a[2]),
            "rate": a[3] / a[2],
            "entropy": a[4] / a[2],
            "sahd-out": logdet(o[0] / o[2]),
            "naswot-out": logdet(o[1] / o[2]),
            "spread": -float(np.mean([np.mean(v) for v in spread.values()])),
        })
    f = {k: float(np.mean([r[k] for r in per_repeat])) for k in per_repeat[0]}
    f["sahd-lightsnn"] = m["score"]
    return f


def kendall(x, y):
    c = d = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            s = (x[i] - x[j]) * (y[i] - y[j])
            c += s > 0
            d += s < 0
    return (c - d) / max(1, len(x) * (len(x) - 1) / 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lightsnn", required=True, help="the lightsnn binary")
    ap.add_argument("--table", required=True, help="SpikeNAS-Bench's cifar10.csv")
    ap.add_argument("--data", required=True, help="CIFAR-10 folder for the score batches")
    ap.add_argument("--width", default="0.0625")
    ap.add_argument("--all-conv", type=int, default=250, help="cells with six convs")
    ap.add_argument("--other", type=int, default=250, help="other development cells")
    ap.add_argument("--sample-seed", type=int, default=7)
    ap.add_argument("--out", required=True, help="CSV of the features (resumed if present)")
    a = ap.parse_args()

    rows = list(csv.DictReader(open(a.table)))
    is_conv = lambda r: all(o.startswith("conv") for o in r["ops"].split())
    rng = random.Random(a.sample_seed)
    all_conv = [r for r in rows if is_conv(r)]
    other = [r for r in rows if int(r["id"]) % 5 != 0 and not is_conv(r)]
    cells = rng.sample(all_conv, a.all_conv) + rng.sample(other, a.other)
    done = {}
    if os.path.exists(a.out):
        done = {r["id"]: r for r in csv.DictReader(open(a.out))}
    names = ["sahd-lightsnn", "sahd", "naswot", "rate", "entropy", "sahd-out", "naswot-out",
             "spread"]
    fields = ["id", "ops", "test_acc"] + names
    with open(a.out, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if not done:
            w.writeheader()
        for i, r in enumerate(cells):
            if r["id"] in done:
                continue
            tmp = tempfile.mkdtemp(prefix="lightsnn-kernels-")
            dump = os.path.join(tmp, "codes")
            try:
                subprocess.run(
                    [a.lightsnn, "score", "--preset", "spikenas-bench", "--width", a.width,
                     "--data", a.data, "--batch", "32", "--repeats", "2", "--seed", "0",
                     "--genotype", r["ops"], "--dump-codes", dump],
                    check=True, stdout=subprocess.DEVNULL)
                row = {"id": r["id"], "ops": r["ops"], "test_acc": r["test_acc"], **features(dump)}
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            w.writerow(row)
            f.flush()
            done[r["id"]] = row
            print(f"{i + 1}/{len(cells)} id {r['id']}", flush=True)

    scored = [done[r["id"]] for r in cells]
    groups = [("all six edges conv", [r for r in scored if is_conv(r)]),
              ("other dev cells", [r for r in scored if not is_conv(r)])]
    print("| kernel / feature | " + " | ".join(f"{g} ({len(c)})" for g, c in groups) + " |")
    print("|---|" + "---|" * len(groups))
    for k in names:
        taus = []
        for _, c in groups:
            ok = [r for r in c if np.isfinite(float(r[k]))]
            taus.append(kendall([float(r[k]) for r in ok], [float(r["test_acc"]) for r in ok]))
        print(f"| {k} | " + " | ".join(f"{t:+.3f}" for t in taus) + " |")


if __name__ == "__main__":
    main()
