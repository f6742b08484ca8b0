#!/usr/bin/env python3
"""Reads a NIR file written by `lightsnn export --format nir` with the official `nir` package,
checks its nodes and edges, runs it in Norse (through nirtorch) and compares with our network.

usage: nir-check.py NET.nir REFERENCE.json [--min-agreement F] [--exact-layers PREFIX]
                   [--exact-tolerance R]

Exits non-zero when nir.read fails, the graph lacks an expected node or edge, the agreement of
predictions is below --min-agreement, or a layer whose name starts with --exact-layers fires a
spike count more than --exact-tolerance (relative, default 1e-3: float rounding) away from ours.
The layers before the first max pool written as an average pool (`--approx-maxpool`) compute
exactly what ours do, so `--exact-layers cell1_` checks the graph, its cycles and the LIF
discretisation independently of how much the approximation changes the network downstream.
"""
import argparse
import json
import re
import sys

import nir
import numpy as np


def strip(name):
    return re.sub(r"^\d{3}_", "", name)


def check_structure(g):
    names = {strip(n): n for n in g.nodes}
    kinds = {strip(n): type(v).__name__ for n, v in g.nodes.items()}
    expected = {
        "input": "Input", "stem": "Conv2d", "down": "Conv2d", "flatten": "Flatten",
        "fc1": "Linear", "hidden_lif": "LIF", "fc2": "Affine", "vote": "Affine",
        "output": "Output", "cell1_out_lif": "LIF", "cell2_out_lif": "LIF",
    }
    for c in (1, 2):
        for i in range(4):
            expected[f"cell{c}_x{i}"] = "Conv2d"
    bad = [f"{k} (want {t}, got {kinds.get(k)})" for k, t in expected.items() if kinds.get(k) != t]
    if bad:
        sys.exit("missing or wrong nodes: " + ", ".join(bad))
    edges = {(strip(a), strip(b)) for a, b in g.edges}
    for e in [("input", "stem"), ("fc1", "hidden_lif"), ("hidden_lif", "fc2"), ("fc2", "vote"),
              ("vote", "output"), ("cell1_x3", "cell1_bn"), ("cell1_bn", "cell1_out_lif"),
              ("cell1_out_lif", "down"), ("cell2_x3", "cell2_bn")]:
        if e not in edges:
            sys.exit(f"missing edge {e}")
    # Every edge names existing nodes; every LIF has our dynamics.
    for a, b in g.edges:
        if a not in g.nodes or b not in g.nodes:
            sys.exit(f"edge {a} -> {b} names a missing node")
    for n, v in g.nodes.items():
        if isinstance(v, nir.LIF) and strip(n) != "pool_or":
            # Thresholds just below 1 (ours fire at V >= 1), or 0.5 / 1.5 for the thresholded
            # convs of SpikeNAS-Bench (node names ending in _th05 / _th15).
            th = np.asarray(v.v_threshold, dtype=np.float32)
            above = np.nextafter(th, np.float32(np.inf))
            want = {"_th05": 0.5, "_th15": 1.5}.get(strip(n)[-5:], 1.0)
            if not (np.allclose(v.tau, 4 / 3) and np.all(v.r == 1) and np.all(v.v_leak == 0)
                    and np.all(v.v_reset == 0) and np.all(th < want) and np.all(above == want)):
                sys.exit(f"{n}: LIF parameters are not ours")
    back = [(a, b) for a, b in g.edges if a > b]
    print(f"nir.read: {len(g.nodes)} nodes, {len(g.edges)} edges, "
          f"{len(back)} recurrent (backward) edges; nodes and edges as expected")
    return names


def run_norse(g, ref):
    import torch
    import nirtorch
    from norse.torch.utils.import_nir import _import_norse_module

    def mapper(node):
        # Norse's own NIR importer (norse.torch.from_nir) at dt = 1, through nirtorch's
        # current interpreter (norse 1.1.0 calls nirtorch's older loader).
        return _import_norse_module(node, dt=1.0)

    node_map = {type(v): mapper for v in g.nodes.values() if not isinstance(v, (nir.Input, nir.Output))}
    module = nirtorch.nir_to_torch(g, node_map)
    lif_names = [n for n, v in g.nodes.items() if isinstance(v, nir.LIF)]
    spikes = {strip(n): 0.0 for n in lif_names}
    # Record LIF outputs with forward hooks on the torch modules.
    hooks = []
    for n in lif_names:
        mod = getattr(module, nirtorch.nir_interpreter._sanitize_name(n), None)
        if mod is None:
            sys.exit(f"nirtorch made no module for {n}")
        def hook(m, inp, out, key=strip(n)):
            z = out[0] if isinstance(out, tuple) else out
            spikes[key] += float(z.sum())
        hooks.append(mod.register_forward_hook(hook))
    T, F = ref["timesteps"], ref["frames"]
    c, h, w = ref["frame_shape"]
    agree, correct, n = 0, 0, 0
    with torch.no_grad():
        for s in ref["samples"]:
            x = torch.tensor(s["input"], dtype=torch.float32).reshape(F, c, h, w)
            state = None
            total = None
            for t in range(T):
                out, state = module(x[t if F > 1 else 0], state)
                total = out if total is None else total + out
            pred = int(torch.argmax(total))
            agree += pred == s["prediction"]
            correct += pred == s["label"]
            n += 1
    ours_acc = sum(s["prediction"] == s["label"] for s in ref["samples"]) / n
    print(f"Norse (nirtorch) on {n} test samples, T = {T}: prediction matches ours on "
          f"{agree}/{n} ({100 * agree / n:.1f}%); top-1 Norse {100 * correct / n:.1f}%, "
          f"ours {100 * ours_acc:.1f}%")
    print(f"{'layer':<16}{'neurons':>9}{'ours rate':>11}{'norse rate':>12}{'diff':>9}"
          f"{'ours spikes':>13}{'norse spikes':>14}")
    for k, (neurons, ours) in sorted(ref["layers"].items()):
        if k not in spikes:
            print(f"{k:<16} not in the graph")
            continue
        denom = neurons * T * n
        r_o, r_n = ours / denom, spikes[k] / denom
        print(f"{k:<16}{neurons:>9}{r_o:>11.4f}{r_n:>12.4f}{r_n - r_o:>+9.4f}"
              f"{ours:>13}{int(spikes[k]):>14}")
    return agree / n, spikes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("nir_file")
    ap.add_argument("reference")
    ap.add_argument("--min-agreement", type=float, default=0.0)
    ap.add_argument("--exact-layers", default=None,
                    help="name prefix of the layers that must fire our spike counts")
    ap.add_argument("--exact-tolerance", type=float, default=1e-3)
    ap.add_argument("--no-sim", action="store_true", help="only nir.read and the structure")
    a = ap.parse_args()
    print(f"nir {nir.__version__}, file version {nir.serialization.read_version(a.nir_file)}")
    g = nir.read(a.nir_file)
    check_structure(g)
    if a.no_sim:
        return
    with open(a.reference) as f:
        ref = json.load(f)
    agreement, spikes = run_norse(g, ref)
    if agreement < a.min_agreement:
        sys.exit(f"agreement {agreement:.3f} below --min-agreement {a.min_agreement}")
    if a.exact_layers is not None:
        exact = {k: ours for k, (_, ours) in ref["layers"].items() if k.startswith(a.exact_layers)}
        if not exact:
            sys.exit(f"no layer of the reference starts with {a.exact_layers!r}")
        for k, ours in sorted(exact.items()):
            theirs = float(spikes.get(k, -1))
            if abs(theirs - ours) > a.exact_tolerance * max(ours, 1):
                sys.exit(f"{k}: Norse fired {theirs:.0f} spikes, ours {ours}: beyond "
                         f"--exact-tolerance {a.exact_tolerance}")
        print(f"{len(exact)} layers {a.exact_layers}*: spike counts equal to ours within "
              f"{a.exact_tolerance} (relative)")


if __name__ == "__main__":
    main()
