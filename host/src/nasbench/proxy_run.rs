//! `lightsnn bench nas`: scores a stratified sample of the benchmark's cells with every proxy,
//! relates each score to the benchmark's test accuracy per split, and checks whether the
//! scores at the chosen width carry over to wider networks.
//!
//! # The run folder
//! - `config.json`: what is computed ([`ProxyRunConfig`]), written first; a run resumes only
//!   with the same configuration.
//! - `scores.csv`: one row per scored cell (`id, split, test_acc, <proxy>...`), rewritten
//!   atomically after every cell: the commit point of a resume.
//! - `transfer.csv`: the transfer subsample's scores at each wider width.
//! - `report.json`, `report.md`, `scatter-<proxy>.svg`: written when every cell is scored.

use super::cell_id::BenchCell;
use super::proxies::{score_batches, score_cells, Proxy, ProxySetup};
use super::proxy_stats::{proxy_stats, scatter_svg, stats_markdown, ProxyStats, ScoredCell};
use super::table::Table;
use super::Split;
use crate::data::Dataset;
use crate::fsutil::write_atomic;
use crate::progress::Progress;
use crate::stats::{self, Estimate};
use anyhow::{bail, Context, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Format tag of `config.json`.
pub const CONFIG_FORMAT: &str = "lightsnn-bench-nas/1";
/// Format tag of `report.json`.
pub const REPORT_FORMAT: &str = "lightsnn-bench-nas-report/1";

/// Everything a proxy run computes; two runs with equal configurations give equal files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProxyRunConfig {
    /// Always [`CONFIG_FORMAT`].
    pub format: String,
    /// Network, batches, seed and weights of the scores.
    pub setup: ProxySetup,
    /// The proxies, in column order.
    pub proxies: Vec<Proxy>,
    /// The sampled cells' ids, in scoring order.
    pub cells: Vec<u32>,
    /// The ids scored again at wider widths.
    pub transfer_cells: Vec<u32>,
    /// The width multipliers of the transfer check, relative to the setup's network.
    pub transfer_factors: Vec<f64>,
    /// Bootstrap resamples of the intervals.
    pub bootstrap: usize,
    /// The data the batches come from, as given.
    pub data: String,
    /// The table, as given.
    pub table: String,
}

/// Width transfer of one proxy: how its ranking of the transfer cells at the chosen width
/// agrees with its ranking at a wider one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    /// Proxy name.
    pub proxy: String,
    /// Width multiplier relative to the chosen width (2, 4).
    pub factor: f64,
    /// Channels of cell 1 and 2 at that width.
    pub channels: [usize; 2],
    /// Cells compared.
    pub cells: usize,
    /// Kendall tau between the scores at the chosen and the wider width.
    pub tau_between_widths: Estimate,
    /// Kendall tau of the wider width's scores against test accuracy, on the same cells.
    pub tau_vs_accuracy: Option<f64>,
    /// The same at the chosen width, on the same cells.
    pub tau_vs_accuracy_base: Option<f64>,
}

/// The report of a finished run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProxyReport {
    /// Always [`REPORT_FORMAT`].
    pub format: String,
    /// The configuration.
    pub config: ProxyRunConfig,
    /// Statistics per proxy on the held-out ids (the reported figures) and on the development
    /// ids (where choices were made).
    pub stats: Vec<ProxyStats>,
    /// Width transfer per proxy and factor.
    pub transfer: Vec<Transfer>,
    /// Seconds spent per proxy (all cells, this process and any earlier one it resumed).
    pub seconds: Vec<(Proxy, f64)>,
}

/// Runs (or resumes) the proxy evaluation into folder `out`.
pub fn run(
    cfg: &ProxyRunConfig,
    table: &Table,
    data: &Dataset,
    device: &Device,
    out: &Path,
    resume: bool,
    progress: &dyn Progress,
) -> Result<ProxyReport> {
    super::open_run_config(
        out,
        cfg,
        CONFIG_FORMAT,
        "a `lightsnn bench nas` run",
        resume,
    )?;
    for &id in cfg.cells.iter().chain(&cfg.transfer_cells) {
        if table.get(id).is_none() {
            bail!("cell {id} is not in the table {}", table.source().display());
        }
    }
    let names: Vec<String> = cfg.proxies.iter().map(|p| p.name().to_string()).collect();
    let scores_path = out.join("scores.csv");
    let mut scored = if resume && scores_path.exists() {
        read_scores(&scores_path, &names)?
    } else {
        Vec::new()
    };
    if scored.iter().zip(&cfg.cells).any(|(s, &id)| s.id != id) || scored.len() > cfg.cells.len() {
        bail!(
            "{} does not list the cells of config.json in order",
            scores_path.display()
        );
    }
    let mut seconds = read_seconds(out)?;
    let todo: Vec<BenchCell> = cfg.cells[scored.len()..]
        .iter()
        .map(|&id| BenchCell::from_id(id))
        .collect::<Result<_, _>>()?;
    let batches = score_batches(&cfg.setup, data, device)?;
    if !todo.is_empty() {
        let secs = score_cells(
            &cfg.setup,
            &cfg.proxies,
            &todo,
            &batches,
            device,
            progress,
            |i, s| {
                scored.push(ScoredCell {
                    id: todo[i].id(),
                    scores: s,
                });
                write_atomic(&scores_path, scores_csv(table, &names, &scored)?.as_bytes())
            },
        )?;
        add_seconds(&mut seconds, &secs);
        write_atomic(
            &out.join("seconds.json"),
            &serde_json::to_vec_pretty(&seconds)?,
        )?;
    }
    // Width transfer: the transfer cells at each wider width (not resumable: short).
    let mut transfer = Vec::new();
    let base: Vec<&ScoredCell> = cfg
        .transfer_cells
        .iter()
        .filter_map(|id| scored.iter().find(|s| s.id == *id))
        .collect();
    let cells: Vec<BenchCell> = base
        .iter()
        .map(|s| BenchCell::from_id(s.id))
        .collect::<Result<_, _>>()?;
    let mut transfer_csv = String::from("factor,id");
    for n in &names {
        transfer_csv.push(',');
        transfer_csv.push_str(n);
    }
    transfer_csv.push('\n');
    let factors: &[f64] = if cells.is_empty() {
        &[]
    } else {
        &cfg.transfer_factors
    };
    for &factor in factors {
        let mut wide = cfg.setup.clone();
        wide.net.shape.c1 = ((cfg.setup.net.shape.c1 as f64) * factor).round().max(1.0) as usize;
        wide.net.shape.c2 = ((cfg.setup.net.shape.c2 as f64) * factor).round().max(1.0) as usize;
        let mut wide_scores = Vec::new();
        score_cells(
            &wide,
            &cfg.proxies,
            &cells,
            &batches,
            device,
            progress,
            |_, s| {
                wide_scores.push(s);
                Ok(())
            },
        )?;
        for (c, s) in cells.iter().zip(&wide_scores) {
            transfer_csv.push_str(&format!("{factor},{}", c.id()));
            for v in s {
                transfer_csv.push_str(&format!(",{v}"));
            }
            transfer_csv.push('\n');
        }
        let acc: Vec<f64> = cells
            .iter()
            .map(|c| table.get(c.id()).map_or(f64::NAN, |r| r.test_acc))
            .collect();
        for (k, name) in names.iter().enumerate() {
            let a: Vec<f64> = base.iter().map(|s| s.scores[k]).collect();
            let b: Vec<f64> = wide_scores.iter().map(|s| s[k]).collect();
            transfer.push(Transfer {
                proxy: name.clone(),
                factor,
                channels: [wide.net.shape.c1, wide.net.shape.c2],
                cells: cells.len(),
                tau_between_widths: stats::bootstrap(
                    &a,
                    &b,
                    stats::kendall_tau_b,
                    cfg.bootstrap,
                    cfg.setup.seed,
                ),
                tau_vs_accuracy: stats::kendall_tau_b(&b, &acc),
                tau_vs_accuracy_base: stats::kendall_tau_b(&a, &acc),
            });
        }
    }
    if !factors.is_empty() {
        write_atomic(&out.join("transfer.csv"), transfer_csv.as_bytes())?;
    }
    let mut all_stats = Vec::new();
    for split in [Split::HeldOut, Split::Dev] {
        all_stats.extend(proxy_stats(
            table,
            &names,
            &scored,
            split,
            cfg.bootstrap,
            cfg.setup.seed,
        )?);
    }
    let report = ProxyReport {
        format: REPORT_FORMAT.to_string(),
        config: cfg.clone(),
        stats: all_stats,
        transfer,
        seconds,
    };
    write_atomic(
        &out.join("report.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    write_atomic(&out.join("report.md"), report_markdown(&report).as_bytes())?;
    for (k, name) in names.iter().enumerate() {
        let svg = scatter_svg(table, name, &scored, k)?;
        write_atomic(&out.join(format!("scatter-{name}.svg")), svg.as_bytes())?;
    }
    Ok(report)
}

/// `scores.csv`: the header and one row per scored cell.
fn scores_csv(table: &Table, names: &[String], scored: &[ScoredCell]) -> Result<String> {
    let mut s = String::from("id,split,test_acc");
    for n in names {
        s.push(',');
        s.push_str(n);
    }
    s.push('\n');
    for c in scored {
        let r = table
            .get(c.id)
            .with_context(|| format!("cell {} is not in the table", c.id))?;
        let split = match Split::of(c.id) {
            Split::Dev => "dev",
            Split::HeldOut => "held-out",
        };
        s.push_str(&format!("{},{split},{}", c.id, r.test_acc));
        for v in &c.scores {
            s.push_str(&format!(",{v}"));
        }
        s.push('\n');
    }
    Ok(s)
}

/// Reads back `scores.csv` (the header must name `names`).
fn read_scores(path: &Path, names: &[String]) -> Result<Vec<ScoredCell>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let want: Vec<&str> = ["id", "split", "test_acc"]
        .into_iter()
        .chain(names.iter().map(String::as_str))
        .collect();
    if header != want {
        bail!(
            "{}: header `{}` is not `{}`",
            path.display(),
            header.join(","),
            want.join(",")
        );
    }
    lines
        .enumerate()
        .map(|(i, l)| {
            let f: Vec<&str> = l.split(',').collect();
            let bad = || format!("{}, line {}: malformed row `{l}`", path.display(), i + 2);
            if f.len() != want.len() {
                bail!(bad());
            }
            let id: u32 = f[0].parse().with_context(bad)?;
            let scores = f[3..]
                .iter()
                .map(|v| v.parse::<f64>())
                .collect::<Result<Vec<_>, _>>()
                .with_context(bad)?;
            Ok(ScoredCell { id, scores })
        })
        .collect()
}

/// Seconds per proxy of earlier processes of a resumed run.
fn read_seconds(out: &Path) -> Result<Vec<(Proxy, f64)>> {
    let p = out.join("seconds.json");
    if !p.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("{} is not valid", p.display()))
}

fn add_seconds(total: &mut Vec<(Proxy, f64)>, more: &[(Proxy, f64)]) {
    for &(p, s) in more {
        match total.iter_mut().find(|(q, _)| *q == p) {
            Some((_, t)) => *t += s,
            None => total.push((p, s)),
        }
    }
}

/// The report as Markdown: the settings, the statistics table and the width transfer.
pub fn report_markdown(r: &ProxyReport) -> String {
    let c = &r.config;
    let n = &c.setup.net;
    let mut s =
        format!(
        "# Proxies against SpikeNAS-Bench\n\n{} cells ({} held out: id % 5 == 0), C1/C2 {}/{}, \
         T {}, H {}, batch {}, {} repeat(s), weights {:?}, seed {}; table {}; data {}.\n\n\
         Figures to report are the held-out rows; the development rows are where settings \
         were chosen.\n\n",
        c.cells.len(),
        c.cells.iter().filter(|&&i| Split::of(i) == Split::HeldOut).count(),
        n.shape.c1,
        n.shape.c2,
        n.shape.timesteps,
        n.shape.hidden,
        c.setup.batch,
        c.setup.repeats,
        c.setup.weights,
        c.setup.seed,
        c.table,
        c.data,
    );
    s.push_str(&stats_markdown(&r.stats));
    if !r.transfer.is_empty() {
        s.push_str(
            "\n## Width transfer\n\n| proxy | factor | C1/C2 | cells | tau between widths [95% CI] | tau vs acc. (wide) | tau vs acc. (base) |\n|---|---|---|---|---|---|---|\n",
        );
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        for t in &r.transfer {
            s.push_str(&format!(
                "| {} | {} | {}/{} | {} | {} | {} | {} |\n",
                t.proxy,
                t.factor,
                t.channels[0],
                t.channels[1],
                t.cells,
                t.tau_between_widths,
                opt(t.tau_vs_accuracy),
                opt(t.tau_vs_accuracy_base)
            ));
        }
    }
    s.push_str("\n## Time\n\n| proxy | seconds (all cells) |\n|---|---|\n");
    for (p, t) in &r.seconds {
        s.push_str(&format!("| {} | {t:.1} |\n", p.name()));
    }
    s
}
