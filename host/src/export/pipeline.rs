//! The export and integer-evaluation pipelines behind `lightsnn export` and
//! `lightsnn eval --model`, as library functions (tests call them too).

use super::{
    calibrate, footprint, from_network, quantize_with_report, run_integer, Bits, Footprint,
    IntegerRun,
};
use crate::data::Dataset;
use crate::model::{Forward, Mixing, Mode, Network, NoSink};
use crate::train::load_checkpoint;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, D};
use rand::SeedableRng;
use snn_nostd::genotype::Genotype;
use std::path::Path;

/// A quantised blob and what it costs.
pub struct Exported {
    /// The trained network it came from.
    pub net: Network,
    /// Its genotype.
    pub genotype: Genotype,
    /// The blob.
    pub blob: Vec<u8>,
    /// Flash and RAM footprint.
    pub footprint: Footprint,
    /// Calibration samples used.
    pub calib: usize,
}

/// Loads `checkpoint`, folds and quantises it, calibrating on `calib` samples of `train`
/// drawn with a fixed seed (so the blob is reproducible).
pub fn export_checkpoint(
    checkpoint: &Path,
    train: &Dataset,
    bits: Bits,
    calib: usize,
) -> Result<Exported> {
    if calib == 0 {
        bail!("at least one calibration sample is needed");
    }
    let (net, meta) = load_checkpoint(checkpoint, &Device::Cpu)?;
    let genotype = meta.genotype()?;
    let fnet = from_network(&net, &genotype)?;
    fnet.check_blob_support()
        .map_err(|e| anyhow::anyhow!("{}: {e}", checkpoint.display()))?;
    let k = calib.min(train.len());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let idx = rand::seq::index::sample(&mut rng, train.len(), k).into_vec();
    let mut buf = Vec::new();
    train.fill_batch(&idx, None, &mut buf);
    let per = buf.len() / k;
    let samples: Vec<&[f32]> = buf.chunks(per).collect();
    let origin = || checkpoint.display().to_string();
    let ranges = calibrate(&net, &genotype, &samples).with_context(origin)?;
    let (blob, _) = quantize_with_report(&fnet, bits, &ranges).with_context(origin)?;
    let footprint = footprint(&blob)?;
    Ok(Exported {
        net,
        genotype,
        blob,
        footprint,
        calib: k,
    })
}

/// Integer and float results on one dataset.
pub struct Comparison {
    /// The integer engine's run (predictions, per-layer statistics).
    pub integer: IntegerRun,
    /// Integer top-1 accuracy (0..1).
    pub integer_top1: f64,
    /// Float predictions, when a float network was given.
    pub float_predictions: Option<Vec<usize>>,
    /// Float top-1 accuracy (0..1).
    pub float_top1: Option<f64>,
    /// Fraction of samples where integer and float agree on the top-1.
    pub agreement: Option<f64>,
}

/// Runs `blob` with snn-nostd's integer engine on every sample of `data`, and `float` (a
/// trained network and its genotype) in eval mode on the same samples.
pub fn compare(
    blob: &[u8],
    float: Option<(&Network, &Genotype)>,
    data: &Dataset,
    batch: usize,
) -> Result<Comparison> {
    let n = data.len();
    if n == 0 {
        bail!("the dataset is empty");
    }
    let idx: Vec<usize> = (0..n).collect();
    let mut buf = Vec::new();
    data.fill_batch(&idx, None, &mut buf);
    let per = buf.len() / n;
    let inputs: Vec<&[f32]> = buf.chunks(per).collect();
    let integer = run_integer(blob, &inputs)?;
    let acc = |p: &[usize]| {
        p.iter()
            .enumerate()
            .filter(|(i, &c)| data.label(*i) == c)
            .count() as f64
            / n as f64
    };
    let integer_top1 = acc(&integer.predictions);
    let (mut float_predictions, mut float_top1, mut agreement) = (None, None, None);
    if let Some((net, g)) = float {
        let mix = Mixing::single_path(g);
        let [c, h, w] = data.frame_shape();
        let f = data.frames();
        let mut preds = Vec::with_capacity(n);
        for chunk in idx.chunks(batch.max(1)) {
            let x = Tensor::from_slice(
                &buf[chunk[0] * per..(chunk[0] + chunk.len()) * per],
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
            let sum: f32 = out.logits.sum_all()?.to_scalar()?;
            if !sum.is_finite() {
                bail!(
                    "the float network's outputs are not finite on the test data; its weights \
                     are corrupt or the training diverged"
                );
            }
            let p: Vec<u32> = out.logits.argmax(D::Minus1)?.to_vec1()?;
            preds.extend(p.into_iter().map(|v| v as usize));
        }
        float_top1 = Some(acc(&preds));
        agreement = Some(
            preds
                .iter()
                .zip(&integer.predictions)
                .filter(|(a, b)| a == b)
                .count() as f64
                / n as f64,
        );
        float_predictions = Some(preds);
    }
    Ok(Comparison {
        integer,
        integer_top1,
        float_predictions,
        float_top1,
        agreement,
    })
}
