#!/usr/bin/env bash
# The GPU measurement of issue "Speed", in two steps (see docs/design.md, "GPU").
#
#   bash tools/gpu-bench.sh build   # here, on the CPU machine: CUDA build into dist/ (ignored)
#   bash tools/gpu-bench.sh run     # on the lent GPU machine, with dist/ carried:
#                                   #   run(command="bash tools/gpu-bench.sh run", carry=["dist"])
#
# `run` prints and writes $OUT/bench.json (or ./gpu-bench.json without $OUT): the SAHD kernel,
# Candle single vs stacked candidates, and the demo, width-1/16 and full-width CIFAR-10 searches
# (paper config: 256/512 channels, T 5, batch 32, 2 repeats) on the built-in CIFAR-10 sample,
# then the training step. Nothing here needs a Rust toolchain on the GPU machine.
#
#   bash tools/gpu-bench.sh --dry-run   # CI, no GPU: `run`'s steps on the CPU at tiny widths
#                                       #   (a CPU release build, `search --width 1/64 --timesteps 2`,
#                                       #   `bench search --smoke`), checking that both JSON files
#                                       #   are written; `build` is only syntax-checked (its CUDA
#                                       #   toolchain is not on CI). About a minute on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

# The `run` step with binary $1 on device $2; the search's width in $SEARCH_WIDTH (default 1),
# more `search` flags in $SEARCH_FLAGS, more `bench search` flags in $BENCH_FLAGS.
run_steps() {
    local bin=$1 device=$2 out=${OUT:-.}
    # The full search first in its own call: it is the figure the issue asks for.
    # shellcheck disable=SC2086
    timeout 300 "$bin" search --device "$device" --width "${SEARCH_WIDTH:-1}" ${SEARCH_FLAGS:-} --out "$out/full-search.json" || echo "full search failed: rc $?"
    # shellcheck disable=SC2086
    timeout 280 "$bin" bench search --device "$device" ${BENCH_FLAGS:-} --json "$out/bench.json"
}

case "${1:-}" in
--dry-run)
    bash -n "$0"
    cargo build --release -p lightsnn
    OUT=$(mktemp -d)
    trap 'rm -rf "$OUT"' EXIT
    export OUT
    SEARCH_WIDTH=0.015625 SEARCH_FLAGS="--timesteps 2 --batch 8" BENCH_FLAGS="--smoke" \
        run_steps "${CARGO_TARGET_DIR:-target}/release/lightsnn" cpu
    for f in full-search.json bench.json; do
        python3 -c "import json, sys; json.load(open(sys.argv[1]))" "$OUT/$f" ||
            { echo "gpu-bench dry run: $f missing or not JSON" >&2; exit 1; }
    done
    echo "gpu-bench dry run: ok"
    ;;
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
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
    run_steps dist/lightsnn-cuda cuda
    ;;
*)
    echo "usage: $0 build|run|--dry-run" >&2
    exit 2
    ;;
esac
