//! The host integer reference: the same `snn-nostd` engine, compiled for the host, run on the
//! same blob and images as the firmware, giving the same [`ImageResult`] records.

use crate::report::{ImageResult, Summary};
use anyhow::{bail, Context, Result};
use snn_nostd::engine::{self, Engine};
use snn_nostd::model;

/// Per-layer facts of a model, for the cost report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LayerInfo {
    /// Layer name (`cell1.node0`, `cell1.out`, `hidden`, ...: `snn_nostd::skeleton::LayerId`).
    pub name: String,
    /// Neurons.
    pub neurons: u32,
}

/// Everything the host reference computes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reference {
    /// LIF layers in network order (the order of [`ImageResult::spikes`]).
    pub layers: Vec<LayerInfo>,
    /// Timesteps per sample.
    pub timesteps: u32,
    /// Per image.
    pub images: Vec<ImageResult>,
    /// Totals.
    pub summary: Summary,
    /// Per image: neuron updates (sum over LIF layers of neurons x timesteps).
    pub neuron_updates: Vec<u64>,
    /// Engine arenas plus input buffer, in bytes, as the firmware allocates them
    /// (`BufferSizes::bytes_with_input`; `lightsnn export`'s activation + input RAM).
    pub arena_bytes: usize,
    /// Bytes of the dense baseline's scratch (`engine::dense_scratch_len`), which a firmware
    /// built with feature `dense` adds.
    pub dense_bytes: usize,
}

/// Runs every record of `images` through the model in `blob`: records of 1 label byte + the
/// model's whole raw `u8` input sample (`Shape::record_len`, the firmware's rule: CIFAR-10 binary
/// records for a 3x32x32 network, `T` frames of event counts for an event network).
pub fn run(blob: &[u8], images: &[u8]) -> Result<Reference> {
    let model = model::decode(blob).context("model blob does not decode")?;
    let d = *model.shape();
    if d.record_count(images.len()).is_none() {
        bail!(
            "{} bytes is not a whole number (>= 1) of this model's records of {} bytes (1 label \
             byte + {} input bytes, {:?} input {}x{}x{}, T {})",
            images.len(),
            d.record_len(),
            d.input_len(),
            d.input,
            d.in_c,
            d.in_h,
            d.in_w,
            d.timesteps
        );
    }
    let need = engine::buffer_sizes(&model);
    let (mut act, mut acc, mut bits) = (
        vec![0i16; need.act],
        vec![0i32; need.acc],
        vec![0u64; need.bits],
    );
    let mut input = vec![0i16; need.input];
    let mut eng = Engine::new(&model, &mut act, &mut acc, &mut bits).context("engine set-up")?;
    let layers = eng
        .stats()
        .iter()
        .map(|s| LayerInfo {
            name: s.layer.to_string(),
            neurons: s.neurons,
        })
        .collect();
    let mut out = Vec::new();
    let mut neuron_updates = Vec::new();
    let mut correct = 0;
    for (i, rec) in images.chunks_exact(d.record_len()).enumerate() {
        eng.reset_stats();
        engine::quantize_input_u8(&model, &rec[1..], &mut input).context("quantising a record")?;
        let pred = eng.infer(&input, &mut ()).context("inference")?;
        let stats = eng.stats();
        let total: u64 = stats.iter().map(|s| s.spikes).sum();
        let updates: u64 = stats.iter().map(|s| u64::from(s.neurons) * s.steps).sum();
        // Same integer formula as the firmware.
        let sar_ppm = (total * 1_000_000).checked_div(updates).unwrap_or(0) as u32;
        correct += usize::from(pred == usize::from(rec[0]));
        out.push(ImageResult {
            image: i,
            label: rec[0],
            pred: pred as u16,
            sar_ppm,
            synops: eng.synops(),
            spikes: stats.iter().map(|s| s.spikes).collect(),
            scores: eng.scores().to_vec(),
        });
        neuron_updates.push(updates);
    }
    Ok(Reference {
        layers,
        timesteps: u32::try_from(model.shape().timesteps)?,
        summary: Summary {
            images: out.len(),
            correct,
        },
        images: out,
        neuron_updates,
        arena_bytes: need.bytes_with_input(),
        dense_bytes: engine::dense_scratch_len(&model) * 4,
    })
}
