//! CLI fault injection: every command runs on mutated copies of its inputs (the shipped N-MNIST
//! sample, a small checkpoint, its blob, a run's `state.json`, a study's `study.json` and
//! `result.json`): truncated, bit-flipped, extended, zero-filled, NaN-filled and with huge
//! header values. Whatever the input, the command must exit with 0, 1 or 2 (no signal, no
//! abort), never print "panicked", print exactly one `error:` line when it fails, and leave
//! every input file as it was (checksums before and after). See docs/cli.md, "Errors and
//! outputs".
//!
//! The cases form a table (not random): about a hundred runs of tiny networks, spread over two
//! threads, that take seconds in release mode.

mod common;

use common::{tiny, GENOTYPE};
use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One run may take this long before it counts as a hang.
const TIMEOUT: Duration = Duration::from_secs(120);

/// What one run gave.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `lightsnn args`, killing it after [`TIMEOUT`].
fn lightsnn(args: &[String]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_lightsnn"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("run lightsnn");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > TIMEOUT {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    Run {
        code: status.and_then(|s| s.code()),
        stdout: read(&out),
        stderr: read(&err),
    }
}

/// A hash of every file below `dir` (path and bytes).
fn tree_hash(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                let mut h = DefaultHasher::new();
                std::fs::read(&p).unwrap().hash(&mut h);
                out.insert(p, h.finish());
            }
        }
    }
    out
}

/// The mutations of a file's bytes that every file gets.
fn generic(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let n = bytes.len();
    let mut flipped = bytes.to_vec();
    for at in [0, n / 3, n / 2 + 1, n.saturating_sub(1)] {
        if let Some(b) = flipped.get_mut(at) {
            *b ^= 0xFF;
        }
    }
    let mut extended = bytes.to_vec();
    extended.extend(std::iter::repeat_n(0xA5, 1024));
    let nan: Vec<u8> = (0..n).map(|i| [0x00, 0x00, 0xC0, 0x7F][i % 4]).collect();
    vec![
        ("truncated to half".into(), bytes[..n / 2].to_vec()),
        ("emptied".into(), Vec::new()),
        ("bit-flipped".into(), flipped),
        ("extended".into(), extended),
        ("zero-filled".into(), vec![0; n]),
        ("NaN-filled".into(), nan),
    ]
}

/// Checkpoint mutations beyond the generic ones: huge values in its metadata, a huge header
/// length, NaN and infinite weights with an intact header.
fn checkpoint_mutations(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (field, value) in [
        ("/net/timesteps", serde_json::json!(10_000_000u64)),
        ("/net/timesteps", serde_json::json!(1_000_000_000u64)),
        ("/net/hidden", serde_json::json!(1_000_000_000u64)),
        ("/net/c1", serde_json::json!(u64::MAX)),
        ("/net/input", serde_json::json!([3, 100000, 100000])),
        ("/net/lif/tau", serde_json::json!(0.0)),
        ("/genotype", serde_json::json!("conv3")),
    ] {
        let name = format!("metadata {field} = {value}");
        out.push((name, common::with_meta_value(bytes, field, value)));
    }
    let mut huge_len = bytes.to_vec();
    huge_len[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    out.push(("header length 2^64 - 1".into(), huge_len));
    for (name, v) in [
        ("NaN weights", f32::NAN),
        ("infinite weights", f32::INFINITY),
        ("weights 3e38", 3e38),
    ] {
        out.push((name.into(), common::with_weights(bytes, v)));
    }
    out
}

/// Blob mutations beyond the generic ones: a huge length field, and payload bytes set to 0xFF
/// with the checksum fixed, so that the parser and the validator see huge values.
fn blob_mutations(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use snn_nostd::crc32::crc32;
    const HEADER: usize = 14;
    let mut out = Vec::new();
    let mut huge_len = bytes.to_vec();
    huge_len[6..10].copy_from_slice(&u32::MAX.to_le_bytes());
    out.push(("length field 2^32 - 1".into(), huge_len));
    for at in [0, 1, 2, 3, 5, 8, 13, 21] {
        let mut b = bytes.to_vec();
        if HEADER + at >= b.len() {
            continue;
        }
        b[HEADER + at] = 0xFF;
        let crc = crc32(&b[HEADER..]);
        b[10..14].copy_from_slice(&crc.to_le_bytes());
        out.push((format!("payload byte {at} = 0xFF, checksum fixed"), b));
    }
    out
}

/// Event-file mutations beyond the generic ones: an event outside the sensor, and nothing but
/// timestamp-overflow markers (no events).
fn events_mutations(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut outside = bytes.to_vec();
    outside[..5].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
    let markers: Vec<u8> = (0..bytes.len()).map(|i| [0, 240, 0, 0, 0][i % 5]).collect();
    vec![
        ("event at x=255, y=255".into(), outside),
        ("only overflow markers".into(), markers),
    ]
}

/// Label-list mutations beyond the generic ones.
fn labels_mutations(text: &[u8]) -> Vec<(String, Vec<u8>)> {
    let s = String::from_utf8_lossy(text);
    let second = s.lines().nth(1).unwrap_or_default().to_string();
    vec![
        (
            "a repeated id".into(),
            format!("{s}{second}\r\n").into_bytes(),
        ),
        (
            "a huge id".into(),
            format!("{s}99999999999999999999999999\t1\r\n").into_bytes(),
        ),
        ("class 99".into(), format!("{s}1\t99\r\n").into_bytes()),
        ("header only".into(), b"#sample #class\r\n".to_vec()),
    ]
}

/// JSON mutations: each `(pointer, value)` set in the file.
fn json_mutations(text: &[u8], edits: &[(&str, serde_json::Value)]) -> Vec<(String, Vec<u8>)> {
    let v: serde_json::Value = serde_json::from_slice(text).unwrap();
    edits
        .iter()
        .map(|(ptr, value)| {
            let mut m = v.clone();
            *m.pointer_mut(ptr)
                .unwrap_or_else(|| panic!("no {ptr} in the file")) = value.clone();
            (
                format!("{ptr} = {value}"),
                serde_json::to_vec_pretty(&m).unwrap(),
            )
        })
        .collect()
}

/// The fixtures every case reads (or copies): data, a run, its checkpoint and blob, a study.
struct Fixtures {
    root: tempfile::TempDir,
}

impl Fixtures {
    fn run(&self) -> PathBuf {
        self.root.path().join("run")
    }
    fn checkpoint(&self) -> PathBuf {
        self.run().join("best.safetensors")
    }
    fn blob(&self) -> PathBuf {
        self.root.path().join("model.blob")
    }
    fn study(&self) -> PathBuf {
        self.root.path().join("study")
    }

    fn new() -> Fixtures {
        let root = tempfile::tempdir().unwrap();
        let f = Fixtures { root };
        let data = common::nmnist_copy(f.root.path());
        let ok = |args: Vec<String>| {
            let r = lightsnn(&args);
            assert_eq!(r.code, Some(0), "fixture {args:?}: {}", r.stderr);
        };
        ok(common::tiny_train(&data, &f.run()));
        ok(common::tiny_export(&f.checkpoint(), &data, &f.blob()));
        ok(common::tiny_study(&data, &f.study()));
        f
    }
}

/// One run of the table: the command line (with `{data}`, `{ck}`, `{blob}`, `{run}`,
/// `{study}` and `{out}` to fill in), which fixture file is mutated, and how.
struct Case {
    name: String,
    args: Vec<String>,
    /// The fixture file replaced by `bytes`, relative to the fixture root.
    file: PathBuf,
    bytes: Vec<u8>,
    /// The folder (relative to the fixture root) that the command both reads and writes: it
    /// is copied into the case folder and not checked for changes.
    inout: Option<&'static str>,
}

/// Builds the case folder: the fixture tree with the mutated file replaced (files are linked
/// through symlinks, except the mutated one and an `inout` folder, which are copies), and the
/// filled-in arguments.
fn prepare(f: &Fixtures, case: &Case, dir: &Path) -> Vec<String> {
    fn link_tree(src: &Path, dst: &Path, copy: bool) {
        std::fs::create_dir_all(dst).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let p = e.unwrap().path();
            let q = dst.join(p.file_name().unwrap());
            if p.is_dir() {
                link_tree(&p, &q, copy);
            } else if copy {
                std::fs::copy(&p, &q).unwrap();
            } else {
                std::os::unix::fs::symlink(&p, &q).unwrap();
            }
        }
    }
    for top in ["nmnist", "run", "study"] {
        let copy = case.inout == Some(top);
        link_tree(&f.root.path().join(top), &dir.join(top), copy);
    }
    std::os::unix::fs::symlink(f.blob(), dir.join("model.blob")).unwrap();
    let target = dir.join(&case.file);
    let _ = std::fs::remove_file(&target);
    std::fs::write(&target, &case.bytes).unwrap();
    let fill = |a: &String| {
        a.replace("{data}", dir.join("nmnist").to_str().unwrap())
            .replace("{ck}", dir.join("run/best.safetensors").to_str().unwrap())
            .replace("{blob}", dir.join("model.blob").to_str().unwrap())
            .replace("{run}", dir.join("run").to_str().unwrap())
            .replace("{study}", dir.join("study").to_str().unwrap())
            .replace("{out}", dir.join("out").to_str().unwrap())
    };
    case.args.iter().map(fill).collect()
}

/// The commands that read a file, as argument templates.
fn commands_reading(what: &str) -> Vec<Vec<String>> {
    let words = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let net = tiny(Path::new("{data}"));
    let with_net = |head: &str, tail: &str| {
        let mut v = words(head);
        v.extend(net.iter().cloned());
        v.extend(words(tail));
        v
    };
    let search = with_net(
        "search",
        "--method random-shared --samples 2 --batch 4 --repeats 1 --out {out}/s.json",
    );
    let score = with_net(
        &format!("score --genotype {GENOTYPE}"),
        "--batch 4 --repeats 1",
    );
    let train = with_net(
        &format!("train --genotype {GENOTYPE}"),
        "--epochs 1 --batch 8 --out {out}/run",
    );
    let eval = words("eval --checkpoint {ck} --data {data} --batch 16 --json {out}/e.json");
    let eval_model = words("eval --model {blob} --data {data}");
    let eval_both = words("eval --model {blob} --checkpoint {ck} --data {data}");
    let export = words("export --checkpoint {ck} --data {data} --calib 4 --out {out}/m.blob");
    match what {
        "train events" => vec![search, score, train, export],
        "train labels" => vec![search, train],
        "test events" | "test labels" => vec![eval, eval_model],
        "checkpoint" => vec![eval, eval_both, export],
        "blob" => vec![eval_model, eval_both],
        "state" => vec![words("train --resume {run}")],
        "study" => vec![words("study --resume {study}")],
        other => panic!("no commands for {other}"),
    }
}

fn cases(f: &Fixtures) -> Vec<Case> {
    use serde_json::json;
    type Mutations = Vec<(String, Vec<u8>)>;
    // the generic mutations of a fixture file and those `extra` makes of it
    let mutate = |rel: &str, extra: &dyn Fn(&[u8]) -> Mutations| -> Mutations {
        let b = std::fs::read(f.root.path().join(rel)).unwrap();
        let mut m = generic(&b);
        m.extend(extra(&b));
        m
    };
    let state_edits = [
        ("/epoch", json!(1_000_000_000_000u64)),
        ("/config/epochs", json!(0)),
        ("/config/batch", json!(0)),
        ("/config/val_fraction", json!(7.5)),
        ("/config/optim/lr", json!(-1.0)),
        ("/config/net/hidden", json!(1_000_000_000u64)),
        ("/config/net/timesteps", json!(10_000_000u64)),
        ("/config/genotype", json!("conv3,conv3")),
        ("/best/epoch", json!(99)),
    ];
    let study_edits = [
        ("/config/epochs", json!(3)),
        ("/config/net/hidden", json!(12)),
        ("/config/net/timesteps", json!(10_000_000u64)),
        ("/config/search_batch", json!(1)),
    ];
    let result_edits = [
        ("/test_top1", json!(2.0)),
        ("/score_mean", json!(1e300)),
        ("/best_epoch", json!(0)),
    ];
    let groups: Vec<(&str, &str, Mutations, Option<&'static str>)> = vec![
        (
            "train events",
            "nmnist/1.bs2",
            mutate("nmnist/1.bs2", &events_mutations),
            None,
        ),
        (
            "test events",
            "nmnist/60001.bs2",
            mutate("nmnist/60001.bs2", &events_mutations),
            None,
        ),
        (
            "train labels",
            "nmnist/train1K.txt",
            mutate("nmnist/train1K.txt", &labels_mutations),
            None,
        ),
        (
            "test labels",
            "nmnist/test100.txt",
            mutate("nmnist/test100.txt", &labels_mutations),
            None,
        ),
        (
            "checkpoint",
            "run/best.safetensors",
            mutate("run/best.safetensors", &checkpoint_mutations),
            None,
        ),
        (
            "blob",
            "model.blob",
            mutate("model.blob", &blob_mutations),
            None,
        ),
        (
            "state",
            "run/state.json",
            mutate("run/state.json", &|b| json_mutations(b, &state_edits)),
            Some("run"),
        ),
        (
            "study",
            "study/study.json",
            mutate("study/study.json", &|b| json_mutations(b, &study_edits)),
            Some("study"),
        ),
        (
            "study",
            "study/cells/prune/result.json",
            mutate("study/cells/prune/result.json", &|b| {
                json_mutations(b, &result_edits)
            }),
            Some("study"),
        ),
    ];
    let mut out = Vec::new();
    for (what, rel, mutations, inout) in groups {
        for args in commands_reading(what) {
            for (how, bytes) in &mutations {
                out.push(Case {
                    name: format!("{} on {rel} {how}", args[..2].join(" ")),
                    args: args.clone(),
                    file: PathBuf::from(rel),
                    bytes: bytes.clone(),
                    inout,
                });
            }
        }
    }
    out
}

/// Runs one case; the problems found (empty: none).
fn check(f: &Fixtures, case: &Case) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let args = prepare(f, case, dir.path());
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let mut inputs: HashMap<PathBuf, u64> = HashMap::new();
    for top in ["nmnist", "run", "study"] {
        if case.inout != Some(top) {
            inputs.extend(tree_hash(&dir.path().join(top)));
        }
    }
    let r = lightsnn(&args);
    let mut problems = Vec::new();
    match r.code {
        Some(0..=2) => {}
        Some(c) => problems.push(format!("exit status {c}")),
        None => problems.push("killed by a signal or hung".into()),
    }
    if r.stderr.contains("panicked") || r.stdout.contains("panicked") {
        problems.push("panicked".into());
    }
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("error"))
        .collect();
    if r.code.is_some_and(|c| c != 0) {
        let name = case.file.file_name().unwrap().to_str().unwrap();
        match errors[..] {
            [e] if e.contains(name) => {}
            [_] => problems.push(format!("the error does not name {name}")),
            _ => problems.push(format!("{} error lines", errors.len())),
        }
    }
    for (p, h) in &inputs {
        let now = std::fs::read(p).map(|b| {
            let mut s = DefaultHasher::new();
            b.hash(&mut s);
            s.finish()
        });
        if now.ok() != Some(*h) {
            problems.push(format!("input {} changed", p.display()));
        }
    }
    // the outcome of every case (shown with --nocapture)
    let last = r.stderr.lines().rev().find(|l| !l.is_empty()).unwrap_or("");
    eprintln!("{:?} {}: {last}", r.code, case.name);
    if problems.is_empty() {
        return problems;
    }
    vec![format!(
        "{}: {} (exit {:?})\n  stderr: {}",
        case.name,
        problems.join(", "),
        r.code,
        r.stderr.trim().replace('\n', "\n          ")
    )]
}

#[test]
fn every_command_survives_mutated_inputs() {
    let f = Fixtures::new();
    let before = tree_hash(f.root.path());
    let cases = cases(&f);
    assert!(cases.len() > 100, "{} cases", cases.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                let p = check(&f, case);
                failures.lock().unwrap().extend(p);
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(tree_hash(f.root.path()), before, "a fixture changed");
}
