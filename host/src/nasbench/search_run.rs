//! `lightsnn bench nas-search`: every search method run in the benchmark's space over several
//! seeds, its cell looked up in the table — the paper's Table 1 on ground truth.
//!
//! Methods ([`MethodSpec`]): the pruning search, SNASNet's random search (K candidates),
//! one uniformly random cell (the floor), and regularized evolution reading the table's
//! validation accuracy (the anchor). The scoring methods run at the configured width on the
//! CPU engine (or Candle on a GPU) exactly as `lightsnn search` does.
//!
//! # The run folder
//! - `config.json` ([`SearchRunConfig`]), written first; a resume needs the same one.
//! - `runs.json`: every finished run, rewritten atomically after each (the commit point).
//! - `report.json`, `report.md`, `cdf.svg`: written when every run is done. The report ends
//!   with the table's own run-to-run noise ([`noise`]), which bounds what any difference
//!   between methods can mean.

use super::cell_id::BenchCell;
use super::evolution::{random_cell, regularized_evolution, EvolutionConfig};
use super::method_stats::{cdf_svg, summarize, summary_markdown, MethodRun, MethodSummary};
use super::noise::{self, TwinNoise};
use super::table::Table;
use crate::config::NetConfig;
use crate::data::Dataset;
use crate::fsutil::write_atomic;
use crate::progress::Progress;
use crate::search::{run_search, KernelPath, Method, ScoreKind, SearchSetup, Thresholds};
use anyhow::{bail, Context, Result};
use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// Format tag of `config.json`.
pub const CONFIG_FORMAT: &str = "lightsnn-bench-nas-search/1";
/// Format tag of `runs.json`.
pub const RUNS_FORMAT: &str = "lightsnn-bench-nas-search-runs/1";
/// Format tag of `report.json`.
pub const REPORT_FORMAT: &str = "lightsnn-bench-nas-search-report/1";

/// A search method of the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "method")]
pub enum MethodSpec {
    /// Pruning by importance (LightSNN), `lightsnn search --method prune --score S
    /// --thresholds T`.
    Prune {
        /// The score's kernel (`prune` is SAHD, `prune-naswot` NASWOT's).
        #[serde(default, skip_serializing_if = "ScoreKind::is_sahd")]
        score: ScoreKind,
        /// How the conv thresholds are chosen (`prune-spread`: by the rate spread, after the
        /// op kinds).
        #[serde(default, skip_serializing_if = "Thresholds::is_joint")]
        thresholds: Thresholds,
    },
    /// SNASNet's random search over `candidates` cells, `lightsnn search --method random`.
    Random {
        /// Candidates scored.
        candidates: usize,
    },
    /// One uniformly random cell: the floor.
    Uniform,
    /// Regularized evolution on the table's validation accuracy.
    Evolution {
        /// Table queries.
        queries: usize,
    },
}

impl MethodSpec {
    /// The label in reports: `prune`, `random-1000`, `uniform`, `evolution-100`.
    pub fn label(&self) -> String {
        match self {
            MethodSpec::Prune { score, thresholds } => {
                let mut l = String::from("prune");
                if !score.is_sahd() {
                    l = format!("{l}-{}", score.name());
                }
                if !thresholds.is_joint() {
                    l = format!("{l}-{}", thresholds.name());
                }
                l
            }
            MethodSpec::Random { candidates } => format!("random-{candidates}"),
            MethodSpec::Uniform => "uniform".into(),
            MethodSpec::Evolution { queries } => format!("evolution-{queries}"),
        }
    }

    /// Whether the method is a scoring search, whose wall time is its cost (evolution and the
    /// uniform draw only look cells up in the table).
    pub fn is_search(&self) -> bool {
        matches!(self, MethodSpec::Prune { .. } | MethodSpec::Random { .. })
    }

    /// Parses a label (`prune`, `random-K`, `uniform`, `evolution-Q`).
    pub fn parse(s: &str) -> Result<MethodSpec> {
        let num = |rest: &str| -> Result<usize> {
            rest.parse()
                .with_context(|| format!("`{s}`: expected a number after the dash"))
        };
        let prune = |score, thresholds| MethodSpec::Prune { score, thresholds };
        Ok(match s {
            "prune" => prune(ScoreKind::Sahd, Thresholds::Joint),
            "prune-naswot" => prune(ScoreKind::Naswot, Thresholds::Joint),
            "prune-spread" => prune(ScoreKind::Sahd, Thresholds::Spread),
            "prune-naswot-spread" => prune(ScoreKind::Naswot, Thresholds::Spread),
            "uniform" => MethodSpec::Uniform,
            _ => match s.split_once('-') {
                Some(("random", k)) => MethodSpec::Random {
                    candidates: num(k)?,
                },
                Some(("evolution", q)) => MethodSpec::Evolution { queries: num(q)? },
                _ => bail!(
                    "unknown method `{s}` (prune, prune-naswot, prune-spread, \
                     prune-naswot-spread, random-K, uniform, evolution-Q, e.g. random-1000)"
                ),
            },
        })
    }
}

/// Everything the comparison runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchRunConfig {
    /// Always [`CONFIG_FORMAT`].
    pub format: String,
    /// The network of the scoring searches (the benchmark preset at the chosen width).
    pub net: NetConfig,
    /// Search batch of the pruning search.
    pub prune_batch: usize,
    /// Search batch of SNASNet's random search.
    pub random_batch: usize,
    /// Score repeats of every scoring search; `None`: each its own default
    /// ([`Thresholds::default_repeats`]).
    pub repeats: Option<usize>,
    /// The seeds; every method runs once per seed.
    pub seeds: Vec<u64>,
    /// The methods, in report order.
    pub methods: Vec<MethodSpec>,
    /// Population and tournament size of evolution (its queries are per method).
    pub evolution: EvolutionConfig,
    /// The data of the scoring searches, as given.
    pub data: String,
    /// The table, as given.
    pub table: String,
}

/// The finished comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchRunReport {
    /// Always [`REPORT_FORMAT`].
    pub format: String,
    /// The configuration.
    pub config: SearchRunConfig,
    /// Per method, over the seeds.
    pub summaries: Vec<MethodSummary>,
    /// Every run.
    pub runs: Vec<MethodRun>,
    /// The table's own run-to-run noise, from its isomorphic twins (`None` if it holds none).
    #[serde(default)]
    pub noise: Option<TwinNoise>,
}

#[derive(Serialize, Deserialize)]
struct RunsFile {
    format: String,
    runs: Vec<MethodRun>,
}

/// Runs one method with one seed; returns the found cell and its evaluation count.
fn run_method(
    cfg: &SearchRunConfig,
    m: MethodSpec,
    seed: u64,
    table: &Table,
    data: &Dataset,
    device: &Device,
) -> Result<(BenchCell, Option<usize>)> {
    let search = |method: Method,
                  score: ScoreKind,
                  thresholds: Thresholds,
                  batch: usize,
                  samples: usize|
     -> Result<_> {
        let setup = SearchSetup {
            net: cfg.net.clone(),
            batch,
            repeats: cfg.repeats.unwrap_or(thresholds.default_repeats()),
            seed,
            method,
            score,
            thresholds,
            random_samples: samples,
            kernel_path: KernelPath::for_device(device),
            candidates_per_pass: 0,
            data_label: cfg.data.clone(),
            fit: None,
        };
        let report = run_search(&setup, data, device, &crate::progress::NoProgress)?;
        let cell = BenchCell::parse_genotype(&report.genotype).with_context(|| {
            format!(
                "the search returned `{}`, not a cell of the benchmark",
                report.genotype
            )
        })?;
        let scorings: usize = report.rounds.iter().map(|r| r.scores.len()).sum();
        Ok((cell, scorings))
    };
    Ok(match m {
        MethodSpec::Prune { score, thresholds } => {
            let (cell, scorings) = search(Method::Prune, score, thresholds, cfg.prune_batch, 0)?;
            (cell, Some(scorings))
        }
        MethodSpec::Random { candidates } => (
            search(
                Method::Random,
                ScoreKind::Sahd,
                Thresholds::Joint,
                cfg.random_batch,
                candidates,
            )?
            .0,
            Some(candidates),
        ),
        MethodSpec::Uniform => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (random_cell(&mut rng), None)
        }
        MethodSpec::Evolution { queries } => {
            let e = EvolutionConfig {
                queries,
                ..cfg.evolution
            };
            let r = regularized_evolution(table, e, seed);
            (r.best, Some(r.queries))
        }
    })
}

/// Runs (or resumes) the comparison into folder `out`.
pub fn run(
    cfg: &SearchRunConfig,
    table: &Table,
    data: &Dataset,
    device: &Device,
    out: &Path,
    resume: bool,
    progress: &dyn Progress,
) -> Result<SearchRunReport> {
    if !table.is_complete() {
        bail!(
            "{} holds {} of the benchmark's 15,625 cells: the comparison needs the whole table \
             (every method may find any cell)",
            table.source().display(),
            table.len()
        );
    }
    super::open_run_config(
        out,
        cfg,
        CONFIG_FORMAT,
        "a `lightsnn bench nas-search` run",
        resume,
    )?;
    let runs_path = out.join("runs.json");
    let mut runs: Vec<MethodRun> = if resume && runs_path.exists() {
        let f: RunsFile = crate::fsutil::read_format_json(
            out,
            "runs.json",
            RUNS_FORMAT,
            "a `lightsnn bench nas-search` run",
        )?;
        f.runs
    } else {
        Vec::new()
    };
    let plan: Vec<(MethodSpec, u64)> = cfg
        .methods
        .iter()
        .flat_map(|&m| cfg.seeds.iter().map(move |&s| (m, s)))
        .collect();
    if runs.len() > plan.len()
        || runs
            .iter()
            .zip(&plan)
            .any(|(r, (m, s))| r.method != m.label() || r.seed != *s)
    {
        bail!("{} does not match config.json", runs_path.display());
    }
    progress.start(plan.len() as u64, "search runs");
    progress.advance(runs.len() as u64);
    for &(m, seed) in &plan[runs.len()..] {
        let t0 = Instant::now();
        let (cell, evaluations) = run_method(cfg, m, seed, table, data, device)?;
        let seconds = t0.elapsed().as_secs_f64();
        let acc = table.get(cell.id()).map_or(f64::NAN, |r| r.test_acc);
        progress.note(&format!(
            "{} seed {seed}: {} (id {}), test accuracy {acc:.2}% ({seconds:.1} s)",
            m.label(),
            cell.genotype_string(),
            cell.id()
        ));
        runs.push(MethodRun {
            method: m.label(),
            seed,
            cell,
            seconds,
            evaluations,
        });
        let file = RunsFile {
            format: RUNS_FORMAT.to_string(),
            runs: runs.clone(),
        };
        write_atomic(&runs_path, &serde_json::to_vec_pretty(&file)?)?;
        progress.advance(1);
    }
    progress.finish();
    let timed: Vec<String> = cfg
        .methods
        .iter()
        .filter(|m| m.is_search())
        .map(MethodSpec::label)
        .collect();
    let prune = MethodSpec::Prune {
        score: ScoreKind::Sahd,
        thresholds: Thresholds::Joint,
    }
    .label();
    let summaries = summarize(table, &runs, &timed, &prune)?;
    let report = SearchRunReport {
        format: REPORT_FORMAT.to_string(),
        config: cfg.clone(),
        summaries,
        runs,
        noise: noise::measure(table),
    };
    write_atomic(
        &out.join("report.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    write_atomic(&out.join("report.md"), report_markdown(&report).as_bytes())?;
    write_atomic(
        &out.join("cdf.svg"),
        cdf_svg(table, &report.runs)?.as_bytes(),
    )?;
    Ok(report)
}

/// The report as Markdown: the settings and the method table.
pub fn report_markdown(r: &SearchRunReport) -> String {
    let c = &r.config;
    let mut s = format!(
        "# Search methods on SpikeNAS-Bench\n\nSeeds {:?}; scoring searches at C1/C2 {}/{}, \
         T {}, H {}, pruning batch {}, random-search batch {}, {}; evolution \
         population {}, tournament {}; table {}; data {}.\n\n",
        c.seeds,
        c.net.shape.c1,
        c.net.shape.c2,
        c.net.shape.timesteps,
        c.net.shape.hidden,
        c.prune_batch,
        c.random_batch,
        match c.repeats {
            Some(r) => format!("{r} repeat(s)"),
            None => format!(
                "{} repeats ({} for the two-stage pruning)",
                Thresholds::Joint.default_repeats(),
                Thresholds::Spread.default_repeats()
            ),
        },
        c.evolution.population,
        c.evolution.sample,
        c.table,
        c.data
    );
    s.push_str(&summary_markdown(&r.summaries));
    if let Some(n) = &r.noise {
        s.push('\n');
        s.push_str(&noise::markdown(n));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_round_trip() {
        for m in [
            MethodSpec::Prune {
                score: ScoreKind::Sahd,
                thresholds: Thresholds::Joint,
            },
            MethodSpec::Prune {
                score: ScoreKind::Naswot,
                thresholds: Thresholds::Joint,
            },
            MethodSpec::Prune {
                score: ScoreKind::Sahd,
                thresholds: Thresholds::Spread,
            },
            MethodSpec::Prune {
                score: ScoreKind::Naswot,
                thresholds: Thresholds::Spread,
            },
            MethodSpec::Random { candidates: 1000 },
            MethodSpec::Uniform,
            MethodSpec::Evolution { queries: 100 },
        ] {
            assert_eq!(MethodSpec::parse(&m.label()).unwrap(), m);
        }
        assert_eq!(
            MethodSpec::Prune {
                score: ScoreKind::Sahd,
                thresholds: Thresholds::Spread,
            }
            .label(),
            "prune-spread"
        );
        assert!(MethodSpec::parse("random-x").is_err());
        assert!(MethodSpec::parse("annealing").is_err());
    }

    /// Without `--repeats` each search takes its own default, and the report says which; a
    /// configuration written when the repeats were always a number (every shipped report's)
    /// reads back as that number.
    #[test]
    fn repeats_default_per_search() {
        use crate::config::{Overrides, Preset};
        let net = NetConfig::for_preset_or_dataset(
            Some(Preset::SpikenasBench),
            None,
            &Overrides::default(),
        )
        .unwrap();
        let config = SearchRunConfig {
            format: CONFIG_FORMAT.to_string(),
            net,
            prune_batch: 32,
            random_batch: 32,
            repeats: None,
            seeds: vec![0],
            methods: vec![MethodSpec::Uniform],
            evolution: EvolutionConfig::default(),
            data: "data".into(),
            table: "table".into(),
        };
        let report = |config: &SearchRunConfig| SearchRunReport {
            format: REPORT_FORMAT.to_string(),
            config: config.clone(),
            summaries: vec![],
            runs: vec![],
            noise: None,
        };
        let md = report_markdown(&report(&config));
        assert!(
            md.contains(", 2 repeats (4 for the two-stage pruning);"),
            "{md}"
        );
        let mut v = serde_json::to_value(&config).unwrap();
        v["repeats"] = 3.into();
        let old: SearchRunConfig = serde_json::from_value(v).unwrap();
        assert_eq!(old.repeats, Some(3));
        assert!(report_markdown(&report(&old)).contains(", 3 repeat(s);"));
    }
}
