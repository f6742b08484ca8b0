//! The benchmark as its authors ship it: one folder per cell, `<root>/<id>/train_process.txt`,
//! holding the id, the parameter count, one line per epoch (`epoch, train_acc, train_loss,
//! val_acc, val_loss`), the test accuracy, the firing rates and the training time.

use super::cell_id::BenchCell;
use super::csv_table::check_record;
use super::error::TableError;
use super::record::{Record, EARLY_EPOCHS, FIRING_RATES};
use std::path::{Path, PathBuf};

/// The file name inside each cell's folder.
pub const FILE_NAME: &str = "train_process.txt";

/// The folder holding the per-cell folders: `path` itself, or its `CIFAR10` or
/// `data/CIFAR10` subfolder (the benchmark repository's layout), whichever exists.
pub(super) fn cells_root(path: &Path) -> PathBuf {
    for sub in ["data/CIFAR10", "CIFAR10"] {
        let p = path.join(sub);
        if p.is_dir() {
            return p;
        }
    }
    path.to_path_buf()
}

/// Reads every `<root>/<id>/train_process.txt` under the folder `path` (see [`cells_root`]);
/// entries whose name is not a number are ignored, a numbered folder without the file is an
/// error.
pub(super) fn read_folder(path: &Path) -> Result<Vec<Record>, TableError> {
    let root = cells_root(path);
    let io = |p: &Path, source| TableError::Io {
        path: p.to_path_buf(),
        source,
    };
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(&root).map_err(|e| io(&root, e))? {
        let entry = entry.map_err(|e| io(&root, e))?;
        if let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        {
            ids.push((id, entry.path()));
        }
    }
    if ids.is_empty() {
        return Err(TableError::Empty {
            path: root,
            problem: format!(
                "no benchmark cells here: expected folders <id>/{FILE_NAME} (the layout of \
                 SpikeNAS-Bench's data/CIFAR10) or the one-file CSV table"
            ),
        });
    }
    ids.sort();
    ids.into_iter()
        .map(|(id, dir)| {
            let file = dir.join(FILE_NAME);
            let text = std::fs::read_to_string(&file).map_err(|e| io(&file, e))?;
            let r = parse(&text).map_err(|(line, problem)| TableError::Malformed {
                path: file.clone(),
                line,
                problem,
            })?;
            if r.id != id {
                return Err(TableError::Malformed {
                    path: file,
                    line: 1,
                    problem: format!("architecture id {} in a folder named {id}", r.id),
                });
            }
            Ok(r)
        })
        .collect()
}

/// Parses one `train_process.txt`; an error carries the 1-based line and the problem.
pub(super) fn parse(text: &str) -> Result<Record, (u64, String)> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.trim()));
    let mut next = |what: &str| {
        lines
            .by_ref()
            .find(|(_, l)| !l.is_empty())
            .ok_or_else(|| (0, format!("the file ends before {what}")))
    };
    let (n, l) = next("the architecture id")?;
    let id: u32 = value(n, l, "architecture id")?;
    let (n, l) = next("the parameter count")?;
    let params: u64 = value(n, l, "model parameters")?;
    let (n, l) = next("the epoch table")?;
    if !l.starts_with("epoch") {
        return Err((n, format!("expected the epoch table's header, found `{l}`")));
    }
    let mut epochs: Vec<[f64; 5]> = Vec::new();
    let (n, l) = loop {
        let (n, l) = next("the test accuracy")?;
        if l.contains(':') {
            break (n, l);
        }
        let v = floats(n, l)?;
        let v: [f64; 5] = v
            .try_into()
            .map_err(|v: Vec<f64>| (n, format!("an epoch line has 5 values, found {}", v.len())))?;
        if v[0] != epochs.len() as f64 {
            return Err((
                n,
                format!("epoch {} where {} was expected", v[0], epochs.len()),
            ));
        }
        epochs.push(v);
    };
    let test_acc: f64 = value(n, l, "test accuracy")?;
    let (n, l) = next("the firing rates")?;
    let rates = floats(n, key_value(n, l, "firing rate of layers")?)?;
    let firing_rates: [f64; FIRING_RATES] = rates.try_into().map_err(|v: Vec<f64>| {
        (
            n,
            format!("{} firing rates, expected {FIRING_RATES}", v.len()),
        )
    })?;
    let last = epochs
        .last()
        .ok_or_else(|| (n, "the epoch table is empty".to_string()))?;
    let val = |e: &[f64; 5]| e[3];
    let record = Record {
        id,
        cell: BenchCell::from_id(id).map_err(|e| (1, e.to_string()))?,
        params,
        epochs: epochs.len() as u32,
        test_acc,
        val_acc_final: val(last),
        val_acc_best: epochs.iter().map(val).fold(f64::NEG_INFINITY, f64::max),
        val_acc_early: EARLY_EPOCHS.map(|e| epochs.get(e - 1).map(val)),
        train_acc_final: last[1],
        firing_rates,
    };
    check_record(&record).map_err(|p| (1, p))?;
    Ok(record)
}

/// The text after `key:` on line `n`.
fn key_value<'a>(n: u64, line: &'a str, key: &str) -> Result<&'a str, (u64, String)> {
    match line.split_once(':') {
        Some((k, v)) if k.trim() == key => Ok(v.trim()),
        _ => Err((n, format!("expected `{key}: ...`, found `{line}`"))),
    }
}

/// The number after `key:` on line `n`.
fn value<T: std::str::FromStr>(n: u64, line: &str, key: &str) -> Result<T, (u64, String)>
where
    T::Err: std::fmt::Display,
{
    let v = key_value(n, line, key)?;
    v.parse()
        .map_err(|e| (n, format!("{key}: `{v}` is not a number ({e})")))
}

/// Comma-separated finite numbers.
fn floats(n: u64, s: &str) -> Result<Vec<f64>, (u64, String)> {
    s.split(',')
        .map(|t| {
            let t = t.trim();
            match t.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err((n, format!("`{t}` is not a finite number"))),
            }
        })
        .collect()
}
