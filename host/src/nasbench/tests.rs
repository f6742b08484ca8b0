//! Reader tests on the shipped sample (`data/spikenas-bench-sample`) and on broken files; the
//! full table is checked by the real-data tests.

use super::*;
use lightsnn_tests::shipped_data;
use std::path::{Path, PathBuf};

fn sample() -> PathBuf {
    shipped_data("spikenas-bench-sample")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

const HEADER: &str = "id,ops,params,epochs,test_acc,val_acc_final,val_acc_best,val_acc_e1,\
    val_acc_e5,val_acc_e10,val_acc_e25,val_acc_e50,train_acc_final,firing_rates";
const RATES: &str = "-1.000 -1.000 -1.000 -1.000 -1.000 0.000 -1.000 -1.000 -1.000 -1.000 \
    -1.000 0.000 0.089 0.080 0.161 0.043";

fn row_10001() -> String {
    format!(
        "10001,skip zero zero zero skip conv3_th1.0,17917668,100,81.64,80.492,80.492,40.984,\
         61.864,67.672,75.116,78.396,97.8,{RATES}"
    )
}

#[test]
fn reads_the_shipped_csv() {
    let t = Table::read(&sample().join("cifar10-sample.csv")).unwrap();
    assert_eq!(t.len(), 255);
    assert!(!t.is_complete());
    let r = t.get(10001).unwrap();
    assert_eq!(r.cell.to_string(), "skip zero zero zero skip conv3_th1.0");
    assert_eq!((r.params, r.epochs), (17_917_668, 100));
    assert_eq!(
        (r.test_acc, r.val_acc_final, r.val_acc_best),
        (81.64, 80.492, 80.492)
    );
    assert_eq!(r.val_acc_early[0], Some(40.984));
    assert_eq!(r.val_acc_early[4], Some(78.396));
    assert_eq!((r.sar(), r.firing_rates[12]), (0.043, 0.089));
    assert!(!r.is_dead());
    assert!(t.get(0).unwrap().is_dead());
    assert!(t.get(1).is_none() && t.get(99_999).is_none());
    // the best cell of the whole benchmark is in the sample
    assert_eq!(t.get(12617).unwrap().test_acc, 89.3);
    assert!(t.percentile(89.3) > 99.0);
}

#[test]
fn the_folder_layout_agrees_with_the_csv() {
    let csv = Table::read(&sample().join("cifar10-sample.csv")).unwrap();
    // the folder itself, or the folder above CIFAR10/
    for root in [sample(), sample().join("CIFAR10")] {
        let folder = Table::read(&root).unwrap();
        let ids: Vec<u32> = folder.records().iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![0, 10001, 12617]);
        for r in folder.records() {
            assert_eq!(r, csv.get(r.id).unwrap(), "id {}", r.id);
        }
    }
}

/// The error of reading `path`, as text; it must name the file.
fn error_of(path: &Path) -> String {
    let e = Table::read(path).unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()), "{e}");
    e
}

#[test]
fn malformed_csv_files_are_named_with_their_line() {
    let d = tempfile::tempdir().unwrap();
    let good = format!("{HEADER}\n{}\n", row_10001());
    assert_eq!(
        Table::read(&write(d.path(), "good.csv", &good))
            .unwrap()
            .len(),
        1
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("empty.csv", String::new(), "no cells"),
        ("header.csv", format!("{HEADER}\n"), "no cells"),
        (
            "short.csv",
            format!("{HEADER}\n{}\n", &row_10001()[..60]),
            "line 2",
        ),
        (
            "nan.csv",
            format!("{HEADER}\n{}\n", row_10001().replace("81.64", "eighty")),
            "line 2",
        ),
        (
            "ops.csv",
            format!(
                "{HEADER}\n{}\n",
                row_10001().replace("skip zero", "zero skip")
            ),
            "not those of architecture id 10001",
        ),
        (
            "op.csv",
            format!(
                "{HEADER}\n{}\n",
                row_10001().replace("conv3_th1.0", "conv5")
            ),
            "unknown op `conv5`",
        ),
        (
            "id.csv",
            format!("{HEADER}\n{}\n", row_10001().replace("10001,", "20001,")),
            "out of range",
        ),
        (
            "dup.csv",
            format!("{HEADER}\n{}\n{}\n", row_10001(), row_10001()),
            "appears twice",
        ),
        (
            "rates.csv",
            format!("{HEADER}\n{}\n", row_10001().replace(" 0.043", "")),
            "15 values",
        ),
        (
            "percent.csv",
            format!("{HEADER}\n{}\n", row_10001().replace("81.64", "181.64")),
            "not a percentage",
        ),
        (
            "column.csv",
            format!("{}\n{}\n", HEADER.replace("test_acc", "acc"), row_10001()),
            "test_acc",
        ),
    ];
    for (name, text, want) in cases {
        let e = error_of(&write(d.path(), name, &text));
        assert!(e.contains(want), "{name}: {e}");
    }
    assert!(error_of(&d.path().join("missing.csv")).contains("No such file"));
}

#[test]
fn malformed_train_process_files_are_named() {
    let good =
        std::fs::read_to_string(sample().join("CIFAR10/10001").join(TRAIN_PROCESS_FILE)).unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "truncated",
            good.lines().take(30).collect::<Vec<_>>().join("\n"),
            "ends before the test accuracy",
        ),
        (
            "cut",
            good[..good.len() / 2].to_string(),
            "is not a finite number",
        ),
        (
            "epoch",
            good.replace("5.000, 64.092", "7.000, 64.092"),
            "epoch 7 where 5 was expected",
        ),
        (
            "values",
            good.replace(", 1.922, 40.984", ", 40.984"),
            "5 values",
        ),
        (
            "rates",
            good.replace("0.161, 0.043", "0.161"),
            "15 firing rates",
        ),
        (
            "params",
            good.replace("model parameters: 17917668", "model parameters: many"),
            "not a number",
        ),
        ("empty", String::new(), "ends before"),
    ];
    for (name, text, want) in cases {
        let d = tempfile::tempdir().unwrap();
        let f = write(d.path(), &format!("10001/{TRAIN_PROCESS_FILE}"), &text);
        let e = Table::read(d.path()).unwrap_err().to_string();
        assert!(
            e.contains(&f.display().to_string()) && e.contains(want),
            "{name}: {e}"
        );
    }
    // a folder named after another id
    let d = tempfile::tempdir().unwrap();
    write(d.path(), &format!("42/{TRAIN_PROCESS_FILE}"), &good);
    assert!(error_of(d.path()).contains("architecture id 10001 in a folder named 42"));
    // a numbered folder without its file, and a folder without cells
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("7")).unwrap();
    assert!(Table::read(d.path())
        .unwrap_err()
        .to_string()
        .contains(TRAIN_PROCESS_FILE));
    let d = tempfile::tempdir().unwrap();
    assert!(error_of(d.path()).contains("no benchmark cells"));
}

#[test]
fn the_split_is_by_id_modulo_5() {
    let held = BenchCell::all().filter(|c| Split::of(c.id()) == Split::HeldOut);
    assert_eq!(held.count(), 3125);
}

/// The full table of `$LIGHTSNN_DATA/spikenas-bench` (feature `real-data`).
#[cfg(feature = "real-data")]
mod real_data {
    use super::*;
    use lightsnn_tests::real_data;

    #[test]
    fn the_whole_table_and_its_readme_figures() {
        let t = Table::read(&real_data("spikenas-bench").join("cifar10.csv")).unwrap();
        assert!(t.is_complete());
        // the README's figures: 341 dead cells; among the rest min 80.15, median 87.27,
        // max 89.30
        let dead = t.records().iter().filter(|r| r.is_dead()).count();
        assert_eq!(dead, 341);
        let mut live: Vec<f64> = t
            .records()
            .iter()
            .filter(|r| !r.is_dead())
            .map(|r| r.test_acc)
            .collect();
        live.sort_by(f64::total_cmp);
        assert_eq!((live[0], *live.last().unwrap()), (80.15, 89.3));
        assert!((crate::stats::quantile(&live, 0.5).unwrap() - 87.27).abs() < 0.005);
        // every row's parameters follow from its conv count (both cells share the genotype)
        for r in t.records() {
            let want = 17_179_620 + 738_048 * r.cell.conv_count() as u64;
            assert_eq!(r.params, want, "id {}", r.id);
        }
    }

    #[test]
    fn the_original_files_agree_with_the_table() {
        let root = real_data("spikenas-bench");
        let csv = Table::read(&root.join("cifar10.csv")).unwrap();
        let folder = Table::read(&root.join("original-sample")).unwrap();
        assert_eq!(folder.len(), 20);
        for r in folder.records() {
            assert_eq!(r, csv.get(r.id).unwrap(), "id {}", r.id);
        }
    }
}
