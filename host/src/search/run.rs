//! The search driver: [`run_search`] checks the setup, runs pruning or a random search (the
//! setup's method) and assembles the report.

use super::estimate::Estimate;
use super::report::{device_name, RoundReport, SearchConfigRecord, SearchReport, SEARCH_FORMAT};
use super::score::{self, Scorer};
use super::setup::{Method, ScoreKind, SearchSetup, Thresholds};
use super::{families, prune, random};
use crate::data::Dataset;
use crate::limits::available_memory;
use crate::model::{Mixing, Network};
use crate::progress::Progress;
use anyhow::{bail, Result};
use candle_core::Device;
use std::time::Instant;

/// Runs the configured search on `data` and returns the full report.
pub fn run_search(
    setup: &SearchSetup,
    data: &Dataset,
    device: &Device,
    pb: &dyn Progress,
) -> Result<SearchReport> {
    setup.net.validate()?;
    score::check_batch(setup.batch)?;
    if setup.repeats < 1 {
        bail!("search repeats must be at least 1");
    }
    // The rate spread scores thresholds only: as the search's score, the space must hold
    // nothing else to choose.
    if setup.score == ScoreKind::Spread
        && (setup.thresholds == Thresholds::Spread
            || !families::is_one_threshold_family(setup.net.ops.ops()))
    {
        bail!(
            "--score spread chooses between conv thresholds, not op kinds (a cell that never \
             fires has no spread): give a space of one conv's thresholds (e.g. --space \
             conv3@0.5,conv3,conv3@1.5), or score the op kinds with sahd or naswot and let \
             --thresholds spread choose the thresholds"
        );
    }
    if setup.thresholds == Thresholds::Spread {
        if setup.method != Method::Prune {
            bail!("--thresholds spread is a pruning search's: use it with --method prune");
        }
        if !families::has_threshold_families(setup.net.ops.ops()) {
            bail!(
                "--thresholds spread chooses between conv thresholds, but the space {{{}}} has \
                 no thresholded convs (e.g. --space spikenas-bench: conv3@0.5, conv3, conv3@1.5)",
                setup.net.ops
            );
        }
    }
    // Before any allocation: refuse what cannot fit, show the estimate otherwise.
    let estimate = Estimate::for_search(setup, data.frames(), device);
    estimate.check_memory(available_memory())?;
    let note = estimate.short();
    pb.start(setup.total_scorings(), &note);
    let start = Instant::now();
    let cfg = &setup.net;
    let (genotype, rounds, best_score) = match setup.method {
        Method::Random => random::snasnet_rounds(setup, data, device, pb)?,
        Method::Prune | Method::RandomShared => {
            let supernet = Mixing::supernet(cfg.cell, &cfg.ops);
            let net = Network::new(cfg, &supernet.alive(), setup.seed, device)?;
            let scorer = Scorer::new(&net, setup.kernel_path)?
                .with_stack(setup.stack(device))
                .with_score(setup.score);
            if setup.method == Method::Prune {
                let spread = match setup.thresholds {
                    Thresholds::Spread => {
                        Some(Scorer::new(&net, setup.kernel_path)?.with_score(ScoreKind::Spread))
                    }
                    Thresholds::Joint => None,
                };
                prune::prune(setup, &scorer, spread.as_ref(), data, device, pb, &note)?
            } else {
                random::shared_rounds(setup, &scorer, data, device, pb)?
            }
        }
    };
    pb.finish();
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
            score: setup.score,
            thresholds: setup.thresholds,
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
            score::NOT_FINITE_HELP
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
                    score::NOT_FINITE_HELP
                );
            }
        }
    }
    Ok(())
}
