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

/// `lightsnn export --board stm32f411` of the run's best checkpoint, calibrated on `data`.
fn export_for_the_board(run: &Path, data: &Path, blob: &Path) {
    let out = ok(&[
        "export",
        "--checkpoint",
        s(&run.join("best.safetensors")),
        "--data",
        s(data),
        "--out",
        s(blob),
        "--board",
        "stm32f411",
    ]);
    assert!(out.contains("wrote"), "{out}");
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
    export_for_the_board(&run, &data, &blob);

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

/// The same flow for N-MNIST (event input): `train --board stm32f411` (one epoch on the shipped
/// sample, C1 4, H 32, T 4) -> `export --board stm32f411` -> `export-records --model` (test
/// samples binned into the blob's T frames) -> the firmware under QEMU matches the host
/// reference bit for bit, with the instructions counted. The records are what `lightsnn eval
/// --model` runs on: the host reference on them gives its predictions and scores on every test
/// sample (no count reaches 255 here). And the shipped `firmware/assets/nmnist-images.bin` (the
/// records of `tools/tests/firmware_e2e.rs`) is what the command writes today.
#[test]
fn nmnist_train_export_records_runs_bit_exact_on_the_firmware() {
    use lightsnn::data::{Dataset, DatasetKind, Split};
    assert!(Qemu::default().installed(), "{}", Qemu::MISSING);
    let dir = tempfile::tempdir().unwrap();
    let data = firmware::workspace_root().join("data/nmnist-sample");
    let (run, blob, records, all) = (
        dir.path().join("run"),
        dir.path().join("nmnist.bin"),
        dir.path().join("records.bin"),
        dir.path().join("all.bin"),
    );
    let out = ok(&[
        "train",
        "--genotype",
        "conv3,conv3,conv3,conv3,conv3,zero,conv3,conv3,conv3,zero,conv3,conv3",
        "--dataset",
        "nmnist",
        "--data",
        s(&data),
        "--board",
        "stm32f411",
        "--width",
        "0.0625",
        "--hidden",
        "32",
        "--timesteps",
        "4",
        "--epochs",
        "1",
        "--batch",
        "8",
        "--out",
        s(&run),
    ]);
    assert!(out.contains("board stm32f411"), "{out}");
    export_for_the_board(&run, &data, &blob);

    // Records for the blob: its dataset and T.
    let model = ["--model", s(&blob), "--data", s(&data)];
    let out = ok(&[
        &["export-records"][..],
        &model,
        &["--count", "3", "--out", s(&records)],
    ]
    .concat());
    assert!(
        out.contains("3 records of 9249 bytes (label + 4 frames of 2x34x34 event counts)"),
        "{out}"
    );
    let shipped = firmware::workspace_root().join("firmware/assets/nmnist-images.bin");
    assert!(
        std::fs::read(&records).unwrap() == std::fs::read(&shipped).unwrap(),
        "{} is stale: rewrite it with `lightsnn export-records --dataset nmnist --data \
         data/nmnist-sample --timesteps 4 --count 3 --out {}`",
        shipped.display(),
        shipped.display()
    );

    // The records carry what `eval --model` runs: same predictions and scores on all 10 test
    // samples.
    let o = lightsnn(
        &[
            &["export-records"][..],
            &model,
            &["--count", "10", "--out", s(&all)],
        ]
        .concat(),
    );
    assert!(o.status.success());
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("saturated"),
        "no count reaches 255 in the sample"
    );
    let blob_bytes = std::fs::read(&blob).unwrap();
    let host = lightsnn_tools::reference::run(&blob_bytes, &std::fs::read(&all).unwrap()).unwrap();
    let test = Dataset::load(DatasetKind::Nmnist, &data, Split::Test, 4).unwrap();
    let idx: Vec<usize> = (0..test.len()).collect();
    let mut buf = Vec::new();
    test.fill_batch(&idx, None, &mut buf);
    let inputs: Vec<&[f32]> = buf.chunks(test.sample_len()).collect();
    let eval = lightsnn::export::run_integer(&blob_bytes, &inputs).unwrap();
    assert_eq!(host.images.len(), 10);
    for (r, (p, sc)) in host
        .images
        .iter()
        .zip(eval.predictions.iter().zip(&eval.scores))
    {
        assert_eq!((r.pred as usize, &r.scores), (*p, sc), "sample {}", r.image);
        assert_eq!(usize::from(r.label), test.label(r.image));
    }

    // The firmware: bit-exact, instructions counted, within the part's RAM.
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| firmware::workspace_root().join("target"));
    let cfg = Config {
        model: blob,
        images: records,
        target_dir: base.join("firmware-e2e"),
        work_dir: dir.path().join("fw"),
        qemu: Qemu::default(),
        count_instructions: true,
        dense: false,
    };
    let o = e2e::run(&cfg).unwrap_or_else(|e| panic!("{e:#}"));
    println!("{}", e2e::describe(&o));
    assert_eq!(o.device.images.len(), 3);
    let cost = o.cost.as_ref().unwrap();
    assert_eq!(cost.counts.windows, 3);
    assert!(cost.per_inference > 0.0);
    let ram = o
        .ram_needed_with_rtt()
        .expect("the firmware logs its stack peak");
    assert!(ram <= 128 * 1024, "{ram} B of RAM");
}

/// `export-records` errors: a missing folder names it (exit 1, nothing written); event data
/// without `--model` needs `--timesteps` (a usage error, exit 2).
#[test]
fn export_records_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (missing, out) = (dir.path().join("no-such-dir"), dir.path().join("r.bin"));
    let o = lightsnn(&[
        "export-records",
        "--dataset",
        "nmnist",
        "--data",
        s(&missing),
        "--timesteps",
        "4",
        "--out",
        s(&out),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("no-such-dir"), "{err}");
    assert!(!out.exists());
    let data = firmware::workspace_root().join("data/nmnist-sample");
    let o = lightsnn(&[
        "export-records",
        "--dataset",
        "nmnist",
        "--data",
        s(&data),
        "--out",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--timesteps is required"));
    assert!(!out.exists());
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
