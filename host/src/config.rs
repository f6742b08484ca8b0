//! Network configuration: the macro skeleton (docs/design.md, "Macro skeleton") per dataset, width
//! multiplier and overrides.

use serde::{Deserialize, Serialize};
use snn_nostd::genotype::{CellType, OpSet};
use snn_nostd::skeleton;

/// Which dataset a network is built for. Mirrors `data::DatasetKind` but lives here so that the
/// model can be configured without loading data.
pub use crate::data::DatasetKind;

/// Constants of the LIF neuron (docs/design.md, "The LIF neuron").
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LifParams {
    /// Membrane time constant; the charge is `V <- V + (X - V) / tau`.
    pub tau: f64,
    /// Firing threshold.
    pub v_threshold: f64,
    /// Potential after a spike (hard reset).
    pub v_reset: f64,
    /// Steepness of the ATan surrogate gradient.
    pub alpha: f64,
}

impl Default for LifParams {
    fn default() -> Self {
        LifParams {
            tau: skeleton::LIF_TAU,
            v_threshold: skeleton::LIF_V_THRESHOLD,
            v_reset: skeleton::LIF_V_RESET,
            alpha: 2.0,
        }
    }
}

/// How BatchNorm normalises while scoring an untrained network (docs/design.md, "BatchNorm while
/// scoring").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BnMode {
    /// Batch statistics of the search batch, no running-stat update (default; SNASNet, NASWOT).
    Batch,
    /// Running statistics (the reference LightSNN code; an identity on an untrained network).
    Running,
}

/// Everything needed to build a network of the LightSNN macro skeleton.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetConfig {
    /// Dataset the network is shaped for.
    pub dataset: DatasetKind,
    /// Input channels, height and width.
    pub input: [usize; 3],
    /// Channels of cell 1.
    pub c1: usize,
    /// Channels of cell 2.
    pub c2: usize,
    /// Kernel of the max pool before the classifier.
    pub pool: usize,
    /// Hidden units of the classifier.
    pub hidden: usize,
    /// Number of classes.
    pub classes: usize,
    /// Voting neurons per class.
    pub votes: usize,
    /// Timesteps.
    pub timesteps: usize,
    /// MaxPool2 right after the stem (DVS128 Gesture).
    pub stem_pool: bool,
    /// Cell type (backward or forward-only).
    pub cell: CellType,
    /// The candidate operations.
    pub ops: OpSet,
    /// LIF constants.
    pub lif: LifParams,
    /// BatchNorm statistics used while scoring.
    pub bn_mode: BnMode,
}

/// Optional overrides of the per-dataset defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Overrides {
    /// Width multiplier for C1 and C2 (1.0 = the paper's widths).
    pub width: Option<f64>,
    /// Timesteps T.
    pub timesteps: Option<usize>,
    /// Hidden units H.
    pub hidden: Option<usize>,
    /// Votes per class V.
    pub votes: Option<usize>,
}

/// Why a configuration is impossible.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// The width multiplier is not a positive finite number.
    #[error("width multiplier must be a positive number, got {0}")]
    BadWidth(f64),
    /// A size is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// The feature map vanishes before the classifier.
    #[error(
        "input {h}x{w} is too small for the skeleton (feature map before the classifier is empty)"
    )]
    TooSmall {
        /// Input height.
        h: usize,
        /// Input width.
        w: usize,
    },
}

fn scale(c: usize, width: f64) -> usize {
    ((c as f64 * width).round() as usize).max(1)
}

impl NetConfig {
    /// The skeleton of docs/design.md, "Macro skeleton", for `dataset`, with overrides applied.
    ///
    /// N-MNIST (not in the paper) uses C1/C2 = 64/128, p = 2, H = 256, V = 10, T = 10.
    pub fn for_dataset(dataset: DatasetKind, o: &Overrides) -> Result<NetConfig, ConfigError> {
        let (input, c1, c2, pool, hidden, votes, t, stem_pool) = match dataset {
            DatasetKind::Cifar10 => ([3, 32, 32], 256, 512, 2, 1024, 10, 5, false),
            DatasetKind::Cifar100 => ([3, 32, 32], 128, 256, 2, 1024, 5, 5, false),
            DatasetKind::Dvs128 => ([2, 128, 128], 128, 256, 2, 1024, 10, 16, true),
            DatasetKind::Nmnist => ([2, 34, 34], 64, 128, 2, 256, 10, 10, false),
        };
        let width = o.width.unwrap_or(1.0);
        if !(width.is_finite() && width > 0.0) {
            return Err(ConfigError::BadWidth(width));
        }
        let cfg = NetConfig {
            dataset,
            input,
            c1: scale(c1, width),
            c2: scale(c2, width),
            pool,
            hidden: o.hidden.unwrap_or(hidden),
            classes: dataset.num_classes(),
            votes: o.votes.unwrap_or(votes),
            timesteps: o.timesteps.unwrap_or(t),
            stem_pool,
            cell: CellType::Backward,
            ops: OpSet::lightsnn(),
            lif: LifParams::default(),
            bn_mode: BnMode::Batch,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that every size is usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (v, name) in [
            (self.hidden, "hidden units (H)"),
            (self.votes, "votes per class (V)"),
            (self.timesteps, "timesteps (T)"),
            (self.c1, "C1"),
            (self.c2, "C2"),
            (self.pool, "pool size"),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        let (h, w) = self.feature_hw();
        if h == 0 || w == 0 {
            return Err(ConfigError::TooSmall {
                h: self.input[1],
                w: self.input[2],
            });
        }
        Ok(())
    }

    /// Height and width of cell 1's feature map.
    pub fn cell1_hw(&self) -> (usize, usize) {
        skeleton::cell1_hw(self.input[1], self.input[2], self.stem_pool)
    }

    /// Height and width of cell 2's feature map.
    pub fn cell2_hw(&self) -> (usize, usize) {
        skeleton::cell2_hw(self.cell1_hw())
    }

    /// Height and width of the map entering the classifier.
    pub fn feature_hw(&self) -> (usize, usize) {
        skeleton::pooled_hw(self.cell2_hw(), self.pool)
    }

    /// Input size of the first linear layer, from the actual feature-map size.
    pub fn features(&self) -> usize {
        let (h, w) = self.feature_hw();
        self.c2 * h * w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_sizes() {
        let c = NetConfig::for_dataset(DatasetKind::Cifar10, &Overrides::default()).unwrap();
        assert_eq!(
            (c.c1, c.c2, c.hidden, c.votes, c.timesteps),
            (256, 512, 1024, 10, 5)
        );
        assert_eq!(c.features(), 512 * 8 * 8);
        let d = NetConfig::for_dataset(DatasetKind::Dvs128, &Overrides::default()).unwrap();
        assert_eq!(d.cell1_hw(), (64, 64));
        assert_eq!(d.features(), 256 * 16 * 16);
        let n = NetConfig::for_dataset(DatasetKind::Nmnist, &Overrides::default()).unwrap();
        assert_eq!(n.features(), 128 * 8 * 8);
    }

    #[test]
    fn width_and_overrides() {
        let o = Overrides {
            width: Some(1.0 / 16.0),
            timesteps: Some(3),
            hidden: Some(64),
            votes: Some(2),
        };
        let c = NetConfig::for_dataset(DatasetKind::Cifar10, &o).unwrap();
        assert_eq!(
            (c.c1, c.c2, c.hidden, c.votes, c.timesteps),
            (16, 32, 64, 2, 3)
        );
        let bad = Overrides {
            width: Some(-1.0),
            ..Default::default()
        };
        assert_eq!(
            NetConfig::for_dataset(DatasetKind::Cifar10, &bad),
            Err(ConfigError::BadWidth(-1.0))
        );
        let zero_t = Overrides {
            timesteps: Some(0),
            ..Default::default()
        };
        assert!(NetConfig::for_dataset(DatasetKind::Cifar10, &zero_t).is_err());
    }
}
