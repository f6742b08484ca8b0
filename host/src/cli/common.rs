//! Options shared by several subcommands.

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::{Args, ValueEnum};
use lightsnn::config::{BnMode, DatasetKind, NetConfig, Overrides, Preset};
use lightsnn::data::{Dataset, Split};
use lightsnn::export::fit::{
    heaviest_genotype, planned_footprint, size_for_board, Cells, FitFilter, Fixed,
};
use lightsnn::export::{board, check_fit, Bits};
use lightsnn::search::KernelPath;
use snn_nostd::genotype::{CellType, Genotype, OpSet};
use std::path::PathBuf;
use std::sync::Arc;

/// Where tensors live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The CPU.
    #[default]
    Cpu,
    /// The first CUDA GPU (needs a build with `--features cuda`).
    Cuda,
}

impl DeviceArg {
    /// Opens the device.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceArg::Cpu => Ok(Device::Cpu),
            DeviceArg::Cuda => {
                if !cfg!(feature = "cuda") {
                    bail!("this lightsnn was built without CUDA support; rebuild with `cargo build --release --features cuda`");
                }
                Device::new_cuda(0).context("cannot open CUDA device 0")
            }
        }
    }
}

/// Which implementation scores candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// The CPU engine on the CPU, Candle on a GPU.
    Auto,
    /// The Candle forward pass (the reference).
    Candle,
    /// The plain-Rust, event-driven CPU engine (weights copied to the host).
    Cpu,
}

impl EngineArg {
    /// The kernel path this choice means on `device`.
    pub fn kernel_path(self, device: &Device) -> KernelPath {
        match self {
            EngineArg::Auto => KernelPath::for_device(device),
            EngineArg::Candle => KernelPath::candle_for_device(device),
            EngineArg::Cpu => KernelPath::CpuEvent,
        }
    }
}

/// Dataset and network shape options.
#[derive(Args, Debug, Clone)]
pub struct NetArgs {
    /// A named network: `spikenas-bench` (SpikeNAS-Bench's CIFAR-10 network: C1/C2 128/256,
    /// forward cell over zero, skip, conv3@0.5, conv3, conv3@1.5, average pools, H 1024, V 10,
    /// T 5). The other options override its values; `--width` multiplies its C1/C2.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Dataset [default: cifar10, or the preset's].
    #[arg(long, value_parser = parse_dataset)]
    pub dataset: Option<DatasetKind>,
    /// Dataset folder in the official layout. Without it, the built-in CIFAR-10 sample is used
    /// (CIFAR-10 only).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Search space: `lightsnn` (zero, conv3, skip), `snasnet` (zero, skip, conv1, conv3,
    /// avgpool), `spikenas-bench` (zero, skip, conv3@0.5, conv3, conv3@1.5), or a
    /// comma-separated op list [default: lightsnn, or the preset's].
    #[arg(long, value_parser = parse_ops)]
    pub space: Option<OpSet>,
    /// Cell type [default: backward, or the preset's].
    #[arg(long, value_parser = parse_cell)]
    pub cell: Option<CellType>,
    /// Network shape: `--width`, `--timesteps`, `--hidden`, `--votes`.
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// BatchNorm statistics while scoring: batch (default) or running (the reference's).
    #[arg(long, value_enum, default_value = "batch")]
    pub bn_mode: BnMode,
    /// Device.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceArg,
}

/// Width of the demo configuration on the built-in sample (C1/C2 8/16 of CIFAR-10's 256/512).
pub const DEMO_WIDTH: f64 = 1.0 / 32.0;

/// Width of the demo configuration of a preset on the built-in sample: the same C1/C2 8/16
/// (1/16 of SpikeNAS-Bench's 128/256).
pub fn demo_width(preset: Option<Preset>) -> f64 {
    match preset {
        None => DEMO_WIDTH,
        Some(Preset::SpikenasBench) => 1.0 / 16.0,
    }
}

/// Network shape options, each optional: what is not given takes the per-dataset default
/// ([`ShapeArgs::overrides`]), or with `train --resume` the run's value.
#[derive(Args, Debug, Clone, Default)]
pub struct ShapeArgs {
    /// Width multiplier for C1/C2 (1 = the paper's widths, or the preset's) [default: 1, or on
    /// the built-in sample C1/C2 8/16: 1/32, 1/16 with `--preset spikenas-bench`].
    #[arg(long)]
    pub width: Option<f64>,
    /// Timesteps T [default: per dataset].
    #[arg(long)]
    pub timesteps: Option<usize>,
    /// Hidden units H of the classifier [default: per dataset].
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Votes per class V [default: per dataset].
    #[arg(long)]
    pub votes: Option<usize>,
}

impl ShapeArgs {
    /// The configuration overrides these options give; the width defaults to 1, or on the
    /// built-in sample (`built_in_sample`) to [`demo_width`] of `preset`.
    pub fn overrides(&self, built_in_sample: bool, preset: Option<Preset>) -> Overrides {
        let default_width = if built_in_sample {
            demo_width(preset)
        } else {
            1.0
        };
        Overrides {
            width: Some(self.width.unwrap_or(default_width)),
            timesteps: self.timesteps,
            hidden: self.hidden,
            votes: self.votes,
        }
    }
}

/// `--preset` on a command that reads a checkpoint (which carries its configuration): checks
/// that the checkpoint `origin` is a network of `preset`'s skeleton.
pub fn check_preset(
    net: &NetConfig,
    preset: Option<Preset>,
    origin: &std::path::Path,
) -> Result<()> {
    match preset {
        Some(p) if net.preset() != Some(p) => bail!(
            "{}: the checkpoint is not a {p} network (C1/C2 {}/{}, {} pools, {}); leave out --preset",
            origin.display(),
            net.shape.c1,
            net.shape.c2,
            if net.downsample.is_max() { "max" } else { "average" },
            net.dataset
        ),
        _ => Ok(()),
    }
}

/// clap parser of a count that must be at least 1 (`--batch`, `--stop-after`, ...): 0 is a
/// usage error (exit status 2) naming the flag.
pub(super) fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// `--board NAME`: size the network to a microcontroller (see docs/cli.md, `--board`).
#[derive(Args, Debug, Clone, Default)]
pub struct BoardArgs {
    /// Size the network to fit this part (stm32f411, stm32f746, nrf52840, stm32h743) once
    /// exported with 8-bit weights: C1/C2 and H not given are chosen (the widest C1 that fits,
    /// H up to 128), sizes given that cannot fit are refused before any work.
    #[arg(long, value_parser = parse_board)]
    pub board: Option<String>,
}

/// clap parser of `--board`: a known part's name.
fn parse_board(s: &str) -> Result<String, String> {
    board(s)
        .map(|b| b.name.to_string())
        .map_err(|e| e.to_string())
}

impl BoardArgs {
    /// `cfg` sized to the board (or `cfg` itself without `--board`), printing what was chosen
    /// and why. `fixed`: the sizes the user gave; `cells`: the cells the network must fit with.
    pub fn size(&self, cfg: NetConfig, fixed: Fixed, cells: Cells<'_>) -> Result<NetConfig> {
        self.size_saying(cfg, fixed, cells, &|l| println!("{l}"))
    }

    /// [`BoardArgs::size`], saying what was chosen through `say`.
    pub fn size_saying(
        &self,
        cfg: NetConfig,
        fixed: Fixed,
        cells: Cells<'_>,
        say: &dyn Fn(&str),
    ) -> Result<NetConfig> {
        let Some(name) = &self.board else {
            return Ok(cfg);
        };
        let b = board(name)?;
        let s = size_for_board(b, &cfg, fixed, cells, Bits::B8)
            .with_context(|| format!("--board {}: refused before any work", b.name))?;
        say(&s.why);
        Ok(s.cfg)
    }

    /// `cfg` sized for a search with `--board` (or `cfg` itself without): at the widest sizes
    /// the op set's conv cells fit (every edge its heaviest conv), from the dataset's full
    /// width where the width is not fixed; the search then returns the best-scoring cell among
    /// those that fit at these sizes ([`BoardArgs::filter`]).
    pub fn size_search(&self, cfg: NetConfig, fixed: Fixed) -> Result<NetConfig> {
        self.size_search_saying(cfg, fixed, &|l| println!("{l}"))
    }

    /// [`BoardArgs::size_search`], saying what was chosen through `say`.
    pub fn size_search_saying(
        &self,
        cfg: NetConfig,
        fixed: Fixed,
        say: &dyn Fn(&str),
    ) -> Result<NetConfig> {
        if self.board.is_none() {
            return Ok(cfg);
        }
        let base = full_width(cfg, fixed.channels)?;
        let heaviest = heaviest_genotype(base.cell, &base.ops);
        let sized = self.size_saying(base, fixed, Cells::One(&heaviest), say)?;
        say(
            "the search returns the best-scoring cell among those that fit at these sizes \
             (cells whose skips or pools make the engine keep node tensors or back states may \
             need more RAM and are then never chosen)",
        );
        Ok(sized)
    }

    /// With `--board`: the filter of the cells that fit the board at `cfg`'s sizes, for the
    /// search (see [`FitFilter`]).
    pub fn filter(&self, cfg: &NetConfig) -> Result<Option<Arc<FitFilter>>> {
        let Some(name) = &self.board else {
            return Ok(None);
        };
        Ok(Some(Arc::new(FitFilter::new(board(name)?, cfg, Bits::B8))))
    }

    /// With `--board`: checks that the cell a search returned (`genotype`, in `cfg`) fits, and
    /// says so. The search only returns cells that fit; a failure is a bug.
    pub fn check_found(&self, cfg: &NetConfig, genotype: &str) -> Result<()> {
        let Some(name) = &self.board else {
            return Ok(());
        };
        let b = board(name)?;
        let g: Genotype = genotype
            .parse()
            .with_context(|| format!("the search returned genotype {genotype:?}"))?;
        let fp = planned_footprint(cfg, Cells::One(&g), Bits::B8)?;
        check_fit(&fp, b).with_context(|| format!("the cell found ({g}) does not fit {name}"))?;
        println!(
            "the cell found fits {}: {} B of RAM, {} B of flash with the firmware's reserves",
            b.name,
            fp.ram_needed(),
            fp.flash_needed()
        );
        Ok(())
    }
}

impl ShapeArgs {
    /// The sizes these options fix (for `--board`).
    pub fn fixed(&self) -> Fixed {
        Fixed {
            channels: self.width.is_some(),
            hidden: self.hidden.is_some(),
            timesteps: self.timesteps.is_some(),
        }
    }
}

/// `cfg` with the dataset's full-width C1/C2 where the width was not given: the widest a board
/// sizing may choose.
pub fn full_width(mut cfg: NetConfig, width_given: bool) -> Result<NetConfig> {
    if !width_given {
        let full = NetConfig::for_dataset(cfg.dataset, &Overrides::default())?;
        (cfg.shape.c1, cfg.shape.c2) = (full.shape.c1, full.shape.c2);
    }
    Ok(cfg)
}

/// clap parser of `--dataset`.
pub(super) fn parse_dataset(s: &str) -> Result<DatasetKind, String> {
    s.parse::<DatasetKind>().map_err(|e| format!("{s:?}: {e}"))
}
/// clap parser of `--space`.
pub(super) fn parse_ops(s: &str) -> Result<OpSet, String> {
    s.parse::<OpSet>().map_err(|e| e.to_string())
}
/// clap parser of `--cell`.
pub(super) fn parse_cell(s: &str) -> Result<CellType, String> {
    s.parse::<CellType>().map_err(|e| e.to_string())
}

impl NetArgs {
    /// The network configuration these options describe: the preset's or the dataset's, with
    /// every option given applied on top.
    pub fn net_config(&self) -> Result<NetConfig> {
        let o = self.shape.overrides(self.data.is_none(), self.preset);
        let mut cfg = NetConfig::for_preset_or_dataset(self.preset, self.dataset, &o)?;
        if let Some(ops) = &self.space {
            cfg.ops = ops.clone();
        }
        if let Some(cell) = self.cell {
            cfg.cell = cell;
        }
        cfg.bn_mode = self.bn_mode;
        Ok(cfg)
    }

    /// The dataset: `--dataset`, the preset's, or CIFAR-10.
    pub fn dataset(&self) -> DatasetKind {
        self.dataset
            .or(self.preset.map(Preset::dataset))
            .unwrap_or(DatasetKind::Cifar10)
    }

    /// The inputs these options name (`--data`), for the output checks of
    /// [`lightsnn::fsutil`].
    pub fn inputs(&self) -> Vec<(&'static str, &std::path::Path)> {
        self.data.iter().map(|d| ("--data", d.as_path())).collect()
    }

    /// Loads a split, and a label describing where it came from; prints the loader's warnings
    /// (samples without events).
    pub fn load(&self, split: Split, timesteps: usize) -> Result<(Dataset, String)> {
        load_split(self.dataset(), self.data.as_deref(), split, timesteps, "")
    }
}

/// Loads `split` of `kind` from `dir` or, without a folder, the built-in CIFAR-10 sample
/// (CIFAR-10 only; `whose` names what needs the data otherwise, e.g. "x.safetensors: "), with
/// `timesteps` frames per event sample. Prints the loader's warnings (samples without events)
/// and returns the dataset and a label for where it came from.
pub fn load_split(
    kind: DatasetKind,
    dir: Option<&std::path::Path>,
    split: Split,
    timesteps: usize,
    whose: &str,
) -> Result<(Dataset, String)> {
    let (d, label) = match dir {
        Some(dir) => (
            Dataset::load(kind, dir, split, timesteps)?,
            dir.display().to_string(),
        ),
        None => {
            if kind != DatasetKind::Cifar10 {
                bail!(
                    "{whose}--data DIR is required for {kind}: only a CIFAR-10 sample is built in"
                );
            }
            (
                lightsnn::data::sample::cifar10_sample(split)?,
                lightsnn::data::sample::SAMPLE_LABEL.to_string(),
            )
        }
    };
    for w in d.warnings() {
        eprintln!("warning: {w}");
    }
    Ok((d, label))
}
