//! `lightsnn eval --model model.bin`: the integer engine of snn-nostd on the host.

use super::eval::EvalArgs;
use crate::data::{Dataset, DatasetKind, Split};
use crate::export::pipeline::compare;
use crate::train;
use anyhow::{bail, Context, Result};
use snn_nostd::model::decode;
use std::path::Path;

/// Runs the integer model on the test split; compares with `--checkpoint` when given.
pub fn run(model_path: &Path, a: &EvalArgs) -> Result<()> {
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
        None if kind == DatasetKind::Cifar10 => crate::sample::cifar10_sample(Split::Test)?,
        None => bail!("--data DIR is needed for a {kind} model"),
    };
    let float = match &a.checkpoint {
        Some(ck) => {
            let (net, meta) = train::load_checkpoint(ck, &candle_core::Device::Cpu)?;
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
        println!("  SAR {:?}: {:.4}", s.layer, s.sar());
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
