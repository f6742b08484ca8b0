//! End-to-end tests of the firmware under QEMU.
//!
//! They build `firmware` for `thumbv7em-none-eabihf` with test blobs, run it with
//! `qemu-system-arm` (board mps2-an386) and decode its defmt output. They need
//! `qemu-system-arm`, `gcc` (for the instruction-count plugin) and the Rust target. Where
//! `qemu-system-arm` is missing they fail with a message naming the package to install.

use lightsnn_tools::e2e::{self, Config};
use lightsnn_tools::firmware;
use lightsnn_tools::qemu::Qemu;
use lightsnn_tools::sar;
use lightsnn_tools::testblob::{self, TestModelSpec};
use snn_nostd::model::Bits;
use std::path::{Path, PathBuf};

/// Checks that QEMU is installed; fails the test with the install command if not (never skips).
fn have_qemu() -> bool {
    let ok = Qemu::default().installed();
    assert!(ok, "{}", Qemu::MISSING);
    ok
}

/// Shared firmware build directory (deps built once), under the workspace target directory.
fn target_dir() -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| firmware::workspace_root().join("target"));
    base.join("firmware-e2e")
}

fn images() -> PathBuf {
    firmware::workspace_root().join("firmware/assets/images.bin")
}

fn config(work: &Path, model: PathBuf, count: bool) -> Config {
    Config {
        model,
        images: images(),
        target_dir: target_dir(),
        work_dir: work.to_path_buf(),
        qemu: Qemu::default(),
        count_instructions: count,
        dense: false,
    }
}

fn write_blob(dir: &Path, name: &str, spec: &TestModelSpec) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, testblob::random_blob(spec).unwrap()).unwrap();
    p
}

/// Device and host agree bit for bit on a LightSNN-space genotype with 8-bit weights (the
/// shipped default blob's recipe), and the instruction counts are reported.
#[test]
fn firmware_matches_host_reference_lightsnn_i8() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = TestModelSpec::cifar(8, 64, 5, testblob::LIGHTSNN_GENOTYPE, Bits::B8, 1).unwrap();
    let blob = write_blob(dir.path(), "model.bin", &spec);
    let o = e2e::run(&config(dir.path(), blob, true)).unwrap_or_else(|e| panic!("{e:#}"));
    println!("{}", e2e::describe(&o));
    let cost = o.cost.unwrap();
    assert_eq!(cost.counts.windows, 4);
    assert!(cost.per_inference > 0.0);
    assert!(
        cost.per_synaptic_event <= 6.0,
        "{:.2} instructions per synaptic event",
        cost.per_synaptic_event
    );
    // Every LIF layer fired on every image (the comparison is not vacuous).
    assert!(o
        .device
        .images
        .iter()
        .all(|i| i.spikes.iter().all(|&s| s > 0)));
}

/// N-MNIST: event input, a record = label byte + T frames of 2 x 34 x 34 event counts. The
/// records are `firmware/assets/nmnist-images.bin` (the first 3 test samples of
/// `data/nmnist-sample` at T 4, written by `lightsnn export-records`; the host crate's
/// `deploy_board` test checks that it is what the command writes), the blob a random event
/// network of T 4. Device and host agree bit for bit and the instructions are counted.
#[test]
fn firmware_matches_host_reference_nmnist_events() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = TestModelSpec::nmnist(4, 32, 4, testblob::LIGHTSNN_GENOTYPE, Bits::B8, 11).unwrap();
    let blob = write_blob(dir.path(), "nmnist.bin", &spec);
    let cfg = Config {
        images: firmware::workspace_root().join("firmware/assets/nmnist-images.bin"),
        ..config(dir.path(), blob, true)
    };
    let o = e2e::run(&cfg).unwrap_or_else(|e| panic!("{e:#}"));
    println!("{}", e2e::describe(&o));
    assert_eq!(o.device.images.len(), 3);
    assert_eq!(
        o.device.images.iter().map(|i| i.label).collect::<Vec<_>>(),
        [7, 2, 1],
        "the labels of the first 3 test samples"
    );
    let cost = o.cost.unwrap();
    assert_eq!(cost.counts.windows, 3);
    assert!(cost.per_inference > 0.0 && cost.per_synaptic_event > 0.0);
    // Every LIF layer fired on every sample (the comparison is not vacuous).
    assert!(
        o.device
            .images
            .iter()
            .all(|i| i.spikes.iter().all(|&s| s > 0)),
        "{:?}",
        o.device.images
    );
}

/// Records of another network (CIFAR-10 images for an event blob) stop the firmware build with
/// an error naming the file.
#[test]
fn records_of_another_network_fail_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TestModelSpec::nmnist(4, 32, 4, testblob::LIGHTSNN_GENOTYPE, Bits::B8, 11).unwrap();
    let blob = write_blob(dir.path(), "nmnist.bin", &spec);
    let cfg = config(dir.path(), blob.clone(), false);
    let err = e2e::build_and_run(&cfg, &blob, None, "wrong.elf").unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("images.bin") && msg.contains("not a whole number (>= 1) of records of 9249"),
        "{msg}"
    );
}

/// Same with every op (conv1, avgpool, maxpool, skip, zero, conv3) and 16-bit weights, with the
/// instruction counts.
#[test]
fn firmware_matches_host_reference_all_ops_i16() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = TestModelSpec::cifar(4, 32, 3, testblob::ALL_OPS_GENOTYPE, Bits::B16, 7).unwrap();
    let blob = write_blob(dir.path(), "model.bin", &spec);
    let o = e2e::run(&config(dir.path(), blob, true)).unwrap_or_else(|e| panic!("{e:#}"));
    println!("{}", e2e::describe(&o));
    let cost = o.cost.unwrap();
    // Issue #10 asks for 6; this net (C1 = 4, three pools per cell, 16-bit weights) is at 5.94
    // (from 32.4, then 9.35, 6.65). The bound (exact instruction counts) catches regressions.
    assert!(
        cost.per_synaptic_event <= 6.0,
        "{:.2} instructions per synaptic event",
        cost.per_synaptic_event
    );
}

/// A corrupted blob: the firmware logs the decode error and exits with status 1 (no hang, no
/// HardFault).
#[test]
fn corrupt_blob_logs_error_and_fails() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = TestModelSpec::cifar(4, 32, 2, testblob::LIGHTSNN_GENOTYPE, Bits::B8, 3).unwrap();
    let mut blob = testblob::random_blob(&spec).unwrap();
    let mid = blob.len() / 2;
    blob[mid] ^= 0x5A; // payload byte: the CRC-32 no longer matches
    let path = dir.path().join("corrupt.bin");
    std::fs::write(&path, &blob).unwrap();
    let cfg = config(dir.path(), path.clone(), false);
    let run = e2e::build_and_run(&cfg, &path, None, "corrupt.elf").unwrap();
    let log: String = run.lines.iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(run.status, 1, "expected a failure exit:\n{log}");
    let errors = run.errors();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("model blob does not decode") && e.contains("Checksum")),
        "expected the decode error in the log:\n{log}"
    );
    assert!(
        !log.contains("HardFault") && !log.contains("panic"),
        "{log}"
    );
    assert!(run.images.is_empty());

    // Garbage that is not a blob at all.
    std::fs::write(&path, b"not a model").unwrap();
    let run = e2e::build_and_run(&cfg, &path, None, "garbage.elf").unwrap();
    assert_eq!(run.status, 1);
    assert!(run
        .errors()
        .iter()
        .any(|e| e.contains("model blob does not decode")));
}

/// Static buffers smaller than the model needs: logged and a failure exit.
#[test]
fn undersized_buffers_log_error_and_fail() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = TestModelSpec::cifar(4, 32, 2, testblob::LIGHTSNN_GENOTYPE, Bits::B8, 5).unwrap();
    let blob = write_blob(dir.path(), "model.bin", &spec);
    let cfg = config(dir.path(), blob.clone(), false);
    let run = e2e::build_and_run(&cfg, &blob, Some("100,100,10,3072"), "small.elf").unwrap();
    let log: String = run.lines.iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(run.status, 1, "{log}");
    assert!(
        run.errors()
            .iter()
            .any(|e| e.contains("static buffer `act` too small")),
        "{log}"
    );
}

/// A real trained network: `firmware/assets/trained.bin` was produced by `lightsnn train` on the
/// CIFAR-10 lossless subset and `lightsnn export` (recipe in `firmware/assets/README.md`). The
/// device's predictions and every per-layer spike count equal the host integer reference on the
/// embedded test images, and the instruction counts of a trained (sparser) network are reported.
#[test]
fn firmware_matches_host_reference_trained_blob() {
    if !have_qemu() {
        return;
    }
    let blob = firmware::workspace_root().join("firmware/assets/trained.bin");
    assert!(blob.is_file(), "{} is missing", blob.display());
    let dir = tempfile::tempdir().unwrap();
    let o = e2e::run(&config(dir.path(), blob, true)).unwrap_or_else(|e| panic!("{e:#}"));
    println!("{}", e2e::describe(&o));
    assert_eq!(o.device.images.len(), 4);
    let cost = o.cost.as_ref().unwrap();
    assert!(cost.per_inference > 0.0);
    // Issue #10's budgets (exact instruction counts, not time): at most 6 instructions per
    // synaptic event, and static RAM + measured stack + the 1 KiB RTT buffer within the
    // STM32F411's 128 KiB.
    assert!(
        cost.per_synaptic_event <= 6.0,
        "{:.2} instructions per synaptic event",
        cost.per_synaptic_event
    );
    let ram = o
        .ram_needed_with_rtt()
        .expect("the firmware logs its stack peak");
    assert!(ram <= 128 * 1024, "{ram} B of RAM needed");
}

/// The dense baseline (firmware feature `dense`: SMLAD direct convolution) on the same images in
/// the same run as the event-driven engine, for the trained network and the random 8-bit one:
/// both match the host reference bit for bit, and the event / dense instruction ratio is
/// printed (at each network's own SAR).
#[test]
fn event_driven_vs_dense_baseline() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = TestModelSpec::cifar(8, 64, 5, testblob::LIGHTSNN_GENOTYPE, Bits::B8, 1).unwrap();
    let random = write_blob(dir.path(), "model.bin", &spec);
    let trained = firmware::workspace_root().join("firmware/assets/trained.bin");
    for blob in [trained, random] {
        let cfg = Config {
            dense: true,
            ..config(dir.path(), blob.clone(), true)
        };
        let o = e2e::run(&cfg).unwrap_or_else(|e| panic!("{}: {e:#}", blob.display()));
        println!("{}:\n{}", blob.display(), e2e::describe(&o));
        assert_eq!(o.device.dense_images.len(), 4);
        let (e, d) = (o.cost.unwrap(), o.dense_cost.unwrap());
        assert_eq!(d.counts.windows, 4);
        assert!(e.per_inference > 0.0 && d.per_inference > 0.0);
    }
}

/// The SAR curve of the trained network: every LIF's input scaled (as dividing the thresholds)
/// by 0.5 to 4, both engines on the same images in one run per scale, each bit for bit against
/// the host reference. The SAR rises with the scale, the event-driven cost rises with the
/// synaptic events while the dense cost stays nearly flat, and the curve and its crossover are
/// printed.
#[test]
fn sar_curve_event_vs_dense() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trained = firmware::workspace_root().join("firmware/assets/trained.bin");
    let cfg = config(dir.path(), trained.clone(), true);
    let points =
        sar::sweep_file(&cfg, &trained, &[0.5, 1.0, 2.0, 4.0]).unwrap_or_else(|e| panic!("{e:#}"));
    print!("{}", sar::describe(&points));
    for w in points.windows(2) {
        assert!(w[0].sar < w[1].sar, "SAR rises with the drive: {points:?}");
        assert!(w[0].synops < w[1].synops && w[0].event < w[1].event);
    }
    let (lo, hi) = points.iter().fold((f64::MAX, 0f64), |(lo, hi), p| {
        (lo.min(p.dense), hi.max(p.dense))
    });
    assert!(hi / lo < 1.25, "the dense cost hardly depends on the SAR");
    assert!(sar::crossover(&points).is_some());
}
