//! Network configuration: the macro skeleton (docs/design.md, "Macro skeleton") per dataset, width
//! multiplier and overrides.

use serde::{Deserialize, Serialize};
use snn_nostd::genotype::{CellType, LifClass, OpSet};
use snn_nostd::shape::{InputKind, Shape};
use snn_nostd::skeleton;

/// Which dataset a network is built for (the one enum of snn-nostd, also at `data::DatasetKind`).
pub use snn_nostd::dataset::DatasetKind;

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

/// Everything needed to build a network of the LightSNN macro skeleton: the dataset, the
/// network's [`Shape`] (one type with the device's model blob) and the architecture's kind (cell
/// type, op set, LIF constants, pools).
///
/// In files (search results, checkpoints, study state) it is one flat JSON object, unchanged
/// since the first version: `dataset`, `input` (`[channels, height, width]`), `c1`, `c2`,
/// `pool`, `hidden`, `classes`, `votes`, `timesteps`, `stem_pool`, `cell`, `ops`, `lif`,
/// `bn_mode` and `downsample` (left out when max).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "file::NetConfigFile", into = "file::NetConfigFile")]
pub struct NetConfig {
    /// Dataset the network is shaped for (its input kind is `shape.input`).
    pub dataset: DatasetKind,
    /// Input, timesteps, widths, classifier pool, hidden units, classes and votes.
    pub shape: Shape,
    /// Cell type (backward or forward-only).
    pub cell: CellType,
    /// The candidate operations.
    pub ops: OpSet,
    /// LIF constants.
    pub lif: LifParams,
    /// BatchNorm statistics used while scoring.
    pub bn_mode: BnMode,
    /// The pool of the two downsampling stages (max unless a preset says otherwise).
    pub downsample: PoolKind,
}

/// The file form of [`NetConfig`].
mod file {
    use super::*;

    /// [`NetConfig`] as files have always spelled it: one flat object.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub(super) struct NetConfigFile {
        dataset: DatasetKind,
        input: [usize; 3],
        c1: usize,
        c2: usize,
        pool: usize,
        hidden: usize,
        classes: usize,
        votes: usize,
        timesteps: usize,
        stem_pool: bool,
        cell: CellType,
        ops: OpSet,
        lif: LifParams,
        bn_mode: BnMode,
        // files of versions before average pools have no field: max
        #[serde(default, skip_serializing_if = "PoolKind::is_max")]
        downsample: PoolKind,
    }

    impl From<NetConfigFile> for NetConfig {
        fn from(f: NetConfigFile) -> NetConfig {
            NetConfig {
                dataset: f.dataset,
                shape: Shape {
                    input: f.dataset.input(),
                    in_c: f.input[0],
                    in_h: f.input[1],
                    in_w: f.input[2],
                    stem_pool: f.stem_pool,
                    timesteps: f.timesteps,
                    c1: f.c1,
                    c2: f.c2,
                    pool: f.pool,
                    hidden: f.hidden,
                    classes: f.classes,
                    votes: f.votes,
                },
                cell: f.cell,
                ops: f.ops,
                lif: f.lif,
                bn_mode: f.bn_mode,
                downsample: f.downsample,
            }
        }
    }

    impl From<NetConfig> for NetConfigFile {
        fn from(c: NetConfig) -> NetConfigFile {
            let s = c.shape;
            NetConfigFile {
                dataset: c.dataset,
                input: [s.in_c, s.in_h, s.in_w],
                c1: s.c1,
                c2: s.c2,
                pool: s.pool,
                hidden: s.hidden,
                classes: s.classes,
                votes: s.votes,
                timesteps: s.timesteps,
                stem_pool: s.stem_pool,
                cell: c.cell,
                ops: c.ops,
                lif: c.lif,
                bn_mode: c.bn_mode,
                downsample: c.downsample,
            }
        }
    }
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
    /// The shape's input kind is not the dataset's.
    #[error("{dataset} has {:?} input, the shape says {input:?}", dataset.input())]
    InputKind {
        /// The dataset.
        dataset: DatasetKind,
        /// The shape's input kind.
        input: InputKind,
    },
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

/// `base` (a dataset's or a preset's shape) with overrides `o` applied, as a LightSNN network of
/// `dataset` (backward cell, LightSNN ops, max pools).
fn with_overrides(
    dataset: DatasetKind,
    base: Shape,
    o: &Overrides,
) -> Result<NetConfig, ConfigError> {
    let width = o.width.unwrap_or(1.0);
    if !(width.is_finite() && width > 0.0) {
        return Err(ConfigError::BadWidth(width));
    }
    if scale(base.c2, width) > MAX_SIZE {
        return Err(ConfigError::HugeWidth(width, scale(base.c2, width)));
    }
    let cfg = NetConfig {
        dataset,
        shape: Shape {
            c1: scale(base.c1, width),
            c2: scale(base.c2, width),
            hidden: o.hidden.unwrap_or(base.hidden),
            votes: o.votes.unwrap_or(base.votes),
            timesteps: o.timesteps.unwrap_or(base.timesteps),
            ..base
        },
        cell: CellType::Backward,
        ops: OpSet::lightsnn(),
        lif: LifParams::default(),
        bn_mode: BnMode::Batch,
        downsample: PoolKind::Max,
    };
    cfg.validate()?;
    Ok(cfg)
}

/// The macro skeleton's shape for `dataset`: its input, classes and the given sizes.
#[allow(clippy::too_many_arguments)]
fn skeleton(
    dataset: DatasetKind,
    c1: usize,
    c2: usize,
    pool: usize,
    hidden: usize,
    votes: usize,
    timesteps: usize,
    stem_pool: bool,
) -> Shape {
    Shape {
        input: dataset.input(),
        in_c: dataset.channels(),
        in_h: dataset.height(),
        in_w: dataset.width(),
        stem_pool,
        timesteps,
        c1,
        c2,
        pool,
        hidden,
        classes: dataset.num_classes(),
        votes,
    }
}

impl NetConfig {
    /// The skeleton of docs/design.md, "Macro skeleton", for `dataset`, with overrides applied.
    ///
    /// N-MNIST (not in the paper) uses C1/C2 = 64/128, p = 2, H = 256, V = 10, T = 10.
    pub fn for_dataset(dataset: DatasetKind, o: &Overrides) -> Result<NetConfig, ConfigError> {
        let base = match dataset {
            DatasetKind::Cifar10 => skeleton(dataset, 256, 512, 2, 1024, 10, 5, false),
            DatasetKind::Cifar100 => skeleton(dataset, 128, 256, 2, 1024, 5, 5, false),
            DatasetKind::Dvs128 => skeleton(dataset, 128, 256, 2, 1024, 10, 16, true),
            DatasetKind::Nmnist => skeleton(dataset, 64, 128, 2, 256, 10, 10, false),
        };
        with_overrides(dataset, base, o)
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
                let d = preset.dataset();
                let base = skeleton(d, 128, 256, 2, 1024, 10, 5, false);
                let mut cfg = with_overrides(d, base, o)?;
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
        let (s, ps) = (&self.shape, &p.shape);
        self.dataset == p.dataset
            && (s.input, s.in_c, s.in_h, s.in_w) == (ps.input, ps.in_c, ps.in_h, ps.in_w)
            && self.downsample == p.downsample
            && s.pool == ps.pool
            && s.stem_pool == ps.stem_pool
            && s.c1 * ps.c2 == s.c2 * ps.c1
    }

    /// The preset whose skeleton this configuration has ([`matches_preset`](
    /// Self::matches_preset)), if any.
    pub fn preset(&self) -> Option<Preset> {
        Preset::ALL.into_iter().find(|&p| self.matches_preset(p))
    }

    /// Checks that every size is usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.shape.input != self.dataset.input() {
            return Err(ConfigError::InputKind {
                dataset: self.dataset,
                input: self.shape.input,
            });
        }
        for (v, name) in [
            (self.shape.hidden, "hidden units (H)"),
            (self.shape.votes, "votes per class (V)"),
            (self.shape.timesteps, "timesteps (T)"),
            (self.shape.c1, "C1"),
            (self.shape.c2, "C2"),
            (self.shape.pool, "pool size"),
            (self.shape.classes, "classes"),
            (self.shape.in_c, "input channels"),
            (self.shape.in_h, "input height"),
            (self.shape.in_w, "input width"),
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
        let (fh, fw) = self.shape.pooled_hw();
        let count = |f: &[usize]| f.iter().map(|&x| x as u128).product::<u128>();
        for (name, n) in [
            ("stem weights", count(&[self.shape.in_c, self.shape.c1, 9])),
            (
                "cell 2 conv weights",
                count(&[self.shape.c2, self.shape.c2, 9]),
            ),
            (
                "fc1 weights",
                count(&[self.shape.hidden, self.shape.c2, fh, fw]),
            ),
            (
                "fc2 weights",
                count(&[self.shape.hidden, self.shape.classes, self.shape.votes]),
            ),
        ] {
            if n > MAX_PARAMS as u128 {
                return Err(ConfigError::HugeTensor { name, count: n });
            }
        }
        let (h, w) = self.shape.pooled_hw();
        if h == 0 || w == 0 {
            return Err(ConfigError::TooSmall {
                h: self.shape.in_h,
                w: self.shape.in_w,
            });
        }
        Ok(())
    }

    /// The LIF constants of threshold class `class` ([`LifParams::for_class`]).
    pub fn lif_for(&self, class: LifClass) -> LifParams {
        self.lif.for_class(class)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_sizes() {
        let c = NetConfig::for_dataset(DatasetKind::Cifar10, &Overrides::default()).unwrap();
        assert_eq!(
            (
                c.shape.c1,
                c.shape.c2,
                c.shape.hidden,
                c.shape.votes,
                c.shape.timesteps
            ),
            (256, 512, 1024, 10, 5)
        );
        assert_eq!(c.shape.fc1_in(), 512 * 8 * 8);
        let d = NetConfig::for_dataset(DatasetKind::Dvs128, &Overrides::default()).unwrap();
        assert_eq!(d.shape.cell1_hw(), (64, 64));
        assert_eq!(d.shape.fc1_in(), 256 * 16 * 16);
        let n = NetConfig::for_dataset(DatasetKind::Nmnist, &Overrides::default()).unwrap();
        assert_eq!(n.shape.fc1_in(), 128 * 8 * 8);
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
            (
                c.shape.c1,
                c.shape.c2,
                c.shape.hidden,
                c.shape.votes,
                c.shape.timesteps
            ),
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
                c.shape.c1,
                c.shape.c2,
                c.shape.pool,
                c.shape.hidden,
                c.shape.votes,
                c.shape.timesteps
            ),
            (DatasetKind::Cifar10, 128, 256, 2, 1024, 10, 5)
        );
        assert_eq!(
            (c.shape.classes * c.shape.votes, c.shape.fc1_in()),
            (100, 256 * 8 * 8)
        );
        assert_eq!((c.cell, c.downsample), (CellType::Forward, PoolKind::Avg));
        assert_eq!(c.ops, OpSet::spikenas_bench());
        assert!(!c.shape.stem_pool && c.matches_preset(p) && c.preset() == Some(p));
        // The width multiplies the preset's widths; explicit values replace its own.
        let o = Overrides {
            width: Some(0.125),
            timesteps: Some(2),
            hidden: Some(64),
            votes: Some(1),
        };
        let s = NetConfig::for_preset(p, &o).unwrap();
        assert_eq!(
            (
                s.shape.c1,
                s.shape.c2,
                s.shape.timesteps,
                s.shape.hidden,
                s.shape.votes
            ),
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
