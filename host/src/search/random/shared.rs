//! The shared-weights random baseline (`--method random-shared`): K genotypes with every edge's
//! op drawn independently, scored with the supernet's weights on one set of batches.

use super::outcome::{one_round, SAMPLER_SALT};
use crate::data::Dataset;
use crate::model::Mixing;
use crate::progress::Progress;
use crate::search::batches::{draw_batches, round_batch_seed};
use crate::search::report::SearchOutcome;
use crate::search::score::Scorer;
use crate::search::setup::SearchSetup;
use anyhow::{bail, Result};
use candle_core::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snn_nostd::genotype::{Genotype, Op};
use std::time::Instant;

/// Samples `setup.random_samples` genotypes uniformly (seeded), scores each on the same batches
/// and the same weights (`scorer`'s network), and returns the best (ties: the first sampled).
pub(crate) fn shared_rounds(
    setup: &SearchSetup,
    scorer: &Scorer<'_>,
    data: &Dataset,
    device: &Device,
    pb: &dyn Progress,
) -> Result<SearchOutcome> {
    if setup.random_samples == 0 {
        bail!("random search needs at least one sample");
    }
    let cfg = &setup.net;
    let t0 = Instant::now();
    let batch_seed = round_batch_seed(setup.seed, 1);
    let batches = draw_batches(data, setup.batch, setup.repeats, batch_seed, device)?;
    let mut rng = ChaCha8Rng::seed_from_u64(setup.seed ^ SAMPLER_SALT);
    let ops = cfg.ops.ops();
    let mut genotypes = Vec::new();
    for _ in 0..setup.random_samples {
        let pick: Vec<Op> = (0..cfg.cell.num_edges())
            .map(|_| ops[rng.gen_range(0..ops.len())])
            .collect();
        genotypes.push(Genotype::new(cfg.cell, &pick)?);
    }
    scorer.prepare(&batches, setup.mode())?;
    let mixes: Vec<Mixing> = genotypes.iter().map(Mixing::single_path).collect();
    let scores =
        scorer.score_candidates(&mixes, &batches, setup.mode(), |k| pb.advance(k as u64))?;
    one_round(
        setup,
        &genotypes,
        &scores,
        batch_seed,
        device,
        t0.elapsed().as_secs_f64(),
    )
}
