#!/usr/bin/env python3
"""Where a zero-cost score goes wrong on SpikeNAS-Bench (standard library only).

Reads a `lightsnn bench nas` scores.csv and the benchmark table and prints, per score:
- Kendall tau against the benchmark's test accuracy on the held-out ids, the dev ids, the
  dev ids not used while tuning (`--exclude` lists scores.csv files of the tuning runs), and
  the sampled cells whose six edges are all convs (development ids, which differ only in their
  thresholds);
- the score's own best cells in the sample (what a search by that score would return at best):
  the best cell's accuracy and percentile among all 15,625 cells, the mean of its top 10;
- per edge, the mean rank (0 worst, 1 best) of the score and of the accuracy for each op
  among the sampled dev cells: the decisions where the two disagree are the ones the score
  gets wrong.

    python3 tools/nasbench-analyze.py --table cifar10.csv --scores run/scores.csv \
        [--exclude tuning/scores.csv ...] [--search search/report.json]

With --search (a `lightsnn bench nas-search` report.json), it also prints every pruning
search's cell with its rank under each score within the sample.
"""
import argparse
import csv
import json
import sys

OPS = ["zero", "skip", "conv3_th0.5", "conv3_th1.0", "conv3_th1.5"]
SHORT = {"zero": "zero", "skip": "skip", "conv3_th0.5": "@0.5", "conv3_th1.0": "@1.0",
         "conv3_th1.5": "@1.5"}
EDGES = ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]


def kendall_tau_b(x, y):
    n = len(x)
    conc = disc = tx = ty = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx = (x[i] > x[j]) - (x[i] < x[j])
            dy = (y[i] > y[j]) - (y[i] < y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif dx == dy:
                conc += 1
            else:
                disc += 1
    den = ((conc + disc + tx) * (conc + disc + ty)) ** 0.5
    return (conc - disc) / den if den else float("nan")


def ranks01(v):
    order = sorted(range(len(v)), key=lambda i: v[i])
    r = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 / max(1, len(v) - 1)
        i = j + 1
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--table", required=True)
    ap.add_argument("--scores", required=True)
    ap.add_argument("--exclude", nargs="*", default=[])
    ap.add_argument("--search")
    a = ap.parse_args()

    table = {int(r["id"]): r for r in csv.DictReader(open(a.table, newline=""))}
    if len(table) != 15625:
        sys.exit(f"{a.table}: {len(table)} cells, expected the whole table (15625)")
    all_acc = sorted(float(r["test_acc"]) for r in table.values())

    def percentile(acc):
        return 100.0 * sum(x < acc for x in all_acc) / len(all_acc)

    rows = list(csv.DictReader(open(a.scores, newline="")))
    scores = [c for c in rows[0] if c not in ("id", "split", "test_acc")]
    tuned = set()
    for f in a.exclude:
        tuned |= {int(r["id"]) for r in csv.DictReader(open(f, newline=""))}
    acc = [float(r["test_acc"]) for r in rows]
    val = {c: [float(r[c]) for r in rows] for c in scores}
    splits = {
        "held-out": [i for i, r in enumerate(rows) if r["split"] == "held-out"],
        "dev": [i for i, r in enumerate(rows) if r["split"] == "dev"],
        "dev, not tuned on": [i for i, r in enumerate(rows)
                              if r["split"] == "dev" and int(r["id"]) not in tuned],
        # cells whose six edges are all convs: only the thresholds differ between them
        "all-conv": [i for i, r in enumerate(rows)
                     if all(o.startswith("conv") for o in table[int(r["id"])]["ops"].split())],
    }
    print("## Kendall tau against the benchmark's test accuracy\n")
    print("| score | " + " | ".join(f"{k} ({len(v)})" for k, v in splits.items()) + " |")
    print("|---|" + "---|" * len(splits))
    for c in scores:
        taus = [kendall_tau_b([val[c][i] for i in s], [acc[i] for i in s])
                for s in splits.values()]
        print(f"| {c} | " + " | ".join(f"{t:.3f}" for t in taus) + " |")

    print("\n## Each score's best cells in the sample\n")
    print("| score | best cell | its accuracy (%) | percentile | top-10 mean accuracy (%) |")
    print("|---|---|---|---|---|")
    for c in scores:
        order = sorted(range(len(rows)), key=lambda i: -val[c][i])
        b = rows[order[0]]
        top = sum(acc[i] for i in order[:10]) / 10
        ops = ",".join(SHORT[o] for o in table[int(b["id"])]["ops"].split())
        print(f"| {c} | {b['id']} `{ops}` | {acc[order[0]]:.2f} | "
              f"{percentile(acc[order[0]]):.1f} | {top:.2f} |")

    dev = splits["dev"]
    ops_of = [table[int(rows[i]["id"])]["ops"].split() for i in range(len(rows))]
    print("\n## Per edge: mean rank of each op among the sampled dev cells (0 worst, 1 best)\n")
    for c in ["test_acc"] + scores:
        v = acc if c == "test_acc" else val[c]
        rk = ranks01([v[i] for i in dev])
        print(f"**{c}**\n")
        print("| edge | " + " | ".join(SHORT[o] for o in OPS) + " |")
        print("|---|" + "---|" * len(OPS))
        for e, name in enumerate(EDGES):
            cells = []
            for o in OPS:
                sel = [rk[k] for k, i in enumerate(dev) if ops_of[i][e] == o]
                cells.append(f"{sum(sel) / len(sel):.2f}" if sel else "-")
            print(f"| {name} | " + " | ".join(cells) + " |")
        print()

    if a.search:
        rep = json.load(open(a.search))
        print("## The pruning search's cells\n")
        for run in rep["runs"]:
            if run["method"] != "prune":
                continue
            # the cell is written as the benchmark's ops string
            by_ops = {r["ops"]: (i, r) for i, r in table.items()}
            cid, r = by_ops[run["cell"]]
            ops = ",".join(SHORT[o] for o in r["ops"].split())
            print(f"- seed {run['seed']}: {cid} `{ops}`, {float(r['test_acc']):.2f}% "
                  f"(percentile {percentile(float(r['test_acc'])):.1f})")


if __name__ == "__main__":
    main()
