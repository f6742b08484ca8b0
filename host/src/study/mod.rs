//! `lightsnn study`: does the search find networks that train better than random ones?
//!
//! A study trains, with one fixed budget (same epochs, width, T, training seed and data):
//! - the cell found by the pruning search (`prune`),
//! - the cell found by the random-search baseline (`random-search`),
//! - K random cells of the search space (`random-00` ..), drawn uniformly among the genotypes
//!   whose cell has a forward path from input to output (a cell without one outputs nothing),
//! - the pruning cell again with further training seeds (`prune-seed1` ..): the noise floor.
//!
//! Each cell gets its SAHD score on its own untrained single-path network (mean and standard
//! deviation over the score repeats), a test top-1 and a test SAR. Then [`report`] relates score
//! to accuracy (Kendall's tau-b and Spearman's rho with bootstrap intervals, [`crate::stats`]) and
//! ranks the found cells among the random ones.
//!
//! # The study folder
//! - `study.json`: the configuration ([`StudyFile`]), written first; `--resume DIR` reads it.
//! - `search-prune.json`, `search-random.json`: the two searches, each written when done.
//! - `cells/<id>/run/`: the cell's training run (resumable on its own, see [`crate::train`]);
//!   `cells/<id>/result.json`: the cell's [`CellResult`], the commit point of the cell.
//! - `report.json`, `cells.csv`, `scatter.svg`: rewritten after every cell.
//!
//! Every file is written atomically. A study killed anywhere resumes with
//! `lightsnn study --resume DIR`: finished cells (with a `result.json`) are read back, not
//! retrained; a cell killed mid-training continues from its last epoch.

pub mod report;

use crate::config::NetConfig;
use crate::data::{Dataset, DatasetKind, Split};
use crate::fsutil::write_atomic;
use crate::model::{Mixing, Network};
use crate::progress::{NoProgress, Progress};
use crate::search::batches::{draw_batches, round_batch_seed};
use crate::search::{
    run_search, KernelPath, Method, Scorer, SearchReport, SearchSetup, Thresholds,
};
use crate::train::{self, LinearInit, LossKind, RunControl, SgdConfig, TrainConfig};
use anyhow::{bail, Context, Result};
use candle_core::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use snn_nostd::genotype::{Genotype, Op};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Format tag of `study.json`.
pub const STUDY_FORMAT: &str = "lightsnn-study/1";
/// Format tag of a cell's `result.json`.
pub const CELL_FORMAT: &str = "lightsnn-study-cell/1";

/// File names inside a study folder.
pub mod files {
    /// The files written at the top of the folder.
    pub const WRITTEN: [&str; 7] = [
        STUDY,
        SEARCH_PRUNE,
        SEARCH_RANDOM,
        REPORT,
        CSV,
        SCATTER,
        CELLS,
    ];
    /// The configuration.
    pub const STUDY: &str = "study.json";
    /// The pruning search.
    pub const SEARCH_PRUNE: &str = "search-prune.json";
    /// The random-search baseline.
    pub const SEARCH_RANDOM: &str = "search-random.json";
    /// Folder of the cells.
    pub const CELLS: &str = "cells";
    /// A cell's result, inside its folder.
    pub const RESULT: &str = "result.json";
    /// The summary.
    pub const REPORT: &str = "report.json";
    /// One row per cell.
    pub const CSV: &str = "cells.csv";
    /// Score against accuracy.
    pub const SCATTER: &str = "scatter.svg";
}

/// Everything that defines a study (recorded in `study.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyConfig {
    /// The network every cell is trained (and searched and scored) in.
    pub net: NetConfig,
    /// Dataset folder in the official layout.
    pub data: PathBuf,
    /// Training samples used (a seeded subset of the training split; `None` = all).
    pub train_samples: Option<usize>,
    /// Test samples evaluated (the first ones of the test split; `None` = all).
    pub test_samples: Option<usize>,
    /// Random cells K.
    pub random_cells: usize,
    /// Extra training seeds of the found cell (the noise floor); 2 gives 3 runs in all.
    pub noise_seeds: usize,
    /// Training epochs of every cell.
    pub epochs: usize,
    /// Training batch size.
    pub train_batch: usize,
    /// Learning rate.
    pub lr: f64,
    /// Training loss.
    pub loss: LossKind,
    /// Search and score batch size N.
    pub search_batch: usize,
    /// Search repeats R.
    pub search_repeats: usize,
    /// Repeats of each cell's own score (its mean and standard deviation).
    pub score_repeats: usize,
    /// Genotypes the random-search baseline scores.
    pub random_samples: usize,
    /// Which random-search baseline (studies written before this field existed used the
    /// shared-weights variant, `random-shared`).
    #[serde(default = "legacy_baseline")]
    pub random_method: RandomBaseline,
    /// Search batch size of the random-search baseline (SNASNet's is 256; missing in older
    /// studies, which used `search_batch`).
    #[serde(default)]
    pub random_batch: Option<usize>,
    /// Master seed: searches, cell draw, weights and training.
    pub seed: u64,
    /// Bootstrap resamples of the correlation intervals.
    pub bootstrap: usize,
}

impl StudyConfig {
    /// The first impossible number: `(its study.json field, its flag, what is wrong)`.
    fn first_problem(&self) -> Option<(&'static str, &'static str, String)> {
        let at_least = |n: usize| format!("must be at least {n}");
        let pairs = "must be at least 2: the SAHD kernel compares pairs of samples";
        let checks: [(bool, &'static str, &'static str, String); 10] = [
            (self.epochs == 0, "epochs", "--epochs", at_least(1)),
            (
                self.train_batch == 0,
                "train_batch",
                "--train-batch",
                at_least(1),
            ),
            (
                self.search_batch < 2,
                "search_batch",
                "--search-batch",
                pairs.into(),
            ),
            (
                self.random_batch.is_some_and(|b| b < 2),
                "random_batch",
                "--random-batch",
                pairs.into(),
            ),
            (
                self.search_repeats == 0,
                "search_repeats",
                "--search-repeats",
                at_least(1),
            ),
            (
                self.score_repeats == 0,
                "score_repeats",
                "--score-repeats",
                at_least(1),
            ),
            (
                self.random_samples == 0,
                "random_samples",
                "--random-samples",
                at_least(1),
            ),
            (
                self.train_samples.is_some_and(|n| n < 10),
                "train_samples",
                "--train-samples",
                at_least(10),
            ),
            (
                self.test_samples == Some(0),
                "test_samples",
                "--test-samples",
                at_least(1),
            ),
            (
                !(self.lr.is_finite() && self.lr > 0.0),
                "lr",
                "--lr",
                format!("must be a positive number, got {}", self.lr),
            ),
        ];
        checks
            .into_iter()
            .find(|c| c.0)
            .map(|(_, field, flag, problem)| (field, flag, problem))
    }

    /// Checks the numbers, naming the flags that gave them.
    pub fn validate(&self) -> Result<()> {
        self.net.validate()?;
        if let Some((_, flag, problem)) = self.first_problem() {
            bail!("{flag} {problem}");
        }
        Ok(())
    }

    /// Checks the numbers of a configuration recorded in `file` (`study.json`), naming its
    /// fields.
    pub fn validate_recorded(&self, file: &Path) -> Result<()> {
        let f = file.display();
        self.net
            .validate()
            .with_context(|| format!("{f}: config.net"))?;
        if let Some((field, _, problem)) = self.first_problem() {
            bail!("{f}: config.{field} {problem}");
        }
        Ok(())
    }
}

/// The random-search baseline of a study.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum RandomBaseline {
    /// SNASNet's procedure (`lightsnn search --method random`).
    Snasnet,
    /// Independent edges, shared weights and batches (`--method random-shared`).
    Shared,
}

impl RandomBaseline {
    /// The search method it runs.
    pub fn method(self) -> Method {
        match self {
            RandomBaseline::Snasnet => Method::Random,
            RandomBaseline::Shared => Method::RandomShared,
        }
    }
}

fn legacy_baseline() -> RandomBaseline {
    RandomBaseline::Shared
}

/// `study.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyFile {
    /// Always [`STUDY_FORMAT`].
    pub format: String,
    /// The configuration.
    pub config: StudyConfig,
    /// lightsnn version that started the study.
    pub version: String,
}

/// What a cell is in the study.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CellKind {
    /// Found by the pruning search.
    Prune,
    /// Found by the random-search baseline.
    RandomSearch,
    /// Drawn at random from the search space.
    Random,
    /// The pruning search's cell trained with another seed.
    NoiseSeed,
}

/// One cell to train.
#[derive(Clone, Debug, PartialEq)]
pub struct CellPlan {
    /// Folder name, e.g. `random-07`.
    pub id: String,
    /// Its role.
    pub kind: CellKind,
    /// The genotype.
    pub genotype: Genotype,
    /// Training seed (weights, split, shuffling).
    pub train_seed: u64,
}

/// A finished cell (`cells/<id>/result.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    /// Always [`CELL_FORMAT`].
    pub format: String,
    /// Folder name.
    pub id: String,
    /// Role.
    pub kind: CellKind,
    /// Genotype.
    pub genotype: String,
    /// Training seed.
    pub train_seed: u64,
    /// SAHD score (ln|det K|) of the untrained single-path network on each score batch.
    pub scores: Vec<f64>,
    /// Their mean.
    pub score_mean: f64,
    /// Their sample standard deviation.
    pub score_std: f64,
    /// Test top-1 (0..1) of the best validation epoch's weights.
    pub test_top1: f64,
    /// Test SAR.
    pub test_sar: f64,
    /// Best validation top-1.
    pub val_top1: f64,
    /// The epoch it came from.
    pub best_epoch: usize,
    /// Wall time of scoring, training and evaluation, in seconds.
    pub wall_s: f64,
}

/// The random cells: `k` distinct genotypes drawn uniformly from `cfg`'s op set on every edge,
/// keeping only cells with a forward input-to-output path ([`has_forward_path`]).
pub fn random_cells(cfg: &NetConfig, k: usize, seed: u64) -> Result<Vec<Genotype>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5354_5544_5943_454c);
    let ops = cfg.ops.ops();
    let mut out: Vec<Genotype> = Vec::new();
    let mut tries = 0usize;
    while out.len() < k {
        tries += 1;
        if tries > 1000 * (k + 1) {
            bail!(
                "cannot draw {k} distinct connected cells from the op set {}",
                cfg.ops
            );
        }
        let pick: Vec<Op> = (0..cfg.cell.num_edges())
            .map(|_| ops[rng.gen_range(0..ops.len())])
            .collect();
        let g = Genotype::new(cfg.cell, &pick)?;
        if has_forward_path(&g) && !out.contains(&g) {
            out.push(g);
        }
    }
    Ok(out)
}

/// Whether the cell's output node x3 is reachable from its input x0 through forward edges
/// whose op is not `zero`. Backward edges only carry values to lower nodes, so no path can
/// use them to reach x3; a cell without such a path outputs zero at every timestep.
pub fn has_forward_path(g: &Genotype) -> bool {
    let mut reach = [true, false, false, false];
    // forward edges go from a lower to a higher node: one pass in node order suffices
    for to in 1..4u8 {
        for (e, op) in g.edges() {
            if e.to == to && !e.is_backward() && op != Op::Zero && reach[e.from as usize] {
                reach[to as usize] = true;
            }
        }
    }
    reach[3]
}

/// Starts a new study in `dir` (refused if it already holds one) or, with `resume`, continues
/// the one there (`cfg` is then taken from `study.json`). Returns the final report. The two
/// searches report to `progress` (its prefix names the search); with `quiet`, nothing is
/// reported or printed.
pub fn run_study(
    dir: &Path,
    cfg: Option<&StudyConfig>,
    device: &Device,
    quiet: bool,
    progress: &dyn Progress,
) -> Result<report::StudyReport> {
    let progress: &dyn Progress = if quiet { &NoProgress } else { progress };
    let new = cfg.is_some();
    let cfg = match cfg {
        Some(c) => {
            c.validate()?;
            crate::fsutil::refuse_existing(dir, files::STUDY, "study")?;
            c.clone()
        }
        None => read_study(dir)?.config,
    };
    let say = |s: String| {
        if !quiet {
            println!("{s}");
        }
    };
    check_memory(&cfg, device).with_context(|| {
        if new {
            "the study".to_string()
        } else {
            format!("the study of {}", dir.join(files::STUDY).display())
        }
    })?;
    let (train_data, test_data) = load_data(&cfg)?;
    if !quiet {
        for w in train_data.warnings().iter().chain(test_data.warnings()) {
            eprintln!("warning: {w}");
        }
    }
    if new {
        // Only once the data is known good: a study that cannot start leaves no folder.
        std::fs::create_dir_all(dir.join(files::CELLS))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let file = StudyFile {
            format: STUDY_FORMAT.into(),
            config: cfg.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
        };
        write_atomic(&dir.join(files::STUDY), &serde_json::to_vec_pretty(&file)?)?;
    }
    say(format!(
        "lightsnn study: {} on {} ({} train / {} test samples) | C1/C2 {}/{}, H {}, T {} | {} epochs, batch {}, lr {} | {} random cells, {} noise seeds, seed {}",
        cfg.net.dataset,
        cfg.data.display(),
        train_data.len(),
        test_data.len(),
        cfg.net.shape.c1,
        cfg.net.shape.c2,
        cfg.net.shape.hidden,
        cfg.net.shape.timesteps,
        cfg.epochs,
        cfg.train_batch,
        cfg.lr,
        cfg.random_cells,
        cfg.noise_seeds,
        cfg.seed
    ));
    let prune = search_stage(dir, &cfg, Method::Prune, &train_data, device, progress)?;
    let random = search_stage(
        dir,
        &cfg,
        cfg.random_method.method(),
        &train_data,
        device,
        progress,
    )?;
    say(format!(
        "pruning search: {} ({:.1} s); random search ({}, {} samples): {} ({:.1} s)",
        prune.genotype,
        prune.wall_s,
        cfg.random_method.method().name(),
        cfg.random_samples,
        random.genotype,
        random.wall_s
    ));
    let plan = plan_cells(&cfg, &prune, &random)?;
    let mut results: Vec<CellResult> = Vec::new();
    for (i, cell) in plan.iter().enumerate() {
        let r = match read_result(dir, &cfg, cell)? {
            Some(r) => {
                say(format!(
                    "[{:>2}/{}] {:<14} done before: top-1 {:.2}%",
                    i + 1,
                    plan.len(),
                    cell.id,
                    100.0 * r.test_top1
                ));
                r
            }
            None => {
                let r = run_cell(dir, &cfg, cell, &train_data, &test_data, device)?;
                say(format!(
                    "[{:>2}/{}] {:<14} {} | score {:.3} +- {:.3} | test top-1 {:.2}% SAR {:.4} | {:.0} s",
                    i + 1,
                    plan.len(),
                    cell.id,
                    r.genotype,
                    r.score_mean,
                    r.score_std,
                    100.0 * r.test_top1,
                    r.test_sar,
                    r.wall_s
                ));
                r
            }
        };
        results.push(r);
        let rep = report::StudyReport::new(&cfg, &prune, &random, &results);
        rep.write(dir)?;
    }
    let rep = report::StudyReport::new(&cfg, &prune, &random, &results);
    rep.write(dir)?;
    Ok(rep)
}

/// Refuses a study whose cells' training or evaluation, or whose scoring, the machine cannot
/// hold (the searches check their own estimates), before any data is loaded.
fn check_memory(cfg: &StudyConfig, device: &Device) -> Result<()> {
    use crate::search::estimate::{check_network, frames_per_sample};
    use crate::search::{available_memory, Estimate, Pass};
    // the heaviest cell: a conv on every edge (or the op set's first op that is not zero)
    let op = [Op::Conv3, Op::Conv1]
        .into_iter()
        .find(|o| cfg.net.ops.ops().contains(o))
        .or_else(|| cfg.net.ops.ops().iter().copied().find(|&o| o != Op::Zero))
        .unwrap_or(Op::Zero);
    let heaviest = Genotype::new(cfg.net.cell, &vec![op; cfg.net.cell.num_edges()])?;
    let hint = "lower --train-batch, --width, --timesteps or --hidden";
    let frames = frames_per_sample(&cfg.net);
    let auto = train::fast::TrainPath::Auto;
    let pass = match train::select_path(auto, &cfg.net, &heaviest, frames, device)? {
        (Some(_), _) => Pass::TrainCpu,
        (None, _) => Pass::Train,
    };
    check_network(&cfg.net, &heaviest, cfg.train_batch, pass, device, hint)?;
    let eval_batch = cfg.train_batch.max(EVAL_MIN_BATCH);
    check_network(&cfg.net, &heaviest, eval_batch, Pass::Eval, device, hint)?;
    let alive: Vec<Vec<Op>> = heaviest.ops().iter().map(|&o| vec![o]).collect();
    let shape = (cfg.search_batch, cfg.score_repeats, frames);
    Estimate::for_scoring(
        &cfg.net,
        &alive,
        shape,
        KernelPath::for_device(device),
        device,
    )
    .check_memory_hint(
        available_memory(),
        "lower --search-batch, --score-repeats, --width or --timesteps",
    )
}

/// The smallest batch a cell is evaluated on.
const EVAL_MIN_BATCH: usize = 32;

/// Reads and checks `dir/study.json`.
pub fn read_study(dir: &Path) -> Result<StudyFile> {
    let file: StudyFile =
        crate::fsutil::read_format_json(dir, files::STUDY, STUDY_FORMAT, "a study folder")?;
    file.config.validate_recorded(&dir.join(files::STUDY))?;
    Ok(file)
}

/// The training subset (seeded) and the test subset (the first samples).
fn load_data(cfg: &StudyConfig) -> Result<(Dataset, Dataset)> {
    let t = cfg.net.shape.timesteps;
    let train = Dataset::load(cfg.net.dataset, &cfg.data, Split::Train, t)?;
    let test = Dataset::load(cfg.net.dataset, &cfg.data, Split::Test, t)?;
    let train = match cfg.train_samples {
        Some(n) if n < train.len() => {
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5355_4253_4554);
            let mut idx = rand::seq::index::sample(&mut rng, train.len(), n).into_vec();
            idx.sort_unstable();
            train.subset(&idx)
        }
        _ => train,
    };
    let test = match cfg.test_samples {
        Some(n) if n < test.len() => test.subset(&(0..n).collect::<Vec<_>>()),
        _ => test,
    };
    Ok((train, test))
}

/// The search of one method: read from its file if a previous invocation finished it, else run
/// and commit it.
fn search_stage(
    dir: &Path,
    cfg: &StudyConfig,
    method: Method,
    data: &Dataset,
    device: &Device,
    progress: &dyn Progress,
) -> Result<SearchReport> {
    let (name, batch) = match method {
        Method::Prune => (files::SEARCH_PRUNE, cfg.search_batch),
        Method::Random | Method::RandomShared => (
            files::SEARCH_RANDOM,
            cfg.random_batch.unwrap_or(cfg.search_batch),
        ),
    };
    let path = dir.join(name);
    if path.exists() {
        let text = crate::fsutil::read_input(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let r: SearchReport = serde_json::from_slice(&text).with_context(|| {
            format!(
                "{}: malformed search result; delete it to run that search again",
                path.display()
            )
        })?;
        check_search(&r, cfg, method, batch, &path)?;
        return Ok(r);
    }
    let setup = SearchSetup {
        net: cfg.net.clone(),
        batch,
        repeats: cfg.search_repeats,
        seed: cfg.seed,
        method,
        score: Default::default(),
        thresholds: Thresholds::default_for(method, cfg.net.ops.ops()),
        random_samples: cfg.random_samples,
        kernel_path: KernelPath::for_device(device),
        candidates_per_pass: 0,
        data_label: cfg.data.display().to_string(),
        fit: None,
    };
    progress.set_prefix(&format!("{} search", method.name()));
    let r = run_search(&setup, data, device, progress)?;
    write_atomic(&path, &serde_json::to_vec_pretty(&r)?)?;
    Ok(r)
}

/// Refuses a finished search (read from `path`) that was run under another configuration than
/// the study's (`study.json` edited after it ran), or whose result is not a finite score.
fn check_search(
    r: &SearchReport,
    cfg: &StudyConfig,
    method: Method,
    batch: usize,
    path: &Path,
) -> Result<()> {
    let mut differ = Vec::new();
    if r.config.net != cfg.net {
        differences(
            &serde_json::to_value(&r.config.net)?,
            &serde_json::to_value(&cfg.net)?,
            "net",
            &mut differ,
        );
    }
    let random_samples = method.is_random().then_some(cfg.random_samples);
    for (field, same) in [
        ("batch", r.config.batch == batch),
        ("repeats", r.config.repeats == cfg.search_repeats),
        ("method", r.config.method == method.name()),
        ("seed", r.seed == cfg.seed),
        ("random_samples", r.config.random_samples == random_samples),
        (
            "thresholds",
            r.config.thresholds == Thresholds::default_for(method, cfg.net.ops.ops()),
        ),
    ] {
        if !same {
            differ.push(field.to_string());
        }
    }
    if !differ.is_empty() {
        bail!(
            "{}: the search ran with other values of {} than {} gives; {} was changed after \
             the search ran: restore it, or start a new study",
            path.display(),
            differ.join(", "),
            files::STUDY,
            files::STUDY
        );
    }
    crate::search::run::check_result_scores(&r.rounds, r.best_score)
        .with_context(|| path.display().to_string())
}

/// The paths (`net.hidden`, `epochs`, ...) below `at` where two JSON values differ.
fn differences(a: &serde_json::Value, b: &serde_json::Value, at: &str, out: &mut Vec<String>) {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let null = serde_json::Value::Null;
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                differences(
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    &path,
                    out,
                );
            }
        }
        _ if a != b => out.push(at.to_string()),
        _ => {}
    }
}

/// Every cell of the study, in training order: the two found cells, the random cells, then the
/// noise-floor seeds.
pub fn plan_cells(
    cfg: &StudyConfig,
    prune: &SearchReport,
    random: &SearchReport,
) -> Result<Vec<CellPlan>> {
    let parse = |s: &str, what: &str| -> Result<Genotype> {
        let g: Genotype = s
            .parse()
            .with_context(|| format!("the {what} search's genotype {s:?}"))?;
        Ok(g)
    };
    let found = parse(&prune.genotype, "pruning")?;
    let mut plan = vec![
        CellPlan {
            id: "prune".into(),
            kind: CellKind::Prune,
            genotype: found.clone(),
            train_seed: cfg.seed,
        },
        CellPlan {
            id: "random-search".into(),
            kind: CellKind::RandomSearch,
            genotype: parse(&random.genotype, "random")?,
            train_seed: cfg.seed,
        },
    ];
    for (k, g) in random_cells(&cfg.net, cfg.random_cells, cfg.seed)?
        .into_iter()
        .enumerate()
    {
        plan.push(CellPlan {
            id: format!("random-{k:02}"),
            kind: CellKind::Random,
            genotype: g,
            train_seed: cfg.seed,
        });
    }
    for k in 1..=cfg.noise_seeds {
        plan.push(CellPlan {
            id: format!("prune-seed{k}"),
            kind: CellKind::NoiseSeed,
            genotype: found.clone(),
            train_seed: cfg.seed.wrapping_add(k as u64),
        });
    }
    Ok(plan)
}

fn cell_dir(dir: &Path, cell: &CellPlan) -> PathBuf {
    dir.join(files::CELLS).join(&cell.id)
}

/// A cell's committed result, checked against the plan and the study's configuration (its
/// values in range, its training run's configuration the one the study gives); `None` if the
/// cell is not finished.
fn read_result(dir: &Path, cfg: &StudyConfig, cell: &CellPlan) -> Result<Option<CellResult>> {
    let path = cell_dir(dir, cell).join(files::RESULT);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = crate::fsutil::read_input(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let r: CellResult = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{}: corrupt cell result; delete it to retrain the cell",
            path.display()
        )
    })?;
    if r.format != CELL_FORMAT || r.genotype != cell.genotype.to_string() || r.kind != cell.kind {
        bail!(
            "{}: holds {} ({:?}, format {:?}), but the study plans {} ({:?}) here; the folder belongs to another study",
            path.display(),
            r.genotype,
            r.kind,
            r.format,
            cell.genotype,
            cell.kind
        );
    }
    check_result(&r, cfg, cell).with_context(|| {
        format!(
            "{}: impossible cell result; delete it to retrain the cell",
            path.display()
        )
    })?;
    let run_dir = cell_dir(dir, cell).join("run");
    let state = train::TrainState::read(&run_dir).with_context(|| {
        format!(
            "{} cannot be checked against its training run; delete it to retrain the cell",
            path.display()
        )
    })?;
    let expected = cell_train_config(cfg, cell);
    if state.config != expected {
        let mut differ = Vec::new();
        differences(
            &serde_json::to_value(&state.config)?,
            &serde_json::to_value(&expected)?,
            "",
            &mut differ,
        );
        bail!(
            "{}: the cell was trained with other values of {} than {} gives; {} was changed \
             after the cell ran: restore it, or start a new study",
            run_dir.join(train::files::STATE).display(),
            differ.join(", "),
            files::STUDY,
            files::STUDY
        );
    }
    Ok(Some(r))
}

/// Range checks of a cell result read from a file.
fn check_result(r: &CellResult, cfg: &StudyConfig, cell: &CellPlan) -> Result<()> {
    let unit = |v: f64| (0.0..=1.0).contains(&v);
    for (name, v) in [
        ("test_top1", r.test_top1),
        ("test_sar", r.test_sar),
        ("val_top1", r.val_top1),
    ] {
        if !unit(v) {
            bail!("{name} {v} is not a fraction in 0..1");
        }
    }
    if r.id != cell.id || r.train_seed != cell.train_seed {
        bail!(
            "id {:?}, train_seed {}: the study plans {:?} with seed {} here",
            r.id,
            r.train_seed,
            cell.id,
            cell.train_seed
        );
    }
    if r.best_epoch == 0 || r.best_epoch > cfg.epochs {
        bail!(
            "best_epoch {} is not one of 1..={}",
            r.best_epoch,
            cfg.epochs
        );
    }
    if r.scores.len() != cfg.score_repeats || r.scores.iter().any(|s| !s.is_finite()) {
        bail!(
            "scores {:?}: expected {} finite scores",
            r.scores,
            cfg.score_repeats
        );
    }
    let (mean, std) = crate::stats::mean_std(&r.scores);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()));
    if !close(mean, r.score_mean) || !close(std, r.score_std) {
        bail!(
            "score_mean {} / score_std {} are not the mean and deviation of its scores ({mean} / {std})",
            r.score_mean,
            r.score_std
        );
    }
    if !(r.wall_s.is_finite() && r.wall_s >= 0.0) {
        bail!("wall_s {} is not a duration", r.wall_s);
    }
    Ok(())
}

/// Scores, trains and evaluates one cell, and commits its `result.json`.
fn run_cell(
    dir: &Path,
    cfg: &StudyConfig,
    cell: &CellPlan,
    train_data: &Dataset,
    test_data: &Dataset,
    device: &Device,
) -> Result<CellResult> {
    let start = Instant::now();
    let scores = cell_scores(cfg, &cell.genotype, train_data, device)?;
    if scores.iter().any(|s| !s.is_finite()) {
        bail!(
            "cell {} ({}): {}",
            cell.id,
            cell.genotype,
            crate::search::score::NOT_FINITE_HELP
        );
    }
    let (score_mean, score_std) = crate::stats::mean_std(&scores);
    let run_dir = cell_dir(dir, cell).join("run");
    let tcfg = cell_train_config(cfg, cell);
    let ctl = RunControl {
        resume: run_dir.join(train::files::STATE).exists(),
        stop_after: None,
        quiet: true,
        ..Default::default()
    };
    let outcome = train::train(&run_dir, &tcfg, train_data, device, &ctl, &NoProgress)
        .with_context(|| format!("training cell {} ({})", cell.id, cell.genotype))?;
    let best = outcome
        .best
        .context("training finished without a validation epoch")?;
    let (net, _) = train::load_checkpoint(&run_dir.join(train::files::BEST), device)?;
    let eval = train::evaluate(
        &net,
        &cell.genotype,
        test_data,
        cfg.train_batch.max(EVAL_MIN_BATCH),
        cfg.loss,
        false,
        &NoProgress,
    )?;
    let r = CellResult {
        format: CELL_FORMAT.into(),
        id: cell.id.clone(),
        kind: cell.kind,
        genotype: cell.genotype.to_string(),
        train_seed: cell.train_seed,
        scores,
        score_mean,
        score_std,
        test_top1: eval.top1,
        test_sar: eval.sar,
        val_top1: best.val_top1,
        best_epoch: best.epoch,
        wall_s: start.elapsed().as_secs_f64(),
    };
    write_atomic(
        &cell_dir(dir, cell).join(files::RESULT),
        &serde_json::to_vec_pretty(&r)?,
    )?;
    Ok(r)
}

/// The training run of `cell` in the study `cfg`.
fn cell_train_config(cfg: &StudyConfig, cell: &CellPlan) -> TrainConfig {
    TrainConfig {
        genotype: cell.genotype.to_string(),
        net: cfg.net.clone(),
        epochs: cfg.epochs,
        batch: cfg.train_batch,
        optim: SgdConfig::paper(cfg.lr),
        loss: cfg.loss,
        seed: cell.train_seed,
        val_fraction: 0.1,
        data: Some(cfg.data.clone()),
        linear_init: LinearInit::Kaiming,
    }
}

/// The SAHD score of the untrained single-path network of `g` (weights from the study seed) on
/// each of `score_repeats` batches, as `lightsnn score` computes it.
pub fn cell_scores(
    cfg: &StudyConfig,
    g: &Genotype,
    data: &Dataset,
    device: &Device,
) -> Result<Vec<f64>> {
    let mut net_cfg = cfg.net.clone();
    net_cfg.cell = g.cell();
    let mixing = Mixing::single_path(g);
    let net = Network::new(&net_cfg, &mixing.alive(), cfg.seed, device)?;
    let batches = draw_batches(
        data,
        cfg.search_batch,
        cfg.score_repeats,
        round_batch_seed(cfg.seed, 1),
        device,
    )?;
    let mode = crate::model::Mode::scoring(net_cfg.bn_mode);
    let scorer = Scorer::new(&net, KernelPath::for_device(device))?;
    scorer.prepare(&batches, mode)?;
    batches
        .iter()
        .map(|b| scorer.sahd_one(&mixing, b, mode))
        .collect()
}

/// The default study configuration for a dataset (documented in docs/cli.md): sized to finish
/// in about 30 minutes on a 2-core CPU.
pub fn default_config(dataset: DatasetKind, data: PathBuf) -> Result<StudyConfig> {
    use crate::config::Overrides;
    let (o, train_samples, test_samples, epochs, train_batch) = match dataset {
        DatasetKind::Nmnist => (
            Overrides {
                width: Some(0.125),
                timesteps: Some(2),
                hidden: Some(128),
                votes: None,
            },
            None,
            None,
            3,
            16,
        ),
        _ => (
            Overrides {
                width: Some(1.0 / 32.0),
                timesteps: Some(2),
                hidden: Some(128),
                votes: None,
            },
            Some(8000),
            Some(1000),
            1,
            32,
        ),
    };
    Ok(StudyConfig {
        net: NetConfig::for_dataset(dataset, &o)?,
        data,
        train_samples,
        test_samples,
        random_cells: 20,
        noise_seeds: 2,
        epochs,
        train_batch,
        lr: 0.1,
        loss: LossKind::Ce,
        search_batch: 32,
        search_repeats: 2,
        score_repeats: 4,
        random_samples: 100,
        random_method: RandomBaseline::Snasnet,
        random_batch: Some(crate::search::setup::SNASNET_SEARCH_BATCH),
        seed: 0,
        bootstrap: 2000,
    })
}

#[cfg(test)]
mod tests;
