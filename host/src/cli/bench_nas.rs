//! `lightsnn bench nas` and `lightsnn bench nas-search`: the search judged on SpikeNAS-Bench.

use super::common::DeviceArg;
use super::progress::steps_bar as bar;
use anyhow::{bail, Context, Result};
use clap::Args;
use lightsnn::config::{NetConfig, Overrides, Preset};
use lightsnn::data::{Dataset, DatasetKind, Split as DataSplit};
use lightsnn::nasbench::evolution::EvolutionConfig;
use lightsnn::nasbench::proxies::{Proxy, ProxySetup, WeightsFrom};
use lightsnn::nasbench::search_run::{MethodSpec, SearchRunConfig};
use lightsnn::nasbench::{noise, proxy_run, sample, search_run, Split, Table, NUM_CELLS};
use std::path::PathBuf;

/// Which ids a proxy run may sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum IdPool {
    /// Every id; figures are reported per split.
    All,
    /// Only the development ids (`id % 5 != 0`): for choosing settings without seeing the
    /// held-out cells.
    Dev,
    /// Only the held-out ids (`id % 5 == 0`).
    HeldOut,
}

/// Options of the network, data and device shared by both benchmark commands.
#[derive(Args, Debug)]
pub struct BenchNetArgs {
    /// The benchmark table: SpikeNAS-Bench's one-file CSV, or its folder layout
    /// (`data/CIFAR10/<id>/train_process.txt`).
    #[arg(long)]
    table: PathBuf,
    /// CIFAR-10 folder (binary layout) for the score batches [default: the built-in sample].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Width multiplier of the SpikeNAS-Bench network's 128/256 channels.
    #[arg(long, default_value_t = 1.0 / 16.0)]
    width: f64,
    /// Timesteps T [default: the benchmark's 5].
    #[arg(long)]
    timesteps: Option<usize>,
    /// Hidden units H [default: the benchmark's 1024].
    #[arg(long)]
    hidden: Option<usize>,
    /// Device.
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in `--out` (same options).
    #[arg(long)]
    resume: bool,
}

impl BenchNetArgs {
    fn net(&self) -> Result<NetConfig> {
        Ok(NetConfig::for_preset(
            Preset::SpikenasBench,
            &Overrides {
                width: Some(self.width),
                timesteps: self.timesteps,
                hidden: self.hidden,
                votes: None,
            },
        )?)
    }

    fn load(&self, timesteps: usize) -> Result<(Dataset, String)> {
        match &self.data {
            Some(dir) => Ok((
                Dataset::load(DatasetKind::Cifar10, dir, DataSplit::Train, timesteps)?,
                dir.display().to_string(),
            )),
            None => Ok((
                lightsnn::data::sample::cifar10_sample(DataSplit::Train)?,
                lightsnn::data::sample::SAMPLE_LABEL.to_string(),
            )),
        }
    }

    fn table(&self) -> Result<Table> {
        Table::read(&self.table).map_err(Into::into)
    }
}

/// Options of `lightsnn bench nas`.
#[derive(Args, Debug)]
pub struct NasArgs {
    #[command(flatten)]
    net: BenchNetArgs,
    /// Cells to score: a sample stratified by conv count (all cells of the pool if larger).
    #[arg(long, default_value_t = 1000)]
    cells: usize,
    /// Which ids the sample is drawn from.
    #[arg(long, value_enum, default_value = "all")]
    ids: IdPool,
    /// Seed of the sample.
    #[arg(long, default_value_t = 0)]
    sample_seed: u64,
    /// Proxies, comma-separated. `grad-norm` (a Candle backward pass per cell, far slower than
    /// the spike scores: docs/spikenas-bench.md) is not in the default list.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sahd,sahd-running,naswot,sahd-eff,params,params-eff"
    )]
    proxies: Vec<Proxy>,
    /// Samples per score batch.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Score batches per cell.
    #[arg(long, default_value_t = 2)]
    repeats: usize,
    /// Seed of the weights and batches.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the untrained weights come from.
    #[arg(long, value_enum, default_value = "per-cell")]
    weights: WeightsFrom,
    /// Cells of the sample scored again at wider widths (the first ones of the sample).
    #[arg(long, default_value_t = 100)]
    transfer_cells: usize,
    /// Width multipliers of the transfer check, relative to `--width`.
    #[arg(long, value_delimiter = ',', default_value = "2,4")]
    transfer_factors: Vec<f64>,
    /// Bootstrap resamples of the intervals.
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
}

/// Options of `lightsnn bench nas-noise`.
#[derive(Args, Debug)]
pub struct NasNoiseArgs {
    /// The benchmark table: SpikeNAS-Bench's one-file CSV, or its folder layout
    /// (`data/CIFAR10/<id>/train_process.txt`).
    #[arg(long)]
    table: PathBuf,
    /// Print the measurement as JSON instead of Markdown.
    #[arg(long)]
    json: bool,
}

/// Options of `lightsnn bench nas-search`.
#[derive(Args, Debug)]
pub struct NasSearchArgs {
    #[command(flatten)]
    net: BenchNetArgs,
    /// Seeds `seed .. seed + seeds - 1`; every method runs once per seed.
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Methods, comma-separated: prune, prune-naswot (pruning scored with NASWOT's kernel),
    /// prune-spread (op kinds by SAHD, then conv thresholds by the rate spread;
    /// `search --thresholds spread`), prune-naswot-spread,
    /// random-K (SNASNet's random search over K cells), uniform (one random cell), evolution-Q
    /// (regularized evolution, Q table queries).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "prune,random-100,random-1000,uniform,evolution-100,evolution-1000"
    )]
    methods: Vec<String>,
    /// Search batch of the pruning search.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Search batch of SNASNet's random search [default: SNASNet's 256].
    #[arg(long, default_value_t = lightsnn::search::setup::SNASNET_SEARCH_BATCH)]
    random_batch: usize,
    /// Score repeats of every scoring search [default: each search's own, as `lightsnn
    /// search` has it: 4 for the two-stage pruning (prune-spread, prune-naswot-spread), 2
    /// otherwise].
    #[arg(long)]
    repeats: Option<usize>,
}

/// Runs `lightsnn bench nas`.
pub fn nas(a: NasArgs) -> Result<()> {
    let table = a.net.table()?;
    let net = a.net.net()?;
    let device = a.net.device.open()?;
    let pool: Vec<u32> = table
        .records()
        .iter()
        .map(|r| r.id)
        .filter(|&id| match a.ids {
            IdPool::All => true,
            IdPool::Dev => Split::of(id) == Split::Dev,
            IdPool::HeldOut => Split::of(id) == Split::HeldOut,
        })
        .collect();
    if pool.is_empty() {
        bail!(
            "{}: no cells of the requested ids ({:?})",
            table.source().display(),
            a.ids
        );
    }
    if a.proxies.is_empty() {
        bail!("--proxies: name at least one proxy");
    }
    let cells = sample::stratified(&pool, a.cells, a.sample_seed);
    let transfer_cells: Vec<u32> = cells.iter().copied().take(a.transfer_cells).collect();
    let (data, data_label) = a.net.load(net.shape.timesteps)?;
    let cfg = proxy_run::ProxyRunConfig {
        format: proxy_run::CONFIG_FORMAT.to_string(),
        setup: ProxySetup {
            net,
            batch: a.batch,
            repeats: a.repeats,
            seed: a.seed,
            weights: a.weights,
        },
        proxies: a.proxies.clone(),
        cells,
        transfer_cells,
        transfer_factors: a.transfer_factors.clone(),
        bootstrap: a.bootstrap,
        data: data_label,
        table: a.net.table.display().to_string(),
    };
    eprintln!(
        "bench nas: {} of {} cells ({} held out), C1/C2 {}/{}, T {}, batch {}, {} repeat(s), weights {:?}, into {}",
        cfg.cells.len(),
        table.len(),
        cfg.cells.iter().filter(|&&i| Split::of(i) == Split::HeldOut).count(),
        cfg.setup.net.shape.c1,
        cfg.setup.net.shape.c2,
        cfg.setup.net.shape.timesteps,
        cfg.setup.batch,
        cfg.setup.repeats,
        cfg.setup.weights,
        a.net.out.display()
    );
    let report = proxy_run::run(
        &cfg,
        &table,
        &data,
        &device,
        &a.net.out,
        a.net.resume,
        &bar(),
    )?;
    print!("{}", proxy_run::report_markdown(&report));
    Ok(())
}

/// Runs `lightsnn bench nas-noise`.
pub fn nas_noise(a: NasNoiseArgs) -> Result<()> {
    let table = Table::read(&a.table)?;
    let Some(n) = noise::measure(&table) else {
        bail!(
            "{}: holds no pair of isomorphic twins that both learned (cells with edge 2<-1 \
             `zero` and their relabelling); the noise cannot be measured on it",
            table.source().display()
        );
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&n)?);
    } else {
        print!("{}", noise::markdown(&n));
    }
    Ok(())
}

/// Runs `lightsnn bench nas-search`.
pub fn nas_search(a: NasSearchArgs) -> Result<()> {
    let table = a.net.table()?;
    if table.len() < NUM_CELLS as usize {
        bail!(
            "{}: holds {} of the benchmark's {NUM_CELLS} cells; the method comparison needs the \
             whole table",
            table.source().display(),
            table.len()
        );
    }
    let net = a.net.net()?;
    let device = a.net.device.open()?;
    let methods = a
        .methods
        .iter()
        .map(|m| MethodSpec::parse(m))
        .collect::<Result<Vec<_>>>()
        .context("--methods")?;
    let (data, data_label) = a.net.load(net.shape.timesteps)?;
    let cfg = SearchRunConfig {
        format: search_run::CONFIG_FORMAT.to_string(),
        net,
        prune_batch: a.batch,
        random_batch: a.random_batch,
        repeats: a.repeats,
        seeds: (a.seed..a.seed + a.seeds).collect(),
        methods,
        evolution: EvolutionConfig::default(),
        data: data_label,
        table: a.net.table.display().to_string(),
    };
    let report = search_run::run(
        &cfg,
        &table,
        &data,
        &device,
        &a.net.out,
        a.net.resume,
        &bar(),
    )?;
    print!("{}", search_run::report_markdown(&report));
    Ok(())
}
