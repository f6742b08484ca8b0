//! The study's summary: `report.json`, `cells.csv` and `scatter.svg`.

use super::{files, CellKind, CellResult, StudyConfig};
use crate::fsutil::write_atomic;
use crate::plot::{plot_err, Chart};
use crate::search::SearchReport;
use crate::stats::{self, Estimate};
use anyhow::Result;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Format tag of `report.json`.
pub const REPORT_FORMAT: &str = "lightsnn-study-report/1";

/// Score-accuracy correlation over one set of cells.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Correlation {
    /// Which cells: `random` (the K random cells) or `all` (random and both found cells).
    pub cells: String,
    /// How many.
    pub n: usize,
    /// Kendall's tau-b of score mean and test top-1.
    pub kendall_tau: Estimate,
    /// Spearman's rho of the same.
    pub spearman_rho: Estimate,
}

/// A found cell against the random ones (the paper's Table 1 columns, plus ranks).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FoundCell {
    /// `prune` or `random-search`.
    pub method: String,
    /// Its genotype.
    pub genotype: String,
    /// Test top-1 (main training seed).
    pub test_top1: f64,
    /// Test SAR.
    pub test_sar: f64,
    /// Its percentile among the random cells' test top-1 (share below + half the ties).
    pub accuracy_percentile: Option<f64>,
    /// Its percentile among the random cells' scores.
    pub score_percentile: Option<f64>,
    /// Search wall time in seconds.
    pub search_s: f64,
    /// Scorings the search ran.
    pub scorings: usize,
}

/// The noise floor: the found cell trained with several seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoiseFloor {
    /// Training seeds.
    pub seeds: Vec<u64>,
    /// Their test top-1.
    pub test_top1: Vec<f64>,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation.
    pub std: f64,
}

/// `report.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyReport {
    /// Always [`REPORT_FORMAT`].
    pub format: String,
    /// The study's configuration.
    pub config: StudyConfig,
    /// Cells finished (of `planned`).
    pub finished: usize,
    /// Cells planned.
    pub planned: usize,
    /// Whether every planned cell is finished.
    pub complete: bool,
    /// Chance accuracy (1 / classes).
    pub chance: f64,
    /// Correlations: random cells, then all distinct cells.
    pub correlations: Vec<Correlation>,
    /// The two searches' cells.
    pub found: Vec<FoundCell>,
    /// The noise floor (once at least two seeds finished).
    pub noise_floor: Option<NoiseFloor>,
    /// Random cells' test top-1: min, median, max.
    pub random_top1_range: Option<[f64; 3]>,
    /// Every finished cell.
    pub cells: Vec<CellResult>,
}

impl StudyReport {
    /// The summary of the cells finished so far.
    pub fn new(
        cfg: &StudyConfig,
        prune: &SearchReport,
        random: &SearchReport,
        results: &[CellResult],
    ) -> StudyReport {
        let planned = 2 + cfg.random_cells + cfg.noise_seeds;
        let of = |k: CellKind| results.iter().filter(move |r| r.kind == k);
        let rand: Vec<&CellResult> = of(CellKind::Random).collect();
        let main: Vec<&CellResult> = results
            .iter()
            .filter(|r| r.kind != CellKind::NoiseSeed)
            .collect();
        let corr = |name: &str, cells: &[&CellResult], seed: u64| {
            let x: Vec<f64> = cells.iter().map(|r| r.score_mean).collect();
            let y: Vec<f64> = cells.iter().map(|r| r.test_top1).collect();
            Correlation {
                cells: name.to_string(),
                n: cells.len(),
                kendall_tau: stats::bootstrap(&x, &y, stats::kendall_tau_b, cfg.bootstrap, seed),
                spearman_rho: stats::bootstrap(&x, &y, stats::spearman_rho, cfg.bootstrap, seed),
            }
        };
        let rand_acc: Vec<f64> = rand.iter().map(|r| r.test_top1).collect();
        let rand_score: Vec<f64> = rand.iter().map(|r| r.score_mean).collect();
        let found_cell = |kind: CellKind, name: &str, s: &SearchReport| {
            of(kind).next().map(|r| FoundCell {
                method: name.to_string(),
                genotype: r.genotype.clone(),
                test_top1: r.test_top1,
                test_sar: r.test_sar,
                accuracy_percentile: stats::percentile_rank(r.test_top1, &rand_acc),
                score_percentile: stats::percentile_rank(r.score_mean, &rand_score),
                search_s: s.wall_s,
                scorings: s.rounds.iter().map(|x| x.scores.len()).sum(),
            })
        };
        let found: Vec<FoundCell> = [
            found_cell(CellKind::Prune, "prune", prune),
            found_cell(CellKind::RandomSearch, "random-search", random),
        ]
        .into_iter()
        .flatten()
        .collect();
        let seeds: Vec<&CellResult> = of(CellKind::Prune).chain(of(CellKind::NoiseSeed)).collect();
        let noise_floor = (seeds.len() >= 2).then(|| {
            let acc: Vec<f64> = seeds.iter().map(|r| r.test_top1).collect();
            let (mean, std) = stats::mean_std(&acc);
            NoiseFloor {
                seeds: seeds.iter().map(|r| r.train_seed).collect(),
                test_top1: acc,
                mean,
                std,
            }
        });
        let mut sorted = rand_acc.clone();
        sorted.sort_by(f64::total_cmp);
        let random_top1_range = (!sorted.is_empty()).then(|| {
            [
                sorted[0],
                stats::quantile(&sorted, 0.5).unwrap_or(f64::NAN),
                sorted[sorted.len() - 1],
            ]
        });
        StudyReport {
            format: REPORT_FORMAT.into(),
            config: cfg.clone(),
            finished: results.len(),
            planned,
            complete: results.len() == planned,
            chance: 1.0 / cfg.net.shape.classes as f64,
            correlations: vec![
                corr("random", &rand, cfg.seed),
                corr("all", &main, cfg.seed.wrapping_add(1)),
            ],
            found,
            noise_floor,
            random_top1_range,
            cells: results.to_vec(),
        }
    }

    /// Writes `report.json`, `cells.csv` and `scatter.svg` into the study folder.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_atomic(&dir.join(files::REPORT), &serde_json::to_vec_pretty(self)?)?;
        write_atomic(&dir.join(files::CSV), self.csv().as_bytes())?;
        write_atomic(&dir.join(files::SCATTER), self.scatter_svg()?.as_bytes())
    }

    /// One row per cell.
    pub fn csv(&self) -> String {
        let mut s = String::from(
            "id,kind,genotype,train_seed,score_mean,score_std,test_top1,test_sar,val_top1,best_epoch,wall_s\n",
        );
        for r in &self.cells {
            let kind = serde_json::to_value(r.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            s.push_str(&format!(
                "{},{},\"{}\",{},{},{},{},{},{},{},{:.1}\n",
                r.id,
                kind,
                r.genotype,
                r.train_seed,
                r.score_mean,
                r.score_std,
                r.test_top1,
                r.test_sar,
                r.val_top1,
                r.best_epoch,
                r.wall_s
            ));
        }
        s
    }

    /// Score (x, with ±1 std over the score repeats) against test top-1 (y): random cells as
    /// grey circles, the pruning cell as a red triangle (its seeds' spread as a vertical bar),
    /// the random-search cell as a blue square.
    pub fn scatter_svg(&self) -> Result<String> {
        let pts: Vec<&CellResult> = self
            .cells
            .iter()
            .filter(|r| r.kind != CellKind::NoiseSeed && r.score_mean.is_finite())
            .collect();
        let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 100.0f64, 0.0f64);
        for r in &self.cells {
            if r.score_mean.is_finite() {
                x0 = x0.min(r.score_mean - r.score_std);
                x1 = x1.max(r.score_mean + r.score_std);
            }
            y0 = y0.min(100.0 * r.test_top1);
            y1 = y1.max(100.0 * r.test_top1);
        }
        if !x0.is_finite() || x1 <= x0 {
            (x0, x1) = (x0.min(0.0), x0.max(0.0) + 1.0);
        }
        let (px, py) = ((x1 - x0) * 0.05, ((y1 - y0) * 0.08).max(0.5));
        let tau = self
            .correlations
            .first()
            .map(|c| c.kendall_tau.to_string())
            .unwrap_or_default();
        Chart {
            size: (800, 560),
            caption: format!(
                "SAHD score vs test top-1 ({}{}), Kendall tau (random cells) {tau}",
                self.config.net.dataset,
                if self.complete { "" } else { ", partial" }
            ),
            x: (x0 - px)..(x1 + px),
            y: (y0 - py)..(y1 + py),
            x_desc: "SAHD score ln|det K| (untrained, mean +- std over repeats)".into(),
            y_desc: "test top-1 (%)".into(),
            legend: SeriesLabelPosition::LowerRight,
        }
        .svg(|chart| {
            let chance = 100.0 * self.chance;
            if chance >= y0 - py {
                chart
                    .draw_series(LineSeries::new(
                        [(x0 - px, chance), (x1 + px, chance)],
                        BLACK.mix(0.4).stroke_width(1),
                    ))
                    .map_err(plot_err)?
                    .label("chance")
                    .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.4)));
            }
            for r in &pts {
                let (x, y) = (r.score_mean, 100.0 * r.test_top1);
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        [(x - r.score_std, y), (x + r.score_std, y)],
                        BLACK.mix(0.3),
                    )))
                    .map_err(plot_err)?;
            }
            let rand: Vec<(f64, f64)> = pts
                .iter()
                .filter(|r| r.kind == CellKind::Random)
                .map(|r| (r.score_mean, 100.0 * r.test_top1))
                .collect();
            chart
                .draw_series(
                    rand.iter()
                        .map(|&p| Circle::new(p, 5, RGBColor(90, 90, 90).filled())),
                )
                .map_err(plot_err)?
                .label("random cells")
                .legend(|(x, y)| Circle::new((x + 10, y), 5, RGBColor(90, 90, 90).filled()));
            if let Some(nf) = &self.noise_floor {
                if let Some(p) = pts.iter().find(|r| r.kind == CellKind::Prune) {
                    let lo = 100.0 * nf.test_top1.iter().cloned().fold(f64::INFINITY, f64::min);
                    let hi = 100.0
                        * nf.test_top1
                            .iter()
                            .cloned()
                            .fold(f64::NEG_INFINITY, f64::max);
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            [(p.score_mean, lo), (p.score_mean, hi)],
                            RED.stroke_width(2),
                        )))
                        .map_err(plot_err)?;
                }
            }
            let at = |kind: CellKind| -> Vec<(f64, f64)> {
                pts.iter()
                    .filter(|r| r.kind == kind)
                    .map(|r| (r.score_mean, 100.0 * r.test_top1))
                    .collect()
            };
            let found = at(CellKind::Prune);
            if !found.is_empty() {
                chart
                    .draw_series(
                        found
                            .iter()
                            .map(|&q| TriangleMarker::new(q, 9, RED.filled())),
                    )
                    .map_err(plot_err)?
                    .label("pruning search (bar: training seeds)")
                    .legend(|(x, y)| TriangleMarker::new((x + 10, y), 7, RED.filled()));
            }
            let baseline = at(CellKind::RandomSearch);
            if !baseline.is_empty() {
                chart
                    .draw_series(baseline.iter().map(|&q| {
                        EmptyElement::at(q) + Rectangle::new([(-6, -6), (6, 6)], BLUE.filled())
                    }))
                    .map_err(plot_err)?
                    .label("random search")
                    .legend(|(x, y)| {
                        Rectangle::new([(x + 4, y - 5), (x + 14, y + 5)], BLUE.filled())
                    });
            }
            Ok(())
        })
    }

    /// The human-readable summary lines.
    pub fn summary(&self) -> Vec<String> {
        let mut v = Vec::new();
        v.push(format!(
            "cells finished: {} of {}{}",
            self.finished,
            self.planned,
            if self.complete { "" } else { " (partial)" }
        ));
        for c in &self.correlations {
            v.push(format!(
                "score vs test top-1 over {} {} cells: Kendall tau {} | Spearman rho {}",
                c.n, c.cells, c.kendall_tau, c.spearman_rho
            ));
        }
        if let Some([lo, med, hi]) = self.random_top1_range {
            v.push(format!(
                "random cells test top-1: min {:.2}%, median {:.2}%, max {:.2}% (chance {:.1}%)",
                100.0 * lo,
                100.0 * med,
                100.0 * hi,
                100.0 * self.chance
            ));
        }
        for f in &self.found {
            v.push(format!(
                "{:<13} {} | test top-1 {:.2}% (percentile {} among random cells), SAR {:.4} | search {:.1} s, {} scorings",
                f.method,
                f.genotype,
                100.0 * f.test_top1,
                f.accuracy_percentile
                    .map_or("n/a".into(), |p| format!("{p:.0}")),
                f.test_sar,
                f.search_s,
                f.scorings
            ));
        }
        if let Some(n) = &self.noise_floor {
            v.push(format!(
                "noise floor (pruning cell, {} training seeds): {:.2}% +- {:.2}% ({})",
                n.seeds.len(),
                100.0 * n.mean,
                100.0 * n.std,
                n.test_top1
                    .iter()
                    .map(|a| format!("{:.2}", 100.0 * a))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        v
    }
}
