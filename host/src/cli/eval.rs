//! `lightsnn eval`.

use super::common::DeviceArg;
use crate::data::{Dataset, Split};
use crate::fsutil::write_atomic;
use crate::train::{self, LossKind};
use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;

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
        return super::eval_int::run(model, &a);
    }
    let checkpoint = a
        .checkpoint
        .clone()
        .expect("clap requires --checkpoint or --model");
    let device = a.device.open()?;
    let (net, meta) = train::load_checkpoint(&checkpoint, &device)?;
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
                crate::sample::cifar10_sample(Split::Test)?,
                crate::sample::SAMPLE_LABEL.to_string(),
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
