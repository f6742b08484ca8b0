//! How well each score predicts the benchmark's test accuracy: rank correlations with bootstrap
//! intervals, the correlation within cells of equal size, and the top-5% hit rate, per split.

use super::record::Record;
use super::table::Table;
use super::Split;
use crate::plot::{plot_err, Chart};
use crate::stats::{self, Estimate};
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// One cell's scores, one per proxy (in the order of the proxy names they come with); a score
/// may be infinite (a singular kernel scores `-inf`) or NaN (undefined).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoredCell {
    /// Architecture id.
    pub id: u32,
    /// Scores, one per proxy.
    pub scores: Vec<f64>,
}

/// The statistics of one proxy on one split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProxyStats {
    /// Proxy name.
    pub proxy: String,
    /// Which cells: the development or the held-out ids.
    pub split: Split,
    /// Cells with a defined (non-NaN) score.
    pub cells: usize,
    /// Cells left out because their score is NaN.
    pub undefined: usize,
    /// Kendall's tau-b against test accuracy, with its bootstrap 95% interval.
    pub kendall_tau: Estimate,
    /// Spearman's rho against test accuracy, with its bootstrap 95% interval.
    pub spearman_rho: Estimate,
    /// Kendall's tau-b within groups of equal parameter count (pair-weighted mean), if defined.
    pub tau_within_params: Option<f64>,
    /// Parameter-count groups that entered `tau_within_params`.
    pub param_groups: usize,
    /// Share of the score's top 5% that lies in the benchmark's top 5% (of these cells).
    pub top5_hit_rate: Option<f64>,
}

/// Statistics of every proxy (`names[k]` is `cells[..].scores[k]`) on the cells of `split`.
/// `bootstrap` resamples, seeded with `seed`.
pub fn proxy_stats(
    table: &Table,
    names: &[String],
    cells: &[ScoredCell],
    split: Split,
    bootstrap: usize,
    seed: u64,
) -> Result<Vec<ProxyStats>> {
    let rows: Vec<(&ScoredCell, &Record)> = cells
        .iter()
        .filter(|c| Split::of(c.id) == split)
        .map(|c| {
            table.get(c.id).map(|r| (c, r)).ok_or_else(|| {
                anyhow!(
                    "cell {} is not in the table {}",
                    c.id,
                    table.source().display()
                )
            })
        })
        .collect::<Result<_>>()?;
    Ok(names
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let defined: Vec<&(&ScoredCell, &Record)> =
                rows.iter().filter(|(c, _)| !c.scores[k].is_nan()).collect();
            let x: Vec<f64> = defined.iter().map(|(c, _)| c.scores[k]).collect();
            let y: Vec<f64> = defined.iter().map(|(_, r)| r.test_acc).collect();
            let g: Vec<u64> = defined.iter().map(|(_, r)| r.params).collect();
            let within = stats::kendall_tau_within_groups(&x, &y, &g);
            ProxyStats {
                proxy: name.clone(),
                split,
                cells: x.len(),
                undefined: rows.len() - x.len(),
                kendall_tau: stats::bootstrap(&x, &y, stats::kendall_tau_b, bootstrap, seed),
                spearman_rho: stats::bootstrap(&x, &y, stats::spearman_rho, bootstrap, seed),
                tau_within_params: within.map(|w| w.0),
                param_groups: within.map_or(0, |w| w.1),
                top5_hit_rate: stats::top_hit_rate(&x, &y, 0.05),
            }
        })
        .collect())
}

/// The table of [`proxy_stats`] results as Markdown (one row per proxy and split).
pub fn stats_markdown(all: &[ProxyStats]) -> String {
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    let mut s = String::from(
        "| proxy | split | cells | Kendall tau [95% CI] | Spearman rho [95% CI] | tau within equal params | top-5% hit rate |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for p in all {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            p.proxy,
            match p.split {
                Split::Dev => "dev",
                Split::HeldOut => "held-out",
            },
            p.cells,
            p.kendall_tau,
            p.spearman_rho,
            opt(p.tau_within_params),
            opt(p.top5_hit_rate),
        ));
    }
    s
}

/// An SVG scatter of proxy `k` (x) against test accuracy (y): development cells grey,
/// held-out cells blue. Cells with a non-finite score are counted in the caption, not drawn.
pub fn scatter_svg(table: &Table, name: &str, cells: &[ScoredCell], k: usize) -> Result<String> {
    let pts: Vec<(f64, f64, Split)> = cells
        .iter()
        .filter_map(|c| {
            let r = table.get(c.id)?;
            c.scores[k]
                .is_finite()
                .then_some((c.scores[k], r.test_acc, Split::of(c.id)))
        })
        .collect();
    let hidden = cells.len() - pts.len();
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in &pts {
        x0 = x0.min(p.0);
        x1 = x1.max(p.0);
    }
    if !(x0.is_finite() && x1 > x0) {
        (x0, x1) = (x0.min(0.0) - 1.0, x0.max(0.0) + 1.0);
    }
    let pad = (x1 - x0) * 0.04;
    Chart {
        size: (800, 560),
        caption: format!(
            "{name} vs SpikeNAS-Bench test accuracy ({} cells{})",
            pts.len(),
            if hidden > 0 {
                format!(", {hidden} with a non-finite score not drawn")
            } else {
                String::new()
            }
        ),
        x: (x0 - pad)..(x1 + pad),
        y: 0.0..100.0,
        x_desc: name.into(),
        y_desc: "test accuracy after 100 epochs (%)".into(),
        legend: SeriesLabelPosition::LowerRight,
    }
    .svg(|chart| {
        for (split, color, label) in [
            (
                Split::Dev,
                RGBColor(150, 150, 150),
                "development ids (id % 5 != 0)",
            ),
            (
                Split::HeldOut,
                RGBColor(30, 90, 200),
                "held-out ids (id % 5 == 0)",
            ),
        ] {
            chart
                .draw_series(
                    pts.iter()
                        .filter(|p| p.2 == split)
                        .map(|p| Circle::new((p.0, p.1), 2, color.filled())),
                )
                .map_err(plot_err)?
                .label(label)
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lightsnn_tests::shipped_data;

    #[test]
    fn stats_on_the_sample() {
        let t =
            Table::read(&shipped_data("spikenas-bench-sample").join("cifar10-sample.csv")).unwrap();
        // an oracle (the accuracy itself), the parameter count, and a constant
        let cells: Vec<ScoredCell> = t
            .records()
            .iter()
            .map(|r| ScoredCell {
                id: r.id,
                scores: vec![r.test_acc, r.params as f64, 1.0],
            })
            .collect();
        let names = ["oracle", "params", "constant"].map(String::from);
        let s = proxy_stats(&t, &names, &cells, Split::Dev, 50, 0).unwrap();
        assert_eq!(s.len(), 3);
        let dev = t.records().iter().filter(|r| r.id % 5 != 0).count();
        assert!(s.iter().all(|p| p.cells == dev && p.split == Split::Dev));
        assert_eq!(s[0].kendall_tau.value, Some(1.0));
        assert_eq!(s[0].top5_hit_rate, Some(1.0));
        assert!(s[1].kendall_tau.value.unwrap() > 0.2);
        // within equal parameter counts params is constant: undefined
        assert_eq!((s[1].tau_within_params, s[1].param_groups), (None, 0));
        assert_eq!(s[2].kendall_tau.value, None);
        let md = stats_markdown(&s);
        assert!(md.contains("| oracle | dev |"), "{md}");
        let svg = scatter_svg(&t, "params", &cells, 1).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("params"));
        // a cell the table lacks is an error naming the table
        let bad = [ScoredCell {
            id: 1,
            scores: vec![0.0; 3],
        }];
        let err = proxy_stats(&t, &names, &bad, Split::Dev, 10, 0).unwrap_err();
        assert!(err.to_string().contains("cifar10-sample.csv"), "{err}");
    }
}
