//! Options shared by several subcommands.

use crate::config::{BnMode, DatasetKind, NetConfig, Overrides};
use crate::data::{Dataset, Split};
use crate::export::fit::{
    heaviest_genotype, planned_footprint, size_for_board, Cells, FitFilter, Fixed,
};
use crate::export::{board, check_fit, Bits};
use crate::search::KernelPath;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::{Args, ValueEnum};
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
    /// Dataset.
    #[arg(long, default_value = "cifar10", value_parser = parse_dataset)]
    pub dataset: DatasetKind,
    /// Dataset folder in the official layout. Without it, the built-in CIFAR-10 sample is used
    /// (CIFAR-10 only).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Search space: `lightsnn` (zero, conv3, skip), `snasnet` (zero, skip, conv1, conv3,
    /// avgpool), or a comma-separated op list.
    #[arg(long, default_value = "lightsnn", value_parser = parse_ops)]
    pub space: OpSet,
    /// Cell type.
    #[arg(long, default_value = "backward", value_parser = parse_cell)]
    pub cell: CellType,
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

/// Width of the demo configuration on the built-in sample.
pub const DEMO_WIDTH: f64 = 1.0 / 32.0;

/// Network shape options, each optional: what is not given takes the per-dataset default
/// ([`ShapeArgs::overrides`]), or with `train --resume` the run's value.
#[derive(Args, Debug, Clone, Default)]
pub struct ShapeArgs {
    /// Width multiplier for C1/C2 (1 = the paper's widths) [default: 1, or 1/32 on the
    /// built-in sample].
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
    /// The configuration overrides these options give; the width defaults to 1, or to
    /// [`DEMO_WIDTH`] on the built-in sample (`built_in_sample`).
    pub fn overrides(&self, built_in_sample: bool) -> Overrides {
        let default_width = if built_in_sample { DEMO_WIDTH } else { 1.0 };
        Overrides {
            width: Some(self.width.unwrap_or(default_width)),
            timesteps: self.timesteps,
            hidden: self.hidden,
            votes: self.votes,
        }
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
        (cfg.c1, cfg.c2) = (full.c1, full.c2);
    }
    Ok(cfg)
}

/// clap parser of `--dataset`.
pub(super) fn parse_dataset(s: &str) -> Result<DatasetKind, String> {
    s.parse::<DatasetKind>().map_err(|e| e.to_string())
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
    /// The network configuration these options describe.
    pub fn net_config(&self) -> Result<NetConfig> {
        let o = self.shape.overrides(self.data.is_none());
        let mut cfg = NetConfig::for_dataset(self.dataset, &o)?;
        cfg.ops = self.space.clone();
        cfg.cell = self.cell;
        cfg.bn_mode = self.bn_mode;
        Ok(cfg)
    }

    /// Loads a split, and a label describing where it came from.
    pub fn load(&self, split: Split, timesteps: usize) -> Result<(Dataset, String)> {
        match &self.data {
            Some(dir) => {
                let d = Dataset::load(self.dataset, dir, split, timesteps)?;
                Ok((d, dir.display().to_string()))
            }
            None => {
                if self.dataset != DatasetKind::Cifar10 {
                    bail!(
                        "--data DIR is required for {}: only a CIFAR-10 sample is built in",
                        self.dataset
                    );
                }
                Ok((
                    crate::data::sample::cifar10_sample(split)?,
                    crate::data::sample::SAMPLE_LABEL.to_string(),
                ))
            }
        }
    }
}
