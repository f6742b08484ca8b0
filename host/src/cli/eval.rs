//! `lightsnn eval`: a checkpoint (Candle, float) or, with `--model`, a model blob (the integer
//! engine of snn-nostd on the host, the firmware's code).

use super::common::{check_preset, load_split, parse_positive, DeviceArg};
use anyhow::{bail, Context, Result};
use clap::Args;
use lightsnn::config::Preset;
use lightsnn::data::{DatasetKind, Split};
use lightsnn::export::pipeline::compare;
use lightsnn::fsutil::{check_output_file, write_atomic};
use lightsnn::limits::{check_free, product};
use lightsnn::search::estimate::check_network;
use lightsnn::search::Pass;
use lightsnn::train::checkpoint::{read_checkpoint_meta, CheckpointMeta};
use lightsnn::train::{self, LossKind};
use serde::Serialize;
use snn_nostd::engine::buffer_sizes;
use snn_nostd::model::{decode, Model, Shape};
use std::path::{Path, PathBuf};

/// Options of `lightsnn eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A checkpoint written by `lightsnn train` (RUN_DIR/best.safetensors or last.safetensors);
    /// the network is rebuilt from it alone.
    #[arg(long, required_unless_present = "model")]
    pub checkpoint: Option<PathBuf>,
    /// A model blob written by `lightsnn export`: run it with the integer engine of snn-nostd
    /// (the same code as the firmware) and report top-1, per-layer SAR and, with
    /// `--checkpoint`, the agreement with the float network.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Dataset folder in the official layout (its test split is evaluated). Without it, the
    /// built-in CIFAR-10 sample.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Check that `--checkpoint` is this preset's network (`spikenas-bench`); the checkpoint
    /// carries its configuration, so nothing else needs the flag.
    #[arg(long, value_enum, requires = "checkpoint")]
    pub preset: Option<Preset>,
    /// Batch size.
    #[arg(long, default_value_t = 64, value_parser = parse_positive)]
    pub batch: usize,
    /// Device.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceArg,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The JSON written by `--json`.
#[derive(Serialize)]
struct EvalFile<'a> {
    format: &'static str,
    checkpoint: String,
    data: String,
    meta: &'a train::CheckpointMeta,
    #[serde(flatten)]
    report: &'a train::EvalReport,
}

/// Runs `lightsnn eval`.
pub fn run(a: EvalArgs) -> Result<()> {
    if let Some(json) = &a.json {
        let mut inputs: Vec<(&str, &Path)> = vec![];
        for (flag, p) in [
            ("--checkpoint", &a.checkpoint),
            ("--model", &a.model),
            ("--data", &a.data),
        ] {
            if let Some(p) = p {
                inputs.push((flag, p.as_path()));
            }
        }
        check_output_file("--json", json, &inputs)?;
    }
    if let Some(model) = &a.model {
        return run_model(model, &a);
    }
    let checkpoint = a
        .checkpoint
        .clone()
        .expect("clap requires --checkpoint or --model");
    let device = a.device.open()?;
    // The network and the batches must fit before anything is loaded.
    let described = read_checkpoint_meta(&checkpoint)?;
    let g = described
        .genotype()
        .with_context(|| checkpoint.display().to_string())?;
    check_network(
        &described.net,
        &g,
        a.batch,
        Pass::Eval,
        &device,
        &format!(
            "lower --batch (the network is the one {} describes)",
            checkpoint.display()
        ),
    )?;
    let (net, meta) = train::load_checkpoint(&checkpoint, &device)?;
    check_preset(&meta.net, a.preset, &checkpoint)?;
    let g = meta.genotype()?;
    let kind = meta.net.dataset;
    let whose = format!("{}: ", checkpoint.display());
    let t = meta.net.shape.timesteps;
    let (data, label) = load_split(kind, a.data.as_deref(), Split::Test, t, &whose)?;
    println!(
        "lightsnn eval: {} (epoch {}, genotype {}, C1/C2 {}/{}, H {}, T {}) on the {kind} test split of {label}",
        checkpoint.display(),
        meta.epoch,
        g,
        meta.net.shape.c1,
        meta.net.shape.c2,
        meta.net.shape.hidden,
        meta.net.shape.timesteps
    );
    let pb = super::progress::Bar(indicatif::ProgressBar::new(
        data.len().div_ceil(a.batch.max(1)) as u64,
    ));
    let report = train::evaluate(&net, &g, &data, a.batch, LossKind::Ce, true, &pb)?;
    pb.0.finish_and_clear();
    if !report.loss.is_finite() {
        bail!(
            "{}: the network's outputs are not finite on the test data (loss {}); the weights \
             are corrupt or the training diverged: use another checkpoint",
            checkpoint.display(),
            report.loss
        );
    }
    print!("{}", report.render());
    if let Some(path) = &a.json {
        let f = EvalFile {
            format: "lightsnn-eval/1",
            checkpoint: checkpoint.display().to_string(),
            data: label,
            meta: &meta,
            report: &report,
        };
        write_atomic(path, &serde_json::to_vec_pretty(&f)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Refuses a `--checkpoint` (`meta`, read from `ck`) that is not the network of the blob
/// `model` (read from `model_path`): another dataset, genotype or shape.
fn same_network(
    model: &Model<'_>,
    model_path: &Path,
    meta: &CheckpointMeta,
    ck: &Path,
) -> Result<()> {
    let describe = |kind: DatasetKind, g: &str, s: &Shape| {
        format!(
            "{kind} {}x{}x{}, genotype {g}, C1/C2 {}/{}, H {}, T {}, V {}",
            s.in_c, s.in_h, s.in_w, s.c1, s.c2, s.hidden, s.timesteps, s.votes
        )
    };
    let blob = describe(
        model.dataset(),
        &model.genotype().to_string(),
        model.shape(),
    );
    let ckpt = match meta.genotype() {
        Ok(g) => describe(meta.net.dataset, &g.to_string(), &meta.net.shape),
        Err(_) => format!("genotype {:?}", meta.genotype),
    };
    if blob != ckpt {
        bail!(
            "--checkpoint {} ({ckpt}) is not the network of --model {} ({blob}); give the \
             checkpoint the blob was exported from",
            ck.display(),
            model_path.display()
        );
    }
    Ok(())
}

/// `--model`: the integer model on the test split; compared with `--checkpoint` when given.
fn run_model(model_path: &Path, a: &EvalArgs) -> Result<()> {
    let blob = lightsnn::fsutil::read_input(model_path)
        .with_context(|| format!("cannot read {}", model_path.display()))?;
    let model = decode(&blob)
        .with_context(|| format!("{}: not a valid model blob", model_path.display()))?;
    let shape = *model.shape();
    // The blob records its dataset (format 2).
    let kind = model.dataset();
    let t = shape.timesteps;
    // The float network must be the blob's, and fit, before any data is read.
    let described = match &a.checkpoint {
        Some(ck) => {
            let meta = read_checkpoint_meta(ck)?;
            same_network(&model, model_path, &meta, ck)?;
            let g = meta.genotype()?;
            check_network(
                &meta.net,
                &g,
                a.batch,
                Pass::Eval,
                &candle_core::Device::Cpu,
                &format!(
                    "lower --batch (the network is the one {} describes)",
                    ck.display()
                ),
            )?;
            Some(ck)
        }
        None => None,
    };
    let engine = buffer_sizes(&model).bytes_with_input() as f64;
    let frame = product(&shape.in_chw());
    check_free(
        engine + 4.0 * frame * t as f64,
        &format!("running {}", model_path.display()),
        format!("engine buffers {engine} B"),
        "the blob describes a network too large for this machine",
    )?;
    let whose = format!("{}: ", model_path.display());
    let (data, _) = load_split(kind, a.data.as_deref(), Split::Test, t, &whose)?;
    // every test sample is quantised from one buffer
    check_free(
        4.0 * data.len() as f64 * data.sample_len() as f64,
        &format!("the {} test samples", data.len()),
        "",
        "evaluate a smaller test split",
    )?;
    let float = match described {
        Some(ck) => {
            let (net, meta) = train::load_checkpoint(ck, &candle_core::Device::Cpu)?;
            check_preset(&meta.net, a.preset, ck)?;
            let g = meta.genotype()?;
            Some((net, g))
        }
        None => None,
    };
    let c =
        compare(&blob, float.as_ref().map(|(n, g)| (n, g)), &data, a.batch).with_context(|| {
            match &a.checkpoint {
                Some(ck) => format!("{} against {}", model_path.display(), ck.display()),
                None => model_path.display().to_string(),
            }
        })?;
    println!(
        "integer model {} ({} bytes) on {} test samples",
        model_path.display(),
        blob.len(),
        data.len()
    );
    println!("  top-1: {:.2}%", 100.0 * c.integer_top1);
    let (mut spikes, mut slots) = (0u64, 0u64);
    for s in &c.integer.stats {
        println!("  SAR {}: {:.4}", s.layer, s.sar());
        spikes += s.spikes;
        slots += s.neurons as u64 * s.steps;
    }
    println!("  SAR total: {:.4}", spikes as f64 / slots.max(1) as f64);
    if let (Some(f), Some(ag)) = (c.float_top1, c.agreement) {
        println!(
            "  float checkpoint top-1: {:.2}%; agreement integer vs float (same top-1): {:.2}%",
            100.0 * f,
            100.0 * ag
        );
    }
    Ok(())
}
