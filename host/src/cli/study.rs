//! `lightsnn study`.

use super::common::{parse_cell, parse_dataset, parse_ops, BoardArgs, DeviceArg};
use super::progress::scorings_bar;
use anyhow::{bail, Result};
use clap::Args;
use lightsnn::config::{DatasetKind, NetConfig, Overrides, Preset};
use lightsnn::export::fit::{Cells, Fixed};
use lightsnn::fsutil::check_output_dir;
use lightsnn::search::{Method, Thresholds};
use lightsnn::study::{default_config, files, run_study, RandomBaseline, StudyConfig};
use lightsnn::train::LossKind;
use snn_nostd::genotype::{CellType, OpSet};
use std::path::PathBuf;

/// Options of `lightsnn study`. Options without a default here take the dataset's study default
/// (see docs/cli.md); with `--resume` everything comes from the folder's `study.json`.
#[derive(Args, Debug)]
pub struct StudyArgs {
    /// A named network: `spikenas-bench` (SpikeNAS-Bench's CIFAR-10 network: C1/C2 128/256
    /// times --width, its op set, average pools, H 1024, V 10, T 5) instead of the dataset's
    /// study network; --width, --timesteps, --hidden, --space, --cell override it.
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Dataset: cifar10 or nmnist (any dataset lightsnn reads works).
    #[arg(long, default_value = "cifar10", value_parser = parse_dataset)]
    dataset: DatasetKind,
    /// Dataset folder in the official layout.
    #[arg(long, required_unless_present = "resume")]
    data: Option<PathBuf>,
    /// Study folder (study.json, the two searches, cells/<id>/, report.json, cells.csv,
    /// scatter.svg).
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    out: Option<PathBuf>,
    /// Continue the study in this folder; finished cells are not retrained.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Random cells K [default: 20].
    #[arg(long)]
    cells: Option<usize>,
    /// Extra training seeds of the found cell, for the noise floor [default: 2, so 3 runs].
    #[arg(long)]
    noise_seeds: Option<usize>,
    /// Training epochs of every cell [default: cifar10 1, nmnist 3].
    #[arg(long)]
    epochs: Option<usize>,
    /// Training batch size [default: cifar10 32, nmnist 16].
    #[arg(long)]
    train_batch: Option<usize>,
    /// Learning rate [default: 0.1].
    #[arg(long)]
    lr: Option<f64>,
    /// Loss [default: ce].
    #[arg(long, value_enum)]
    loss: Option<LossKind>,
    /// Training samples: a seeded subset of the training split; 0 = all [default: cifar10
    /// 8000, nmnist all].
    #[arg(long)]
    train_samples: Option<usize>,
    /// Test samples: the first ones of the test split; 0 = all [default: cifar10 1000,
    /// nmnist all].
    #[arg(long)]
    test_samples: Option<usize>,
    /// Width multiplier [default: cifar10 1/32 (C1/C2 8/16), nmnist 1/8 (8/16)].
    #[arg(long)]
    width: Option<f64>,
    /// Timesteps T [default: 2].
    #[arg(long)]
    timesteps: Option<usize>,
    /// Hidden units H [default: 128].
    #[arg(long)]
    hidden: Option<usize>,
    /// Search space: lightsnn, snasnet or an op list [default: lightsnn].
    #[arg(long, value_parser = parse_ops)]
    space: Option<OpSet>,
    /// Cell type [default: backward].
    #[arg(long, value_parser = parse_cell)]
    cell: Option<CellType>,
    /// Search and score batch size N [default: 32].
    #[arg(long)]
    search_batch: Option<usize>,
    /// Search repeats R of both searches [default: 4 where the pruning search chooses
    /// thresholds by rate spread, a space with thresholded convs; 2 otherwise].
    #[arg(long)]
    search_repeats: Option<usize>,
    /// Repeats of each cell's own score [default: 4].
    #[arg(long)]
    score_repeats: Option<usize>,
    /// Genotypes scored by the random-search baseline [default: 100; SNASNet scores 5000,
    /// which with fresh weights per candidate is no CPU-sized job].
    #[arg(long)]
    random_samples: Option<usize>,
    /// The random-search baseline: snasnet (SNASNet's procedure, `search --method random`) or
    /// shared (`--method random-shared`) [default: snasnet].
    #[arg(long, value_enum)]
    random_method: Option<RandomBaseline>,
    /// Search batch of the random-search baseline [default: 256 (SNASNet's) for snasnet,
    /// --search-batch for shared].
    #[arg(long)]
    random_batch: Option<usize>,
    /// Bootstrap resamples for the correlation intervals [default: 2000].
    #[arg(long)]
    bootstrap: Option<usize>,
    /// Master seed [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Device.
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    /// `--board NAME`: every cell trained (found and random) fits the part: C1/C2 and H not
    /// given are the widest up to the study's defaults that fit the op set's worst-case cell.
    #[command(flatten)]
    board: BoardArgs,
}

impl StudyArgs {
    /// Whether any option that defines the study was given (refused with `--resume`).
    fn defines_anything(&self) -> bool {
        self.preset.is_some()
            || self.data.is_some()
            || self.cells.is_some()
            || self.noise_seeds.is_some()
            || self.epochs.is_some()
            || self.train_batch.is_some()
            || self.lr.is_some()
            || self.loss.is_some()
            || self.train_samples.is_some()
            || self.test_samples.is_some()
            || self.width.is_some()
            || self.timesteps.is_some()
            || self.hidden.is_some()
            || self.space.is_some()
            || self.cell.is_some()
            || self.search_batch.is_some()
            || self.search_repeats.is_some()
            || self.score_repeats.is_some()
            || self.random_samples.is_some()
            || self.random_method.is_some()
            || self.random_batch.is_some()
            || self.bootstrap.is_some()
            || self.seed.is_some()
            || self.board.board.is_some()
    }

    /// The configuration of a new study: the dataset's defaults with the options given.
    fn config(&self) -> Result<StudyConfig> {
        let Some(data) = &self.data else {
            bail!("--data DIR is required for a new study");
        };
        let mut c = default_config(self.dataset, data.clone())?;
        if let Some(p) = self.preset {
            let o = Overrides {
                width: self.width,
                timesteps: self.timesteps,
                hidden: self.hidden,
                votes: None,
            };
            c.net = NetConfig::for_preset_or_dataset(Some(p), Some(self.dataset), &o)?;
        } else if self.width.is_some() || self.timesteps.is_some() || self.hidden.is_some() {
            let o = Overrides {
                width: Some(
                    self.width
                        .unwrap_or(c.net.shape.c1 as f64 / full_c1(self.dataset)?),
                ),
                timesteps: Some(self.timesteps.unwrap_or(c.net.shape.timesteps)),
                hidden: Some(self.hidden.unwrap_or(c.net.shape.hidden)),
                votes: None,
            };
            c.net = NetConfig::for_dataset(self.dataset, &o)?;
        }
        if let Some(s) = &self.space {
            c.net.ops = s.clone();
        }
        if let Some(cell) = self.cell {
            c.net.cell = cell;
        }
        if self.board.board.is_some() {
            let fixed = Fixed {
                channels: self.width.is_some(),
                hidden: self.hidden.is_some(),
                timesteps: self.timesteps.is_some(),
            };
            let ops = c.net.ops.clone();
            let cells = Cells::Space {
                cell: c.net.cell,
                ops: &ops,
            };
            c.net = self.board.size(c.net.clone(), fixed, cells)?;
        }
        let zero_is_all = |v: usize| (v > 0).then_some(v);
        if let Some(n) = self.train_samples {
            c.train_samples = zero_is_all(n);
        }
        if let Some(n) = self.test_samples {
            c.test_samples = zero_is_all(n);
        }
        // the searches' repeats: what the pruning search's thresholds call for (4 where it
        // chooses them by rate spread), unless --search-repeats says otherwise
        c.search_repeats =
            Thresholds::default_for(Method::Prune, c.net.ops.ops()).default_repeats();
        macro_rules! set {
            ($($field:ident <- $opt:ident),*) => { $( if let Some(v) = self.$opt { c.$field = v; } )* };
        }
        if let Some(m) = self.random_method {
            c.random_method = m;
            if m == RandomBaseline::Shared {
                c.random_batch = None;
            }
        }
        if let Some(b) = self.random_batch {
            c.random_batch = Some(b);
        }
        set!(random_cells <- cells, noise_seeds <- noise_seeds, epochs <- epochs,
             train_batch <- train_batch, lr <- lr, loss <- loss, search_batch <- search_batch,
             search_repeats <- search_repeats, score_repeats <- score_repeats,
             random_samples <- random_samples, bootstrap <- bootstrap, seed <- seed);
        c.validate()?;
        Ok(c)
    }
}

/// C1 of the full-width network of a dataset (to express a default width as a multiplier).
fn full_c1(d: DatasetKind) -> Result<f64> {
    Ok(NetConfig::for_dataset(d, &Overrides::default())?.shape.c1 as f64)
}

/// Runs `lightsnn study`.
pub fn run(a: StudyArgs) -> Result<()> {
    let device = a.device.open()?;
    let rep = match &a.resume {
        Some(dir) => {
            if a.defines_anything() {
                bail!(
                    "--resume takes every setting from {}; give only --resume and --device",
                    dir.join(lightsnn::study::files::STUDY).display()
                );
            }
            let data = lightsnn::study::read_study(dir)?.config.data;
            check_output_dir("--resume", dir, &files::WRITTEN, &[("--data", &data)])?;
            run_study(dir, None, &device, false, &scorings_bar())?
        }
        None => {
            let cfg = a.config()?;
            let out = a.out.as_ref().expect("clap requires --out");
            check_output_dir("--out", out, &files::WRITTEN, &[("--data", &cfg.data)])?;
            run_study(out, Some(&cfg), &device, false, &scorings_bar())?
        }
    };
    for line in rep.summary() {
        println!("{line}");
    }
    let dir = a.resume.as_ref().or(a.out.as_ref()).expect("one is set");
    println!(
        "wrote {}/{{report.json, cells.csv, scatter.svg}}",
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use lightsnn::config::PoolKind;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        study: StudyArgs,
    }

    fn config(args: &[&str]) -> Result<StudyConfig> {
        let base = ["study", "--data", "some/dir", "--out", "some/out"];
        Cli::try_parse_from(base.iter().chain(args))?.study.config()
    }

    #[test]
    fn study_preset_replaces_the_study_network() -> Result<()> {
        let c = config(&["--preset", "spikenas-bench", "--width", "0.0625"])?;
        let n = &c.net;
        assert_eq!(
            (
                n.shape.c1,
                n.shape.c2,
                n.shape.timesteps,
                n.shape.hidden,
                n.shape.votes
            ),
            (8, 16, 5, 1024, 10)
        );
        assert_eq!((n.cell, n.downsample), (CellType::Forward, PoolKind::Avg));
        assert_eq!(n.ops, OpSet::spikenas_bench());
        let c = config(&["--preset", "spikenas-bench", "--timesteps", "2"])?;
        assert_eq!((c.net.shape.c1, c.net.shape.timesteps), (128, 2));
        let e = config(&["--preset", "spikenas-bench", "--dataset", "nmnist"]).unwrap_err();
        assert!(e.to_string().contains("contradicts"), "{e}");
        // Without it, the study's own small network.
        let c = config(&[])?;
        assert_eq!(
            (c.net.shape.c1, c.net.shape.timesteps, c.net.downsample),
            (8, 2, PoolKind::Max)
        );
        Ok(())
    }

    /// `--board` sizes every cell of the study (the op set's worst case) within the study's
    /// default sizes, and keeps the sizes given.
    #[test]
    fn board_sizes_the_study_for_its_worst_cell() -> Result<()> {
        let plain = config(&[])?;
        assert_eq!((plain.net.shape.c1, plain.net.shape.hidden), (8, 128));
        let sized = config(&["--board", "stm32f411"])?;
        // The LightSNN space's worst cell keeps back states: C1/C2 4/8 on the STM32F411.
        assert_eq!(
            (
                sized.net.shape.c1,
                sized.net.shape.c2,
                sized.net.shape.hidden
            ),
            (4, 8, 128)
        );
        assert_eq!(sized.net.shape.timesteps, plain.net.shape.timesteps);
        let big = config(&["--board", "nrf52840"])?;
        assert_eq!(big.net.shape.c1, 8, "capped by the study's default");
        let e = config(&["--board", "stm32f411", "--width", "0.125"]).unwrap_err();
        assert!(
            format!("{e:#}").contains("refused before any work"),
            "{e:#}"
        );
        assert!(Cli::try_parse_from(["study", "--board", "esp32"]).is_err());
        Ok(())
    }
}
