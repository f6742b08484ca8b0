//! The `lightsnn` binary on good and bad input: clear errors, exit codes, no half-written files.

mod common;

use common::{lightsnn, stderr};
use lightsnn_tests::shipped_data;

const TINY: &[&str] = &[
    "--width",
    "0.015625",
    "--batch",
    "8",
    "--timesteps",
    "2",
    "--repeats",
    "1",
    "--hidden",
    "32",
    "--votes",
    "2",
];

#[test]
fn bad_flag_is_a_usage_error() {
    let o = lightsnn(&["search", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--no-such-flag"), "{}", stderr(&o));
    let o = lightsnn(&["search", "--method", "genetic"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("genetic"));
}

#[test]
fn bad_genotype_names_the_problem() {
    let o = lightsnn(&["score", "--genotype", "conv3,conv3,bogus,zero,zero,zero"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("bogus") || e.contains("op 2"), "{e}");
    let o = lightsnn(&["score", "--genotype", "conv1,conv1,conv1,conv1,conv1,conv1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not in the op set"), "{}", stderr(&o));
}

#[test]
fn impossible_configuration_is_refused() {
    let o = lightsnn(&["search", "--width=-1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("width"), "{}", stderr(&o));
    let o = lightsnn(&["search", "--timesteps", "0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("timesteps"), "{}", stderr(&o));
    let o = lightsnn(&["search", "--dataset", "nmnist"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--data"), "{}", stderr(&o));
}

#[test]
fn missing_and_truncated_data_name_the_file() {
    let o = lightsnn(&["search", "--data", "/no/such/folder"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/no/such/folder"), "{}", stderr(&o));
    let d = tempfile::tempdir().unwrap();
    let src = std::fs::read(shipped_data("cifar10-sample").join("data_batch_1.bin")).unwrap();
    let f = d.path().join("data_batch_1.bin");
    std::fs::write(&f, &src[..3073 * 10 + 100]).unwrap();
    let out = d.path().join("out.json");
    let mut args = vec![
        "search",
        "--data",
        d.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(TINY);
    let o = lightsnn(&args);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("data_batch_1.bin") && e.contains("30730"), "{e}");
    assert!(!out.exists(), "no output on failure");
}

#[test]
fn cuda_without_the_feature_is_explained() {
    if cfg!(feature = "cuda") {
        return;
    }
    let o = lightsnn(&["search", "--device", "cuda"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--features cuda"), "{}", stderr(&o));
}

/// `lightsnn search` on the shipped CIFAR-10 sample at the [`TINY`] size, with `extra` options,
/// writing `out`.
fn tiny_search(out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let data = shipped_data("cifar10-sample");
    let mut args = vec!["search", "--data", data.to_str().unwrap()];
    args.extend_from_slice(&["--out", out.to_str().unwrap()]);
    args.extend_from_slice(TINY);
    args.extend_from_slice(extra);
    lightsnn(&args)
}

#[test]
fn search_writes_complete_json() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("sub/arch.json");
    let data = shipped_data("cifar10-sample");
    let o = tiny_search(&out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("genotype:") && stdout.contains("round 2") && stdout.contains("wall time")
    );
    // The estimate comes first, on stderr.
    let e = stderr(&o);
    assert!(
        e.contains("estimate: weights") && e.contains("60 scorings (36+24 per round)"),
        "{e}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["format"], "lightsnn-search/1");
    assert_eq!(v["rounds"].as_array().unwrap().len(), 2);
    let g = v["genotype"].as_str().unwrap();
    let o = lightsnn(
        &[
            &["score", "--genotype", g, "--data", data.to_str().unwrap()][..],
            TINY,
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("SAHD ln|det K|"));
}

/// `--score naswot`: the search records its kernel and scores differently from SAHD; `score`
/// names the kernel it printed, and refuses a code dump (whose format is SAHD's).
#[test]
fn naswot_score_is_recorded_and_differs() {
    let d = tempfile::tempdir().unwrap();
    let data = shipped_data("cifar10-sample");
    let run = |score: &str| -> serde_json::Value {
        let out = d.path().join(format!("{score}.json"));
        let o = tiny_search(&out, &["--score", score]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap()
    };
    let (sahd, naswot) = (run("sahd"), run("naswot"));
    assert_eq!(naswot["config"]["score"], "naswot");
    assert!(
        sahd["config"].get("score").is_none(),
        "SAHD, the default, is left out"
    );
    assert_ne!(
        sahd["rounds"][0]["scores"], naswot["rounds"][0]["scores"],
        "the two kernels score the same candidates differently"
    );
    let g = naswot["genotype"].as_str().unwrap();
    let score = |extra: &[&str]| {
        let mut args = vec!["score", "--score", "naswot", "--genotype", g];
        args.extend_from_slice(&["--data", data.to_str().unwrap()]);
        args.extend_from_slice(TINY);
        args.extend_from_slice(extra);
        lightsnn(&args)
    };
    let o = score(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("NASWOT ln|det K|"));
    let dump = d.path().join("codes");
    let o = score(&["--dump-codes", dump.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--dump-codes"), "{}", stderr(&o));
    assert!(!dump.exists());
}

/// Runs `args` with `--out DIR/out.json` and checks the refusal: exit 1, stderr containing every
/// one of `needles`, no output file. Returns stderr.
fn refused(args: &[&str], needles: &[&str]) -> String {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out.json");
    let o = lightsnn(&[args, &["--out", out.to_str().unwrap()]].concat());
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
    for n in needles {
        assert!(e.contains(n), "{args:?}: {n:?} not in {e}");
    }
    assert!(!out.exists(), "{args:?}: no output on a refusal");
    e
}

#[test]
fn batch_of_one_is_refused() {
    refused(
        &["search", "--batch", "1"],
        &["batch 1 is too small", "1x1", "--batch 2"],
    );
    refused(
        &["search", "--batch", "0", "--method", "random"],
        &["batch 0 is too small"],
    );
    let o = lightsnn(&[
        "score",
        "--genotype",
        "zero,conv3,skip,conv3,zero,zero,skip,conv3,zero,conv3,skip,conv3",
        "--batch",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("batch 1 is too small"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn search_too_large_for_memory_is_refused_with_the_estimate() {
    let e = refused(
        &["search", "--width", "100"],
        &[
            "needs about",
            "TiB",
            "is free",
            "weights",
            "per candidate",
            "--width",
        ],
    );
    assert!(
        !e.contains("estimate:"),
        "refused before the search starts: {e}"
    );
    let o = lightsnn(&[
        "score",
        "--genotype",
        "conv3,conv3,conv3,conv3,conv3,conv3,conv3,conv3,conv3,conv3,conv3,conv3",
        "--width",
        "100",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("needs about"), "{}", stderr(&o));
}

/// `eval --model` reads the dataset from the blob (format 2): the shipped CIFAR-10 export runs on
/// the built-in sample without `--data`; a format-1 blob (no dataset) is refused by its version,
/// naming the file and the fix.
#[test]
fn eval_model_reads_the_dataset_from_the_blob() {
    let blob = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../firmware/assets/trained.bin"
    );
    let o = lightsnn(&["eval", "--model", blob]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("top-1"), "{out}");
    let mut old = std::fs::read(blob).unwrap();
    old[4..6].copy_from_slice(&1u16.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.bin");
    std::fs::write(&path, &old).unwrap();
    let o = lightsnn(&["eval", "--model", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("old.bin") && e.contains("format version 1") && e.contains("re-export"),
        "{e}"
    );
}

/// `--preset spikenas-bench` end to end on the shipped sample, in small: search, score (the
/// benchmark's op spellings), train one epoch, eval; the blob export is refused by name, the
/// NIR export works (with the `nir` feature).
#[test]
fn spikenas_bench_preset_smoke() {
    let d = tempfile::tempdir().unwrap();
    let data = shipped_data("cifar10-sample");
    let data = data.to_str().unwrap();
    let shape = [
        "--preset",
        "spikenas-bench",
        "--data",
        data,
        "--width",
        "0.03125",
        "--timesteps",
        "2",
        "--hidden",
        "32",
        "--votes",
        "2",
    ];
    let run = |args: &[&str]| {
        let o = lightsnn(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let arch = d.path().join("arch.json");
    let out = run(&[
        &["search", "--batch", "8", "--out"],
        &[arch.to_str().unwrap()][..],
        &shape,
    ]
    .concat());
    assert!(
        out.contains("C1/C2 4/8") && out.contains("round 2"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&arch).unwrap()).unwrap();
    // on the preset's space the thresholds are chosen in a second stage by default
    assert_eq!(v["config"]["thresholds"], "spread");
    // with 4 score repeats, the two-stage search's default (the paper's 2 for the joint one)
    assert_eq!(v["config"]["repeats"], 4);
    let kinds = ["zero", "skip", "conv3"];
    for r in &v["rounds"].as_array().unwrap()[..2] {
        for s in r["scores"].as_array().unwrap() {
            assert!(kinds.contains(&s["candidate"].as_str().unwrap()), "{s}");
        }
    }
    // --thresholds joint: the paper's one-stage pruning over all five ops
    let joint = d.path().join("joint.json");
    let out = run(&[
        &["search", "--batch", "8", "--thresholds", "joint"],
        &["--out", joint.to_str().unwrap()][..],
        &shape,
    ]
    .concat());
    assert!(out.contains("round 4"), "{out}");
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&joint).unwrap()).unwrap();
    assert!(j["config"].get("thresholds").is_none(), "joint is left out");
    assert_eq!(j["config"]["repeats"], 2);
    let sizes: Vec<usize> = j["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["scores"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [30, 24, 18, 12]);
    assert_eq!(v["cell"], "forward");
    assert_eq!(v["config"]["net"]["downsample"], "avg");
    let ops = ["zero", "skip", "conv3@0.5", "conv3", "conv3@1.5"];
    assert_eq!(v["ops"], serde_json::json!(ops));
    let g = v["genotype"].as_str().unwrap();
    assert!(
        g.split(',').all(|op| ops.contains(&op)) && g.split(',').count() == 6,
        "{g}"
    );
    let out = run(&[
        &["score", "--batch", "8", "--repeats", "1", "--genotype"],
        &["conv3_th0.5 skip zero conv3_th1.0 zero conv3_th1.5"][..],
        &shape,
    ]
    .concat());
    assert!(
        out.contains("genotype: conv3@0.5,skip,zero,conv3,zero,conv3@1.5")
            && out.contains("SAHD ln|det K|"),
        "{out}"
    );
    let out = run(&[
        &[
            "score",
            "--score",
            "spread",
            "--batch",
            "8",
            "--repeats",
            "1",
        ][..],
        &[
            "--genotype",
            "conv3_th0.5 skip zero conv3_th1.0 zero conv3_th1.5",
        ],
        &shape,
    ]
    .concat());
    assert!(out.contains("SPREAD -(rate spread): -0."), "{out}");
    // Train the found cell (the preset comes from the arch file) for one epoch.
    let runs = d.path().join("run");
    let shape_only = &shape[2..];
    let out = run(&[
        &["train", "--epochs", "1", "--arch", arch.to_str().unwrap()][..],
        &["--out", runs.to_str().unwrap()],
        shape_only,
    ]
    .concat());
    assert!(
        out.contains("spikenas-bench") && out.contains("done: 1 epochs"),
        "{out}"
    );
    let ck = runs.join("best.safetensors");
    let ck = ck.to_str().unwrap();
    let out = run(&[
        "eval",
        "--checkpoint",
        ck,
        "--preset",
        "spikenas-bench",
        "--data",
        data,
    ]);
    assert!(out.contains("top-1"), "{out}");
    let blob = d.path().join("m.bin");
    let o = lightsnn(&[
        "export",
        "--checkpoint",
        ck,
        "--out",
        blob.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("does not support average-pool downsampling") && e.contains("--format nir"),
        "{e}"
    );
    assert!(!blob.exists(), "no blob written");
    if cfg!(feature = "nir") {
        let nir = d.path().join("net.nir");
        run(&[
            "export",
            "--format",
            "nir",
            "--checkpoint",
            ck,
            "--out",
            nir.to_str().unwrap(),
        ]);
        assert!(nir.is_file());
    }
    // The rate spread chooses thresholds, not op kinds; --thresholds spread needs thresholds.
    for (extra, needle) in [
        (&["--score", "spread"][..], "not op kinds"),
        (&["--thresholds", "spread"][..], "no thresholded convs"),
        (
            &["--thresholds", "spread", "--method", "random"][..],
            "--method prune",
        ),
    ] {
        let out = d.path().join("refused.json");
        let o = tiny_search(&out, extra);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{extra:?}: {}", stderr(&o));
        assert!(!out.exists());
    }
    // The preset is CIFAR-10's network.
    let o = lightsnn(&[
        "search",
        "--preset",
        "spikenas-bench",
        "--dataset",
        "nmnist",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("contradicts"), "{}", stderr(&o));
}
