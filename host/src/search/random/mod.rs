//! The random-search baselines (docs/design.md, "Random search baselines"): score K random
//! genotypes, keep the best.
//!
//! - [`Method::Random`](super::setup::Method::Random) (`--method random`, the default baseline)
//!   does what SNASNet's `find_best_neuroncell` does
//!   (github.com/Intelligent-Computing-Lab-Yale/SNASNet, `model_snn.py`): cells drawn by
//!   SNASNet's rules ([`sample`]: one direction per node pair, dangling nodes removed, the direct
//!   input-to-output edge required), a freshly initialised network for every candidate, fresh
//!   batches for every candidate, search batch 256
//!   ([`SNASNET_SEARCH_BATCH`](super::setup::SNASNET_SEARCH_BATCH)) and 2 repeats. Candidate
//!   `i`'s weights come from [`candidate_seed`]`(seed, i)` and its batches from
//!   `round_batch_seed(candidate_seed, 1)`, so the search stays deterministic.
//! - [`Method::RandomShared`](super::setup::Method::RandomShared) (`--method random-shared`, this crate's
//!   earlier baseline): every edge's op drawn independently and uniformly, all candidates scored
//!   with one set of weights (the supernet's) on the same batches.

mod outcome;
pub mod sample;
mod shared;

use super::batches::{draw_batches, round_batch_seed};
use super::report::SearchOutcome;
use super::score::{KernelPath, Scorer};
use super::setup::SearchSetup;
use crate::data::Dataset;
use crate::model::{Mixing, Network};
use crate::progress::Progress;
use anyhow::{bail, Result};
use candle_core::Device;
use outcome::{one_round, SAMPLER_SALT};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use snn_nostd::genotype::Genotype;
use snn_nostd::rng::splitmix64;
use std::time::Instant;

pub(crate) use shared::shared_rounds;

/// The seed of candidate `index`'s weights (and, through `round_batch_seed(_, 1)`, its
/// batches) in SNASNet's random search ([`snasnet_rounds`]): a SplitMix64 mix of the master
/// seed and the index.
pub fn candidate_seed(seed: u64, index: usize) -> u64 {
    splitmix64(seed ^ splitmix64(index as u64 ^ 0xC0FF_EE00_0000_0001))
}

/// The SNASNet procedure behind `--method random` ([`run_search`](super::run::run_search) with
/// [`Method::Random`](super::setup::Method::Random)).
pub(crate) fn snasnet_rounds(
    setup: &SearchSetup,
    data: &Dataset,
    device: &Device,
    pb: &dyn Progress,
) -> Result<SearchOutcome> {
    let k = setup.random_samples;
    if k == 0 {
        bail!("random search needs at least one sample");
    }
    let cfg = &setup.net;
    let t0 = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(setup.seed ^ SAMPLER_SALT);
    let genotypes = (0..k)
        .map(|_| sample::snasnet_genotype(cfg.cell, &cfg.ops, &mut rng))
        .collect::<Result<Vec<Genotype>>>()?;
    let score_one = |i: usize| -> Result<f64> {
        let mixing = Mixing::single_path(&genotypes[i]);
        let seed = candidate_seed(setup.seed, i);
        let net = Network::new(cfg, &mixing.alive(), seed, device)?;
        let batch_seed = round_batch_seed(seed, 1);
        let batches = draw_batches(data, setup.batch, setup.repeats, batch_seed, device)?;
        let s = Scorer::new(&net, setup.kernel_path)?
            .with_score(setup.score)
            .sahd_score(&mixing, &batches, setup.mode());
        pb.advance(1);
        s
    };
    // Candidates are independent: the CPU engine scores them in parallel threads (each is
    // deterministic, so only the speed changes); Candle runs them one after the other.
    let scores: Vec<f64> = if setup.kernel_path == KernelPath::CpuEvent {
        use rayon::prelude::*;
        (0..k)
            .into_par_iter()
            .map(score_one)
            .collect::<Result<_>>()?
    } else {
        (0..k).map(score_one).collect::<Result<_>>()?
    };
    one_round(
        setup,
        &genotypes,
        &scores,
        setup.seed,
        device,
        t0.elapsed().as_secs_f64(),
    )
}

#[cfg(test)]
mod tests;
