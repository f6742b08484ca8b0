//! Search methods judged on the table: every run's found cell looked up (test accuracy,
//! percentile, firing rate, parameters), summarised per method over seeds, with the seed
//! stability of what they found and a CDF plot of the space with the found cells marked.

use super::cell_id::{BenchCell, LIGHTSNN_OP_NAMES};
use super::table::Table;
use crate::plot::{plot_err, Chart};
use crate::search::stability::Agreement;
use crate::stats;
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// One run of one search method: what it found and what it cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodRun {
    /// Method label, e.g. `prune`, `random-1000`, `evolution-100`.
    pub method: String,
    /// The run's seed.
    pub seed: u64,
    /// The cell found.
    pub cell: BenchCell,
    /// Wall-clock seconds of the search.
    pub seconds: f64,
    /// Cells scored or table queries made, where the method counts them.
    pub evaluations: Option<usize>,
}

/// A method's runs, summarised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodSummary {
    /// Method label.
    pub method: String,
    /// Runs (seeds).
    pub runs: usize,
    /// Mean and sample standard deviation of the found cells' test accuracy (%).
    pub test_acc: (f64, f64),
    /// Mean and standard deviation of their percentile among all cells of the table.
    pub percentile: (f64, f64),
    /// Share of runs whose cell is in the table's top 5% by test accuracy.
    pub top5_share: f64,
    /// Mean benchmark firing rate (SAR) of the found cells.
    pub sar: f64,
    /// Mean parameter count of the found cells.
    pub params: f64,
    /// Mean and standard deviation of the search time (s).
    pub seconds: (f64, f64),
    /// Mean evaluations per run, where counted.
    pub evaluations: Option<f64>,
    /// The pruning search's time over this method's, paired by seed: mean, lowest and highest
    /// over the seeds both ran (`None` for `prune` itself, for methods whose time is not a
    /// search's, and where `prune` did not run the same seeds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_time_ratio: Option<(f64, f64, f64)>,
    /// Distinct cells and per-edge agreement over the runs.
    pub agreement: Agreement,
}

/// Summaries of `runs`, one per method in order of first appearance. Every found cell must be
/// in `table` (a complete table holds them all). `timed` lists the methods whose seconds are a
/// search's cost (the scoring searches; evolution and the uniform draw only look cells up):
/// each but `prune`, the pruning search's label, gets [`MethodSummary::prune_time_ratio`].
pub fn summarize(
    table: &Table,
    runs: &[MethodRun],
    timed: &[String],
    prune: &str,
) -> Result<Vec<MethodSummary>> {
    let top5_cut = table.top_line(0.05);
    let mut methods: Vec<&str> = Vec::new();
    for r in runs {
        if !methods.contains(&r.method.as_str()) {
            methods.push(&r.method);
        }
    }
    let prune_secs: Vec<(u64, f64)> = runs
        .iter()
        .filter(|r| r.method == prune)
        .map(|r| (r.seed, r.seconds))
        .collect();
    let ops: Vec<String> = LIGHTSNN_OP_NAMES.iter().map(|s| s.to_string()).collect();
    let edges: Vec<String> = ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    methods
        .into_iter()
        .map(|m| {
            let mine: Vec<&MethodRun> = runs.iter().filter(|r| r.method == m).collect();
            let recs = mine
                .iter()
                .map(|r| {
                    table.get(r.cell.id()).ok_or_else(|| {
                        anyhow!(
                            "{m} found cell {} (id {}), which the table {} does not hold",
                            r.cell,
                            r.cell.id(),
                            table.source().display()
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let acc: Vec<f64> = recs.iter().map(|r| r.test_acc).collect();
            let pct: Vec<f64> = acc.iter().map(|&a| table.percentile(a)).collect();
            let secs: Vec<f64> = mine.iter().map(|r| r.seconds).collect();
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            let evals: Vec<f64> = mine
                .iter()
                .filter_map(|r| r.evaluations.map(|e| e as f64))
                .collect();
            let genotypes: Vec<String> = mine.iter().map(|r| r.cell.genotype_string()).collect();
            let found: Vec<(u64, &str)> = mine
                .iter()
                .zip(&genotypes)
                .map(|(r, g)| (r.seed, g.as_str()))
                .collect();
            Ok(MethodSummary {
                method: m.to_string(),
                runs: mine.len(),
                test_acc: stats::mean_std(&acc),
                percentile: stats::mean_std(&pct),
                top5_share: acc.iter().filter(|&&a| a >= top5_cut).count() as f64
                    / acc.len().max(1) as f64,
                sar: mean(&recs.iter().map(|r| r.sar()).collect::<Vec<_>>()),
                params: mean(&recs.iter().map(|r| r.params as f64).collect::<Vec<_>>()),
                seconds: stats::mean_std(&secs),
                evaluations: (!evals.is_empty()).then(|| mean(&evals)),
                prune_time_ratio: (m != prune && timed.iter().any(|t| t == m))
                    .then(|| paired_ratio(&prune_secs, &mine))
                    .flatten(),
                agreement: Agreement::of(&found, &ops, &edges),
            })
        })
        .collect()
}

/// `prune`'s seconds over each of `runs`' (same seed, both timed): mean, lowest, highest.
fn paired_ratio(prune: &[(u64, f64)], runs: &[&MethodRun]) -> Option<(f64, f64, f64)> {
    let ratios: Vec<f64> = runs
        .iter()
        .filter(|r| r.seconds > 0.0)
        .filter_map(|r| {
            let p = prune.iter().find(|(seed, _)| *seed == r.seed)?.1;
            (p > 0.0).then(|| p / r.seconds)
        })
        .collect();
    let lo = ratios.iter().copied().reduce(f64::min)?;
    let hi = ratios.iter().copied().reduce(f64::max)?;
    Some((ratios.iter().sum::<f64>() / ratios.len() as f64, lo, hi))
}

/// The summaries as a Markdown table (Table 1 of the paper, on ground truth).
pub fn summary_markdown(s: &[MethodSummary]) -> String {
    let mut out = String::from(
        "| method | runs | test acc. (%) mean ± sd | percentile mean ± sd | in top 5% | SAR | params (M) | search time (s) | prune's time / this (per seed) | evaluations | distinct cells | edge agreement |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for m in s {
        out.push_str(&format!(
            "| {} | {} | {:.2} ± {:.2} | {:.1} ± {:.1} | {:.0}% | {:.3} | {:.2} | {:.1} ± {:.1} | {} | {} | {} | {:.2} |\n",
            m.method,
            m.runs,
            m.test_acc.0,
            m.test_acc.1,
            m.percentile.0,
            m.percentile.1,
            100.0 * m.top5_share,
            m.sar,
            m.params / 1e6,
            m.seconds.0,
            m.seconds.1,
            m.prune_time_ratio.map_or("-".to_string(), |(mean, lo, hi)| format!(
                "{mean:.3} ({lo:.3}-{hi:.3})"
            )),
            m.evaluations.map_or("-".to_string(), |e| format!("{e:.0}")),
            m.agreement.genotypes.len(),
            m.agreement.mean_agreement,
        ));
    }
    out
}

/// An SVG of the CDF of test accuracy over the table's live cells (accuracy above 10%), with
/// each method's found cells marked on the curve, one colour per method.
pub fn cdf_svg(table: &Table, runs: &[MethodRun]) -> Result<String> {
    let mut live: Vec<f64> = table
        .records()
        .iter()
        .filter(|r| !r.is_dead())
        .map(|r| r.test_acc)
        .collect();
    if live.is_empty() {
        return Err(anyhow!(
            "the table {} has no live cells",
            table.source().display()
        ));
    }
    live.sort_by(f64::total_cmp);
    let n = live.len() as f64;
    let cdf = |a: f64| live.partition_point(|&x| x <= a) as f64 / n;
    let (x0, x1) = (live[0].floor(), live[live.len() - 1].ceil());
    let palette = [
        RGBColor(214, 39, 40),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
    ];
    let mut methods: Vec<&str> = Vec::new();
    for r in runs {
        if !methods.contains(&r.method.as_str()) {
            methods.push(&r.method);
        }
    }
    Chart {
        size: (900, 600),
        caption: format!(
            "SpikeNAS-Bench CIFAR-10: CDF of test accuracy ({} live cells) and the cells each method found",
            live.len()
        ),
        x: x0..x1,
        y: 0.0..1.02,
        x_desc: "test accuracy after 100 epochs (%)".into(),
        y_desc: "share of cells at or below".into(),
        legend: SeriesLabelPosition::UpperLeft,
    }
    .svg(|chart| {
        chart
            .draw_series(LineSeries::new(
                live.iter()
                    .enumerate()
                    .map(|(i, &a)| (a, (i + 1) as f64 / n)),
                BLACK.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label("all live cells")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
        for (k, m) in methods.iter().enumerate() {
            let color = palette[k % palette.len()];
            // a small vertical offset per method keeps coinciding markers apart
            let dy = 0.012 * k as f64;
            let pts: Vec<(f64, f64)> = runs
                .iter()
                .filter(|r| r.method == *m)
                .filter_map(|r| table.get(r.cell.id()))
                .map(|r| (r.test_acc.max(x0), (cdf(r.test_acc) - dy).max(0.0)))
                .collect();
            chart
                .draw_series(
                    pts.iter()
                        .map(|&p| TriangleMarker::new(p, 6, color.filled())),
                )
                .map_err(plot_err)?
                .label(m.to_string())
                .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 6, color.filled()));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lightsnn_tests::shipped_data;

    #[test]
    fn summaries_on_the_sample() {
        let t =
            Table::read(&shipped_data("spikenas-bench-sample").join("cifar10-sample.csv")).unwrap();
        let run = |method: &str, seed: u64, id: u32| MethodRun {
            method: method.into(),
            seed,
            cell: BenchCell::from_id(id).unwrap(),
            seconds: 2.0 * seed as f64,
            evaluations: Some(10),
        };
        // the best cell (12617) twice, then a dead one (0); another method once
        let mut runs = vec![
            run("a", 0, 12617),
            run("a", 1, 12617),
            run("a", 2, 0),
            run("b", 0, 10001),
        ];
        let timed = ["a".to_string(), "b".to_string(), "prune".to_string()];
        let s = summarize(&t, &runs, &timed, "prune").unwrap();
        assert_eq!(s.len(), 2);
        assert!(
            s.iter().all(|m| m.prune_time_ratio.is_none()),
            "no prune run"
        );
        let a = &s[0];
        assert_eq!((a.method.as_str(), a.runs), ("a", 3));
        assert!((a.test_acc.0 - (89.3 + 89.3 + 10.0) / 3.0).abs() < 1e-9);
        assert!((a.top5_share - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(a.agreement.genotypes.len(), 2);
        assert_eq!(a.agreement.genotypes[0].count, 2);
        assert_eq!(a.seconds.0, 2.0);
        assert_eq!(s[1].runs, 1);
        let md = summary_markdown(&s);
        assert!(md.lines().count() == 4 && md.contains("| a | 3 |"), "{md}");
        // prune's time over a's, paired by seed: seed 0 took a no time (skipped), seeds 1 and
        // 2 give 1/2 and 3/4; b's only seed took no time; prune has no ratio to itself
        runs.extend([run("prune", 1, 12617), run("prune", 2, 12617)]);
        runs[4].seconds = 1.0;
        runs[5].seconds = 3.0;
        let s = summarize(&t, &runs, &timed, "prune").unwrap();
        assert_eq!(s[0].prune_time_ratio, Some((0.625, 0.5, 0.75)));
        // a method whose time is no search's gets none
        let untimed = summarize(&t, &runs, &timed[1..], "prune").unwrap();
        assert_eq!(untimed[0].prune_time_ratio, None);
        assert_eq!(s[1].prune_time_ratio, None);
        assert_eq!(s[2].prune_time_ratio, None);
        assert!(summary_markdown(&s).contains("| 0.625 (0.500-0.750) |"));
        let svg = cdf_svg(&t, &runs).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("CDF"));
        // a cell outside a partial table is an error naming it
        let err = summarize(&t, &[run("c", 0, 1)], &timed, "prune")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("id 1") && err.contains("cifar10-sample.csv"),
            "{err}"
        );
    }
}
