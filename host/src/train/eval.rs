//! Evaluation of a trained network: top-1, per-class accuracy, confusion matrix, spike activity
//! rate (SAR) per LIF layer, synaptic operations and an energy estimate.
//!
//! # Synaptic operations
//! Counted per sample, summed over the T timesteps, counting only active spikes:
//! - **AC** (accumulate) for every spike-driven layer: a spike adds one weight per output it
//!   reaches. For a 3x3, padding-1 conv with `C_out` outputs a spike at `(y, x)` reaches
//!   `C_out x (number of in-bounds 3x3 neighbours of (y, x))` outputs (border pixels reach fewer),
//!   counted exactly as `C_out x sum(conv2d(channel-summed spikes, ones 3x3, pad 1))`; a 1x1 conv
//!   `C_out` per spike; a linear layer its output count per spike.
//!   - a cell node's spikes feed every conv op on the edges leaving that node (C outputs each);
//!   - cell 1's output spikes feed the down conv (C2 outputs, 3x3);
//!   - cell 2's output spikes, after MaxPool(p), feed fc1 (H outputs); after AvgPool(p) (the
//!     SpikeNAS-Bench network) every spike inside the pooled windows does (the pool's `1/p^2`
//!     folds into fc1's weights);
//!   - the hidden spikes feed fc2 (classes x V outputs).
//! - **MAC** (multiply-accumulate) for the dense stem conv on the real-valued input:
//!   `C1 x C_in x (in-bounds taps summed over output positions)`. For static images it is
//!   computed once per sample (the stem output is the same at every timestep and is reused); for
//!   event data once per timestep (each timestep has its own frame), so T times per sample.
//!
//! Not counted: BatchNorm (folded into the convs at deployment), LIF membrane updates, skip /
//! pooling edges (no weights), the voting average and the output bias.
//!
//! # Energy
//! `E = 0.9 pJ x AC + 4.6 pJ x MAC` per sample: 32-bit floating-point add and multiply-add on a
//! 45 nm process (Horowitz, ISSCC 2014), the constants used across the SNN literature. It is an
//! estimate of arithmetic energy only (no memory access).

use super::metrics::{predictions, LossKind};
use crate::config::{NetConfig, PoolKind};
use crate::data::{Dataset, DatasetKind};
use crate::model::{Forward, LayerId, Mixing, Mode, Network, SpikeSink};
use crate::progress::Progress;
use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use snn_nostd::genotype::{Genotype, LIF_CLASSES, NUM_NODES};
use snn_nostd::skeleton::{CellSchedule, ConvCounts};
use std::collections::BTreeMap;

/// Energy of one accumulate (32-bit float add, 45 nm; Horowitz 2014), in picojoules.
pub const E_AC_PJ: f64 = 0.9;
/// Energy of one multiply-accumulate (32-bit float, 45 nm; Horowitz 2014), in picojoules.
pub const E_MAC_PJ: f64 = 4.6;

/// Spike counts of one LIF layer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerCount {
    /// How many LIF modules of the reference network this layer stands for.
    pub multiplicity: u32,
    /// Neurons per sample and timestep (of one module).
    pub neurons: usize,
    /// Spikes counted (of one module), over all samples and timesteps.
    pub spikes: f64,
    /// Neuron-timestep slots (neurons x samples x timesteps, of one module).
    pub slots: f64,
    /// Accumulates caused by this layer's spikes (all modules), over all samples.
    pub ac: f64,
}

/// How spikes of each layer turn into accumulates.
#[derive(Clone, Debug)]
struct SynopsModel {
    /// Per source node and LIF class: the conv3 and conv1 edges leaving it (both cells run the
    /// genotype).
    node_convs: [[ConvCounts; LIF_CLASSES]; NUM_NODES],
    c1: usize,
    c2: usize,
    pool: usize,
    downsample: PoolKind,
    hidden: usize,
    outputs: usize,
    ones: Tensor,
}

/// A [`SpikeSink`] counting spikes per layer, and optionally the accumulates they cause.
pub struct SpikeCounter {
    /// Counts by layer.
    pub layers: BTreeMap<LayerId, LayerCount>,
    synops: Option<SynopsModel>,
}

impl SpikeCounter {
    /// Counts spikes only (SAR).
    pub fn sar_only() -> SpikeCounter {
        SpikeCounter {
            layers: BTreeMap::new(),
            synops: None,
        }
    }

    /// Counts spikes and accumulates of `net` running genotype `g`.
    pub fn with_synops(cfg: &NetConfig, g: &Genotype, device: &Device) -> Result<SpikeCounter> {
        let node_convs = CellSchedule::of_genotype(g.cell(), g.ops()).convs;
        Ok(SpikeCounter {
            layers: BTreeMap::new(),
            synops: Some(SynopsModel {
                node_convs,
                c1: cfg.shape.c1,
                c2: cfg.shape.c2,
                pool: cfg.shape.pool,
                downsample: cfg.downsample,
                hidden: cfg.shape.hidden,
                outputs: cfg.shape.classes * cfg.shape.votes,
                ones: Tensor::ones((1, 1, 3, 3), DType::F32, device)?,
            }),
        })
    }

    /// Total SAR: spikes / slots over all layers, each counted with its multiplicity.
    pub fn sar(&self) -> f64 {
        let (s, n) = self.layers.values().fold((0.0, 0.0), |(s, n), l| {
            let m = l.multiplicity as f64;
            (s + l.spikes * m, n + l.slots * m)
        });
        if n > 0.0 {
            s / n
        } else {
            0.0
        }
    }
}

/// Sum of a tensor whose per-sample sums are small integers, exactly: per-sample sums in f32
/// (exact below 2^24), then summed in f64.
fn exact_sum(t: &Tensor) -> Result<f64> {
    let per: Vec<f32> = t.flatten_from(1)?.sum(1)?.to_dtype(DType::F32)?.to_vec1()?;
    Ok(per.iter().map(|&v| v as f64).sum())
}

/// `sum(conv2d(channel-summed spikes, ones 3x3, pad 1))`: the number of (spike, in-bounds
/// output position) pairs of a 3x3 padding-1 kernel.
fn reach3(spikes: &Tensor, ones: &Tensor) -> Result<f64> {
    let s = spikes.sum_keepdim(1)?;
    exact_sum(&s.conv2d(ones, 1, 1, 1, 1)?)
}

impl SpikeSink for SpikeCounter {
    fn record(&mut self, layer: LayerId, _t: usize, spikes: &Tensor, m: u32) -> Result<()> {
        let spikes = spikes.detach();
        let n = spikes.dim(0)?;
        let neurons = spikes.elem_count() / n.max(1);
        let count = exact_sum(&spikes)?;
        let ac = match &self.synops {
            None => 0.0,
            Some(s) => match layer {
                LayerId::CellNode { cell, node, class } => {
                    let [n3, n1] = s.node_convs[node as usize][class.index()];
                    let c = if cell == 0 { s.c1 } else { s.c2 } as f64;
                    let r3 = if n3 > 0 {
                        reach3(&spikes, &s.ones)?
                    } else {
                        0.0
                    };
                    c * (n3 as f64 * r3 + n1 as f64 * count)
                }
                LayerId::CellOut { cell: 0 } => s.c2 as f64 * reach3(&spikes, &s.ones)?,
                LayerId::CellOut { .. } => {
                    let feeding_fc1 = match s.downsample {
                        PoolKind::Max => exact_sum(&spikes.max_pool2d(s.pool)?)?,
                        // The spikes inside the pooled windows: their mean times p^2.
                        PoolKind::Avg => (exact_sum(&spikes.avg_pool2d(s.pool)?)?
                            * (s.pool * s.pool) as f64)
                            .round(),
                    };
                    s.hidden as f64 * feeding_fc1
                }
                LayerId::Hidden => s.outputs as f64 * count,
            },
        };
        let e = self.layers.entry(layer).or_default();
        e.multiplicity = m;
        e.neurons = neurons;
        e.spikes += count;
        e.slots += (n * neurons) as f64;
        e.ac += ac;
        Ok(())
    }
}

/// Multiply-accumulates of the stem conv per sample (see the module docs).
pub fn stem_macs(cfg: &NetConfig, event_input: bool) -> f64 {
    let taps = |len: usize| -> f64 {
        // Sum over output positions of the in-bounds taps of a 3-wide, padding-1 kernel.
        (3 * len).saturating_sub(2).max(1) as f64
    };
    let per_frame =
        (cfg.shape.c1 * cfg.shape.in_c) as f64 * taps(cfg.shape.in_h) * taps(cfg.shape.in_w);
    if event_input {
        per_frame * cfg.shape.timesteps as f64
    } else {
        per_frame
    }
}

/// One layer of the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerReport {
    /// Layer name (`cell1.node0`, `cell1.out`, `hidden`, ...).
    pub layer: String,
    /// LIF modules it stands for (conv ops reading the same node).
    pub multiplicity: u32,
    /// Neurons per module.
    pub neurons: usize,
    /// Spike activity rate: spikes / (neurons x timesteps x samples).
    pub sar: f64,
    /// Accumulates per sample caused by its spikes.
    pub ac_per_sample: f64,
}

/// Synaptic operations and energy per sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SynOps {
    /// Accumulates per sample (spike-driven layers).
    pub ac_per_sample: f64,
    /// Multiply-accumulates per sample (the stem on the real-valued input).
    pub mac_per_sample: f64,
    /// `0.9 pJ x AC + 4.6 pJ x MAC`, in picojoules per sample.
    pub energy_pj_per_sample: f64,
    /// How the numbers are defined.
    pub note: String,
}

/// The result of [`evaluate`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Samples evaluated.
    pub samples: usize,
    /// Mean loss.
    pub loss: f64,
    /// Which loss.
    pub loss_kind: LossKind,
    /// Top-1 accuracy (0..1).
    pub top1: f64,
    /// Class names (index = label).
    pub classes: Vec<String>,
    /// Per-class accuracy (`None` for a class with no samples).
    pub per_class: Vec<Option<f64>>,
    /// Confusion matrix: `confusion[true][predicted]` sample counts.
    pub confusion: Vec<Vec<u64>>,
    /// Total SAR over all LIF layers, node LIFs counted with their multiplicity.
    pub sar: f64,
    /// Per LIF layer.
    pub layers: Vec<LayerReport>,
    /// Synaptic operations (when requested).
    pub synops: Option<SynOps>,
}

/// Class names for reports: CIFAR-10 names, digits for N-MNIST, numbers otherwise.
pub fn class_names(kind: DatasetKind) -> Vec<String> {
    const CIFAR10: [&str; 10] = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ];
    match kind {
        DatasetKind::Cifar10 => CIFAR10.iter().map(|s| s.to_string()).collect(),
        _ => (0..kind.num_classes()).map(|i| i.to_string()).collect(),
    }
}

/// Runs `net` (single path `g`) in evaluation mode (running BatchNorm statistics, no dropout)
/// over every sample of `data` in order, `batch` at a time. With `synops`, counts synaptic
/// operations too. `progress` advances by one per batch (its
/// caller starts and finishes it).
pub fn evaluate(
    net: &Network,
    g: &Genotype,
    data: &Dataset,
    batch: usize,
    loss_kind: LossKind,
    synops: bool,
    progress: &dyn Progress,
) -> Result<EvalReport> {
    let cfg = &net.cfg;
    let device = net.params.device().clone();
    let mixing = Mixing::single_path(g);
    let classes = cfg.shape.classes;
    let mut counter = if synops {
        SpikeCounter::with_synops(cfg, g, &device)?
    } else {
        SpikeCounter::sar_only()
    };
    let mut confusion = vec![vec![0u64; classes]; classes];
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    let idx: Vec<usize> = (0..data.len()).collect();
    let mut buf = Vec::new();
    let [c, h, w] = data.frame_shape();
    for chunk in idx.chunks(batch.max(1)) {
        data.fill_batch(chunk, None, &mut buf);
        let x = Tensor::from_slice(&buf, (chunk.len(), data.frames(), c, h, w), &device)?;
        let labels: Vec<u32> = chunk.iter().map(|&i| data.label(i) as u32).collect();
        let out = net.forward(
            &x,
            Forward {
                mixing: &mixing,
                mode: Mode::Eval,
                sink: &mut counter,
                dropout_rng: None,
            },
        )?;
        let l: f32 = loss_kind.loss(&out.logits, &labels)?.to_scalar()?;
        loss_sum += l as f64 * chunk.len() as f64;
        for (p, &t) in predictions(&out.logits)?.into_iter().zip(&labels) {
            confusion[t as usize][p] += 1;
            correct += (p == t as usize) as usize;
        }
        progress.advance(1);
    }
    let n = data.len();
    let per_class = confusion
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let total: u64 = row.iter().sum();
            (total > 0).then(|| row[i] as f64 / total as f64)
        })
        .collect();
    let nf = n.max(1) as f64;
    let layers: Vec<LayerReport> = counter
        .layers
        .iter()
        .map(|(id, l)| LayerReport {
            layer: id.to_string(),
            multiplicity: l.multiplicity,
            neurons: l.neurons,
            sar: if l.slots > 0.0 {
                l.spikes / l.slots
            } else {
                0.0
            },
            ac_per_sample: l.ac / nf,
        })
        .collect();
    let synops = synops.then(|| {
        let ac = layers.iter().map(|l| l.ac_per_sample).sum::<f64>();
        let mac = stem_macs(cfg, data.frames() > 1);
        SynOps {
            ac_per_sample: ac,
            mac_per_sample: mac,
            energy_pj_per_sample: E_AC_PJ * ac + E_MAC_PJ * mac,
            note: format!(
                "AC: active spikes x reached outputs (3x3 pad-1 convs counted exactly at borders); \
                 MAC: dense stem conv on the real-valued input, {}; \
                 E = {E_AC_PJ} pJ x AC + {E_MAC_PJ} pJ x MAC (32-bit float, 45 nm, Horowitz 2014)",
                if data.frames() > 1 {
                    "once per timestep (event frames)"
                } else {
                    "once per sample (static input, reused over T)"
                }
            ),
        }
    });
    Ok(EvalReport {
        samples: n,
        loss: loss_sum / nf,
        loss_kind,
        top1: correct as f64 / nf,
        classes: class_names(cfg.dataset),
        per_class,
        confusion,
        sar: counter.sar(),
        layers,
        synops,
    })
}

impl EvalReport {
    /// A human-readable report.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "test top-1: {:.2}% ({} samples), {} loss {:.4}",
            100.0 * self.top1,
            self.samples,
            self.loss_kind,
            self.loss
        );
        let _ = writeln!(s, "per-class accuracy:");
        for (name, acc) in self.classes.iter().zip(&self.per_class) {
            match acc {
                Some(a) => {
                    let _ = writeln!(s, "  {name:>12}: {:6.2}%", 100.0 * a);
                }
                None => {
                    let _ = writeln!(s, "  {name:>12}:    n/a");
                }
            }
        }
        let _ = writeln!(
            s,
            "confusion matrix (rows: true class, columns: predicted):"
        );
        let _ = write!(s, "{:>12}", "");
        for j in 0..self.classes.len() {
            let _ = write!(s, " {j:>5}");
        }
        let _ = writeln!(s);
        for (name, row) in self.classes.iter().zip(&self.confusion) {
            let _ = write!(s, "{name:>12}");
            for v in row {
                let _ = write!(s, " {v:>5}");
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(s, "SAR (spike activity rate): {:.5} total", self.sar);
        let _ = writeln!(
            s,
            "  {:<12} {:>5} {:>9} {:>9} {:>14}",
            "layer", "mult", "neurons", "SAR", "AC/sample"
        );
        for l in &self.layers {
            let _ = writeln!(
                s,
                "  {:<12} {:>5} {:>9} {:>9.5} {:>14.0}",
                l.layer, l.multiplicity, l.neurons, l.sar, l.ac_per_sample
            );
        }
        if let Some(o) = &self.synops {
            let _ = writeln!(
                s,
                "synaptic operations per sample: {:.4e} AC + {:.4e} MAC",
                o.ac_per_sample, o.mac_per_sample
            );
            let _ = writeln!(
                s,
                "energy estimate: {:.4} uJ per sample ({E_AC_PJ} pJ/AC, {E_MAC_PJ} pJ/MAC, 45 nm)",
                o.energy_pj_per_sample * 1e-6
            );
        }
        s
    }
}
