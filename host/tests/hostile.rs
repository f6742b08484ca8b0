//! The defects of issue 24, one reproducer each: huge sizes, outputs that are inputs or special
//! files, `--stop-after 0`, a run missing its best checkpoint, data without events, NaN
//! weights, an edited study, leftovers and error texts. Each exits 1 (2 for a bad flag) with one
//! message naming the file or flag and the problem, and destroys nothing. See docs/cli.md,
//! "Errors and outputs".

mod common;

use common::{lightsnn, nmnist_copy, stderr, tiny, GENOTYPE};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `lightsnn args` under a virtual-memory limit of 8 GiB: a size check that regressed aborts
/// instead of driving the machine out of memory.
fn lightsnn_limited(args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 8388608 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_lightsnn"))
        .args(args)
        .output()
        .expect("run lightsnn")
}

/// Asserts exit status `code` and one `error:` line containing every needle; returns it.
fn fails(o: &Output, code: i32, needles: &[&str]) -> String {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{e}");
    let errors: Vec<&str> = e.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{e}");
    for n in needles {
        assert!(errors[0].contains(n), "{n:?} not in {}", errors[0]);
    }
    errors[0].to_string()
}

fn run_with(head: &[&str], tail: &[String]) -> Output {
    let mut a: Vec<&str> = head.to_vec();
    a.extend(tail.iter().map(String::as_str));
    lightsnn(&a)
}

/// A trained tiny run (2 epochs, 1 done) on a copy of the sample: (data, run folder).
fn tiny_run(dir: &Path) -> (PathBuf, PathBuf) {
    let data = nmnist_copy(dir);
    let out = dir.join("run");
    let o = run_with(&[], &common::tiny_train(&data, &out));
    assert!(o.status.success(), "{}", stderr(&o));
    (data, out)
}

/// A tiny run's best checkpoint changed by `mutate`, written to `dir/name`: (data, that file).
fn mutated_checkpoint(
    dir: &Path,
    name: &str,
    mutate: impl FnOnce(&[u8]) -> Vec<u8>,
) -> (PathBuf, PathBuf) {
    let (data, run) = tiny_run(dir);
    let path = dir.join(name);
    let bytes = std::fs::read(run.join("best.safetensors")).unwrap();
    std::fs::write(&path, mutate(&bytes)).unwrap();
    (data, path)
}

#[test]
fn huge_sizes_are_refused_before_allocating() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("run");
    for (flag, value, needle) in [
        ("--hidden", "1000000000", "hidden units"),
        ("--votes", "10000000", "needs about"),
        ("--width", "1e9", "width multiplier"),
        ("--timesteps", "100000", "needs about"),
    ] {
        let o = lightsnn_limited(&[
            "train",
            "--genotype",
            GENOTYPE,
            "--epochs",
            "1",
            flag,
            value,
            "--out",
            out.to_str().unwrap(),
        ]);
        fails(&o, 1, &[needle]);
        assert!(!out.exists(), "{flag}: no run folder");
    }
    let data = lightsnn_tests::shipped_data("nmnist-sample");
    let data = data.to_str().unwrap();
    for t in ["1000000000", "10000000"] {
        let o = lightsnn_limited(&[
            "search",
            "--dataset",
            "nmnist",
            "--data",
            data,
            "--timesteps",
            t,
        ]);
        fails(&o, 1, &["timesteps"]);
    }
}

#[test]
fn checkpoint_metadata_sizes_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let (data, big) = mutated_checkpoint(d.path(), "big.safetensors", |b| {
        common::with_meta_value(b, "/net/timesteps", 10_000_000.into())
    });
    let data = data.to_str().unwrap();
    let o = lightsnn_limited(&[
        "eval",
        "--checkpoint",
        big.to_str().unwrap(),
        "--data",
        data,
    ]);
    fails(&o, 1, &["needs about", "big.safetensors"]);
    let blob = d.path().join("m.blob");
    let o = lightsnn_limited(&[
        "export",
        "--checkpoint",
        big.to_str().unwrap(),
        "--data",
        data,
        "--out",
        blob.to_str().unwrap(),
    ]);
    fails(&o, 1, &["needs about", "big.safetensors"]);
    assert!(!blob.exists());
}

#[test]
fn outputs_that_are_inputs_or_special_files_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let (data, run) = tiny_run(d.path());
    let list = data.join("train1K.txt");
    let before = std::fs::read(&list).unwrap();
    let o = run_search(&data, &list);
    fails(&o, 1, &["--out", "train1K.txt", "input"]);
    assert_eq!(std::fs::read(&list).unwrap(), before);
    let ck = run.join("best.safetensors");
    let ck_bytes = std::fs::read(&ck).unwrap();
    let export = |out: &Path| run_with(&[], &common::tiny_export(&ck, &data, out));
    fails(&export(&ck), 1, &["--out", "--checkpoint", "destroy"]);
    // the same file through a hard link
    let hard = d.path().join("hard.safetensors");
    std::fs::hard_link(&ck, &hard).unwrap();
    fails(&export(&hard), 1, &["--checkpoint"]);
    assert_eq!(std::fs::read(&ck).unwrap(), ck_bytes);
    // a FIFO and a device node are refused, a symlink is written through
    let fifo = d.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    fails(&export(&fifo), 1, &["--out", "FIFO"]);
    let device = ["/dev/null", "/dev/zero", "/dev/full"]
        .iter()
        .map(Path::new)
        .find(|p| {
            use std::os::unix::fs::FileTypeExt;
            std::fs::metadata(p).is_ok_and(|m| m.file_type().is_char_device())
        })
        .expect("a character device in /dev");
    fails(&export(device), 1, &["character device"]);
    let target = d.path().join("target.blob");
    std::fs::write(&target, "old").unwrap();
    let link = d.path().join("link.blob");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let o = export(&link);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::read(&target).unwrap().starts_with(b"LSNN"));
    // an unwritable folder is found before the search runs
    let o = run_search(&data, Path::new("/proc/lightsnn/s.json"));
    fails(&o, 1, &["--out", "/proc"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("round"));
}

fn run_search(data: &Path, out: &Path) -> Output {
    let mut tail = tiny(data);
    tail.extend(
        [
            "--method",
            "random-shared",
            "--samples",
            "2",
            "--batch",
            "4",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from),
    );
    run_with(&["search"], &tail)
}

#[test]
fn stop_after_zero_and_a_missing_best_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("run0");
    let o = lightsnn(&[
        "train",
        "--genotype",
        GENOTYPE,
        "--epochs",
        "1",
        "--stop-after",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--stop-after"), "{}", stderr(&o));
    assert!(!out.exists());
    let (_, run) = tiny_run(d.path());
    std::fs::remove_file(run.join("best.safetensors")).unwrap();
    let o = lightsnn(&["train", "--resume", run.to_str().unwrap()]);
    fails(&o, 1, &["best.safetensors is missing", "state.json"]);
}

#[test]
fn data_without_events_is_refused_or_warned_about() {
    let d = tempfile::tempdir().unwrap();
    let data = nmnist_copy(d.path());
    // two empty samples: a warning naming them, and (they make every kernel singular) no
    // search result from scores of -inf
    std::fs::write(data.join("3.bs2"), b"").unwrap();
    std::fs::write(data.join("5.bs2"), b"").unwrap();
    let out = d.path().join("s.json");
    let mut tail = tiny(&data);
    tail.extend(
        [
            "--method",
            "random-shared",
            "--samples",
            "2",
            "--batch",
            "40",
        ]
        .map(String::from),
    );
    tail.extend(["--out".to_string(), out.display().to_string()]);
    let o = run_with(&["search"], &tail);
    let e = stderr(&o);
    assert!(
        e.contains("warning: 2 of the 40 samples") && e.contains("3.bs2"),
        "{e}"
    );
    fails(&o, 1, &["-inf", "events"]);
    assert!(!out.exists());
    // every sample empty: an error before anything runs
    for e in std::fs::read_dir(&data).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "bs2") {
            std::fs::write(&p, b"").unwrap();
        }
    }
    let o = run_with(&["search"], &tiny(&data));
    fails(&o, 1, &["no events", "nmnist"]);
    // an empty label list
    std::fs::write(data.join("train1K.txt"), "#sample #class\r\n").unwrap();
    let o = run_with(&["search"], &tiny(&data));
    fails(&o, 1, &["no samples listed in train1K.txt"]);
}

#[test]
fn non_finite_weights_are_refused_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let (data, path) = mutated_checkpoint(d.path(), "nan.safetensors", |b| {
        common::with_weights(b, f32::NAN)
    });
    let (p, data) = (path.to_str().unwrap(), data.to_str().unwrap());
    let o = lightsnn(&["eval", "--checkpoint", p, "--data", data]);
    fails(&o, 1, &["nan.safetensors", "NaN"]);
    let out = d.path().join("m.blob");
    let o = lightsnn(&[
        "export",
        "--checkpoint",
        p,
        "--data",
        data,
        "--out",
        out.to_str().unwrap(),
    ]);
    fails(&o, 1, &["nan.safetensors", "NaN"]);
}

#[test]
fn leftovers_and_error_texts() {
    let d = tempfile::tempdir().unwrap();
    let (data, run) = tiny_run(d.path());
    // no empty run folder when the run cannot start
    let out = d.path().join("never");
    let mut tail = tiny(&data);
    tail.extend(
        [
            "--epochs",
            "1",
            "--val-fraction",
            "0.99",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from),
    );
    let o = run_with(&["train", "--genotype", GENOTYPE], &tail);
    fails(&o, 1, &["--val-fraction"]);
    assert!(!out.exists());
    // a stale temporary file of a killed run is cleaned up by the next write there
    let stale = run.join(".state.json.lightsnn-2147483647.tmp");
    std::fs::write(&stale, "x").unwrap();
    let o = lightsnn(&["train", "--resume", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stale.exists());
    // a listed sample without its file names the list's line
    std::fs::remove_file(data.join("7.bs2")).unwrap();
    let o = run_with(&["search"], &tiny(&data));
    fails(&o, 1, &["train1K.txt", "line 8", "7.bs2"]);
    // the OS cause once (a DVS128 recording without its labels file)
    let dvs = d.path().join("DvsGesture");
    std::fs::create_dir(&dvs).unwrap();
    std::fs::write(
        dvs.join("user01_led.aedat"),
        "#!AER-DAT3.1\r\n#!END-HEADER\r\n",
    )
    .unwrap();
    let o = lightsnn(&[
        "search",
        "--dataset",
        "dvs128",
        "--data",
        dvs.to_str().unwrap(),
        "--width",
        "0.015625",
        "--timesteps",
        "2",
    ]);
    let e = fails(&o, 1, &["user01_led_labels.csv", "os error 2"]);
    assert_eq!(e.matches("os error 2").count(), 1, "{e}");
    // a state.json value is named as one
    let state = run.join("state.json");
    let text = std::fs::read_to_string(&state).unwrap();
    std::fs::write(&state, text.replace("\"batch\": 8", "\"batch\": 0")).unwrap();
    let o = lightsnn(&["train", "--resume", run.to_str().unwrap()]);
    let e = fails(&o, 1, &["state.json", "config.batch"]);
    assert!(!e.contains("--batch"), "{e}");
    // blob-only flags with --format blob
    let o = lightsnn(&[
        "export",
        "--checkpoint",
        run.join("best.safetensors").to_str().unwrap(),
        "--out",
        d.path().join("m.blob").to_str().unwrap(),
        "--approx-maxpool",
    ]);
    fails(&o, 2, &["--approx-maxpool", "--format nir"]);
    let reference = d.path().join("ref.json");
    let o = lightsnn(&[
        "export",
        "--checkpoint",
        run.join("best.safetensors").to_str().unwrap(),
        "--out",
        d.path().join("m.blob").to_str().unwrap(),
        "--reference-out",
        reference.to_str().unwrap(),
    ]);
    fails(&o, 2, &["--reference-out", "--format nir"]);
    assert!(!reference.exists() && !d.path().join("m.blob").exists());
}

#[test]
fn a_blob_and_another_checkpoint_name_the_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    let (data, run) = tiny_run(d.path());
    let blob = d.path().join("m.blob");
    let ck = run.join("best.safetensors");
    let o = run_with(&[], &common::tiny_export(&ck, &data, &blob));
    assert!(o.status.success(), "{}", stderr(&o));
    let data = data.to_str().unwrap();
    // another network: H 16
    let other = d.path().join("other");
    let mut tail = tiny(Path::new(data));
    let pos = tail.iter().position(|a| a == "--hidden").unwrap();
    tail[pos + 1] = "16".into();
    tail.extend(["--epochs", "1", "--batch", "8", "--out"].map(String::from));
    tail.push(other.display().to_string());
    let o = run_with(&["train", "--genotype", GENOTYPE], &tail);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = lightsnn(&[
        "eval",
        "--model",
        blob.to_str().unwrap(),
        "--checkpoint",
        other.join("best.safetensors").to_str().unwrap(),
        "--data",
        data,
    ]);
    fails(
        &o,
        1,
        &["--checkpoint", "other/best.safetensors", "H 16", "H 8"],
    );
}

#[test]
fn duplicate_ids_in_a_label_list_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let data = nmnist_copy(d.path());
    let list = data.join("train1K.txt");
    let mut text = std::fs::read_to_string(&list).unwrap();
    text.push_str("12\t3\r\n");
    std::fs::write(&list, text).unwrap();
    let o = run_with(&["search"], &tiny(&data));
    fails(&o, 1, &["train1K.txt", "line 42", "id 12 repeats line 13"]);
}

#[test]
fn an_edited_study_is_not_resumed() {
    let d = tempfile::tempdir().unwrap();
    let data = nmnist_copy(d.path());
    let out = d.path().join("study");
    let tail = common::tiny_study(&data, &out);
    let o = run_with(&[], &tail);
    assert!(o.status.success(), "{}", stderr(&o));
    let study = out.join("study.json");
    let text = std::fs::read_to_string(&study).unwrap();
    let resume = || lightsnn(&["study", "--resume", out.to_str().unwrap()]);
    std::fs::write(&study, text.replace("\"epochs\": 1", "\"epochs\": 3")).unwrap();
    fails(&resume(), 1, &["state.json", "epochs", "study.json"]);
    std::fs::write(&study, text.replace("\"hidden\": 8", "\"hidden\": 12")).unwrap();
    fails(&resume(), 1, &["search-prune.json", "net.hidden"]);
    std::fs::write(&study, &text).unwrap();
    let result = out.join("cells/prune/result.json");
    let mut r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&result).unwrap()).unwrap();
    r["test_top1"] = 2.0.into();
    std::fs::write(&result, serde_json::to_vec_pretty(&r).unwrap()).unwrap();
    fails(&resume(), 1, &["result.json", "test_top1 2"]);
}

#[test]
fn nir_export_creates_its_folder_only_when_it_can_write() {
    let d = tempfile::tempdir().unwrap();
    let (_, run) = tiny_run(d.path());
    let folder = d.path().join("new");
    let out = folder.join("m.nir");
    let ck = run.join("best.safetensors");
    let export = |extra: &[&str]| {
        let mut a = vec!["export", "--checkpoint", ck.to_str().unwrap()];
        a.extend(["--format", "nir", "--out", out.to_str().unwrap()]);
        a.extend(extra);
        lightsnn(&a)
    };
    // the tiny network has a max pool, which NIR cannot hold exactly: refused, nothing created
    let o = export(&[]);
    if cfg!(feature = "nir") {
        fails(&o, 1, &["--approx-maxpool"]);
    } else {
        fails(&o, 1, &["without NIR support"]);
    }
    assert!(!folder.exists());
    let o = export(&["--approx-maxpool"]);
    if cfg!(feature = "nir") {
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(out.is_file());
    } else {
        // a build without NIR refuses before it reads or creates anything
        fails(&o, 1, &["without NIR support"]);
        assert!(!folder.exists());
    }
}
