//! The benchmark table: every cell's record, by id, read from either layout.

use super::cell_id::NUM_CELLS;
use super::csv_table::read_csv;
use super::error::TableError;
use super::record::Record;
use super::train_process::read_folder;
use std::path::{Path, PathBuf};

/// The records of a benchmark table (all 15,625 cells, or the subset a folder or file holds),
/// sorted by id.
#[derive(Clone, Debug)]
pub struct Table {
    records: Vec<Record>,
    /// Index into `records` by id (`u32::MAX`: absent).
    slot: Vec<u32>,
    source: PathBuf,
}

impl Table {
    /// Reads the table at `path`: a CSV file (the one-file table, columns as in [`Record`]), or
    /// a folder in the benchmark repository's own layout (`<id>/train_process.txt`, directly
    /// or under `CIFAR10/` or `data/CIFAR10/`). Every error names the file and, where it can,
    /// the line.
    ///
    /// ```no_run
    /// use lightsnn::nasbench::Table;
    /// let table = Table::read("SpikeNAS-Bench/data".as_ref())?;
    /// let best = table.records().iter().map(|r| r.test_acc).fold(0.0, f64::max);
    /// println!("{} cells, best {best}%", table.len());
    /// # Ok::<(), lightsnn::nasbench::TableError>(())
    /// ```
    pub fn read(path: &Path) -> Result<Table, TableError> {
        let meta = std::fs::metadata(path).map_err(|source| TableError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let records = if meta.is_dir() {
            read_folder(path)?
        } else {
            read_csv(path)?
        };
        Table::from_records(records, path)
    }

    /// A table of `records` read from `source` (any order; an id may appear once).
    pub fn from_records(mut records: Vec<Record>, source: &Path) -> Result<Table, TableError> {
        if records.is_empty() {
            return Err(TableError::Empty {
                path: source.to_path_buf(),
                problem: "the table holds no cells".to_string(),
            });
        }
        records.sort_by_key(|r| r.id);
        let mut slot = vec![u32::MAX; NUM_CELLS as usize];
        for (i, r) in records.iter().enumerate() {
            let s = &mut slot[r.id as usize];
            if *s != u32::MAX {
                return Err(TableError::DuplicateId {
                    path: source.to_path_buf(),
                    id: r.id,
                });
            }
            *s = i as u32;
        }
        Ok(Table {
            records,
            slot,
            source: source.to_path_buf(),
        })
    }

    /// The record of cell `id`, if the table holds it.
    pub fn get(&self, id: u32) -> Option<&Record> {
        let s = *self.slot.get(id as usize)?;
        self.records.get(s as usize)
    }

    /// Every record, by id.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Number of cells held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Never true: a table holds at least one cell.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Whether every cell of the benchmark is here.
    pub fn is_complete(&self) -> bool {
        self.records.len() == NUM_CELLS as usize
    }

    /// Where the table was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The test accuracy a cell needs to be in the table's best `share` (0 < share <= 1): the
    /// accuracy of its `ceil(share * n)`-th best cell (at least the best). The benchmark's top 5%
    /// is `top_line(0.05)`: 88.35% on the whole table.
    pub fn top_line(&self, share: f64) -> f64 {
        let mut accs: Vec<f64> = self.records.iter().map(|r| r.test_acc).collect();
        accs.sort_by(|a, b| b.total_cmp(a));
        let k = ((share * accs.len() as f64).ceil() as usize).clamp(1, accs.len());
        accs[k - 1]
    }

    /// The median test accuracy of the table's cells.
    pub fn median(&self) -> f64 {
        let mut accs: Vec<f64> = self.records.iter().map(|r| r.test_acc).collect();
        accs.sort_by(f64::total_cmp);
        crate::stats::quantile(&accs, 0.5).expect("a table is never empty")
    }

    /// Percentile rank (0..100) of a test accuracy among the table's cells: the share below it
    /// plus half the share equal to it.
    pub fn percentile(&self, test_acc: f64) -> f64 {
        let accs: Vec<f64> = self.records.iter().map(|r| r.test_acc).collect();
        crate::stats::percentile_rank(test_acc, &accs).expect("a table is never empty")
    }
}
