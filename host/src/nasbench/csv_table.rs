//! The benchmark as one CSV file (`cifar10.csv`: one row per cell, the columns of [`Record`]).

use super::cell_id::{BenchCell, NUM_CELLS};
use super::error::TableError;
use super::record::{Record, FIRING_RATES};
use serde::Deserialize;
use std::path::Path;

/// A row as written in the file.
#[derive(Deserialize)]
struct Row {
    id: u32,
    ops: String,
    params: u64,
    epochs: u32,
    test_acc: f64,
    val_acc_final: f64,
    val_acc_best: f64,
    val_acc_e1: f64,
    val_acc_e5: f64,
    val_acc_e10: f64,
    val_acc_e25: f64,
    val_acc_e50: f64,
    train_acc_final: f64,
    firing_rates: String,
}

/// Reads every row of the CSV file at `path`, checked (see [`check_record`]).
pub(super) fn read_csv(path: &Path) -> Result<Vec<Record>, TableError> {
    let file = std::fs::File::open(path).map_err(|source| TableError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(std::io::BufReader::new(file));
    let malformed = |line: u64, problem: String| TableError::Malformed {
        path: path.to_path_buf(),
        line,
        problem,
    };
    let headers = reader
        .headers()
        .map_err(|e| malformed(1, csv_problem(&e)))?
        .clone();
    let mut records = Vec::new();
    for rec in reader.records() {
        let rec =
            rec.map_err(|e| malformed(e.position().map_or(0, |p| p.line()), csv_problem(&e)))?;
        let line = rec.position().map_or(0, |p| p.line());
        let row: Row = rec
            .deserialize(Some(&headers))
            .map_err(|e| malformed(line, csv_problem(&e)))?;
        let cell = BenchCell::parse(&row.ops).map_err(|e| malformed(line, e.to_string()))?;
        let rates: Vec<f64> = row
            .firing_rates
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|e| malformed(line, format!("firing_rates: {e}")))?;
        let firing_rates: [f64; FIRING_RATES] = rates.try_into().map_err(|r: Vec<f64>| {
            malformed(
                line,
                format!(
                    "firing_rates has {} values, expected {FIRING_RATES}",
                    r.len()
                ),
            )
        })?;
        let r = Record {
            id: row.id,
            cell,
            params: row.params,
            epochs: row.epochs,
            test_acc: row.test_acc,
            val_acc_final: row.val_acc_final,
            val_acc_best: row.val_acc_best,
            val_acc_early: [
                row.val_acc_e1,
                row.val_acc_e5,
                row.val_acc_e10,
                row.val_acc_e25,
                row.val_acc_e50,
            ]
            .map(Some),
            train_acc_final: row.train_acc_final,
            firing_rates,
        };
        check_record(&r).map_err(|p| malformed(line, p))?;
        records.push(r);
    }
    Ok(records)
}

/// The problem of a CSV error, without the position (the caller names the line).
fn csv_problem(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Io(io) => io.to_string(),
        csv::ErrorKind::Deserialize { err, .. } => err.to_string(),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields, the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".to_string(),
        _ => e.to_string(),
    }
}

/// Checks a record's values: the id is a cell of the benchmark and names the record's ops,
/// accuracies are percentages, firing rates are rates or `-1`, there are parameters.
pub(super) fn check_record(r: &Record) -> Result<(), String> {
    let expected = BenchCell::from_id(r.id).map_err(|e| e.to_string())?;
    if expected != r.cell {
        return Err(format!(
            "ops `{}` are not those of architecture id {} (`{expected}`)",
            r.cell, r.id
        ));
    }
    let percent = [
        ("test_acc", Some(r.test_acc)),
        ("val_acc_final", Some(r.val_acc_final)),
        ("val_acc_best", Some(r.val_acc_best)),
        ("train_acc_final", Some(r.train_acc_final)),
    ]
    .into_iter()
    .chain(r.val_acc_early.iter().map(|&v| ("an early val_acc", v)));
    for (name, v) in percent {
        if let Some(v) = v {
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("{name} = {v} is not a percentage in [0, 100]"));
            }
        }
    }
    if let Some(v) = r
        .firing_rates
        .iter()
        .find(|&&v| v != -1.0 && !(0.0..=1.0).contains(&v))
    {
        return Err(format!("firing rate {v} is neither -1 nor in [0, 1]"));
    }
    if r.params == 0 {
        return Err("params = 0".to_string());
    }
    debug_assert!(r.id < NUM_CELLS);
    Ok(())
}
