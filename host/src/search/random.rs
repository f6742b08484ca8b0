//! The random-search baseline of SNASNet (SPEC §6): score K random genotypes, keep the best.

use super::prune::{argmax_first, device_name, draw_batches, round_batch_seed, SearchSetup};
use super::report::{CandidateScore, RoundReport};
use super::score::Scorer;
use crate::data::Dataset;
use crate::model::Mixing;
use anyhow::{bail, Result};
use candle_core::Device;
use indicatif::ProgressBar;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snn_nostd::genotype::{Genotype, Op};
use std::time::Instant;

/// Samples `setup.random_samples` genotypes uniformly (seeded), scores each on the same batches
/// and the same weights, and returns the best (ties: the first sampled).
pub fn random_search(
    setup: &SearchSetup,
    scorer: &Scorer<'_>,
    data: &Dataset,
    device: &Device,
    pb: &ProgressBar,
) -> Result<(Genotype, Vec<RoundReport>, Option<f64>)> {
    if setup.random_samples == 0 {
        bail!("random search needs at least one sample");
    }
    let cfg = &setup.net;
    let t0 = Instant::now();
    let batch_seed = round_batch_seed(setup.seed, 1);
    let batches = draw_batches(data, setup.batch, setup.repeats, batch_seed, device)?;
    let mut rng = ChaCha8Rng::seed_from_u64(setup.seed ^ 0x005E_ED0F_4A4D);
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
    let scores = scorer.score_candidates(&mixes, &batches, setup.mode(), |k| pb.inc(k as u64))?;
    let report = genotypes
        .iter()
        .zip(&scores)
        .map(|(g, &s)| CandidateScore {
            edge: "*".to_string(),
            candidate: g.to_string(),
            score: s,
            repeat_scores: Vec::new(),
        })
        .collect();
    let best = argmax_first(&scores).expect("at least one sample");
    let round = RoundReport {
        round: 1,
        scores: report,
        pruned: Vec::new(),
        decisions: Vec::new(),
        alive_after: genotypes[best]
            .ops()
            .iter()
            .map(|o| vec![o.to_string()])
            .collect(),
        batch_seed,
        device: device_name(device),
        wall_s: t0.elapsed().as_secs_f64(),
    };
    Ok((genotypes[best].clone(), vec![round], Some(scores[best])))
}
