//! The search driver: the algorithms ([`Method`]), the configuration ([`SearchSetup`]), the
//! per-round batches and [`run_search`], which runs pruning or a random search and writes the
//! report.

use super::estimate::Estimate;
use super::report::{RoundReport, SearchConfigRecord, SearchReport, SEARCH_FORMAT};
use super::score::{KernelPath, Scorer};
use crate::config::NetConfig;
use crate::data::Dataset;
use crate::limits::available_memory;
use crate::model::{Mixing, Mode, Network};
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use indicatif::ProgressBar;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use snn_nostd::genotype::Genotype;
use std::time::Instant;

/// The search algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// Pruning by importance (LightSNN).
    Prune,
    /// SNASNet's random search: SNASNet's cell sampling rules, a fresh network and fresh batches
    /// per candidate ([`super::random::snasnet_search`]).
    Random,
    /// Random genotypes, every edge drawn independently, all scored with one set of weights on
    /// the same batches ([`super::random::shared_search`]).
    RandomShared,
}

impl Method {
    /// The name used on the command line and in reports: `prune`, `random`, `random-shared`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Prune => "prune",
            Method::Random => "random",
            Method::RandomShared => "random-shared",
        }
    }

    /// Whether the method samples whole genotypes.
    pub fn is_random(self) -> bool {
        matches!(self, Method::Random | Method::RandomShared)
    }

    /// The default search batch size: SNASNet's 256 for its random search, the paper's 32
    /// otherwise.
    pub fn default_batch(self) -> usize {
        match self {
            Method::Random => super::random::SNASNET_SEARCH_BATCH,
            Method::Prune | Method::RandomShared => 32,
        }
    }
}

/// Everything a search needs besides data.
#[derive(Clone, Debug)]
pub struct SearchSetup {
    /// The network (op set and cell type included).
    pub net: NetConfig,
    /// Search batch size N.
    pub batch: usize,
    /// Batches averaged per score (R).
    pub repeats: usize,
    /// Master seed: weights and batch draws derive from it.
    pub seed: u64,
    /// Algorithm.
    pub method: Method,
    /// Genotypes sampled by the random method.
    pub random_samples: usize,
    /// How spike codes reach the kernel.
    pub kernel_path: KernelPath,
    /// Candidates stacked per Candle forward pass (0 = as many as fit, see
    /// [`auto_stack`](super::score::auto_stack)); the CPU engine ignores it.
    pub candidates_per_pass: usize,
    /// Description of the data source, recorded in the report.
    pub data_label: String,
    /// `--board`: only cells that fit the board may be returned (pruning never removes an op
    /// whose removal would leave no fitting cell; a random search keeps the best-scoring
    /// fitting sample). `None`: every cell may.
    pub fit: Option<std::sync::Arc<crate::export::fit::FitFilter>>,
}

impl SearchSetup {
    /// The BatchNorm mode used for scoring.
    pub fn mode(&self) -> Mode {
        Mode::scoring(self.net.bn_mode)
    }

    /// Candidates per Candle pass: `candidates_per_pass`, or the memory-based default for 0.
    pub fn stack(&self, device: &Device) -> usize {
        match self.candidates_per_pass {
            0 => super::score::auto_stack(&self.net, self.batch, device),
            k => k,
        }
    }

    /// Number of scorings the search will run (for progress bars).
    pub fn total_scorings(&self) -> u64 {
        match self.method {
            Method::Random | Method::RandomShared => self.random_samples as u64,
            Method::Prune => {
                let k = self.net.ops.len() as u64;
                let e = self.net.cell.num_edges() as u64;
                // rounds remove one op per edge: k + (k-1) + ... + 2 candidates per edge
                e * (2..=k).sum::<u64>()
            }
        }
    }
}

/// Seed of the batch draw of round `round` (1-based).
pub fn round_batch_seed(seed: u64, round: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(round as u64)
}

/// Draws `repeats` batches of `n` distinct samples, seeded, as device tensors `[N, F, C, H, W]`.
pub fn draw_batches(
    data: &Dataset,
    n: usize,
    repeats: usize,
    seed: u64,
    device: &Device,
) -> Result<Vec<Tensor>> {
    if data.len() < n {
        bail!(
            "the dataset has {} samples; a search batch needs {n}",
            data.len()
        );
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let [c, h, w] = data.frame_shape();
    let f = data.frames();
    let mut out = Vec::with_capacity(repeats);
    let mut buf = Vec::new();
    for _ in 0..repeats {
        let idx = rand::seq::index::sample(&mut rng, data.len(), n).into_vec();
        data.fill_batch(&idx, None, &mut buf);
        out.push(Tensor::from_slice(&buf, (n, f, c, h, w), device)?);
    }
    Ok(out)
}

/// Index of the largest score; NaN counts as -inf, ties go to the first (op-set order).
pub fn argmax_first(scores: &[f64]) -> Option<usize> {
    let key = |s: f64| if s.is_nan() { f64::NEG_INFINITY } else { s };
    let mut best: Option<usize> = None;
    for (i, &s) in scores.iter().enumerate() {
        match best {
            Some(b) if key(s) <= key(scores[b]) => {}
            _ => best = Some(i),
        }
    }
    best
}

/// Runs the configured search on `data` and returns the full report.
pub fn run_search(
    setup: &SearchSetup,
    data: &Dataset,
    device: &Device,
    pb: &ProgressBar,
) -> Result<SearchReport> {
    setup.net.validate()?;
    super::score::check_batch(setup.batch)?;
    if setup.repeats < 1 {
        bail!("search repeats must be at least 1");
    }
    // Before any allocation: refuse what cannot fit, show the estimate otherwise.
    let estimate = Estimate::for_search(setup, data.frames(), device);
    estimate.check_memory(available_memory())?;
    let note = estimate.short();
    pb.set_message(note.clone());
    let start = Instant::now();
    let cfg = &setup.net;
    pb.set_length(setup.total_scorings());
    let (genotype, rounds, best_score) = match setup.method {
        Method::Random => super::random::snasnet_rounds(setup, data, device, pb)?,
        Method::Prune | Method::RandomShared => {
            let supernet = Mixing::supernet(cfg.cell, &cfg.ops);
            let net = Network::new(cfg, &supernet.alive(), setup.seed, device)?;
            let scorer = Scorer::new(&net, setup.kernel_path)?.with_stack(setup.stack(device));
            if setup.method == Method::Prune {
                super::prune::prune(setup, &scorer, data, device, pb, &note)?
            } else {
                super::random::shared_rounds(setup, &scorer, data, device, pb)?
            }
        }
    };
    pb.finish_and_clear();
    check_result_scores(&rounds, best_score)?;
    let warnings: Vec<String> = rounds
        .iter()
        .flat_map(|r| {
            r.decisions
                .iter()
                .filter_map(|d| d.warning(r.round, setup.repeats, setup.batch))
        })
        .collect();
    Ok(SearchReport {
        format: SEARCH_FORMAT.to_string(),
        genotype: genotype.to_string(),
        cell: cfg.cell.to_string(),
        ops: cfg.ops.ops().iter().map(|o| o.to_string()).collect(),
        edges: cfg.cell.edges().iter().map(|e| e.to_string()).collect(),
        best_score,
        seed: setup.seed,
        device: device_name(device),
        config: SearchConfigRecord {
            net: cfg.clone(),
            batch: setup.batch,
            repeats: setup.repeats,
            method: setup.method.name().to_string(),
            engine: setup.kernel_path.name().to_string(),
            random_samples: setup.method.is_random().then_some(setup.random_samples),
            data: setup.data_label.clone(),
        },
        rounds,
        wall_s: start.elapsed().as_secs_f64(),
        warnings,
        version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// Refuses a search result that rests on non-finite scores: a random search whose best
/// sample scored -inf, or a pruning round in which every candidate of an edge did (the choice
/// there is arbitrary). A score of -inf is never a search result.
pub fn check_result_scores(rounds: &[RoundReport], best_score: Option<f64>) -> Result<()> {
    if best_score.is_some_and(|s| !s.is_finite()) {
        bail!(
            "every sampled genotype scored -inf, so none is a search result: {}",
            super::score::NOT_FINITE_HELP
        );
    }
    for r in rounds.iter().filter(|r| !r.pruned.is_empty()) {
        for p in &r.pruned {
            let mut scores = r.scores.iter().filter(|s| s.edge == p.edge).peekable();
            if scores.peek().is_some() && scores.all(|s| !s.score.is_finite()) {
                bail!(
                    "round {}, edge {}: every candidate scored -inf, so the pruning choice \
                     there would be arbitrary: {}",
                    r.round,
                    p.edge,
                    super::score::NOT_FINITE_HELP
                );
            }
        }
    }
    Ok(())
}

/// A short device name for reports.
pub fn device_name(d: &Device) -> String {
    match d {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(_) => "cuda".to_string(),
        Device::Metal(_) => "metal".to_string(),
    }
}

/// What a search algorithm returns: the found genotype, its rounds, and the best score (random
/// searches).
pub(crate) type SearchOutcome = (Genotype, Vec<RoundReport>, Option<f64>);
