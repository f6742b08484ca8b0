//! `lightsnn bench nas` end to end on the shipped SpikeNAS-Bench extract: a small proxy run, its
//! resume, and clear errors on a bad table. The full comparison of the search methods needs the
//! whole table and runs in the real-data suite (`real_data::bench_nas_search_smoke`).

mod common;

use common::{lightsnn, stderr};
use lightsnn_tests::shipped_data;
use std::path::Path;
use std::process::Output;

/// A tiny network: C1/C2 4/8, T 2, H 32.
const TINY: &[&str] = &["--width", "0.03125", "--timesteps", "2", "--hidden", "32"];

fn table() -> String {
    shipped_data("spikenas-bench-sample")
        .join("cifar10-sample.csv")
        .display()
        .to_string()
}

fn proxy_run(out: &Path, extra: &[&str]) -> Output {
    let table = table();
    let out = out.display().to_string();
    let mut args = vec![
        "bench",
        "nas",
        "--table",
        &table,
        "--cells",
        "10",
        "--proxies",
        "sahd,naswot,sahd-eff,params,params-eff",
        "--batch",
        "8",
        "--repeats",
        "1",
        "--transfer-cells",
        "3",
        "--transfer-factors",
        "2",
        "--bootstrap",
        "50",
        "--out",
        &out,
    ];
    args.extend_from_slice(TINY);
    args.extend_from_slice(extra);
    lightsnn(&args)
}

#[test]
fn proxy_run_on_the_shipped_extract() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("run");
    let o = proxy_run(&out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));

    // one row per sampled cell, every proxy a finite number
    let scores = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    let mut lines = scores.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header,
        [
            "id",
            "split",
            "test_acc",
            "sahd",
            "naswot",
            "sahd-eff",
            "params",
            "params-eff"
        ]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 10, "{scores}");
    for r in &rows {
        assert_eq!(r.len(), header.len(), "{scores}");
        let id: usize = r[0].parse().unwrap();
        assert_eq!(
            r[1],
            if id.is_multiple_of(5) {
                "held-out"
            } else {
                "dev"
            }
        );
        for v in &r[2..] {
            let v: f64 = v.parse().unwrap();
            assert!(v.is_finite(), "{scores}");
        }
    }
    // the effective parameter count never exceeds the parameter count
    for r in &rows {
        let p: f64 = r[6].parse().unwrap();
        let pe: f64 = r[7].parse().unwrap();
        assert!(pe <= p, "{scores}");
    }

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let text = report.to_string();
    for p in ["sahd", "naswot", "params-eff"] {
        assert!(text.contains(p), "{text}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("Kendall tau"), "{md}");
    assert!(md.contains("held-out"), "{md}");
    let svg = std::fs::read_to_string(out.join("scatter-sahd.svg")).unwrap();
    assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"), "{svg}");

    // a finished run resumes to the same scores; a fresh run into it is refused
    let o = proxy_run(&out, &["--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("scores.csv")).unwrap(),
        scores
    );
    let o = proxy_run(&out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // a resume with other settings is refused
    let o = proxy_run(&out, &["--resume", "--sample-seed", "7"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("config.json"), "{}", stderr(&o));
}

#[test]
fn a_bad_table_is_named() {
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("bad.csv");
    let good = std::fs::read_to_string(table()).unwrap();
    // the header and a row whose accuracy is not a number
    let mut lines = good.lines();
    let text = format!(
        "{}\n{}\n",
        lines.next().unwrap(),
        lines.next().unwrap().replacen(",10.0,", ",ten,", 1)
    );
    std::fs::write(&bad, text).unwrap();
    let bad_s = bad.display().to_string();
    let out = d.path().join("run").display().to_string();
    let o = lightsnn(&[
        "bench", "nas", "--table", &bad_s, "--cells", "2", "--out", &out,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("bad.csv"), "{}", stderr(&o));
    assert!(!d.path().join("run").join("report.json").exists());

    let missing = d.path().join("missing.csv").display().to_string();
    let o = lightsnn(&[
        "bench", "nas", "--table", &missing, "--cells", "2", "--out", &out,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("missing.csv"), "{}", stderr(&o));

    // the search comparison needs the whole table
    let o = lightsnn(&[
        "bench",
        "nas-search",
        "--table",
        &table(),
        "--seeds",
        "1",
        "--out",
        &out,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("15625"), "{}", stderr(&o));
}

/// One CSV row of the one-file table for `ops` (the benchmark's spelling) with these test and
/// final validation accuracies; the other columns are those of a real row.
fn row(ops: &str, test_acc: f64, val: f64) -> String {
    let cell = lightsnn::nasbench::BenchCell::parse(ops).unwrap();
    format!(
        "{},{ops},19393764,100,{test_acc},{val},{val},31.9,56.776,64.428,78.508,83.868,99.1,\
         0.189 0.189 -1.000 0.189 -1.000 -1.000 0.171 0.171 -1.000 0.171 -1.000 -1.000 0.060 \
         0.096 0.220 0.155",
        cell.id()
    )
}

#[test]
fn nas_noise_on_hand_made_twins() {
    let d = tempfile::tempdir().unwrap();
    let csv = d.path().join("twins.csv");
    let header = std::fs::read_to_string(table())
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    // two pairs of twins (nodes 1 and 2 swapped) and a cell without one
    let rows = [
        row(
            "conv3_th0.5 skip zero conv3_th1.0 zero conv3_th1.5",
            88.5,
            88.0,
        ),
        row(
            "skip conv3_th0.5 zero conv3_th1.0 conv3_th1.5 zero",
            88.1,
            87.7,
        ),
        row(
            "conv3_th1.0 zero zero conv3_th1.0 zero conv3_th0.5",
            87.0,
            86.5,
        ),
        row(
            "zero conv3_th1.0 zero conv3_th1.0 conv3_th0.5 zero",
            87.6,
            87.2,
        ),
        row(
            "conv3_th1.0 conv3_th1.0 conv3_th1.0 conv3_th1.0 conv3_th1.0 conv3_th1.0",
            86.0,
            85.0,
        ),
    ];
    std::fs::write(&csv, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
    let csv_s = csv.display().to_string();
    let o = lightsnn(&["bench", "nas-noise", "--table", &csv_s, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let n: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(n["pairs"], 2);
    assert_eq!(n["family_cells"], 4);
    // differences 0.4 and -0.6 in some order: sd of the two over sqrt(2)
    let sd = n["run_sd"].as_f64().unwrap();
    let want = (0.4f64 - -0.6f64).abs() / 2f64.sqrt() / 2f64.sqrt();
    assert!((sd - want).abs() < 1e-9, "{sd} vs {want}");
    // the top 5% of five cells is the best one; its twin is not in it
    assert_eq!(n["top5_line"], 88.5);
    assert_eq!(n["family_top5"], 1);
    assert_eq!(n["top5_twin_mean"], 88.1);
    assert_eq!(n["top5_twins_in_top5"], 0);
    let o = lightsnn(&["bench", "nas-noise", "--table", &csv_s]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = String::from_utf8(o.stdout).unwrap();
    assert!(md.contains("2 pairs of twins"), "{md}");

    // the shipped extract holds no twins: one clear error naming it
    let o = lightsnn(&["bench", "nas-noise", "--table", &table()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cifar10-sample.csv") && stderr(&o).contains("no pair"),
        "{}",
        stderr(&o)
    );
}

/// The real-data suite (`tools/test-real-data.sh`, `LIGHTSNN_DATA`).
#[cfg(feature = "real-data")]
mod real_data {
    use super::{lightsnn, stderr, TINY};
    use lightsnn_tests::real_data;

    /// The search comparison at a tiny width over 2 seeds, on the whole table.
    #[test]
    fn bench_nas_search_smoke() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("search");
        let table = real_data("spikenas-bench")
            .join("cifar10.csv")
            .display()
            .to_string();
        let out_s = out.display().to_string();
        let mut args = vec![
            "bench",
            "nas-search",
            "--table",
            &table,
            "--seeds",
            "2",
            "--methods",
            "prune,prune-naswot,random-10,uniform,evolution-50",
            "--batch",
            "8",
            "--random-batch",
            "8",
            "--repeats",
            "1",
            "--out",
            &out_s,
        ];
        args.extend_from_slice(TINY);
        let o = lightsnn(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
        let runs = report["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 10);
        let summaries = report["summaries"].as_array().unwrap();
        assert_eq!(summaries.len(), 5);
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(
            config["methods"][1],
            serde_json::json!({"method": "prune", "score": "naswot"})
        );
        let md = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(
            md.contains("evolution-50") && md.contains("prune-naswot"),
            "{md}"
        );
        assert!(std::fs::read_to_string(out.join("cdf.svg"))
            .unwrap()
            .contains("<svg"));
        // the report ends with the table's own noise
        assert!(md.contains("run-to-run noise"), "{md}");
        assert_eq!(report["noise"]["pairs"], 1464);
    }

    /// The benchmark's noise from its twins, on the whole table.
    #[test]
    fn nas_noise_on_the_whole_table() {
        let table = real_data("spikenas-bench")
            .join("cifar10.csv")
            .display()
            .to_string();
        let o = lightsnn(&["bench", "nas-noise", "--table", &table, "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let n: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        // 5^5 cells with 2<-1 zero, less the 125 that are their own twin
        assert_eq!(n["family_cells"], 3000);
        assert_eq!(n["top5_line"], 88.35);
        let sd = n["run_sd_good"]["value"].as_f64().unwrap();
        assert!(sd > 0.1 && sd < 1.0, "{sd}");
    }
}
