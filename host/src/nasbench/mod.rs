//! SpikeNAS-Bench: ground truth for the search.
//!
//! SpikeNAS-Bench (G. Sun et al., "SpikeNAS-Bench: Benchmarking NAS Algorithms for Spiking
//! Neural Network Architecture", IEEE Transactions on Artificial Intelligence, 2025) trained
//! every cell of a 6-edge, 5-op forward space on CIFAR-10 for 100 epochs and recorded its
//! accuracy, parameters and firing rates. A training-free score or a search can be judged on
//! it by looking its cells up instead of training them.
//!
//! - [`BenchCell`]: a cell of the space, its architecture id and back;
//! - [`Table`] and [`Record`]: the table, read from the one-file CSV or from the benchmark's own
//!   folder layout (`data/CIFAR10/<id>/train_process.txt`);
//! - [`Split`]: the fixed split of the ids into a development part, on which anything tunable
//!   is chosen, and a held-out part, on which the final figures are reported.

mod cell_id;
mod csv_table;
mod error;
pub mod evolution;
pub mod method_stats;
pub mod noise;
pub mod proxies;
pub mod proxy_run;
pub mod proxy_stats;
mod record;
pub mod sample;
pub mod search_run;
mod table;
mod train_process;

pub use cell_id::{
    BenchCell, CellIdError, LIGHTSNN_OP_NAMES, NUM_CELLS, NUM_EDGES, NUM_OPS, OP_NAMES,
};
pub use error::TableError;
pub use record::{Record, EARLY_EPOCHS, FIRING_RATES};
pub use table::Table;
pub use train_process::FILE_NAME as TRAIN_PROCESS_FILE;

/// The split of the benchmark's ids used for every tuned choice: ids with `id % 5 != 0` are the
/// development ids (choose settings there), ids with `id % 5 == 0` are held out (report there).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    /// `id % 5 != 0`: where settings are tuned.
    Dev,
    /// `id % 5 == 0`: where final figures are reported.
    HeldOut,
}

impl Split {
    /// The split of cell `id`.
    ///
    /// ```
    /// use lightsnn::nasbench::Split;
    /// assert_eq!(Split::of(10), Split::HeldOut);
    /// assert_eq!(Split::of(11), Split::Dev);
    /// ```
    pub fn of(id: u32) -> Split {
        if id.is_multiple_of(5) {
            Split::HeldOut
        } else {
            Split::Dev
        }
    }
}

#[cfg(test)]
mod tests;

/// Opens the `config.json` of a benchmark run folder `out`: on a resume, checks that the file
/// (format tag `format`, a run of `what`) holds `cfg`; otherwise refuses a folder that already
/// holds a run and writes `cfg` there first.
fn open_run_config<C>(
    out: &std::path::Path,
    cfg: &C,
    format: &str,
    what: &str,
    resume: bool,
) -> anyhow::Result<()>
where
    C: PartialEq + serde::Serialize + serde::de::DeserializeOwned,
{
    let path = out.join("config.json");
    if resume {
        let old: C = crate::fsutil::read_format_json(out, "config.json", format, what)?;
        if &old != cfg {
            anyhow::bail!(
                "{} was written for another configuration; resume with the same flags, or start \
                 a new run in another --out folder",
                path.display()
            );
        }
        Ok(())
    } else {
        crate::fsutil::refuse_existing(out, "config.json", "benchmark run")?;
        crate::fsutil::write_atomic(&path, &serde_json::to_vec_pretty(cfg)?)
    }
}
