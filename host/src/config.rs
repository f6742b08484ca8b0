//! Network configuration: the macro skeleton (docs/design.md, "Macro skeleton") per dataset, width
//! multiplier and overrides.

use serde::{Deserialize, Serialize};
use snn_nostd::genotype::{CellType, LifClass, OpSet};
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

impl LifParams {
    /// The constants of a LIF of threshold class `class`: the threshold is the class's scale
    /// times [`v_threshold`](Self::v_threshold) (0.5, 1.0 or 1.5 times), everything else
    /// unchanged (see docs/design.md, "Thresholded conv ops, LIF classes and average-pool
    /// downsampling").
    pub fn for_class(&self, class: LifClass) -> LifParams {
        LifParams {
            v_threshold: class.scale() * self.v_threshold,
            ..*self
        }
    }
}

/// The pool of the network's two downsampling stages: the 2x2 pool of the down block and the
/// `pool x pool` pool before the classifier (both stride = kernel).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolKind {
    /// Max pool (the LightSNN network; the default).
    #[default]
    Max,
    /// Average pool (SpikeNAS-Bench's network).
    Avg,
}

impl PoolKind {
    /// Whether this is the default, [`PoolKind::Max`] (which files leave out).
    pub fn is_max(&self) -> bool {
        *self == PoolKind::Max
    }
}

/// A named network configuration ([`NetConfig::for_preset`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// SpikeNAS-Bench's CIFAR-10 network: C1/C2 128/256, the forward cell over
    /// {zero, skip, conv3@0.5, conv3, conv3@1.5}, average pools for downsampling, H 1024,
    /// V 10, T 5 (see docs/cli.md, "The SpikeNAS-Bench preset").
    SpikenasBench,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 1] = [Preset::SpikenasBench];

    /// The name used on the command line and in files: `spikenas-bench`.
    pub fn name(self) -> &'static str {
        match self {
            Preset::SpikenasBench => "spikenas-bench",
        }
    }

    /// The dataset the preset's network is shaped for.
    pub fn dataset(self) -> DatasetKind {
        match self {
            Preset::SpikenasBench => DatasetKind::Cifar10,
        }
    }

    /// The preset's op set.
    pub fn ops(self) -> OpSet {
        match self {
            Preset::SpikenasBench => OpSet::spikenas_bench(),
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
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
    /// Kernel (and stride) of the pool before the classifier.
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
    /// The pool of the two downsampling stages (max unless a preset says otherwise; left out of
    /// files when max, so files of older versions read the same).
    #[serde(default, skip_serializing_if = "PoolKind::is_max")]
    pub downsample: PoolKind,
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
    /// The width multiplier gives more channels than [`MAX_SIZE`].
    #[error("width multiplier {0} gives C2 = {1} channels, above the limit of {MAX_SIZE}")]
    HugeWidth(f64, usize),
    /// A size is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// A preset was combined with a dataset it is not shaped for.
    #[error("the {preset} preset is a {} network; --dataset {dataset} contradicts it", preset.dataset())]
    PresetDataset {
        /// The preset.
        preset: Preset,
        /// The dataset asked for.
        dataset: DatasetKind,
    },
    /// A size is beyond any machine ([`MAX_SIZE`]); sizes below it are checked against the
    /// free memory by the commands' estimates.
    #[error("{name} is {value}, above the limit of {MAX_SIZE}")]
    Huge {
        /// Which size.
        name: &'static str,
        /// Its value.
        value: usize,
    },
    /// A LIF constant is not a finite number, or the time constant is not positive.
    #[error("LIF constants must be finite with tau > 0, got {0:?}")]
    BadLif(LifParams),
    /// A weight tensor would have more than [`MAX_PARAMS`] values.
    #[error("the {name} would hold {count} values, above the limit of {MAX_PARAMS}")]
    HugeTensor {
        /// Which tensor.
        name: &'static str,
        /// Its values.
        count: u128,
    },
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

/// The largest channel count, hidden size, vote count or timestep count a configuration may
/// have (2^24): far above any machine's memory, and low enough that the products of sizes in
/// parameter counts and estimates cannot overflow.
pub const MAX_SIZE: usize = 1 << 24;

/// The most values one weight tensor may have (2^50, four PiB of f32): far above any machine,
/// and low enough that parameter counts cannot overflow.
pub const MAX_PARAMS: u64 = 1 << 50;

fn scale(c: usize, width: f64) -> usize {
    ((c as f64 * width).round() as usize).max(1)
}

/// The per-dataset (or per-preset) sizes of the macro skeleton, before overrides.
struct Skeleton {
    input: [usize; 3],
    c1: usize,
    c2: usize,
    pool: usize,
    hidden: usize,
    votes: usize,
    timesteps: usize,
    stem_pool: bool,
}

impl Skeleton {
    /// The skeleton with overrides `o` applied, as a LightSNN network of `dataset` (backward
    /// cell, LightSNN ops, max pools).
    fn config(self, dataset: DatasetKind, o: &Overrides) -> Result<NetConfig, ConfigError> {
        let width = o.width.unwrap_or(1.0);
        if !(width.is_finite() && width > 0.0) {
            return Err(ConfigError::BadWidth(width));
        }
        if scale(self.c2, width) > MAX_SIZE {
            return Err(ConfigError::HugeWidth(width, scale(self.c2, width)));
        }
        let cfg = NetConfig {
            dataset,
            input: self.input,
            c1: scale(self.c1, width),
            c2: scale(self.c2, width),
            pool: self.pool,
            hidden: o.hidden.unwrap_or(self.hidden),
            classes: dataset.num_classes(),
            votes: o.votes.unwrap_or(self.votes),
            timesteps: o.timesteps.unwrap_or(self.timesteps),
            stem_pool: self.stem_pool,
            cell: CellType::Backward,
            ops: OpSet::lightsnn(),
            lif: LifParams::default(),
            bn_mode: BnMode::Batch,
            downsample: PoolKind::Max,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

impl NetConfig {
    /// The skeleton of docs/design.md, "Macro skeleton", for `dataset`, with overrides applied.
    ///
    /// N-MNIST (not in the paper) uses C1/C2 = 64/128, p = 2, H = 256, V = 10, T = 10.
    pub fn for_dataset(dataset: DatasetKind, o: &Overrides) -> Result<NetConfig, ConfigError> {
        let (input, c1, c2, pool, hidden, votes, timesteps, stem_pool) = match dataset {
            DatasetKind::Cifar10 => ([3, 32, 32], 256, 512, 2, 1024, 10, 5, false),
            DatasetKind::Cifar100 => ([3, 32, 32], 128, 256, 2, 1024, 5, 5, false),
            DatasetKind::Dvs128 => ([2, 128, 128], 128, 256, 2, 1024, 10, 16, true),
            DatasetKind::Nmnist => ([2, 34, 34], 64, 128, 2, 256, 10, 10, false),
        };
        let sk = Skeleton {
            input,
            c1,
            c2,
            pool,
            hidden,
            votes,
            timesteps,
            stem_pool,
        };
        sk.config(dataset, o)
    }

    /// The network of `preset`, with overrides applied (the width multiplies the preset's
    /// C1/C2; T, H and V replace its values).
    ///
    /// [`Preset::SpikenasBench`]: CIFAR-10, C1/C2 = 128/256, p = 2, H = 1024, V = 10, T = 5,
    /// the forward cell over [`OpSet::spikenas_bench`], average pools for both downsampling
    /// stages. Its stem is computed once and repeated over the T steps, as for every static
    /// input; training applies dropout 0.5 before fc1, as for every network.
    pub fn for_preset(preset: Preset, o: &Overrides) -> Result<NetConfig, ConfigError> {
        match preset {
            Preset::SpikenasBench => {
                let sk = Skeleton {
                    input: [3, 32, 32],
                    c1: 128,
                    c2: 256,
                    pool: 2,
                    hidden: 1024,
                    votes: 10,
                    timesteps: 5,
                    stem_pool: false,
                };
                let mut cfg = sk.config(preset.dataset(), o)?;
                cfg.cell = CellType::Forward;
                cfg.ops = preset.ops();
                cfg.downsample = PoolKind::Avg;
                Ok(cfg)
            }
        }
    }

    /// The network of `preset` if given (refusing a `dataset` other than the preset's), else
    /// the skeleton of `dataset` (CIFAR-10 if `None`); overrides applied.
    pub fn for_preset_or_dataset(
        preset: Option<Preset>,
        dataset: Option<DatasetKind>,
        o: &Overrides,
    ) -> Result<NetConfig, ConfigError> {
        match (preset, dataset) {
            (Some(preset), Some(d)) if d != preset.dataset() => {
                Err(ConfigError::PresetDataset { preset, dataset: d })
            }
            (Some(preset), _) => NetConfig::for_preset(preset, o),
            (None, d) => NetConfig::for_dataset(d.unwrap_or(DatasetKind::Cifar10), o),
        }
    }

    /// Whether this configuration has `preset`'s skeleton at some width, T, H and V: the same
    /// dataset, input, pools and C1:C2 ratio (the cell type and op set are the architecture's
    /// and may differ).
    pub fn matches_preset(&self, preset: Preset) -> bool {
        let Ok(p) = NetConfig::for_preset(preset, &Overrides::default()) else {
            return false;
        };
        self.dataset == p.dataset
            && self.input == p.input
            && self.downsample == p.downsample
            && self.pool == p.pool
            && self.stem_pool == p.stem_pool
            && self.c1 * p.c2 == self.c2 * p.c1
    }

    /// The preset whose skeleton this configuration has ([`matches_preset`](
    /// Self::matches_preset)), if any.
    pub fn preset(&self) -> Option<Preset> {
        Preset::ALL.into_iter().find(|&p| self.matches_preset(p))
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
            (self.classes, "classes"),
            (self.input[0], "input channels"),
            (self.input[1], "input height"),
            (self.input[2], "input width"),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero(name));
            }
            if v > MAX_SIZE {
                return Err(ConfigError::Huge { name, value: v });
            }
        }
        let l = self.lif;
        let finite = [l.tau, l.v_threshold, l.v_reset, l.alpha]
            .iter()
            .all(|v| v.is_finite());
        if !(finite && l.tau > 0.0) {
            return Err(ConfigError::BadLif(l));
        }
        let (fh, fw) = self.feature_hw();
        let count = |f: &[usize]| f.iter().map(|&x| x as u128).product::<u128>();
        for (name, n) in [
            ("stem weights", count(&[self.input[0], self.c1, 9])),
            ("cell 2 conv weights", count(&[self.c2, self.c2, 9])),
            ("fc1 weights", count(&[self.hidden, self.c2, fh, fw])),
            (
                "fc2 weights",
                count(&[self.hidden, self.classes, self.votes]),
            ),
        ] {
            if n > MAX_PARAMS as u128 {
                return Err(ConfigError::HugeTensor { name, count: n });
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

    /// The LIF constants of threshold class `class` ([`LifParams::for_class`]).
    pub fn lif_for(&self, class: LifClass) -> LifParams {
        self.lif.for_class(class)
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

    #[test]
    fn spikenas_bench_preset() {
        let p = Preset::SpikenasBench;
        let c = NetConfig::for_preset(p, &Overrides::default()).unwrap();
        assert_eq!(
            (
                c.dataset,
                c.c1,
                c.c2,
                c.pool,
                c.hidden,
                c.votes,
                c.timesteps
            ),
            (DatasetKind::Cifar10, 128, 256, 2, 1024, 10, 5)
        );
        assert_eq!((c.classes * c.votes, c.features()), (100, 256 * 8 * 8));
        assert_eq!((c.cell, c.downsample), (CellType::Forward, PoolKind::Avg));
        assert_eq!(c.ops, OpSet::spikenas_bench());
        assert!(!c.stem_pool && c.matches_preset(p) && c.preset() == Some(p));
        // The width multiplies the preset's widths; explicit values replace its own.
        let o = Overrides {
            width: Some(0.125),
            timesteps: Some(2),
            hidden: Some(64),
            votes: Some(1),
        };
        let s = NetConfig::for_preset(p, &o).unwrap();
        assert_eq!(
            (s.c1, s.c2, s.timesteps, s.hidden, s.votes),
            (16, 32, 2, 64, 1)
        );
        assert_eq!(s.preset(), Some(p), "a small preset network is still one");
        // Not the preset: the paper's CIFAR-10 network (max pools).
        let paper = NetConfig::for_dataset(DatasetKind::Cifar10, &Overrides::default()).unwrap();
        assert_eq!(paper.preset(), None);
        // A preset with a dataset it is not made for.
        assert_eq!(
            NetConfig::for_preset_or_dataset(Some(p), Some(DatasetKind::Nmnist), &o),
            Err(ConfigError::PresetDataset {
                preset: p,
                dataset: DatasetKind::Nmnist
            })
        );
        assert_eq!(
            NetConfig::for_preset_or_dataset(Some(p), Some(DatasetKind::Cifar10), &o),
            Ok(s)
        );
        assert_eq!(
            NetConfig::for_preset_or_dataset(None, None, &Overrides::default()),
            Ok(paper)
        );
    }

    #[test]
    fn thresholds_of_the_lif_classes() {
        let lif = LifParams::default();
        let th = |c| lif.for_class(c).v_threshold;
        assert_eq!(
            (th(LifClass::Th05), th(LifClass::Th10), th(LifClass::Th15)),
            (0.5, 1.0, 1.5)
        );
        let half = LifParams {
            v_threshold: 0.5,
            ..lif
        };
        assert_eq!(half.for_class(LifClass::Th15).v_threshold, 0.75);
        assert_eq!(half.for_class(LifClass::Th15).tau, lif.tau);
    }

    #[test]
    fn downsampling_pool_is_left_out_of_files_when_max() {
        let c = NetConfig::for_dataset(DatasetKind::Cifar10, &Overrides::default()).unwrap();
        let json = serde_json::to_value(&c).unwrap();
        assert!(json.get("downsample").is_none(), "{json}");
        // Files of older versions (no field) read as max pools.
        let back: NetConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
        let p = NetConfig::for_preset(Preset::SpikenasBench, &Overrides::default()).unwrap();
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["downsample"], "avg");
        assert_eq!(serde_json::from_value::<NetConfig>(json).unwrap(), p);
    }
}
