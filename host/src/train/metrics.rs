//! Per-epoch training metrics: the printed table, `metrics.csv`, and the loss functions and
//! accuracy counting they are computed with.

use anyhow::Result;
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

/// The training loss (docs/design.md, "Training").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Cross-entropy on the output (mean over timesteps of the voted values); the default.
    Ce,
    /// Mean squared error between the output and the one-hot label, averaged over samples and
    /// classes: the reference's loss for event data (DVS128 Gesture, N-MNIST).
    Mse,
}

impl std::fmt::Display for LossKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LossKind::Ce => "ce",
            LossKind::Mse => "mse",
        })
    }
}

impl LossKind {
    /// The mean loss of `logits` `[N, classes]` against `labels` (class indices).
    pub fn loss(self, logits: &Tensor, labels: &[u32]) -> Result<Tensor> {
        let (n, classes) = logits.dims2()?;
        match self {
            LossKind::Ce => {
                let t = Tensor::from_slice(labels, n, logits.device())?;
                Ok(candle_nn::loss::cross_entropy(logits, &t)?)
            }
            LossKind::Mse => {
                let mut onehot = vec![0f32; n * classes];
                for (i, &l) in labels.iter().enumerate() {
                    onehot[i * classes + l as usize] = 1.0;
                }
                let t = Tensor::from_vec(onehot, (n, classes), logits.device())?
                    .to_dtype(logits.dtype())?;
                Ok((logits - t)?.sqr()?.mean_all()?)
            }
        }
    }
}

/// Predicted class of each row of `logits` `[N, classes]` (the first maximum on ties).
pub fn predictions(logits: &Tensor) -> Result<Vec<usize>> {
    let rows: Vec<Vec<f32>> = logits.to_dtype(DType::F32)?.to_vec2()?;
    Ok(rows
        .iter()
        .map(|r| {
            let mut best = 0;
            for (i, &v) in r.iter().enumerate() {
                if v > r[best] {
                    best = i;
                }
            }
            best
        })
        .collect())
}

/// One epoch's numbers (a row of `metrics.csv` and of the printed table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Learning rate used in the epoch.
    pub lr: f64,
    /// Mean training loss (augmented batches, training mode).
    pub train_loss: f64,
    /// Training top-1 accuracy (0..1) in training mode.
    pub train_top1: f64,
    /// Mean validation loss (evaluation mode).
    pub val_loss: f64,
    /// Validation top-1 accuracy (0..1).
    pub val_top1: f64,
    /// Validation spike activity rate over all LIF layers (docs/design.md, "Training").
    pub val_sar: f64,
    /// Wall time of the epoch (training and validation) in seconds.
    pub epoch_s: f64,
}

/// Header line of `metrics.csv`.
pub const CSV_HEADER: &str = "epoch,lr,train_loss,train_top1,val_loss,val_top1,val_sar,epoch_s";

impl EpochMetrics {
    /// The CSV row (no newline).
    pub fn csv_row(&self) -> String {
        format!(
            "{},{:.6e},{:.6},{:.6},{:.6},{:.6},{:.6},{:.3}",
            self.epoch,
            self.lr,
            self.train_loss,
            self.train_top1,
            self.val_loss,
            self.val_top1,
            self.val_sar,
            self.epoch_s
        )
    }

    /// The printed table row; `best` marks a new best validation accuracy.
    pub fn table_row(&self, epochs: usize, best: bool) -> String {
        format!(
            "{:>5}/{:<5} {:>9.2e} {:>10.4} {:>9.2}% {:>10.4} {:>9.2}% {:>8.4} {:>8.1}s {}",
            self.epoch,
            epochs,
            self.lr,
            self.train_loss,
            100.0 * self.train_top1,
            self.val_loss,
            100.0 * self.val_top1,
            self.val_sar,
            self.epoch_s,
            if best { "*" } else { "" }
        )
    }
}

/// The table header matching [`EpochMetrics::table_row`].
pub fn table_header() -> String {
    format!(
        "{:>11} {:>9} {:>10} {:>10} {:>10} {:>10} {:>8} {:>9}",
        "epoch", "lr", "train loss", "train top1", "val loss", "val top1", "val SAR", "time"
    )
}

/// The whole `metrics.csv` for `history`.
pub fn csv(history: &[EpochMetrics]) -> String {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for m in history {
        s.push_str(&m.csv_row());
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn losses_and_predictions() -> Result<()> {
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[2.0f32, 0.0, 0.0], [0.0, 1.0, 1.0]], &dev)?;
        assert_eq!(predictions(&logits)?, vec![0, 1]);
        let mse: f32 = LossKind::Mse.loss(&logits, &[0, 2])?.to_scalar()?;
        // (1 + 0 + 0 + 0 + 1 + 0) / 6
        assert!((mse - 2.0 / 6.0).abs() < 1e-6);
        let ce: f32 = LossKind::Ce.loss(&logits, &[0, 2])?.to_scalar()?;
        let l0 = -(2f64.exp() / (2f64.exp() + 2.0)).ln();
        let l1 = -(1f64.exp() / (2.0 * 1f64.exp() + 1.0)).ln();
        assert!((ce as f64 - (l0 + l1) / 2.0).abs() < 1e-5);
        Ok(())
    }
}
