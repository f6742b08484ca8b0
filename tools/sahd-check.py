#!/usr/bin/env python3
"""Recomputes a SAHD score from a `lightsnn score --dump-codes DIR` folder with numpy alone.

An independent check of lightsnn's SAHD kernel and log-determinant (docs/design.md, "The SAHD
score"): it reads the packed codes, unpacks them, counts popcounts and Hamming distances by matrix
products,
builds the kernel K = nbar * J + A (J all ones) from the formula, and takes ln|det K| by an
orthogonal change of basis that isolates the large rank-one part (not by lightsnn's method).

    python3 tools/sahd-check.py DIR [--tol 1e-9]

Exits 0 when, for every repeat, the recomputed kernel equals the dumped one and the score the
dumped one, each to a relative 1e-9; otherwise prints what differs and exits 1.
"""

import argparse
import json
import os
import sys

import numpy as np

FORMAT = "lightsnn-codes/1"


def unpack(words, n_bits):
    """(n, words) uint64 codes -> (n, n_bits) float64 0/1 rows, bit k = bit k%64 of word k//64."""
    as_bytes = words.astype("<u8").view(np.uint8).reshape(words.shape[0], -1)
    bits = np.unpackbits(as_bytes, axis=1, bitorder="little")
    if bits[:, n_bits:].any():
        raise ValueError("set bits past n_bits")
    return bits[:, :n_bits].astype(np.float64)


def split_kernel(records, n, eps):
    """nbar and A of K = nbar J + A for one repeat's (codes, n_bits, multiplicity) records."""
    a = np.zeros((n, n))
    bits_sum = 0.0
    pairs = 0.0
    for x, n_bits, m in records:
        p = x.sum(axis=1)
        gram = x @ x.T  # exact: integer counts far below 2^53
        ham = p[:, None] + p[None, :] - 2.0 * gram
        e = (p[:, None] + p[None, :]) - 2.0 * np.outer(p, p) / n_bits
        a -= m * 0.5 * ham / (e + eps)
        bits_sum += m * n_bits
        pairs += m
    return bits_sum / pairs, a / pairs


def ln_abs_det(nbar, a):
    """ln|det(nbar J + A)|: in an orthonormal basis whose first vector is 1/sqrt(n), J becomes
    n e1 e1^T, so det = c det(B22) + det(B) with B = Q^T A Q, c = nbar n, B22 = B without its
    first row and column; both determinants by slogdet, combined in log space."""
    n = a.shape[0]
    u = np.ones((n, 1)) / np.sqrt(n)
    # Householder reflection mapping e1 to u: Q = I - 2 v v^T / (v^T v), v = e1 - u.
    v = -u.copy()
    v[0, 0] += 1.0
    vv = (v.T @ v).item()
    q = np.eye(n) - (2.0 / vv) * (v @ v.T) if vv > 0 else np.eye(n)
    b = q.T @ a @ q
    c = nbar * n
    s22, l22 = np.linalg.slogdet(b[1:, 1:])
    sb, lb = np.linalg.slogdet(b)
    if s22 == 0:
        return lb
    ratio = sb * np.exp(lb - l22 - np.log(c)) if sb != 0 else 0.0
    return np.log(c) + l22 + np.log(abs(s22 + ratio))


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--tol", type=float, default=1e-9)
    args = ap.parse_args()
    mpath = os.path.join(args.dir, "manifest.json")
    with open(mpath) as f:
        man = json.load(f)
    if man.get("format") != FORMAT:
        sys.exit(f"{mpath}: format {man.get('format')!r}, expected {FORMAT!r}")
    n = man["n"]
    eps = man["eps"]
    ok = True
    scores = []
    for r, kfile in enumerate(man["kernels"]):
        records = []
        for e in (e for e in man["records"] if e["repeat"] == r):
            path = os.path.join(args.dir, e["file"])
            words = np.load(path)
            if words.dtype != np.dtype("<u8") or words.shape != (n, e["words_per_code"]):
                sys.exit(f"{path}: dtype {words.dtype} shape {words.shape}, expected <u8 "
                         f"({n}, {e['words_per_code']})")
            records.append((unpack(words, e["n_bits"]), e["n_bits"], e["multiplicity"]))
        nbar, a = split_kernel(records, n, eps)
        k_dumped = np.load(os.path.join(args.dir, kfile))
        k = nbar + a
        k_err = float(np.max(np.abs(k - k_dumped) / np.abs(k_dumped)))
        s = float(ln_abs_det(nbar, a))
        s_err = rel(s, man["repeat_scores"][r])
        print(f"repeat {r}: {len(records)} code sets, nbar {nbar:.1f}; kernel max rel diff "
              f"{k_err:.2e}; ln|det K| numpy {s!r} lightsnn {man['repeat_scores'][r]!r} "
              f"(rel diff {s_err:.2e})")
        ok &= k_err <= args.tol and s_err <= args.tol
        scores.append(s)
    mean = float(np.mean(scores))
    m_err = rel(mean, man["score"])
    print(f"score: numpy {mean!r} lightsnn {man['score']!r} (rel diff {m_err:.2e}, tol {args.tol:g})")
    ok &= m_err <= args.tol
    if not ok:
        print("MISMATCH", file=sys.stderr)
        sys.exit(1)
    print("agree")


if __name__ == "__main__":
    main()
