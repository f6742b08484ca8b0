//! `lightsnn train`.

use super::common::{full_width, parse_positive, BoardArgs, DeviceArg, ShapeArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use lightsnn::config::{DatasetKind, NetConfig, Overrides, Preset};
use lightsnn::data::{Dataset, Split};
use lightsnn::export::fit::{Cells, Fixed};
use lightsnn::search::report::read_arch;
use lightsnn::train::{self, LinearInit, LossKind, RunControl, SgdConfig, TrainConfig, TrainState};
use snn_nostd::genotype::{CellType, Genotype, OpSet};
use std::path::{Path, PathBuf};

/// Options of `lightsnn train`. Options without a default here take the per-dataset or
/// documented default; with `--resume` every option is taken from the run and any option given
/// must agree with it (except `--data`, `--device`, `--stop-after`).
/// The defaults that differ from the paper or the reference code are listed, with the reason,
/// after `--help` ([`DEFAULTS_HELP`]).
#[derive(Args, Debug, Default)]
#[command(after_help = DEFAULTS_HELP)]
pub struct TrainArgs {
    /// Architecture: a `lightsnn search --out` JSON file (its genotype, cell type and op set).
    #[arg(long, conflicts_with = "genotype")]
    pub arch: Option<PathBuf>,
    /// Architecture: 12 (backward cell) or 6 (forward cell) op names in canonical edge order.
    #[arg(long)]
    pub genotype: Option<String>,
    /// A named network: `spikenas-bench` (SpikeNAS-Bench's CIFAR-10 network: C1/C2 128/256
    /// times --width, its op set, average pools, H 1024, V 10, T 5; dropout 0.5 as always).
    /// The other options override its values [default: the arch file's, if it was searched on
    /// a preset's network].
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Op set: `lightsnn` (zero, conv3, skip), `snasnet`, `spikenas-bench`, or a
    /// comma-separated list. Default: the arch file's, else the preset's, else lightsnn. An
    /// arch file from another op set is an error.
    #[arg(long)]
    pub space: Option<String>,
    /// Cell type (backward or forward). Default: the arch file's or the genotype's. An arch
    /// file of another cell type is an error.
    #[arg(long)]
    pub cell: Option<String>,
    /// Dataset: cifar10, cifar100, dvs128, nmnist [default: the arch file's, else cifar10].
    #[arg(long)]
    pub dataset: Option<String>,
    /// Dataset folder in the official layout (training split; the validation split is carved
    /// from it). Without it, the built-in CIFAR-10 sample.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Epochs E (the cosine schedule spans them). Required for a new run.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Mini-batch size [default: 64].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Initial learning rate; SGD with momentum 0.9 and weight decay 5e-4, cosine per epoch to
    /// 0.01 x lr [default: 0.1, as the reference's and SNASNet's code; the paper states 0.2].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Network shape: `--width`, `--timesteps`, `--hidden`, `--votes`.
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// Master seed: initial weights, validation split, shuffling, augmentation, dropout
    /// [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Fraction of the training split held out for model selection [default: 0.1].
    #[arg(long)]
    pub val_fraction: Option<f64>,
    /// Loss: `ce` = cross-entropy on the output; `mse` = mean squared error against the one-hot
    /// label [default: mse for dvs128 (as the reference), ce otherwise].
    #[arg(long, value_enum)]
    pub loss: Option<LossKind>,
    /// Initialisation of the linear layers: `reference` = N(0, 0.01^2) (the reference's);
    /// `kaiming` = N(0, 2/fan_in), which keeps the hidden LIF layer active in small networks (at
    /// the reference init it stays silent there and training stalls at chance) [default: kaiming].
    #[arg(long, value_enum)]
    pub linear_init: Option<LinearInit>,
    /// Device.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceArg,
    /// Which implementation runs the training steps: `auto` (the hand-written CPU path where it
    /// covers the network, else Candle; the printout says which ran), `cpu` or `candle`.
    #[arg(long, value_enum, default_value = "auto")]
    pub train_path: lightsnn::train::fast::TrainPath,
    /// Run folder: metrics.csv, curves.svg, last/best.safetensors, last.optim.safetensors,
    /// state.json.
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder (all configuration from its state.json).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Stop after N epochs (at least 1) in this invocation (a time-boxed job); continue with
    /// --resume.
    #[arg(long, value_parser = parse_positive)]
    pub stop_after: Option<usize>,
    /// `--board NAME`: size the network (C1/C2, H) for the part, or refuse sizes that cannot
    /// fit, before training.
    #[command(flatten)]
    pub board: BoardArgs,
}

fn parse_space(s: &str) -> Result<OpSet> {
    s.parse().with_context(|| format!("bad --space {s:?}"))
}

fn parse_cell(s: &str) -> Result<CellType> {
    s.parse().with_context(|| format!("bad --cell {s:?}"))
}

fn parse_dataset(s: &str) -> Result<DatasetKind> {
    s.parse().with_context(|| format!("bad --dataset {s:?}"))
}

/// What `--arch`/`--genotype`/`--space`/`--cell`/`--preset` give.
struct Architecture {
    genotype: Genotype,
    cell: CellType,
    ops: OpSet,
    /// The arch file's dataset, when it records one.
    file_dataset: Option<DatasetKind>,
    /// `--preset`, or the preset of the arch file's network.
    preset: Option<Preset>,
}

/// The genotype, cell type, op set, preset (and the arch file's dataset) given by
/// `--arch`/`--genotype`/`--space`/`--cell`/`--preset`.
fn architecture(a: &TrainArgs) -> Result<Architecture> {
    let space = a.space.as_deref().map(parse_space).transpose()?;
    let cell = a.cell.as_deref().map(parse_cell).transpose()?;
    let mut file_dataset = None;
    let mut preset = a.preset;
    let (text, file_cell, file_ops, origin) = match (&a.arch, &a.genotype) {
        (Some(path), _) => {
            let arch = read_arch(path)?;
            file_dataset = arch.dataset;
            if let (None, Some(p)) = (preset, arch.preset) {
                println!(
                    "note: {} was searched on the {p} network; training that network",
                    path.display()
                );
                preset = Some(p);
            }
            let (g, c, o) = (arch.genotype, arch.cell, arch.ops);
            if let Some(s) = &space {
                if s != &o {
                    bail!(
                        "{}: the architecture was searched over ops {{{o}}}, not --space {{{s}}}",
                        path.display()
                    );
                }
            }
            if let Some(c2) = cell {
                if c2 != c {
                    bail!(
                        "{}: the architecture is a {c} cell, not --cell {c2}",
                        path.display()
                    );
                }
            }
            (g, Some(c), Some(o), path.display().to_string())
        }
        (None, Some(g)) => (g.clone(), None, None, "--genotype".to_string()),
        (None, None) => bail!("give the architecture with --arch FILE.json or --genotype \"...\""),
    };
    let g: Genotype = text
        .parse()
        .with_context(|| format!("{origin}: genotype {text:?}"))?;
    let ops = file_ops
        .or(space)
        .or_else(|| preset.map(Preset::ops))
        .unwrap_or_else(OpSet::lightsnn);
    let cell = file_cell.or(cell).unwrap_or(g.cell());
    if g.cell() != cell {
        bail!(
            "{origin}: genotype {g} has {} ops, a {cell} cell has {} edges",
            g.ops().len(),
            cell.num_edges()
        );
    }
    g.check_op_set(&ops)
        .with_context(|| format!("{origin}: genotype {g} (op set {{{ops}}})"))?;
    Ok(Architecture {
        genotype: g,
        cell,
        ops,
        file_dataset,
        preset,
    })
}

/// Printed after `lightsnn train --help`: the defaults that differ from the paper or the
/// reference code (docs/design.md, "Differences from the paper and the reference code").
const DEFAULTS_HELP: &str = "\
Defaults that differ from the paper or the reference code (docs/design.md):
  --lr 0.1                 the paper states 0.2; the reference's and SNASNet's code use 0.1
  --linear-init kaiming    the reference uses N(0, 0.01^2); in small networks that init leaves
                           the hidden LIF layer silent and training stalls at chance
  --epochs (required)      the paper trains 300 epochs; a run's length is always given
  weight decay 5e-4        really applied (the reference passes it into SGD's dampening)
Defaults as in the paper or the reference: --loss mse for dvs128 (against one-hot labels), ce
otherwise; batch 64; SGD momentum 0.9; cosine schedule to 0.01 x lr.";

/// The default loss of a dataset: MSE against one-hot labels for DVS128 Gesture (as the
/// reference, docs/design.md, "Training"), cross-entropy otherwise.
pub fn default_loss(dataset: DatasetKind) -> LossKind {
    match dataset {
        DatasetKind::Dvs128 => LossKind::Mse,
        _ => LossKind::Ce,
    }
}

/// The run configuration of a new run.
pub fn new_config(a: &TrainArgs) -> Result<TrainConfig> {
    let Architecture {
        genotype: g,
        cell,
        ops,
        file_dataset,
        preset,
    } = architecture(a)?;
    let dataset = match &a.dataset {
        Some(s) => Some(parse_dataset(s)?),
        None => file_dataset,
    };
    let o = a.shape.overrides(a.data.is_none(), preset);
    let mut net = NetConfig::for_preset_or_dataset(preset, dataset, &o)?;
    let dataset = net.dataset;
    if a.data.is_none() && dataset != DatasetKind::Cifar10 {
        bail!("--data DIR is required for {dataset}: only a CIFAR-10 sample is built in");
    }
    net.cell = cell;
    net.ops = ops;
    if a.board.board.is_some() {
        let base = full_width(net, a.shape.width.is_some())?;
        net = a.board.size(base, a.shape.fixed(), Cells::One(&g))?;
    }
    let Some(epochs) = a.epochs else {
        bail!("--epochs E is required for a new run");
    };
    let cfg = TrainConfig {
        genotype: g.to_string(),
        net,
        epochs,
        batch: a.batch.unwrap_or(64),
        optim: SgdConfig::paper(a.lr.unwrap_or(0.1)),
        loss: a.loss.unwrap_or(default_loss(dataset)),
        seed: a.seed.unwrap_or(0),
        val_fraction: a.val_fraction.unwrap_or(0.1),
        data: a.data.clone(),
        linear_init: a.linear_init.unwrap_or_default(),
    };
    cfg.validate()?;
    Ok(cfg)
}

/// The configuration of the run in `dir`, refusing options that contradict it. `--data` may
/// point elsewhere (a moved dataset).
pub fn resume_config(a: &TrainArgs, dir: &Path) -> Result<TrainConfig> {
    let st = TrainState::read(dir)?;
    let mut cfg = st.config.clone();
    let state = dir.join(train::files::STATE);
    let mut conflicts = Vec::new();
    let mut check = |flag: &str, same: bool, recorded: String| {
        if !same {
            conflicts.push(format!("{flag} (the run has {recorded})"));
        }
    };
    if let Some(out) = &a.out {
        check("--out", out == dir, dir.display().to_string());
    }
    if a.arch.is_some() || a.genotype.is_some() {
        let g = architecture(a)?.genotype;
        check(
            "--arch/--genotype",
            g.to_string() == cfg.genotype,
            cfg.genotype.clone(),
        );
    }
    let run_preset = cfg.net.preset();
    if let Some(p) = a.preset {
        check(
            "--preset",
            run_preset == Some(p),
            run_preset.map_or("no preset".to_string(), |r| r.to_string()),
        );
    }
    if let Some(s) = &a.space {
        check(
            "--space",
            parse_space(s)? == cfg.net.ops,
            cfg.net.ops.to_string(),
        );
    }
    if let Some(c) = &a.cell {
        check(
            "--cell",
            parse_cell(c)? == cfg.net.cell,
            cfg.net.cell.to_string(),
        );
    }
    if let Some(d) = &a.dataset {
        check(
            "--dataset",
            parse_dataset(d)? == cfg.net.dataset,
            cfg.net.dataset.to_string(),
        );
    }
    if let Some(w) = a.shape.width {
        let o = Overrides {
            width: Some(w),
            ..Default::default()
        };
        let n = NetConfig::for_preset_or_dataset(run_preset, Some(cfg.net.dataset), &o)?;
        check(
            "--width",
            (n.shape.c1, n.shape.c2) == (cfg.net.shape.c1, cfg.net.shape.c2),
            format!("C1/C2 {}/{}", cfg.net.shape.c1, cfg.net.shape.c2),
        );
    }
    if let Some(t) = a.shape.timesteps {
        check(
            "--timesteps",
            t == cfg.net.shape.timesteps,
            cfg.net.shape.timesteps.to_string(),
        );
    }
    if let Some(h) = a.shape.hidden {
        check(
            "--hidden",
            h == cfg.net.shape.hidden,
            cfg.net.shape.hidden.to_string(),
        );
    }
    if let Some(v) = a.shape.votes {
        check(
            "--votes",
            v == cfg.net.shape.votes,
            cfg.net.shape.votes.to_string(),
        );
    }
    if let Some(e) = a.epochs {
        check("--epochs", e == cfg.epochs, cfg.epochs.to_string());
    }
    if let Some(b) = a.batch {
        check("--batch", b == cfg.batch, cfg.batch.to_string());
    }
    if let Some(lr) = a.lr {
        check("--lr", lr == cfg.optim.lr, cfg.optim.lr.to_string());
    }
    if let Some(s) = a.seed {
        check("--seed", s == cfg.seed, cfg.seed.to_string());
    }
    if let Some(f) = a.val_fraction {
        check(
            "--val-fraction",
            f == cfg.val_fraction,
            cfg.val_fraction.to_string(),
        );
    }
    if let Some(l) = a.loss {
        check("--loss", l == cfg.loss, cfg.loss.to_string());
    }
    if let Some(i) = a.linear_init {
        check(
            "--linear-init",
            i == cfg.linear_init,
            cfg.linear_init.to_string(),
        );
    }
    if !conflicts.is_empty() {
        bail!(
            "--resume {}: these options contradict the run recorded in {}: {}. Leave them out to continue the run as it was started",
            dir.display(),
            state.display(),
            conflicts.join(", ")
        );
    }
    if let Some(d) = &a.data {
        if cfg.data.as_ref() != Some(d) {
            println!(
                "note: reading the data from {} (the run was started on {})",
                d.display(),
                cfg.data_label()
            );
            cfg.data = Some(d.clone());
        }
    }
    Ok(cfg)
}

/// Loads the training split a configuration names.
pub fn load_train_data(cfg: &TrainConfig) -> Result<Dataset> {
    let (kind, t) = (cfg.net.dataset, cfg.net.shape.timesteps);
    let (d, _) = super::common::load_split(kind, cfg.data.as_deref(), Split::Train, t, "")?;
    Ok(d)
}

/// The files a run writes into its folder.
pub const RUN_FILES: [&str; 6] = [
    train::files::STATE,
    train::files::METRICS,
    train::files::CURVES,
    train::files::LAST,
    train::files::BEST,
    train::files::OPTIM,
];

/// Checks, before any work, the run folder (an output: writable, not an input) and that the
/// machine can hold the training.
pub fn check_run(
    flag: &str,
    dir: &Path,
    cfg: &TrainConfig,
    arch: Option<&Path>,
    (path, device): (train::fast::TrainPath, &candle_core::Device),
) -> Result<()> {
    let mut inputs: Vec<(&str, &Path)> = Vec::new();
    if let Some(p) = arch {
        inputs.push(("--arch", p));
    }
    if let Some(p) = &cfg.data {
        inputs.push(("--data", p));
    }
    lightsnn::fsutil::check_output_dir(flag, dir, &RUN_FILES, &inputs)?;
    let g = cfg.genotype()?;
    let frames = lightsnn::search::estimate::frames_per_sample(&cfg.net);
    let pass = match train::select_path(path, &cfg.net, &g, frames, device)? {
        (Some(_), _) => lightsnn::search::Pass::TrainCpu,
        (None, _) => lightsnn::search::Pass::Train,
    };
    lightsnn::search::estimate::check_network(
        &cfg.net,
        &g,
        cfg.batch,
        pass,
        device,
        "lower --batch, --width, --timesteps or --hidden",
    )
    .with_context(|| match flag {
        "--resume" => format!("the run of {}", dir.join(train::files::STATE).display()),
        _ => "the run".to_string(),
    })
}

/// Runs `lightsnn train`.
pub fn run(a: TrainArgs) -> Result<()> {
    let (cfg, dir, resume) = match &a.resume {
        Some(dir) => {
            let cfg = resume_config(&a, dir)?;
            let g: Genotype = cfg.genotype.parse()?;
            // The run's sizes are fixed: refused if they cannot fit.
            a.board
                .size(cfg.net.clone(), Fixed::all(), Cells::One(&g))?;
            (cfg, dir.clone(), true)
        }
        None => {
            let out = a.out.clone().context("--out RUN_DIR is required")?;
            (new_config(&a)?, out, false)
        }
    };
    let device = a.device.open()?;
    let flag = if resume { "--resume" } else { "--out" };
    check_run(flag, &dir, &cfg, a.arch.as_deref(), (a.train_path, &device))?;
    let data = load_train_data(&cfg)?;
    let ctl = RunControl {
        resume,
        stop_after: a.stop_after,
        quiet: false,
        path: a.train_path,
    };
    let out = train::train(
        &dir,
        &cfg,
        &data,
        &device,
        &ctl,
        &super::progress::batches_bar(),
    )?;
    if out.complete {
        println!(
            "done: {} epochs. Evaluate on the test split with: lightsnn eval --checkpoint {}{}",
            out.epochs_done,
            dir.join(train::files::BEST).display(),
            cfg.data
                .as_ref()
                .map(|d| format!(" --data {}", d.display()))
                .unwrap_or_default()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch_file(dir: &Path, name: &str, json: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, json).unwrap();
        p
    }

    fn args() -> TrainArgs {
        TrainArgs {
            epochs: Some(1),
            out: Some(PathBuf::from("unused")),
            ..Default::default()
        }
    }

    fn err(r: Result<TrainConfig>) -> String {
        format!("{:#}", r.unwrap_err())
    }

    #[test]
    fn train_loss_defaults_by_dataset() -> Result<()> {
        let d = tempfile::tempdir()?;
        let with = |dataset: &str, loss: Option<LossKind>| {
            new_config(&TrainArgs {
                genotype: Some("conv3,conv3,zero,conv3,conv3,zero".into()),
                dataset: Some(dataset.into()),
                data: Some(d.path().to_path_buf()),
                loss,
                ..args()
            })
        };
        assert_eq!(with("dvs128", None)?.loss, LossKind::Mse);
        assert_eq!(with("dvs128", Some(LossKind::Ce))?.loss, LossKind::Ce);
        assert_eq!(with("nmnist", None)?.loss, LossKind::Ce);
        assert_eq!(with("cifar10", None)?.loss, LossKind::Ce);
        assert_eq!(with("cifar10", None)?.optim.lr, 0.1);
        Ok(())
    }

    const SNASNET_ARCH: &str = r#"{"format":"lightsnn-search/1","genotype":"conv1,skip,zero,conv3,avgpool,zero,skip,conv3,zero,conv3,skip,conv1","cell":"backward","ops":["zero","skip","conv1","conv3","avgpool"]}"#;

    #[test]
    fn train_arch_file_sets_and_checks_the_space() -> Result<()> {
        let d = tempfile::tempdir()?;
        let f = arch_file(d.path(), "snas.json", SNASNET_ARCH);
        // Taken from the file.
        let cfg = new_config(&TrainArgs {
            arch: Some(f.clone()),
            ..args()
        })?;
        assert_eq!(cfg.net.ops, OpSet::snasnet());
        assert_eq!(cfg.net.dataset, DatasetKind::Cifar10);
        let nm = arch_file(
            d.path(),
            "nm.json",
            &SNASNET_ARCH.replace(
                "\"cell\"",
                "\"config\":{\"net\":{\"dataset\":\"nmnist\"}},\"cell\"",
            ),
        );
        let e = err(new_config(&TrainArgs {
            arch: Some(nm),
            ..args()
        }));
        assert!(e.contains("--data") && e.contains("nmnist"), "{e}");
        assert_eq!(cfg.genotype.split(',').next(), Some("conv1"));
        // Another op set or cell type than requested.
        let e = err(new_config(&TrainArgs {
            arch: Some(f.clone()),
            space: Some("lightsnn".into()),
            ..args()
        }));
        assert!(e.contains("snas.json") && e.contains("--space"), "{e}");
        let e = err(new_config(&TrainArgs {
            arch: Some(f.clone()),
            cell: Some("forward".into()),
            ..args()
        }));
        assert!(e.contains("snas.json") && e.contains("--cell"), "{e}");
        // A forward-cell file with a backward genotype length.
        let bad_cell = arch_file(
            d.path(),
            "fwd.json",
            &SNASNET_ARCH.replace("\"backward\"", "\"forward\""),
        );
        let e = err(new_config(&TrainArgs {
            arch: Some(bad_cell),
            ..args()
        }));
        assert!(e.contains("fwd.json"), "{e}");
        // A genotype op outside the file's own op set.
        let outside = arch_file(
            d.path(),
            "outside.json",
            &SNASNET_ARCH.replace("avgpool,zero", "maxpool,zero"),
        );
        let e = err(new_config(&TrainArgs {
            arch: Some(outside),
            ..args()
        }));
        assert!(e.contains("outside.json") && e.contains("maxpool"), "{e}");
        Ok(())
    }

    #[test]
    fn train_rejects_non_search_json_and_bad_genotypes() -> Result<()> {
        let d = tempfile::tempdir()?;
        for (name, text) in [
            (
                "state.json",
                r#"{"format":"lightsnn-train-state/1","epoch":1}"#,
            ),
            ("plain.json", r#"{"genotype":"conv3"}"#),
            ("text.json", "genotype: conv3"),
        ] {
            let f = arch_file(d.path(), name, text);
            let e = err(new_config(&TrainArgs {
                arch: Some(f),
                ..args()
            }));
            assert!(e.contains(name), "{e}");
        }
        let e = err(new_config(&TrainArgs {
            arch: Some(d.path().join("missing.json")),
            ..args()
        }));
        assert!(e.contains("missing.json"), "{e}");
        // conv1 is not in the default (lightsnn) op set.
        let e = err(new_config(&TrainArgs {
            genotype: Some(
                "conv1,skip,zero,conv3,conv3,zero,skip,conv3,zero,conv3,skip,conv3".into(),
            ),
            ..args()
        }));
        assert!(e.contains("conv1"), "{e}");
        let e = err(new_config(&TrainArgs {
            genotype: Some("conv3,skip".into()),
            ..args()
        }));
        assert!(e.contains("12 ops"), "{e}");
        // Event data needs a folder.
        let e = err(new_config(&TrainArgs {
            genotype: Some("conv3,skip,zero,conv3,conv3,zero".into()),
            dataset: Some("nmnist".into()),
            ..args()
        }));
        assert!(e.contains("--data"), "{e}");
        Ok(())
    }

    #[test]
    fn train_dataset_folder_without_files_is_named() -> Result<()> {
        let d = tempfile::tempdir()?;
        let cfg = new_config(&TrainArgs {
            genotype: Some("conv3,skip,zero,conv3,conv3,zero".into()),
            data: Some(d.path().to_path_buf()),
            ..args()
        })?;
        assert_eq!(cfg.net.cell, CellType::Forward);
        let e = format!("{:#}", load_train_data(&cfg).unwrap_err());
        assert!(e.contains(&d.path().display().to_string()), "{e}");
        Ok(())
    }

    #[test]
    fn train_resume_refuses_contradicting_flags() -> Result<()> {
        let d = tempfile::tempdir()?;
        let cfg = new_config(&TrainArgs {
            genotype: Some("conv3,skip,zero,conv3,conv3,zero".into()),
            epochs: Some(4),
            ..args()
        })?;
        let st = TrainState {
            format: train::STATE_FORMAT.into(),
            epoch: 1,
            config: cfg.clone(),
            optimizer: train::OptimState {
                kind: "sgd".into(),
                config: cfg.optim.clone(),
                schedule: String::new(),
                steps: 0,
                buffers: String::new(),
            },
            rng: train::RngState {
                generator: String::new(),
                seed: 0,
                derivation: String::new(),
                next_epoch: 1,
            },
            best: None,
            history: Vec::new(),
            version: String::new(),
        };
        std::fs::write(d.path().join(train::files::STATE), serde_json::to_vec(&st)?)?;
        let resume = |a: TrainArgs| resume_config(&a, d.path());
        assert_eq!(resume(TrainArgs::default())?, cfg);
        // Same values are fine; other values are refused, all named.
        assert_eq!(
            resume(TrainArgs {
                epochs: Some(4),
                seed: Some(0),
                ..Default::default()
            })?,
            cfg
        );
        let e = err(resume(TrainArgs {
            epochs: Some(5),
            lr: Some(0.2),
            genotype: Some("conv3,conv3,zero,conv3,conv3,zero".into()),
            ..Default::default()
        }));
        assert!(
            e.contains("--epochs") && e.contains("--lr") && e.contains("--arch/--genotype"),
            "{e}"
        );
        // Not a run folder.
        let e = err(resume_config(&TrainArgs::default(), &d.path().join("nope")));
        assert!(e.contains("nope"), "{e}");
        Ok(())
    }

    /// `--board` sizes the network for the genotype where the sizes were not given, and
    /// refuses given sizes that cannot fit, before anything is read or written.
    #[test]
    fn board_sizes_the_network_for_its_genotype() -> Result<()> {
        let demo = "conv3,conv3,conv3,conv3,conv3,zero,conv3,conv3,conv3,zero,conv3,conv3";
        let board = BoardArgs {
            board: Some("stm32f411".into()),
        };
        let cfg = new_config(&TrainArgs {
            genotype: Some(demo.into()),
            board: board.clone(),
            ..args()
        })?;
        assert_eq!(
            (
                cfg.net.shape.c1,
                cfg.net.shape.c2,
                cfg.net.shape.hidden,
                cfg.net.shape.timesteps
            ),
            (8, 16, 128, 5)
        );
        let kept = new_config(&TrainArgs {
            genotype: Some(demo.into()),
            board: board.clone(),
            shape: ShapeArgs {
                width: Some(1.0 / 64.0),
                timesteps: Some(3),
                ..Default::default()
            },
            ..args()
        })?;
        assert_eq!((kept.net.shape.c1, kept.net.shape.timesteps), (4, 3));
        let e = err(new_config(&TrainArgs {
            genotype: Some(demo.into()),
            board,
            shape: ShapeArgs {
                width: Some(0.25),
                hidden: Some(256),
                ..Default::default()
            },
            ..args()
        }));
        assert!(
            e.contains("refused before any work") && e.contains("flash"),
            "{e}"
        );
        Ok(())
    }
}
