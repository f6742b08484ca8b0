//! Pruning by importance (docs/design.md, "Pruning by importance"; the paper's Algorithm 1).

use super::margin::Decision;
use super::report::{CandidateScore, Pruned, RoundReport};
use super::score::{argmax_first, mean_in_order, Scorer};
use crate::data::Dataset;
use crate::model::Mixing;
use crate::progress::Progress;
use anyhow::{bail, Result};
use candle_core::Device;
use snn_nostd::genotype::{Genotype, Op};
use std::time::Instant;

use super::batches::{draw_batches, round_batch_seed};
use super::families::{op_kinds, threshold_family};
use super::report::{device_name, SearchOutcome};
use super::setup::SearchSetup;

/// Every candidate of a pruning round on `alive`: (edge, op removed, mixing of what stays
/// alive), one op removed from one edge that has at least two, in edge then op-set order.
pub fn round_candidates(alive: &[Vec<Op>]) -> Vec<(usize, Op, Mixing)> {
    let mut cands = Vec::new();
    for (ei, ops) in alive.iter().enumerate() {
        if ops.len() < 2 {
            continue;
        }
        for (k, &op) in ops.iter().enumerate() {
            let mut cand = alive.to_vec();
            cand[ei].remove(k);
            cands.push((ei, op, Mixing::uniform(&cand)));
        }
    }
    cands
}

/// Pruning by importance: every edge starts with every op of the set and loses one per round
/// until one is left ([`prune_rounds`]), all scored by `scorer`.
///
/// With `thresholds` (`--thresholds spread`), in two stages: first the op kinds, every
/// threshold family stood for by one member ([`op_kinds`]) and scored by
/// `scorer`; then, on each edge that kept a conv, that conv's threshold family, scored by
/// `thresholds` (the rate spread, `super::spread`). The rounds of both stages are numbered on.
pub(super) fn prune(
    setup: &SearchSetup,
    scorer: &Scorer<'_>,
    thresholds: Option<&Scorer<'_>>,
    data: &Dataset,
    device: &Device,
    pb: &dyn Progress,
    note: &str,
) -> Result<SearchOutcome> {
    let cfg = &setup.net;
    let set = cfg.ops.ops();
    let edges = cfg.cell.num_edges();
    let stage =
        |s: &Scorer<'_>, alive, first| prune_rounds(setup, s, data, device, pb, note, alive, first);
    let (kept, rounds) = match thresholds {
        None => stage(scorer, vec![set.to_vec(); edges], 0)?,
        Some(by_spread) => {
            let (kinds, mut rounds) = stage(scorer, vec![op_kinds(set); edges], 0)?;
            let families = kinds.iter().map(|a| threshold_family(a[0], set)).collect();
            let (kept, more) = stage(by_spread, families, rounds.len())?;
            rounds.extend(more);
            (kept, rounds)
        }
    };
    let ops: Vec<Op> = kept.iter().map(|a| a[0]).collect();
    Ok((Genotype::new(cfg.cell, &ops)?, rounds, None))
}

/// Prunes `alive` (the ops left on each edge) down to one op per edge, one op per edge and
/// round, scoring with `scorer`; rounds are numbered from `first_round + 1`. Returns what is
/// left and the rounds' reports.
#[allow(clippy::too_many_arguments)]
fn prune_rounds(
    setup: &SearchSetup,
    scorer: &Scorer<'_>,
    data: &Dataset,
    device: &Device,
    pb: &dyn Progress,
    note: &str,
    mut alive: Vec<Vec<Op>>,
    first_round: usize,
) -> Result<(Vec<Vec<Op>>, Vec<RoundReport>)> {
    let cfg = &setup.net;
    let edges = cfg.cell.edges();
    let mut rounds = Vec::new();
    let mut round = first_round;
    if let Some(fit) = &setup.fit {
        if !fit.any_fits(cfg.cell, &alive)? {
            bail!(
                "board {}: no {} cell over {{{}}} fits at C1/C2 {}/{}, H {}, T {}",
                fit.board_name(),
                cfg.cell,
                cfg.ops,
                cfg.shape.c1,
                cfg.shape.c2,
                cfg.shape.hidden,
                cfg.shape.timesteps
            );
        }
    }
    while alive.iter().any(|a| a.len() > 1) {
        round += 1;
        let t0 = Instant::now();
        let batch_seed = round_batch_seed(setup.seed, round);
        let batches = draw_batches(data, setup.batch, setup.repeats, batch_seed, device)?;
        let cands = round_candidates(&alive);
        scorer.prepare(&batches, setup.mode())?;
        pb.set_message(&format!("round {round} | {note}"));
        let mixes: Vec<Mixing> = cands.iter().map(|(_, _, m)| m.clone()).collect();
        let values = scorer.score_candidates_per_repeat(&mixes, &batches, setup.mode(), |k| {
            pb.advance(k as u64)
        })?;
        let mut scores = Vec::new();
        let mut per_edge: Vec<Vec<f64>> = vec![Vec::new(); edges.len()];
        let mut per_edge_repeats: Vec<Vec<(String, Vec<f64>)>> = vec![Vec::new(); edges.len()];
        for (&(ei, op, _), r) in cands.iter().zip(values) {
            let s = mean_in_order(&r);
            per_edge[ei].push(s);
            per_edge_repeats[ei].push((op.to_string(), r.clone()));
            scores.push(CandidateScore {
                edge: edges[ei].to_string(),
                candidate: op.to_string(),
                score: s,
                repeat_scores: r,
            });
        }
        let decisions: Vec<Decision> = per_edge_repeats
            .iter()
            .enumerate()
            .filter_map(|(ei, c)| Decision::from_scores(&edges[ei].to_string(), c))
            .collect();
        let mut pruned = Vec::new();
        let mut board = Vec::new();
        for (ei, s) in per_edge.iter().enumerate() {
            let Some(best) = argmax_first(s) else {
                continue;
            };
            let k = match &setup.fit {
                None => best,
                Some(fit) => {
                    let k = fitting_removal(s, |k| {
                        let mut after = alive.clone();
                        after[ei].remove(k);
                        Ok(fit.any_fits(cfg.cell, &after)?)
                    })?;
                    if k != best {
                        board.push(format!(
                            "board {}: round {round}, edge {}: removing `{}` scored best, but \
                             no cell left would fit; removed `{}`, the best removal that keeps \
                             one",
                            fit.board_name(),
                            edges[ei],
                            alive[ei][best],
                            alive[ei][k]
                        ));
                    }
                    k
                }
            };
            let op = alive[ei].remove(k);
            pruned.push(Pruned {
                edge: edges[ei].to_string(),
                op: op.to_string(),
            });
        }
        rounds.push(RoundReport {
            round,
            scores,
            pruned,
            decisions,
            board,
            alive_after: alive
                .iter()
                .map(|a| a.iter().map(|o| o.to_string()).collect())
                .collect(),
            batch_seed,
            device: device_name(device),
            wall_s: t0.elapsed().as_secs_f64(),
        });
    }
    Ok((alive, rounds))
}

/// The candidate to remove on one edge under a board: the highest score (NaN as -inf, ties
/// to the first) among the removals for which `keeps_a_fit` holds. One always does while the
/// edge has two ops and some cell of the alive ops fits (remove any op but that cell's).
fn fitting_removal(
    scores: &[f64],
    mut keeps_a_fit: impl FnMut(usize) -> Result<bool>,
) -> Result<usize> {
    let key = |v: f64| if v.is_nan() { f64::NEG_INFINITY } else { v };
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| key(scores[b]).total_cmp(&key(scores[a])));
    for k in order {
        if keeps_a_fit(k)? {
            return Ok(k);
        }
    }
    bail!("no removal keeps a cell that fits the board")
}
