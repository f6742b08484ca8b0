#!/usr/bin/env bash
# The extended test suite: the tests compiled in by the cargo feature `real-data` (test paths
# containing `real_data::`), on the larger real data of the folder LIGHTSNN_DATA names, laid
# out like the project's ../shared/data (cifar10-lossless-subset/, cifar10-jpeg/,
# nmnist-small/, spikenas-bench/). Run the default suite (tools/test.sh) first: it installs the toolchain parts.
#
#   LIGHTSNN_DATA=/path/to/shared/data bash tools/test-real-data.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${LIGHTSNN_DATA:-}" ]; then
    echo "error: LIGHTSNN_DATA is not set: name a folder laid out like ../shared/data" >&2
    echo "       (cifar10-lossless-subset/, cifar10-jpeg/, nmnist-small/, spikenas-bench/)" >&2
    exit 1
fi
for d in cifar10-lossless-subset cifar10-jpeg nmnist-small spikenas-bench; do
    if [ ! -d "$LIGHTSNN_DATA/$d" ]; then
        echo "error: LIGHTSNN_DATA=$LIGHTSNN_DATA has no folder $d/" >&2
        exit 1
    fi
done
export LIGHTSNN_DATA

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set -x
cargo clippy -p lightsnn -p lightsnn-tests --all-targets --release \
    --features lightsnn/real-data,lightsnn-tests/real-data -- -D warnings
cargo test -p lightsnn -p lightsnn-tests --release \
    --features lightsnn/real-data,lightsnn-tests/real-data -- real_data:: 2>&1 | tee "$log"
set +x
# Never a silent pass: the filter must have selected the real-data tests.
passed=$(grep -Eo 'test result: ok\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
echo "real-data tests passed: $passed"
if [ "$passed" -lt 8 ]; then
    echo "error: expected at least 8 real-data tests, ran $passed" >&2
    exit 1
fi
