//! `lightsnn study` on the shipped CIFAR-10 sample: a small smoke run, resumption after a kill
//! (finished cells are not retrained), and clear errors for a missing or corrupt study folder.

mod common;

use common::lightsnn;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/cifar10-sample")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// Two random cells plus the two found cells, tiny networks, one epoch: a few seconds each.
fn smoke_args(out: &Path) -> Vec<String> {
    let data = sample();
    [
        "study",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--cells",
        "2",
        "--noise-seeds",
        "0",
        "--epochs",
        "1",
        "--timesteps",
        "1",
        "--hidden",
        "32",
        "--train-samples",
        "200",
        "--test-samples",
        "60",
        "--search-batch",
        "8",
        "--score-repeats",
        "2",
        "--random-samples",
        "4",
        "--random-batch",
        "8",
        "--bootstrap",
        "100",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn smoke_study_writes_report_csv_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("study");
    let args = smoke_args(&out);
    let o = lightsnn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (so, se) = text(&o);
    assert!(o.status.success(), "{so}\n{se}");
    assert!(so.contains("Kendall tau"), "{so}");
    let rep = read_json(&out.join("report.json"));
    assert_eq!(rep["format"], "lightsnn-study-report/1");
    assert_eq!(rep["finished"], 4);
    assert_eq!(rep["complete"], true);
    let cells = rep["cells"].as_array().unwrap();
    let ids: Vec<&str> = cells.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["prune", "random-search", "random-00", "random-01"]);
    for c in cells {
        let top1 = c["test_top1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&top1), "{c}");
        assert_eq!(c["scores"].as_array().unwrap().len(), 2);
        assert!(c["score_std"].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(rep["correlations"][0]["cells"], "random");
    assert_eq!(rep["correlations"][1]["n"], 4);
    let csv = std::fs::read_to_string(out.join("cells.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.starts_with("id,kind,genotype"));
    let svg = std::fs::read_to_string(out.join("scatter.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("random cells"),
        "{svg:.200}"
    );
    // a second start in the same folder is refused
    let o = lightsnn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("--resume"), "{}", text(&o).1);
}

#[test]
fn study_resumes_after_a_kill_without_retraining_finished_cells() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("study");
    let args = smoke_args(&out);
    let mut child = Command::new(env!("CARGO_BIN_EXE_lightsnn"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = out.join("cells/prune/result.json");
    let start = Instant::now();
    while !first.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the study ended before its first cell was committed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "no cell finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let committed = std::fs::read(&first).unwrap();
    let state = out.join("cells/prune/run/state.json");
    let state_before = std::fs::read(&state).unwrap();
    let o = lightsnn(&["study", "--resume", out.to_str().unwrap()]);
    let (so, se) = text(&o);
    assert!(o.status.success(), "{so}\n{se}");
    assert!(
        so.contains("prune          done before"),
        "the finished cell was not reused:\n{so}"
    );
    // the finished cell's files are untouched
    assert_eq!(std::fs::read(&first).unwrap(), committed);
    assert_eq!(std::fs::read(&state).unwrap(), state_before);
    let rep = read_json(&out.join("report.json"));
    assert_eq!(rep["finished"], 4);
    // the resumed study equals an uninterrupted one (except wall times)
    let dir2 = tempfile::tempdir().unwrap();
    let out2 = dir2.path().join("study");
    let args2 = smoke_args(&out2);
    let o = lightsnn(&args2.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o).1);
    let rep2 = read_json(&out2.join("report.json"));
    let strip = |v: &serde_json::Value| {
        v["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let mut c = c.clone();
                c["wall_s"] = serde_json::Value::Null;
                c
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&rep), strip(&rep2));
    // resume refuses settings of its own
    let o = lightsnn(&["study", "--resume", out.to_str().unwrap(), "--epochs", "3"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("study.json"), "{}", text(&o).1);
}

#[test]
fn missing_or_corrupt_study_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let o = lightsnn(&["study", "--resume", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = text(&o).1;
    assert!(
        e.contains("study.json") && e.contains("is") && e.contains("a study folder"),
        "{e}"
    );

    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("study.json"),
        b"{\"format\": \"lightsnn-study/1\", \"conf",
    )
    .unwrap();
    let o = lightsnn(&["study", "--resume", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = text(&o).1;
    assert!(e.contains("study.json") && e.contains("not JSON"), "{e}");

    std::fs::write(
        bad.join("study.json"),
        b"{\"format\": \"lightsnn-train-state/1\"}",
    )
    .unwrap();
    let o = lightsnn(&["study", "--resume", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).1.contains("expected \"lightsnn-study/1\""),
        "{}",
        text(&o).1
    );
}

#[test]
fn corrupt_cell_result_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("study");
    let mut args = smoke_args(&out);
    // stop early: one random cell is enough
    let k = args.iter().position(|a| a == "--cells").unwrap();
    args[k + 1] = "1".into();
    let o = lightsnn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o).1);
    let r = out.join("cells/random-00/result.json");
    std::fs::write(&r, b"{ truncated").unwrap();
    let o = lightsnn(&["study", "--resume", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = text(&o).1;
    assert!(
        e.contains("random-00/result.json") && e.contains("corrupt"),
        "{e}"
    );
}
