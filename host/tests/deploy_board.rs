//! The deploy flow with a board, at a tiny budget: `search --board stm32f411` -> `train --board
//! stm32f411` (one epoch on 160 images) -> `export --board stm32f411` -> the blob runs on the
//! firmware under QEMU bit for bit like the host reference, within the part's RAM and flash.
//! Needs `qemu-system-arm`, `gcc` and the thumbv7em target, like `tools/tests/firmware_e2e.rs`.

mod common;

use common::lightsnn;
use lightsnn_tools::e2e::{self, Config};
use lightsnn_tools::firmware;
use lightsnn_tools::qemu::Qemu;
use std::path::{Path, PathBuf};

/// CIFAR-10 binary record: label byte + 3 x 32 x 32 pixels.
const RECORD: usize = 3073;

/// Runs `lightsnn args`, asserts success and returns stdout.
fn ok(args: &[&str]) -> String {
    let o = lightsnn(args);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    );
    assert!(o.status.success(), "lightsnn {args:?}\n{out}\n{err}");
    out
}

/// A CIFAR-10 folder with the first `train` and `test` records of the shipped sample.
fn tiny_cifar(dir: &Path, train: usize, test: usize) {
    let sample = firmware::workspace_root().join("data/cifar10-sample");
    for (name, n) in [("data_batch_1.bin", train), ("test_batch.bin", test)] {
        let bytes = std::fs::read(sample.join(name)).unwrap();
        std::fs::write(dir.join(name), &bytes[..n * RECORD]).unwrap();
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn search_train_export_with_a_board_runs_bit_exact_on_the_firmware() {
    assert!(Qemu::default().installed(), "{}", Qemu::MISSING);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    tiny_cifar(&data, 160, 40);
    let (arch, run, blob) = (
        dir.path().join("search.json"),
        dir.path().join("run"),
        dir.path().join("model.bin"),
    );

    // Search: sized for the op set's conv cells; it returns the best-scoring cell that fits.
    let out = ok(&[
        "search",
        "--data",
        s(&data),
        "--board",
        "stm32f411",
        "--timesteps",
        "2",
        "--batch",
        "8",
        "--repeats",
        "2",
        "--out",
        s(&arch),
    ]);
    assert!(out.contains("board stm32f411: C1/C2"), "{out}");
    assert!(out.contains("among those that fit"), "{out}");
    assert!(out.contains("the cell found fits stm32f411"), "{out}");

    // Train: sized for the cell found (the timesteps given are kept).
    let out = ok(&[
        "train",
        "--arch",
        s(&arch),
        "--data",
        s(&data),
        "--board",
        "stm32f411",
        "--epochs",
        "1",
        "--timesteps",
        "2",
        "--out",
        s(&run),
    ]);
    assert!(out.contains("board stm32f411: C1/C2"), "{out}");

    // Export: checked against the board.
    let out = ok(&[
        "export",
        "--checkpoint",
        s(&run.join("best.safetensors")),
        "--data",
        s(&data),
        "--out",
        s(&blob),
        "--board",
        "stm32f411",
    ]);
    assert!(out.contains("wrote"), "{out}");

    // The firmware: bit-exact with the host reference, and within the part's memory as built
    // (static RAM + measured stack + the 1 KiB RTT buffer; flash of the ELF).
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| firmware::workspace_root().join("target"));
    let cfg = Config {
        model: blob,
        images: firmware::workspace_root().join("firmware/assets/images.bin"),
        target_dir: base.join("firmware-e2e"),
        work_dir: dir.path().join("fw"),
        qemu: Qemu::default(),
        count_instructions: false,
        dense: false,
    };
    let o = e2e::run(&cfg).unwrap_or_else(|e| panic!("{e:#}"));
    println!("{}", e2e::describe(&o));
    let ram = o
        .ram_needed_with_rtt()
        .expect("the firmware logs its stack peak");
    assert!(ram <= 128 * 1024, "{ram} B of RAM");
    assert!(
        o.footprint.flash <= 512 * 1024,
        "{} B of flash",
        o.footprint.flash
    );
}

/// Sizes given that cannot fit are refused before any work, naming the resource.
#[test]
fn sizes_that_cannot_fit_are_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let o = lightsnn(&[
        "train",
        "--genotype",
        "conv3,conv3,conv3,conv3,conv3,zero,conv3,conv3,conv3,zero,conv3,conv3",
        "--board",
        "stm32f411",
        "--width",
        "0.25",
        "--hidden",
        "256",
        "--epochs",
        "1",
        "--out",
        s(&run),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--board stm32f411: refused before any work"),
        "{err}"
    );
    assert!(err.contains("C1/C2 64/128, H 256"), "{err}");
    assert!(
        err.contains("bytes of flash") && err.contains("the board has"),
        "{err}"
    );
    assert!(!run.exists(), "nothing is written");
    // An unknown part is a bad flag value.
    let o = lightsnn(&["search", "--board", "esp32"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown board `esp32`"));
}

/// `bench train --board` measures the network `train --board` would train for the genotype.
#[test]
fn bench_train_with_a_board_measures_the_sized_network() {
    let g = "conv3,conv3,conv3,conv3,conv3,zero,conv3,conv3,conv3,zero,conv3,conv3";
    let out = ok(&[
        "bench",
        "train",
        "--genotype",
        g,
        "--board",
        "stm32f411",
        "--timesteps",
        "2",
        "--steps",
        "1",
        "--batch",
        "4",
    ]);
    assert!(out.contains("board stm32f411: C1/C2 8/16"), "{out}");
    assert!(out.contains("C1/C2 8/16, H 128, T 2"), "{out}");
}
