//! `lightsnn eval --model model.bin`: the integer engine of snn-nostd on the host.

use super::eval::EvalArgs;
use crate::data::{Dataset, DatasetKind, Split};
use crate::export::run_integer;
use crate::model::{Forward, Mixing, Mode, NoSink};
use crate::train;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, D};
use snn_nostd::model::decode;
use std::path::Path;

/// Runs the integer model on the test split; compares with `--checkpoint` when given.
pub fn run(model_path: &Path, a: &EvalArgs) -> Result<()> {
    let blob = std::fs::read(model_path)
        .with_context(|| format!("cannot read {}", model_path.display()))?;
    let model = decode(&blob)
        .map_err(|e| anyhow::anyhow!("{}: not a valid model blob: {e}", model_path.display()))?;
    let dims = *model.dims();
    let kind = match (dims.in_c, dims.in_h) {
        (3, 32) => DatasetKind::Cifar10,
        (2, 34) => DatasetKind::Nmnist,
        (2, 128) => DatasetKind::Dvs128,
        _ => bail!(
            "{}: unknown input shape {}x{}x{}",
            model_path.display(),
            dims.in_c,
            dims.in_h,
            dims.in_w
        ),
    };
    let kind = if kind == DatasetKind::Cifar10 && dims.classes == 100 {
        DatasetKind::Cifar100
    } else {
        kind
    };
    let t = dims.t as usize;
    let data = match &a.data {
        Some(d) => Dataset::load(kind, d, Split::Test, t)?,
        None if kind == DatasetKind::Cifar10 => crate::sample::cifar10_sample(Split::Test)?,
        None => bail!("--data DIR is needed for a {kind} model"),
    };
    let idx: Vec<usize> = (0..data.len()).collect();
    let mut buf = Vec::new();
    data.fill_batch(&idx, None, &mut buf);
    let per = buf.len() / data.len().max(1);
    let inputs: Vec<&[f32]> = buf.chunks(per).collect();
    let run = run_integer(&blob, &inputs)?;
    let correct = run
        .predictions
        .iter()
        .zip(data.labels())
        .filter(|(p, l)| **p == **l as usize)
        .count();
    println!(
        "integer model {} ({} bytes) on {} test samples",
        model_path.display(),
        blob.len(),
        data.len()
    );
    println!(
        "  top-1: {:.2}%",
        100.0 * correct as f64 / data.len() as f64
    );
    let (mut spikes, mut slots) = (0u64, 0u64);
    for s in &run.stats {
        println!("  SAR {:?}: {:.4}", s.layer, s.sar());
        spikes += s.spikes;
        slots += s.neurons as u64 * s.steps;
    }
    println!("  SAR total: {:.4}", spikes as f64 / slots.max(1) as f64);
    if let Some(ck) = &a.checkpoint {
        let (net, meta) = train::load_checkpoint(ck, &Device::Cpu)?;
        let g = meta.genotype()?;
        let mix = Mixing::single_path(&g);
        let [c, h, w] = data.frame_shape();
        let f = data.frames();
        let mut same = 0usize;
        let mut float_correct = 0usize;
        for (bi, chunk) in idx.chunks(a.batch.max(1)).enumerate() {
            let x = Tensor::from_slice(
                &buf[bi * a.batch.max(1) * per..][..chunk.len() * per],
                (chunk.len(), f, c, h, w),
                &Device::Cpu,
            )?;
            let out = net.forward(
                &x,
                Forward {
                    mixing: &mix,
                    mode: Mode::Eval,
                    sink: &mut NoSink,
                    dropout_rng: None,
                },
            )?;
            let pred: Vec<u32> = out.logits.argmax(D::Minus1)?.to_vec1()?;
            for (k, &i) in chunk.iter().enumerate() {
                same += (pred[k] as usize == run.predictions[i]) as usize;
                float_correct += (pred[k] as usize == data.label(i)) as usize;
            }
        }
        println!(
            "  float checkpoint top-1: {:.2}%; agreement integer vs float (same top-1): {:.2}%",
            100.0 * float_correct as f64 / data.len() as f64,
            100.0 * same as f64 / data.len() as f64
        );
    }
    Ok(())
}
