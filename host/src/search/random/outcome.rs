//! What both random searches return: one round listing every sampled genotype with its score,
//! and the best one.

use crate::search::report::{device_name, CandidateScore, RoundReport, SearchOutcome};
use crate::search::score::argmax_first;
use crate::search::setup::SearchSetup;
use anyhow::{bail, Result};
use candle_core::Device;
use snn_nostd::genotype::Genotype;

/// Salt of the genotype sampler's seed, so that it differs from the weight seed.
pub(super) const SAMPLER_SALT: u64 = 0x005E_ED0F_4A4D;

/// The outcome of a random search: one round listing every candidate, and the best one (ties:
/// the first sampled); with a board (`setup.fit`), the best among the samples that fit.
pub(super) fn one_round(
    setup: &SearchSetup,
    genotypes: &[Genotype],
    scores: &[f64],
    batch_seed: u64,
    device: &Device,
    wall_s: f64,
) -> Result<SearchOutcome> {
    let mut board = Vec::new();
    let best = match &setup.fit {
        None => argmax_first(scores).expect("at least one sample"),
        Some(fit) => {
            let fits = genotypes
                .iter()
                .map(|g| fit.fits(g))
                .collect::<Result<Vec<bool>, _>>()?;
            // The best-scoring sample that fits (NaN as -inf; ties: the first sampled).
            let Some(best) = (0..scores.len()).filter(|&i| fits[i]).max_by(|&a, &b| {
                let key = |v: f64| if v.is_nan() { f64::NEG_INFINITY } else { v };
                key(scores[a]).total_cmp(&key(scores[b])).then(b.cmp(&a))
            }) else {
                bail!(
                    "board {}: none of the {} sampled cells fits at C1/C2 {}/{}, H {}, T {}",
                    fit.board_name(),
                    genotypes.len(),
                    setup.net.shape.c1,
                    setup.net.shape.c2,
                    setup.net.shape.hidden,
                    setup.net.shape.timesteps
                );
            };
            let unfit = fits.iter().filter(|f| !**f).count();
            if unfit > 0 {
                board.push(format!(
                    "board {}: {unfit} of {} sampled cells do not fit; the best-scoring of the \
                     {} that do was kept{}",
                    fit.board_name(),
                    genotypes.len(),
                    genotypes.len() - unfit,
                    if best == argmax_first(scores).expect("at least one sample") {
                        " (also the best overall)"
                    } else {
                        " (the best overall does not fit)"
                    }
                ));
            }
            best
        }
    };
    let round = RoundReport {
        round: 1,
        scores: genotypes
            .iter()
            .zip(scores)
            .map(|(g, &s)| CandidateScore {
                edge: "*".to_string(),
                candidate: g.to_string(),
                score: s,
                repeat_scores: Vec::new(),
            })
            .collect(),
        pruned: Vec::new(),
        decisions: Vec::new(),
        board,
        alive_after: genotypes[best]
            .ops()
            .iter()
            .map(|o| vec![o.to_string()])
            .collect(),
        batch_seed,
        device: device_name(device),
        wall_s,
    };
    Ok((genotypes[best].clone(), vec![round], Some(scores[best])))
}
