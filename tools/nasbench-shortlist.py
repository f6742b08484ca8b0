#!/usr/bin/env python3
"""Would a short training of the score's shortlist reach SpikeNAS-Bench's top 5%? (stdlib only)

A zero-cost score ranks cells it has never trained; on SpikeNAS-Bench its own best cells sit
below the top 5% (docs/spikenas-bench.md). A common remedy is a hybrid: score N cells, keep the
K best, train each for E epochs and keep the one with the best validation top-1. The benchmark
table records every cell's validation top-1 after epochs 1, 5 and 10 (`val_acc_e1/_e5/_e10`,
the benchmark's own training), so the hybrid can be simulated without training anything:

- draw N cells (without replacement) from a `lightsnn bench nas` scores.csv, per split;
- keep the K best by a score column (cells scoring -inf dropped);
- pick the one with the best `val_acc_eE` and look up its test top-1.

Repeated over R draws, it prints per split, score, E and K: the mean and sd of the picked
cell's test top-1, and how often it lands in the benchmark's top 5% (among all 15,625 cells).
K = 1 is the zero-cost search alone (nothing trained). `--score random` keeps K drawn cells
unscored: the baseline that tells whether the score helps the shortlist at all. The training
cost is K x E epochs of the benchmark's training, printed beside (one full training is 100
epochs).

    python3 tools/nasbench-shortlist.py --table cifar10.csv --scores run/scores.csv \
        [--score sahd-eff] [--draw 100] [--repeats 300] [--ks 1,5,10,20,40] [--epochs 1,5,10]

Tune K and E on the dev rows; read the held-out rows only once.
"""
import argparse
import csv
import math
import random
import statistics


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--table", required=True, help="the benchmark's cifar10.csv")
    ap.add_argument("--scores", required=True, help="scores.csv of `lightsnn bench nas`")
    ap.add_argument("--score", default="sahd-eff", help="score column ranking the shortlist, or `random`")
    ap.add_argument("--draw", type=int, default=100, help="cells scored per search (N)")
    ap.add_argument("--repeats", type=int, default=300, help="simulated searches (R)")
    ap.add_argument("--ks", default="1,5,10,20,40", help="shortlist sizes K")
    ap.add_argument("--epochs", default="1,5,10", help="short-training epochs E (1, 5 or 10)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    table = {int(r["id"]): r for r in csv.DictReader(open(a.table, newline=""))}
    accs = sorted(float(r["test_acc"]) for r in table.values())
    top5 = accs[int(0.95 * len(accs))]
    rows = list(csv.DictReader(open(a.scores, newline="")))
    if not rows or (a.score != "random" and a.score not in rows[0]):
        raise SystemExit(f"{a.scores}: no column {a.score!r}")
    ks = [int(k) for k in a.ks.split(",")]
    print(f"top 5% of the table: test top-1 >= {top5:.2f}%; N {a.draw}, R {a.repeats}, "
          f"score {a.score}")
    print("| split | E | K | cost (epochs) | test top-1 mean | sd | in top 5% |")
    print("|---|---|---|---|---|---|---|")
    for split in sorted({r["split"] for r in rows}):
        cells = [(float(r[a.score]) if a.score != "random" else 0.0, int(r["id"]))
                 for r in rows if r["split"] == split]
        for e in a.epochs.split(","):
            col = f"val_acc_e{e}"
            for k in ks:
                rng = random.Random(a.seed)
                picked = []
                for _ in range(a.repeats):
                    drawn = rng.sample(cells, min(a.draw, len(cells)))
                    alive = [c for c in drawn if not math.isinf(c[0])]
                    if a.score != "random":
                        alive.sort(reverse=True)
                    best = max(alive[:k], key=lambda c: float(table[c[1]][col]))
                    picked.append(float(table[best[1]]["test_acc"]))
                hit = sum(p >= top5 for p in picked) / len(picked)
                print(f"| {split} | {e} | {k} | {k * int(e) if k > 1 else 0} | {statistics.mean(picked):.2f} | "
                      f"{statistics.stdev(picked):.2f} | {100 * hit:.0f}% |")


if __name__ == "__main__":
    main()
