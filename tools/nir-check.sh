#!/usr/bin/env bash
# Exports a checkpoint as NIR, reads it back with the official `nir` package and runs it in
# Norse (through nirtorch) on 100 test images, comparing with our network (tools/nir-check.py).
#
# usage: tools/nir-check.sh [CHECKPOINT] [MIN_AGREEMENT]
#   CHECKPOINT     default firmware/assets/trained.safetensors
#   MIN_AGREEMENT  fail below this fraction of matching predictions (default 0: reported only)
# It fails when cell 1's LIFs (before the first max pool, which NIR 1.0 can only approximate
# by an average pool) fire other spike counts than ours (relative 1e-3): that part of the graph
# computes exactly what lightsnn does. Downstream, the approximation changes the network by how
# much it relies on the max: predictions agreed on 49/100 images on the former 4/8 network and
# 20/100 on the one shipped since (docs/nir.md), so agreement is no check of the export.
# Needs: python3 with venv, the system HDF5 library (Debian: libhdf5-dev pkg-config) for the
# lightsnn build. The venv (NIR_VENV, default target/nir-venv) is made once: PyPI's torch
# brings its CUDA wheels (about 5.5 GB, 4 minutes here).
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT=${1:-firmware/assets/trained.safetensors}
MIN=${2:-0}
TARGET=${CARGO_TARGET_DIR:-target}
VENV=${NIR_VENV:-$TARGET/nir-venv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q nir==1.0.8 nirtorch==2.6 norse==1.1.0 torch==2.15.0 \
        torchvision==0.29.2 h5py==3.16.0 numpy==2.4.6
fi
cargo build --release -q -p lightsnn --features nir
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
"$TARGET/release/lightsnn" export --format nir --approx-maxpool --checkpoint "$CKPT" \
    --out "$OUT/net.nir" --reference-out "$OUT/ref.json" --reference-samples 100
# Without the approximation the export must refuse, naming the part.
if "$TARGET/release/lightsnn" export --format nir --checkpoint "$CKPT" --out "$OUT/x.nir" \
    2>"$OUT/err"; then
    echo "export without --approx-maxpool should have failed" >&2
    exit 1
fi
grep -q "down_maxpool2" "$OUT/err" || { cat "$OUT/err" >&2; exit 1; }
"$VENV/bin/python" -W ignore tools/nir-check.py "$OUT/net.nir" "$OUT/ref.json" \
    --min-agreement "$MIN" --exact-layers cell1_
