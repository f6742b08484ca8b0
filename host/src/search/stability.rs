//! Seed stability of the search (`lightsnn search --seeds S`): the same search run with S
//! master seeds (each seed draws its own weights and batches), summarised as the distinct
//! genotypes found, the per-edge agreement and how many pruning decisions were decisive.

use super::report::SearchReport;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Format tag of the multi-seed file.
pub const STABILITY_FORMAT: &str = "lightsnn-search-seeds/1";

/// One distinct genotype and the seeds that found it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenotypeCount {
    /// The genotype.
    pub genotype: String,
    /// How many seeds found it.
    pub count: usize,
    /// Those seeds.
    pub seeds: Vec<u64>,
}

/// Agreement on one edge's final op.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgeAgreement {
    /// Edge in canonical notation.
    pub edge: String,
    /// The op most seeds kept (ties: the first in op-set order).
    pub modal_op: String,
    /// Fraction of seeds that kept the modal op.
    pub agreement: f64,
    /// Seeds per final op.
    pub counts: BTreeMap<String, usize>,
}

/// What several searches agree on: the distinct genotypes and the per-edge agreement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// Distinct genotypes, most frequent first (ties: first found first).
    pub genotypes: Vec<GenotypeCount>,
    /// Per edge, in canonical order.
    pub edges: Vec<EdgeAgreement>,
    /// Mean per-edge agreement.
    pub mean_agreement: f64,
}

impl Agreement {
    /// The agreement of `found` (seed, genotype as comma-separated op names) over `ops` (the op
    /// set, which decides ties of the modal op) on the edges named `edge_names`.
    pub fn of(found: &[(u64, &str)], ops: &[String], edge_names: &[String]) -> Agreement {
        let mut genotypes: Vec<GenotypeCount> = Vec::new();
        for &(seed, g) in found {
            match genotypes.iter_mut().find(|c| c.genotype == g) {
                Some(c) => {
                    c.count += 1;
                    c.seeds.push(seed);
                }
                None => genotypes.push(GenotypeCount {
                    genotype: g.to_string(),
                    count: 1,
                    seeds: vec![seed],
                }),
            }
        }
        // stable sort: equal counts keep the order they were first found in
        genotypes.sort_by_key(|g| std::cmp::Reverse(g.count));
        let mut edges = Vec::new();
        for (ei, name) in edge_names.iter().enumerate() {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for &(_, g) in found {
                if let Some(op) = g.split(',').nth(ei) {
                    *counts.entry(op.to_string()).or_default() += 1;
                }
            }
            let mut modal = (String::new(), 0usize);
            for op in ops {
                let c = counts.get(op).copied().unwrap_or(0);
                if c > modal.1 {
                    modal = (op.clone(), c);
                }
            }
            edges.push(EdgeAgreement {
                edge: name.clone(),
                modal_op: modal.0,
                agreement: modal.1 as f64 / found.len().max(1) as f64,
                counts,
            });
        }
        let mean_agreement =
            edges.iter().map(|e| e.agreement).sum::<f64>() / edges.len().max(1) as f64;
        Agreement {
            genotypes,
            edges,
            mean_agreement,
        }
    }
}

/// The multi-seed summary (and every search it summarises).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StabilityReport {
    /// Always [`STABILITY_FORMAT`].
    pub format: String,
    /// The seeds run, in order.
    pub seeds: Vec<u64>,
    /// Distinct genotypes, most frequent first (ties: first found first).
    pub genotypes: Vec<GenotypeCount>,
    /// Per edge, in canonical order.
    pub edges: Vec<EdgeAgreement>,
    /// Mean per-edge agreement.
    pub mean_agreement: f64,
    /// Pruning decisions over all seeds and rounds.
    pub decisions: usize,
    /// Of those, the ones whose margin exceeded the repeat noise.
    pub decisive: usize,
    /// Median over all decisions of margin / standard error (paired, see
    /// [`super::margin`]); `None` without repeat noise estimates.
    pub median_margin_over_se: Option<f64>,
    /// Every search, in seed order.
    pub searches: Vec<SearchReport>,
}

impl StabilityReport {
    /// Summarises searches that differ only in their seed.
    pub fn new(searches: Vec<SearchReport>) -> StabilityReport {
        let seeds: Vec<u64> = searches.iter().map(|s| s.seed).collect();
        let found: Vec<(u64, &str)> = searches
            .iter()
            .map(|s| (s.seed, s.genotype.as_str()))
            .collect();
        let (ops, edge_names) = match searches.first() {
            Some(s) => (s.ops.clone(), s.edges.clone()),
            None => (Vec::new(), Vec::new()),
        };
        let Agreement {
            genotypes,
            edges,
            mean_agreement,
        } = Agreement::of(&found, &ops, &edge_names);
        let all: Vec<_> = searches
            .iter()
            .flat_map(|s| s.rounds.iter().flat_map(|r| r.decisions.iter()))
            .collect();
        let decisive = all.iter().filter(|d| d.decisive == Some(true)).count();
        let mut ratios: Vec<f64> = all
            .iter()
            .filter_map(|d| {
                d.margin_se.map(|se| {
                    if se > 0.0 {
                        d.margin / se
                    } else if d.margin > 0.0 {
                        f64::INFINITY
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        ratios.sort_by(f64::total_cmp);
        let median_margin_over_se = crate::stats::quantile(&ratios, 0.5);
        StabilityReport {
            format: STABILITY_FORMAT.to_string(),
            seeds,
            genotypes,
            edges,
            mean_agreement,
            decisions: all.len(),
            decisive,
            median_margin_over_se,
            searches,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::margin::Decision;
    use crate::search::report::{RoundReport, SearchConfigRecord};

    fn report(seed: u64, genotype: &str, decisive: &[bool]) -> SearchReport {
        let cfg = crate::config::NetConfig::for_dataset(
            crate::config::DatasetKind::Cifar10,
            &Default::default(),
        )
        .unwrap();
        SearchReport {
            format: "x".into(),
            genotype: genotype.into(),
            cell: "forward".into(),
            ops: vec!["zero".into(), "conv3".into(), "skip".into()],
            edges: vec!["1<-0".into(), "2<-0".into()],
            best_score: None,
            seed,
            device: "cpu".into(),
            config: SearchConfigRecord {
                net: cfg,
                batch: 32,
                repeats: 2,
                method: "prune".into(),
                score: Default::default(),
                thresholds: Default::default(),
                engine: "cpu-event".into(),
                random_samples: None,
                data: "d".into(),
            },
            rounds: vec![RoundReport {
                round: 1,
                scores: vec![],
                pruned: vec![],
                decisions: decisive
                    .iter()
                    .map(|&ok| Decision {
                        edge: "1<-0".into(),
                        pruned: "zero".into(),
                        runner_up: "skip".into(),
                        margin: if ok { 1.0 } else { 0.1 },
                        margin_se: Some(0.2),
                        winner_spread: Some(1.0),
                        decisive: Some(ok),
                        repeats_needed: None,
                    })
                    .collect(),
                board: vec![],
                alive_after: vec![],
                batch_seed: 0,
                device: "cpu".into(),
                wall_s: 0.0,
            }],
            wall_s: 0.0,
            warnings: vec![],
            version: "0".into(),
        }
    }

    #[test]
    fn counts_genotypes_edges_and_decisions() {
        let r = StabilityReport::new(vec![
            report(0, "conv3,skip", &[true, false]),
            report(1, "conv3,conv3", &[true]),
            report(2, "conv3,skip", &[false]),
        ]);
        assert_eq!(r.seeds, vec![0, 1, 2]);
        assert_eq!(r.genotypes[0].genotype, "conv3,skip");
        assert_eq!(
            (r.genotypes[0].count, &r.genotypes[0].seeds),
            (2, &vec![0, 2])
        );
        assert_eq!(r.genotypes[1].count, 1);
        assert_eq!(r.edges[0].modal_op, "conv3");
        assert_eq!(r.edges[0].agreement, 1.0);
        assert_eq!(r.edges[1].modal_op, "skip");
        assert!((r.edges[1].agreement - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.mean_agreement - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!((r.decisions, r.decisive), (4, 2));
        // ratios 5, 0.5, 5, 0.5 -> median 2.75
        assert!((r.median_margin_over_se.unwrap() - 2.75).abs() < 1e-12);
    }
}
