//! `lightsnn eval`: a checkpoint (Candle, float) or, with `--model`, a model blob (the integer
//! engine of snn-nostd on the host, the firmware's code).

use super::common::{check_preset, DeviceArg};
use crate::config::Preset;
use crate::data::{Dataset, DatasetKind, Split};
use crate::export::pipeline::compare;
use crate::fsutil::write_atomic;
use crate::train::{self, LossKind};
use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use snn_nostd::model::decode;
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
    #[arg(long, default_value_t = 64)]
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
    if let Some(model) = &a.model {
        return run_model(model, &a);
    }
    let checkpoint = a
        .checkpoint
        .clone()
        .expect("clap requires --checkpoint or --model");
    let device = a.device.open()?;
    let (net, meta) = train::load_checkpoint(&checkpoint, &device)?;
    check_preset(&meta.net, a.preset, &checkpoint)?;
    let g = meta.genotype()?;
    let kind = meta.net.dataset;
    let (data, label) = match &a.data {
        Some(dir) => (
            Dataset::load(kind, dir, Split::Test, meta.net.timesteps)?,
            dir.display().to_string(),
        ),
        None => {
            if kind != crate::data::DatasetKind::Cifar10 {
                anyhow::bail!(
                    "{}: the checkpoint is for {kind}; give its dataset folder with --data DIR",
                    checkpoint.display()
                );
            }
            (
                crate::data::sample::cifar10_sample(Split::Test)?,
                crate::data::sample::SAMPLE_LABEL.to_string(),
            )
        }
    };
    println!(
        "lightsnn eval: {} (epoch {}, genotype {}, C1/C2 {}/{}, H {}, T {}) on the {kind} test split of {label}",
        checkpoint.display(),
        meta.epoch,
        g,
        meta.net.c1,
        meta.net.c2,
        meta.net.hidden,
        meta.net.timesteps
    );
    let pb = indicatif::ProgressBar::new(data.len().div_ceil(a.batch.max(1)) as u64);
    let report = train::evaluate(&net, &g, &data, a.batch, LossKind::Ce, true, Some(&pb))?;
    pb.finish_and_clear();
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

/// `--model`: the integer model on the test split; compared with `--checkpoint` when given.
fn run_model(model_path: &Path, a: &EvalArgs) -> Result<()> {
    let blob = std::fs::read(model_path)
        .with_context(|| format!("cannot read {}", model_path.display()))?;
    let model = decode(&blob)
        .with_context(|| format!("{}: not a valid model blob", model_path.display()))?;
    let dims = *model.dims();
    // The blob records its dataset (format 2).
    let kind = DatasetKind::from_blob_tag(model.dataset());
    let t = dims.t as usize;
    let data = match &a.data {
        Some(d) => Dataset::load(kind, d, Split::Test, t)?,
        None if kind == DatasetKind::Cifar10 => crate::data::sample::cifar10_sample(Split::Test)?,
        None => bail!("--data DIR is needed for a {kind} model"),
    };
    let float = match &a.checkpoint {
        Some(ck) => {
            let (net, meta) = train::load_checkpoint(ck, &candle_core::Device::Cpu)?;
            check_preset(&meta.net, a.preset, ck)?;
            let g = meta.genotype()?;
            Some((net, g))
        }
        None => None,
    };
    let c = compare(&blob, float.as_ref().map(|(n, g)| (n, g)), &data, a.batch)?;
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
