#!/usr/bin/env bash
# Installs what the test suite needs (the thumbv7em target, QEMU, gcc, libhdf5-dev) and runs all of it:
# formatting, clippy (host and firmware), the no_std and firmware builds, and every test of the
# default suite, then the library's examples (host/examples/). The default suite reads only what
# the repository ships (data/, firmware/assets/) and files the tests write, so it runs from any
# folder. The extended suite on larger real data is tools/test-real-data.sh (it needs
# LIGHTSNN_DATA).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}
missing=()
command -v qemu-system-arm >/dev/null 2>&1 || missing+=(qemu-system-arm)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
# the NIR export's HDF5 writer (cargo feature lightsnn/nir) links the system HDF5 library
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
dpkg -s libhdf5-dev >/dev/null 2>&1 || missing+=(libhdf5-dev)
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi

rustup target add thumbv7em-none-eabihf
rustup component add rustfmt clippy
# The unused-dependency check (docs/design.md, "Dependencies"): a pinned cargo-machete, built once
# (measured here: 1 min 43 s of CPU time, 4 min wall on the shared 2-core machine), kept in
# ~/.cargo/bin.
MACHETE_VERSION=0.9.2
if [ "$(cargo machete --version 2>/dev/null)" != "$MACHETE_VERSION" ]; then
    cargo install cargo-machete --version "$MACHETE_VERSION" --locked
fi

set -x
cargo fmt --all -- --check
# fails on a dependency that is declared but unused (every Cargo.toml, dev-dependencies included)
cargo machete --with-metadata
cargo clippy --workspace --all-targets --release --features lightsnn/nir -- -D warnings
cargo clippy -p lightsnn --release -- -D warnings
cargo clippy -p firmware --release --target thumbv7em-none-eabihf -- -D warnings
cargo clippy -p firmware --release --target thumbv7em-none-eabihf --no-default-features --features rtt -- -D warnings
cargo clippy -p firmware --release --target thumbv7em-none-eabihf --features dense -- -D warnings
cargo build -p snn-nostd --target thumbv7em-none-eabihf
cargo build -p firmware --release --target thumbv7em-none-eabihf
cargo test --workspace --release --features lightsnn/nir
# the library's runnable examples (host/examples/): scoring a genotype, running a blob on the
# integer engine
cargo run --release -p lightsnn --features nir --example score_cell
cargo run --release -p lightsnn --features nir --example run_blob
