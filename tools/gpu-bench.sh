#!/usr/bin/env bash
# The GPU measurement of issue "Speed", in two steps (see ../shared/design/GPU.md).
#
#   bash tools/gpu-bench.sh build   # here, on the CPU machine: CUDA build into dist/ (ignored)
#   bash tools/gpu-bench.sh run     # on the lent GPU machine, with dist/ carried:
#                                   #   run(command="bash tools/gpu-bench.sh run", carry=["dist"])
#
# `run` prints and writes $OUT/bench.json (or ./gpu-bench.json without $OUT): the SAHD kernel,
# Candle single vs stacked candidates, and the demo, width-1/16 and full-width CIFAR-10 searches
# (paper config: 256/512 channels, T 5, batch 32, 2 repeats) on the built-in CIFAR-10 sample,
# then the training step. Nothing here needs a Rust toolchain on the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
build)
    if [ ! -f /tmp/cuda-build/env.sh ]; then
        cargo fetch
        bash ../shared/tools/setup-cuda-build.sh /tmp/cuda-build
    fi
    # shellcheck disable=SC1091
    . /tmp/cuda-build/env.sh
    export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000}
    CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-cuda} \
        cargo build --profile dist -p lightsnn --features cuda
    mkdir -p dist
    cp "${CARGO_TARGET_DIR:-/work/target-cuda}/dist/lightsnn" dist/lightsnn-cuda
    ls -l dist/lightsnn-cuda
    ;;
run)
    export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/nvidia/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    out=${OUT:-.}
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
    # The full search first in its own call: it is the figure the issue asks for.
    timeout 300 dist/lightsnn-cuda search --device cuda --width 1 --out "$out/full-search.json" || echo "full search failed: rc $?"
    timeout 280 dist/lightsnn-cuda bench search --device cuda --json "$out/bench.json"
    ;;
*)
    echo "usage: $0 build|run" >&2
    exit 2
    ;;
esac
