//! One row of the benchmark table: a cell and what its 100-epoch training gave.

use super::cell_id::BenchCell;
use serde::{Deserialize, Serialize};

/// Number of firing-rate values per cell: the LIF before each of the 6 ops of cell 1, then of
/// cell 2 (`-1` where the op has no LIF), the down block's LIF, the last activation's, the
/// classifier's hidden layer's, and the network's average (its SAR).
pub const FIRING_RATES: usize = 16;

/// The epochs after which the table records an early validation accuracy.
pub const EARLY_EPOCHS: [usize; 5] = [1, 5, 10, 25, 50];

/// What the benchmark recorded for one cell (CIFAR-10, trained 100 epochs by its authors).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Architecture id (`0..=15624`).
    pub id: u32,
    /// The cell.
    pub cell: BenchCell,
    /// Trainable parameters of the whole network.
    pub params: u64,
    /// Epochs trained.
    pub epochs: u32,
    /// Top-1 (%) on the 10,000 CIFAR-10 test images after the last epoch.
    pub test_acc: f64,
    /// Validation top-1 (%) after the last epoch.
    pub val_acc_final: f64,
    /// Best validation top-1 (%) over the epochs.
    pub val_acc_best: f64,
    /// Validation top-1 (%) after the epochs of [`EARLY_EPOCHS`] (`None` where the run was
    /// shorter).
    pub val_acc_early: [Option<f64>; 5],
    /// Training top-1 (%) in the last epoch.
    pub train_acc_final: f64,
    /// Firing rates, see [`FIRING_RATES`] (`-1` where the op has no LIF).
    pub firing_rates: [f64; FIRING_RATES],
}

impl Record {
    /// The network's average firing rate over all its LIFs (the spiking activity rate).
    pub fn sar(&self) -> f64 {
        self.firing_rates[FIRING_RATES - 1]
    }

    /// Whether the cell never learned (10% test accuracy on ten classes: no path carries the
    /// input to the output, or nothing fires).
    pub fn is_dead(&self) -> bool {
        self.test_acc <= 10.0
    }
}
