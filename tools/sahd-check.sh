#!/usr/bin/env bash
# Independent check of the SAHD score (issue 15): `lightsnn score --dump-codes` writes the spike
# codes behind a score, and tools/sahd-check.py recomputes kernel and score from them with numpy
# alone, on the CPU engine and on the Candle path; then a dump with one flipped bit must be
# refused (the check can fail). numpy comes from PyPI into a virtual environment
# ($SAHD_VENV, default $CARGO_TARGET_DIR/sahd-venv or target/sahd-venv), made once.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
venv=${SAHD_VENV:-$target/sahd-venv}
if ! "$venv/bin/python" -c "import numpy" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "numpy>=1.22"
fi
py="$venv/bin/python"
cargo build --release -p lightsnn
bin="$target/release/lightsnn"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" score --engine cpu --batch 16 --repeats 2 --seed 3 --dump-codes "$tmp/cpu" \
    --genotype "zero,conv3,skip,conv3,zero,zero,skip,conv3,zero,conv3,skip,conv3"
"$py" tools/sahd-check.py "$tmp/cpu"
"$bin" score --engine candle --space snasnet --batch 16 --repeats 2 --seed 4 \
    --dump-codes "$tmp/candle" \
    --genotype "conv1,skip,zero,conv3,avgpool,zero,skip,conv3,zero,conv3,skip,conv1"
"$py" tools/sahd-check.py "$tmp/candle"
# One flipped bit in one code set must make the check fail.
"$py" - "$tmp/cpu/r0/000.codes.npy" <<'PY'
import sys
import numpy as np
w = np.load(sys.argv[1])
w[0, 0] ^= np.uint64(1)
np.save(sys.argv[1], w)
PY
if "$py" tools/sahd-check.py "$tmp/cpu" >/dev/null 2>&1; then
    echo "sahd-check: a dump with a flipped bit was accepted" >&2
    exit 1
fi
echo "sahd-check: numpy agrees with lightsnn on both engines; a flipped bit is caught"
