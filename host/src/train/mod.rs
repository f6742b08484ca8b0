//! Surrogate-gradient training of a single-path network (docs/design.md, "Training") and its
//! evaluation.
//!
//! A run lives in a folder `RUN_DIR`:
//! - `metrics.csv`: one row per epoch (see [`metrics::CSV_HEADER`]);
//! - `curves.svg`: loss, top-1, validation SAR and learning rate per epoch;
//! - `last.safetensors`, `best.safetensors`: checkpoints (see [`checkpoint`]) after the last
//!   epoch and at the best validation top-1;
//! - `last.optim.safetensors`: the SGD momentum buffers after the last epoch;
//! - `state.json`: [`TrainState`]: the run's configuration, completed epochs, optimiser
//!   hyper-parameters, RNG derivation, best epoch and the metrics history.
//!
//! Every file is written atomically and records its epoch. Checkpoints of a new epoch are first
//! written under `*.pending` names, then `state.json` commits the epoch, then the pending files
//! are renamed into place: a run killed at any point resumes from a consistent state (the last
//! committed epoch).
//!
//! # Exact resume
//! Each epoch's randomness (shuffling, augmentation, dropout masks) comes from one
//! `ChaCha8Rng` seeded from `(seed, epoch)` only ([`epoch_rng`]), and the learning rate is a
//! function of the epoch. Resuming therefore needs only the epoch counter, the weights, the
//! BatchNorm statistics and the momentum buffers; on the CPU a resumed run ends with weights
//! bit-identical to an uninterrupted one.

pub mod bench;
pub mod checkpoint;
mod config;
pub mod curves;
mod epoch;
pub mod eval;
pub mod fast;
pub mod host_reads;
pub mod metrics;
pub mod optim;
pub mod schedule;

#[cfg(test)]
mod tests;

pub use checkpoint::{load_checkpoint, CheckpointMeta};
pub use config::{LinearInit, TrainConfig};
pub(crate) use epoch::train_step;
pub use eval::{evaluate, EvalReport};
use host_reads::HostReads;
pub use metrics::{EpochMetrics, LossKind};
pub use optim::{Sgd, SgdConfig};

use crate::config::NetConfig;
use crate::data::{train_val_split, Dataset};
use crate::fsutil::write_atomic;
use crate::model::{Mixing, Network};
use crate::progress::{NoProgress, Progress};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use snn_nostd::genotype::Genotype;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Format tag of `state.json`.
pub const STATE_FORMAT: &str = "lightsnn-train-state/1";
/// Metadata key of `last.optim.safetensors` (JSON `{"epoch": k}`).
pub const OPTIM_METADATA_KEY: &str = "lightsnn-optim";
/// The multiplier of [`epoch_rng`]'s seed derivation (2^64 / golden ratio).
pub const EPOCH_SEED_MULT: u64 = 0x9E37_79B9_7F4A_7C15;

/// File names inside a run folder.
pub mod files {
    /// Per-epoch metrics.
    pub const METRICS: &str = "metrics.csv";
    /// Training curves.
    pub const CURVES: &str = "curves.svg";
    /// Weights after the last completed epoch.
    pub const LAST: &str = "last.safetensors";
    /// Weights of the best validation epoch.
    pub const BEST: &str = "best.safetensors";
    /// Momentum buffers after the last completed epoch.
    pub const OPTIM: &str = "last.optim.safetensors";
    /// Run state.
    pub const STATE: &str = "state.json";
}

/// Re-draws `fc1` and `fc2` of `net` from N(0, 2 / fan_in) with a ChaCha8 stream seeded from
/// `seed` (biases stay 0).
pub fn kaiming_linear_init(net: &Network, seed: u64) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x4c49_4e45_4152_0001);
    for var in [&net.fc1, &net.fc2] {
        let (out, fan_in) = var.dims2()?;
        let std = (2.0 / fan_in as f64).sqrt();
        let data: Vec<f32> = (0..out * fan_in)
            .map(|_| (std * standard_normal(&mut rng)) as f32)
            .collect();
        var.set(&Tensor::from_vec(data, (out, fan_in), var.device())?)?;
    }
    Ok(())
}

/// One N(0, 1) draw (Box-Muller).
fn standard_normal(rng: &mut impl rand::Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// How the per-epoch RNG is derived (recorded in `state.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RngState {
    /// The generator.
    pub generator: String,
    /// The master seed.
    pub seed: u64,
    /// The derivation of epoch `e`'s (0-based) seed.
    pub derivation: String,
    /// The next epoch to run (0-based): the only state a resume needs.
    pub next_epoch: usize,
}

/// The optimiser's state as recorded in `state.json`; the momentum buffers themselves are in
/// `last.optim.safetensors`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimState {
    /// `sgd`.
    pub kind: String,
    /// Hyper-parameters.
    pub config: SgdConfig,
    /// The schedule.
    pub schedule: String,
    /// Update steps taken so far.
    pub steps: u64,
    /// File of the momentum buffers.
    pub buffers: String,
}

/// The best validation epoch so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// 1-based epoch.
    pub epoch: usize,
    /// Its validation top-1.
    pub val_top1: f64,
}

/// `state.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Always [`STATE_FORMAT`].
    pub format: String,
    /// Epochs completed.
    pub epoch: usize,
    /// The run's configuration.
    pub config: TrainConfig,
    /// Optimiser.
    pub optimizer: OptimState,
    /// RNG.
    pub rng: RngState,
    /// Best validation epoch.
    pub best: Option<Best>,
    /// Every completed epoch's metrics.
    pub history: Vec<EpochMetrics>,
    /// lightsnn version.
    pub version: String,
}

impl TrainState {
    /// Records a finished epoch's metrics; true when it is the best validation top-1 so far.
    fn record(&mut self, m: EpochMetrics) -> bool {
        let is_best = self.best.as_ref().is_none_or(|b| m.val_top1 > b.val_top1);
        self.epoch = m.epoch;
        self.rng.next_epoch = m.epoch;
        if is_best {
            self.best = Some(Best {
                epoch: m.epoch,
                val_top1: m.val_top1,
            });
        }
        self.history.push(m);
        is_best
    }

    /// Reads `RUN_DIR/state.json` and checks its values (errors name the file and field).
    pub fn read(run_dir: &Path) -> Result<TrainState> {
        let st: TrainState = crate::fsutil::read_format_json(
            run_dir,
            files::STATE,
            STATE_FORMAT,
            "a training run folder",
        )?;
        st.check(&run_dir.join(files::STATE))?;
        Ok(st)
    }

    /// Parses and checks `text`, the `state.json` at `file` (named in errors).
    pub fn parse(text: &str, file: &Path) -> Result<TrainState> {
        let st: TrainState = crate::fsutil::parse_format_json(file, text, STATE_FORMAT)?;
        st.check(file)?;
        Ok(st)
    }

    /// Checks the values of a state read from `file`: the configuration, the epochs done within
    /// it, and the best epoch among them.
    pub fn check(&self, file: &Path) -> Result<()> {
        self.config.validate_recorded(file)?;
        let f = file.display();
        if self.epoch > self.config.epochs {
            bail!(
                "{f}: epoch {} is beyond config.epochs {}",
                self.epoch,
                self.config.epochs
            );
        }
        if let Some(b) = &self.best {
            if b.epoch == 0 || b.epoch > self.epoch || !(0.0..=1.0).contains(&b.val_top1) {
                bail!(
                    "{f}: best epoch {} (validation top-1 {}) is not one of the {} epochs done \
                     with a top-1 in 0..1",
                    b.epoch,
                    b.val_top1,
                    self.epoch
                );
            }
        }
        Ok(())
    }
}

/// The RNG of epoch `epoch` (0-based): `ChaCha8Rng::seed_from_u64(seed ^ (epoch + 1) *
/// EPOCH_SEED_MULT)` (wrapping multiplication). It shuffles, then draws each batch's
/// augmentation and dropout masks, in batch order.
pub fn epoch_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64 + 1).wrapping_mul(EPOCH_SEED_MULT))
}

/// The CPU training path for `path` (`None`: Candle runs the steps) and a line saying which
/// path runs and, when Candle does under `auto`, why. `frames` is the input frames per sample.
pub fn select_path(
    path: fast::TrainPath,
    net: &NetConfig,
    g: &Genotype,
    frames: usize,
    device: &Device,
) -> Result<(Option<fast::FastNet>, String)> {
    use fast::TrainPath;
    if path == TrainPath::Candle {
        return Ok((None, "candle (autograd; --train-path candle)".into()));
    }
    let why = if device.is_cpu() {
        match fast::FastNet::new(net, g, frames) {
            Ok(f) => return Ok((Some(f), "cpu (hand-written forward and backward)".into())),
            Err(why) => why,
        }
    } else {
        "a GPU device".to_string()
    };
    if path == TrainPath::Cpu {
        bail!("--train-path cpu does not cover {why}; use --train-path auto or candle");
    }
    Ok((
        None,
        format!("candle (autograd; the CPU path does not cover {why})"),
    ))
}

/// Options of one invocation (not part of the run's definition).
#[derive(Clone, Debug, Default)]
pub struct RunControl {
    /// Continue the run in the folder instead of starting a new one.
    pub resume: bool,
    /// Stop after this many epochs in this invocation (a time-boxed job).
    pub stop_after: Option<usize>,
    /// No table, no progress bars.
    pub quiet: bool,
    /// Which implementation runs the steps.
    pub path: fast::TrainPath,
}

/// What [`train`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOutcome {
    /// Epochs completed in total.
    pub epochs_done: usize,
    /// Whether all epochs are done.
    pub complete: bool,
    /// Best validation epoch.
    pub best: Option<Best>,
    /// Metrics of every completed epoch.
    pub history: Vec<EpochMetrics>,
    /// Device-to-host reads made by this invocation's training steps (validation excluded):
    /// on the Candle path two per epoch (loss and correct-prediction sums), however many steps
    /// it has; none on the CPU path, whose values live on the host.
    pub host_reads: u64,
}

/// Trains (or, with `ctl.resume`, continues) the run `cfg` in `run_dir` on `train_data`, the
/// whole training split (the validation split is carved from it with `cfg.seed`). `progress`
/// gets one phase per epoch ("epoch N", one step per batch) and one per validation
/// ("validation"); with `ctl.quiet` it gets nothing.
pub fn train(
    run_dir: &Path,
    cfg: &TrainConfig,
    train_data: &Dataset,
    device: &Device,
    ctl: &RunControl,
    progress: &dyn Progress,
) -> Result<TrainOutcome> {
    let progress: &dyn Progress = if ctl.quiet { &NoProgress } else { progress };
    cfg.validate()?;
    if train_data.kind() != cfg.net.dataset {
        bail!(
            "the data is {}, the network is configured for {}",
            train_data.kind(),
            cfg.net.dataset
        );
    }
    let g = cfg.genotype()?;
    let mixing = Mixing::single_path(&g);
    let net = Network::new(&cfg.net, &mixing.alive(), cfg.seed, device)?;
    if cfg.linear_init == LinearInit::Kaiming {
        kaiming_linear_init(&net, cfg.seed)?;
    }
    let mut opt = Sgd::new(cfg.optim.momentum, cfg.optim.weight_decay);
    let mut state = if ctl.resume {
        resume_run(run_dir, cfg, &net, &mut opt, device)?
    } else {
        start_run(run_dir, cfg)?
    };
    let (train_idx, val_idx) = train_val_split(train_data.len(), cfg.val_fraction, cfg.seed);
    if train_idx.is_empty() || val_idx.is_empty() {
        bail!(
            "{} training samples cannot be split into training and validation with --val-fraction {}",
            train_data.len(),
            cfg.val_fraction
        );
    }
    let val_data = train_data.subset(&val_idx);
    let data_label = cfg.data_label();
    let (fast, path_label) = select_path(ctl.path, &cfg.net, &g, train_data.frames(), device)?;
    if !ctl.quiet {
        let split = (train_idx.len(), val_idx.len());
        print_start(run_dir, cfg, &g, &net, &state, &data_label, split);
        println!("training path: {path_label}");
    }
    let mut reads = HostReads::default();
    let mut ran = 0usize;
    while state.epoch < cfg.epochs {
        if ctl.stop_after.is_some_and(|n| ran >= n) {
            break;
        }
        let start = Instant::now();
        let run = Epoch {
            net: &net,
            g: &g,
            mixing: &mixing,
            cfg,
            train_data,
            train_idx: &train_idx,
            val_data: &val_data,
            device,
            progress,
            fast: fast.as_ref(),
        };
        let (m, steps) = run.run(state.epoch, &mut opt, &mut reads, start)?;
        state.optimizer.steps += steps;
        let is_best = state.record(m.clone());
        let label = &data_label;
        save_epoch(run_dir, &state, &net, &g, &opt, label, is_best, m.val_top1)?;
        if !ctl.quiet {
            println!("{}", m.table_row(cfg.epochs, is_best));
        }
        ran += 1;
    }
    let complete = state.epoch >= cfg.epochs;
    if !ctl.quiet {
        print_end(run_dir, cfg, &state, complete);
    }
    Ok(TrainOutcome {
        epochs_done: state.epoch,
        complete,
        best: state.best,
        history: state.history,
        host_reads: reads.count(),
    })
}

/// The state of the run in `run_dir`, whose configuration must be `cfg`, with the network's
/// weights and the optimizer's buffers restored from its latest epoch.
fn resume_run(
    run_dir: &Path,
    cfg: &TrainConfig,
    net: &Network,
    opt: &mut Sgd,
    device: &Device,
) -> Result<TrainState> {
    let st = TrainState::read(run_dir)?;
    if &st.config != cfg {
        bail!(
            "{}: the run's configuration differs from the one given",
            run_dir.join(files::STATE).display()
        );
    }
    restore(run_dir, &st, net, opt, device)?;
    Ok(st)
}

/// The state of a new run in `run_dir` (refused if it already holds a run). The folder is
/// created by the first epoch's files, so a run that fails or is killed before it leaves no
/// empty folder; pending checkpoints of such a run are removed.
fn start_run(run_dir: &Path, cfg: &TrainConfig) -> Result<TrainState> {
    crate::fsutil::refuse_existing(run_dir, files::STATE, "training run")?;
    for name in [files::LAST, files::OPTIM, files::BEST] {
        let p = pending(run_dir, name);
        if p.is_file() {
            std::fs::remove_file(&p)
                .with_context(|| format!("cannot remove the stale {}", p.display()))?;
        }
    }
    Ok(TrainState {
        format: STATE_FORMAT.into(),
        epoch: 0,
        config: cfg.clone(),
        optimizer: OptimState {
            kind: "sgd".into(),
            config: cfg.optim.clone(),
            schedule: format!(
                "cosine per epoch: lr_e = eta_min + 0.5 (lr - eta_min)(1 + cos(pi e / {}))",
                cfg.epochs
            ),
            steps: 0,
            buffers: files::OPTIM.into(),
        },
        rng: RngState {
            generator: "ChaCha8Rng".into(),
            seed: cfg.seed,
            derivation: format!(
                "seed_from_u64(seed ^ (epoch + 1) * {EPOCH_SEED_MULT:#x}), epoch 0-based; shuffle, then per batch augmentation and dropout"
            ),
            next_epoch: 0,
        },
        best: None,
        history: Vec::new(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// What one epoch of a run reads.
struct Epoch<'a> {
    net: &'a Network,
    g: &'a Genotype,
    mixing: &'a Mixing,
    cfg: &'a TrainConfig,
    train_data: &'a Dataset,
    train_idx: &'a [usize],
    val_data: &'a Dataset,
    device: &'a Device,
    progress: &'a dyn Progress,
    fast: Option<&'a fast::FastNet>,
}

impl Epoch<'_> {
    /// Trains epoch `e` (0-based) and validates: the epoch's metrics and its optimizer steps.
    fn run(
        &self,
        e: usize,
        opt: &mut Sgd,
        reads: &mut HostReads,
        start: Instant,
    ) -> Result<(EpochMetrics, u64)> {
        let cfg = self.cfg;
        let lr = schedule::cosine_lr(cfg.optim.lr, cfg.optim.eta_min, e, cfg.epochs);
        let mut rng = epoch_rng(cfg.seed, e);
        let mut order = self.train_idx.to_vec();
        order.shuffle(&mut rng);
        let n_batches = order.len().div_ceil(cfg.batch);
        let pb = self.progress;
        pb.start(n_batches as u64, &format!("epoch {}", e + 1));
        let run = epoch::EpochRun {
            net: self.net,
            mixing: self.mixing,
            cfg,
            data: self.train_data,
            order: &order,
            lr,
            epoch: e,
            device: self.device,
            fast: self.fast,
        };
        let totals = epoch::train_epoch(&run, opt, &mut rng, pb, reads)?;
        pb.finish();
        pb.start(self.val_data.len().div_ceil(cfg.batch) as u64, "validation");
        let val = evaluate(
            self.net,
            self.g,
            self.val_data,
            cfg.batch,
            cfg.loss,
            false,
            pb,
        )?;
        pb.finish();
        let n = self.train_idx.len() as f64;
        let m = EpochMetrics {
            epoch: e + 1,
            lr,
            train_loss: totals.loss_sum / n,
            train_top1: totals.correct as f64 / n,
            val_loss: val.loss,
            val_top1: val.top1,
            val_sar: val.sar,
            epoch_s: start.elapsed().as_secs_f64(),
        };
        Ok((m, totals.steps as u64))
    }
}

/// The run's header: configuration, parameters, and the epochs already done.
fn print_start(
    run_dir: &Path,
    cfg: &TrainConfig,
    g: &Genotype,
    net: &Network,
    state: &TrainState,
    data_label: &str,
    (n_train, n_val): (usize, usize),
) {
    println!(
        "lightsnn train: {} on {} ({} train / {} validation) | genotype {} | C1/C2 {}/{}, H {}, V {}, T {} | batch {}, lr {}, {} epochs, loss {}, linear init {}, seed {}",
        cfg.net.dataset,
        data_label,
        n_train,
        n_val,
        g,
        cfg.net.shape.c1,
        cfg.net.shape.c2,
        cfg.net.shape.hidden,
        cfg.net.shape.votes,
        cfg.net.shape.timesteps,
        cfg.batch,
        cfg.optim.lr,
        cfg.epochs,
        cfg.loss,
        cfg.linear_init,
        cfg.seed
    );
    println!(
        "{} trainable parameters; run folder {}",
        net.params.num_trainable(),
        run_dir.display()
    );
    if state.epoch > 0 {
        println!("resuming after epoch {}", state.epoch);
    }
    println!("{}", metrics::table_header());
    for m in &state.history {
        let best = state.best.as_ref().is_some_and(|b| b.epoch == m.epoch);
        println!("{}", m.table_row(cfg.epochs, best));
    }
}

/// The run's footer: the best epoch, and how to continue an unfinished run.
fn print_end(run_dir: &Path, cfg: &TrainConfig, state: &TrainState, complete: bool) {
    if let Some(b) = &state.best {
        println!(
            "best validation top-1 {:.2}% at epoch {} -> {}",
            100.0 * b.val_top1,
            b.epoch,
            run_dir.join(files::BEST).display()
        );
    }
    if !complete {
        println!(
            "stopped after epoch {} of {}; continue with: lightsnn train --resume {}",
            state.epoch,
            cfg.epochs,
            run_dir.display()
        );
    }
}

/// The pending name of a checkpoint file: written before `state.json` commits an epoch and
/// renamed over the real name after.
fn pending(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join(format!("{name}.pending"))
}

/// The epoch recorded in a checkpoint or momentum file (`None` if unreadable).
fn file_epoch(path: &Path) -> Option<usize> {
    let bytes = std::fs::read(path).ok()?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).ok()?;
    let md = header.metadata().clone()?;
    if let Some(j) = md.get(checkpoint::METADATA_KEY) {
        let m: CheckpointMeta = serde_json::from_str(j).ok()?;
        return Some(m.epoch);
    }
    let v: serde_json::Value = serde_json::from_str(md.get(OPTIM_METADATA_KEY)?).ok()?;
    v.get("epoch")?.as_u64().map(|e| e as usize)
}

/// Writes every file of a completed epoch, crash-safely:
/// 1. the new `last`, `last.optim` (and `best`) files under `*.pending` names;
/// 2. `state.json`: the commit point;
/// 3. renames of the pending files over the real ones; then `metrics.csv` and `curves.svg`.
///
/// A run killed anywhere is settled on resume by [`settle_pending`]: pending files of the
/// committed epoch are renamed into place (the kill came after step 2), others are deleted (it
/// came before).
#[allow(clippy::too_many_arguments)]
fn save_epoch(
    run_dir: &Path,
    state: &TrainState,
    net: &Network,
    g: &Genotype,
    opt: &Sgd,
    data_label: &str,
    is_best: bool,
    val_top1: f64,
) -> Result<()> {
    let mut meta = CheckpointMeta::new(&state.config.net, g, state.epoch, data_label);
    meta.val_top1 = Some(val_top1);
    checkpoint::save_checkpoint(&pending(run_dir, files::LAST), net, &meta)?;
    let mut md = HashMap::new();
    md.insert(
        OPTIM_METADATA_KEY.to_string(),
        serde_json::json!({ "epoch": state.epoch }).to_string(),
    );
    write_atomic(
        &pending(run_dir, files::OPTIM),
        &checkpoint::tensors_to_bytes(opt.buffers(), md)?,
    )?;
    if is_best {
        checkpoint::save_checkpoint(&pending(run_dir, files::BEST), net, &meta)?;
    }
    write_atomic(
        &run_dir.join(files::STATE),
        &serde_json::to_vec_pretty(state)?,
    )?;
    settle_pending(run_dir, state)?;
    write_derived(run_dir, state)
}

/// Rewrites `metrics.csv` and `curves.svg` from the history in `state`.
fn write_derived(run_dir: &Path, state: &TrainState) -> Result<()> {
    write_atomic(
        &run_dir.join(files::METRICS),
        metrics::csv(&state.history).as_bytes(),
    )?;
    write_atomic(
        &run_dir.join(files::CURVES),
        curves::curves_svg(&state.history)?.as_bytes(),
    )
}

/// Renames pending files of the epoch `state` commits into place; deletes other pending files.
fn settle_pending(run_dir: &Path, state: &TrainState) -> Result<()> {
    for name in [files::LAST, files::OPTIM, files::BEST] {
        let p = pending(run_dir, name);
        if !p.exists() {
            continue;
        }
        let committed = file_epoch(&p) == Some(state.epoch)
            && (name != files::BEST || state.best.as_ref().map(|b| b.epoch) == Some(state.epoch));
        if committed {
            std::fs::rename(&p, run_dir.join(name))
                .with_context(|| format!("cannot rename {} into place", p.display()))?;
        } else {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    Ok(())
}

/// Checks that the run's `best.safetensors` holds the best epoch `state.json` records.
fn check_best(run_dir: &Path, st: &TrainState) -> Result<()> {
    let Some(b) = &st.best else { return Ok(()) };
    let path = run_dir.join(files::BEST);
    let problem = if !path.exists() {
        "is missing".to_string()
    } else {
        match file_epoch(&path) {
            Some(e) if e == b.epoch => return Ok(()),
            Some(e) => format!("holds epoch {e}"),
            None => "is not a readable checkpoint".to_string(),
        }
    };
    bail!(
        "{} {problem}, but {} records epoch {} as the best: the run folder is incomplete; put \
         the run's best.safetensors back, or start a new run",
        path.display(),
        files::STATE,
        b.epoch
    )
}

/// Loads the weights, BatchNorm statistics and momentum buffers of a run into `net` and `opt`,
/// checking that every file belongs to the epoch `state.json` records.
fn restore(
    run_dir: &Path,
    st: &TrainState,
    net: &Network,
    opt: &mut Sgd,
    device: &Device,
) -> Result<()> {
    settle_pending(run_dir, st)?;
    check_best(run_dir, st)?;
    write_derived(run_dir, st)?;
    let last = run_dir.join(files::LAST);
    let origin = last.display().to_string();
    let (tensors, md) = checkpoint::read_tensors(&last, device)?;
    let meta = checkpoint::parse_meta(&md, &origin)?;
    if meta.epoch != st.epoch {
        bail!(
            "{origin} holds epoch {}, {} says {}: the run folder is inconsistent",
            meta.epoch,
            files::STATE,
            st.epoch
        );
    }
    if meta.net != st.config.net || meta.genotype()? != st.config.genotype()? {
        bail!(
            "{origin} holds another network than {} describes",
            files::STATE
        );
    }
    net.params.load_from(&tensors, &origin)?;
    let op = run_dir.join(files::OPTIM);
    let oorigin = op.display().to_string();
    let (bufs, omd) = checkpoint::read_tensors(&op, device)?;
    let oepoch = omd
        .get(OPTIM_METADATA_KEY)
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| v.get("epoch").and_then(|e| e.as_u64()));
    if oepoch != Some(st.epoch as u64) {
        bail!(
            "{oorigin} holds epoch {oepoch:?}, {} says {}: the run folder is inconsistent",
            files::STATE,
            st.epoch
        );
    }
    opt.load_buffers(bufs, net.params.trainable(), &oorigin)
}
