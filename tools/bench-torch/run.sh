#!/usr/bin/env bash
# Training throughput of lightsnn against the PyTorch baseline (tools/bench-torch/bench_train.py)
# on the same network, interleaved: for each pair, `lightsnn bench train` then the PyTorch
# script, each printing images/s; then every figure, the per-pair ratio and the spread.
#
# usage: tools/bench-torch/run.sh [--pairs P] [--steps S] [--timesteps T] [--genotype G]
#                                 [--preset spikenas-bench] [--width W]
#                                 [--train-path auto|cpu|candle] [--dry-run]
#   defaults: 3 pairs, 5 timed steps (after one warm-up step), T 5, the genotype of issue 23,
#   width 1/32 (C1/C2 8/16), H 1024, batch 64, PyTorch on 2 threads.
#   --preset spikenas-bench: SpikeNAS-Bench's network on both sides (forward cell, thresholded
#   convs, average pools, 100 outputs voted to 10), by default its best cell; --width W
#   multiplies its C1/C2 128/256 (as `lightsnn train --width`: 0.125 is C1/C2 16/32; default
#   1/16) or, without the preset, CIFAR-10's 256/512. H stays 1024.
#   --dry-run: builds, runs one tiny step on each side and times nothing (a check for CI).
# Both sides print their trainable parameter count; the summary says whether they agree.
# LIGHTSNN_BIN=path times that lightsnn binary instead of building one.
# Needs python3 with venv. The venv (TORCH_VENV, default target/torch-venv) is made once from
# PyPI: only the default torch wheel is reachable here, which brings its CUDA libraries
# (about 5 GB; 3-4 minutes). A benchmark, not a test: timings on a shared machine are noisy,
# so read the spread.
set -euo pipefail
cd "$(dirname "$0")/../.."
PAIRS=3 STEPS=5 T=5 PATH_ARG=auto DRY=0 G=
NET=()
while [ $# -gt 0 ]; do
    case "$1" in
        --pairs) PAIRS=$2; shift 2 ;;
        --steps) STEPS=$2; shift 2 ;;
        --timesteps) T=$2; shift 2 ;;
        --genotype) G=$2; shift 2 ;;
        --preset|--width) NET+=("$1" "$2"); shift 2 ;;
        --train-path) PATH_ARG=$2; shift 2 ;;
        --dry-run) DRY=1; shift ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ -z "$G" ]; then
    case " ${NET[*]-} " in
        *" --preset "*) G=conv3@0.5,conv3,zero,conv3@1.5,zero,conv3@1.5 ;;
        *) G=conv3,conv3,conv3,skip,zero,zero,skip,conv3,conv3,skip,zero,conv3 ;;
    esac
fi
TARGET=${CARGO_TARGET_DIR:-target}
VENV=${TORCH_VENV:-$TARGET/torch-venv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q torch==2.15.0 numpy
fi
# LIGHTSNN_BIN: a lightsnn binary already built (e.g. with other features) to time instead.
LSNN=${LIGHTSNN_BIN:-}
if [ -z "$LSNN" ]; then
    cargo build --release -q -p lightsnn
    LSNN="$TARGET/release/lightsnn"
fi
PY="$VENV/bin/python"
if [ "$DRY" = 1 ]; then
    "$LSNN" bench train ${NET[@]+"${NET[@]}"} --genotype "$G" --steps 1 --batch 4 --timesteps 2 \
        --train-path "$PATH_ARG"
    "$PY" tools/bench-torch/bench_train.py ${NET[@]+"${NET[@]}"} --genotype "$G" --dry-run
    exit 0
fi
ours=() theirs=()
for i in $(seq 1 "$PAIRS"); do
    a=$("$LSNN" bench train ${NET[@]+"${NET[@]}"} --genotype "$G" --steps "$STEPS" --timesteps "$T" \
        --train-path "$PATH_ARG")
    echo "pair $i: $a"
    b=$("$PY" tools/bench-torch/bench_train.py ${NET[@]+"${NET[@]}"} --genotype "$G" --steps "$STEPS" \
        --timesteps "$T" --threads 2)
    echo "pair $i: $b"
    ours+=("$(echo "$a" | awk '{print $2}')")
    theirs+=("$(echo "$b" | awk '{print $2}')")
done
params() { echo "$1" | grep -o '[0-9]* trainable parameters' | awk '{print $1}'; }
python3 - "${ours[*]}" "${theirs[*]}" "$T" "$(params "$a")" "$(params "$b")" <<'PY'
import statistics, sys
ours = [float(v) for v in sys.argv[1].split()]
theirs = [float(v) for v in sys.argv[2].split()]
same = "the same" if sys.argv[4] == sys.argv[5] else "DIFFERENT networks"
print(f"trainable parameters: lightsnn {sys.argv[4]}, PyTorch {sys.argv[5]} ({same})")
ratios = [a / b for a, b in zip(ours, theirs)]
f = lambda v: " ".join(f"{x:.1f}" for x in v)
print(f"T {sys.argv[3]}: lightsnn images/s {f(ours)} | PyTorch images/s {f(theirs)}")
print(f"ratio lightsnn / PyTorch per pair: {' '.join(f'{r:.2f}' for r in ratios)}; "
      f"median {statistics.median(ratios):.2f}, min {min(ratios):.2f}, max {max(ratios):.2f}")
PY
