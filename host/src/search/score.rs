//! The SAHD fitness of a network on a batch (SPEC §5), computed by `snn_nostd::sahd`.
//!
//! Three ways to run the network and feed the kernel ([`KernelPath`]):
//! - CPU engine (default on the CPU): the forward pass in plain Rust, event-driven on the
//!   spikes, which it writes straight into bit-packed codes (`super::cpu`).
//! - Candle, bit-packed: each LIF layer's spikes are copied to the host, packed to bits
//!   (`snn_nostd::bits`) and the kernel counts Hamming distances with popcount.
//! - Candle, device Gram (default on a GPU): the spikes never leave the device per layer. For
//!   every (layer, timestep) the Gram matrix `X X^T` of the 0/1 codes and the popcounts are
//!   computed there (exact in f32: counts stay below 2^24), stacked, and copied to the host once
//!   per forward pass; the kernel then takes Hamming distances `p_i + p_j - 2 G_ij`.
//!
//! The Candle paths are the reference; a [`Scorer`] holds what is reused between scorings of
//! one network (the CPU engine's copied weights and stem cache).

use super::cpu::CpuEngine;
use crate::model::{Forward, LayerId, Mixing, Mode, Network, SpikeSink};
use anyhow::{anyhow, Result};
use candle_core::{DType, Tensor};
use snn_nostd::bits;
use snn_nostd::sahd::SahdKernel;

/// How the network runs and how spike codes reach the SAHD kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelPath {
    /// Candle forward pass; copy spikes to the host per layer, pack to bits, popcount.
    BitPacked,
    /// Candle forward pass; Gram matrices on the device, one copy per forward pass.
    DeviceGram,
    /// The plain-Rust CPU engine (`search::cpu`): event-driven forward pass writing bit-packed
    /// codes directly. Works for a network on any device (its weights are copied to the host).
    CpuEvent,
}

impl KernelPath {
    /// The natural path for a device: the CPU engine on the CPU, Gram matrices on a GPU.
    pub fn for_device(dev: &candle_core::Device) -> KernelPath {
        if dev.is_cpu() {
            KernelPath::CpuEvent
        } else {
            KernelPath::DeviceGram
        }
    }

    /// The Candle reference path for a device: bit packing on the CPU, Gram matrices on a GPU.
    pub fn candle_for_device(dev: &candle_core::Device) -> KernelPath {
        if dev.is_cpu() {
            KernelPath::BitPacked
        } else {
            KernelPath::DeviceGram
        }
    }

    /// A short name for reports: `cpu-event`, `candle-bitpacked` or `candle-gram`.
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::BitPacked => "candle-bitpacked",
            KernelPath::DeviceGram => "candle-gram",
            KernelPath::CpuEvent => "cpu-event",
        }
    }
}

/// Packs each recorded layer and accumulates it into the kernel straight away.
struct PackingSink<'a, 'k> {
    kernel: &'a mut SahdKernel<'k>,
    floats: Vec<f32>,
    words: Vec<u64>,
}

impl SpikeSink for PackingSink<'_, '_> {
    fn record(&mut self, _l: LayerId, _t: usize, spikes: &Tensor, mult: u32) -> Result<()> {
        let n = spikes.dim(0)?;
        let flat = spikes.flatten_from(1)?;
        let n_bits = flat.dim(1)?;
        self.floats.clear();
        self.floats.extend(flat.flatten_all()?.to_vec1::<f32>()?);
        let wpc = bits::words_for(n_bits);
        self.words.clear();
        self.words.resize(n * wpc, 0);
        bits::pack_rows_f32(&self.floats, n, &mut self.words)
            .map_err(|e| anyhow!("packing spikes: {e}"))?;
        self.kernel
            .accumulate(&self.words, wpc, n_bits, mult)
            .map_err(|e| anyhow!("SAHD kernel: {e}"))
    }
}

/// Keeps per-layer Gram matrices on the device until the pass ends.
struct GramSink {
    grams: Vec<Tensor>,
    meta: Vec<(usize, u32)>,
}

impl SpikeSink for GramSink {
    fn record(&mut self, _l: LayerId, _t: usize, spikes: &Tensor, mult: u32) -> Result<()> {
        let x = spikes.flatten_from(1)?.to_dtype(DType::F32)?;
        let g = x.matmul(&x.t()?)?;
        self.meta.push((x.dim(1)?, mult));
        self.grams.push(g);
        Ok(())
    }
}

/// Scores mixings of one network along one [`KernelPath`], keeping what can be reused between
/// scorings (for [`KernelPath::CpuEvent`]: the copied weights and the stem outputs of the
/// batches seen, keyed by batch tensor). Build one per search.
#[derive(Debug)]
pub struct Scorer<'n> {
    net: &'n Network,
    path: KernelPath,
    engine: Option<CpuEngine<'n>>,
}

impl<'n> Scorer<'n> {
    /// A scorer of `net` along `path`.
    pub fn new(net: &'n Network, path: KernelPath) -> Result<Scorer<'n>> {
        let engine = match path {
            KernelPath::CpuEvent => Some(CpuEngine::new(net)?),
            KernelPath::BitPacked | KernelPath::DeviceGram => None,
        };
        Ok(Scorer { net, path, engine })
    }

    /// The path this scorer runs.
    pub fn path(&self) -> KernelPath {
        self.path
    }

    /// Gets ready to score on `batches` (the CPU engine computes and caches their stem
    /// outputs, so that concurrent candidates do not each compute them).
    pub fn prepare(&self, batches: &[Tensor], mode: Mode) -> Result<()> {
        if let Some(e) = &self.engine {
            for b in batches {
                e.prepare(b, mode)?;
            }
        }
        Ok(())
    }

    /// `f` applied to every item, results in item order; stops at the first error.
    ///
    /// On the CPU engine the items run concurrently (rayon): each scoring is independent and
    /// deterministic, so only the speed changes. The Candle paths run them one after the other
    /// (Candle parallelises inside its ops).
    pub fn map_candidates<T: Sync>(
        &self,
        items: &[T],
        f: impl Fn(&T) -> Result<f64> + Sync + Send,
    ) -> Result<Vec<f64>> {
        if self.engine.is_some() {
            use rayon::prelude::*;
            items.par_iter().map(f).collect()
        } else {
            items.iter().map(f).collect()
        }
    }

    /// Runs the network on `batch` and adds every (LIF layer, timestep) code set to `kernel`.
    pub fn accumulate_batch(
        &self,
        mixing: &Mixing,
        batch: &Tensor,
        mode: Mode,
        kernel: &mut SahdKernel<'_>,
    ) -> Result<()> {
        match &self.engine {
            Some(e) => e.accumulate_batch(mixing, batch, mode, kernel),
            None => candle_accumulate(self.net, mixing, batch, mode, self.path, kernel),
        }
    }

    /// ln|det K| on one batch `[N, F, C, H, W]`.
    pub fn sahd_one(&self, mixing: &Mixing, batch: &Tensor, mode: Mode) -> Result<f64> {
        let n = batch.dim(0)?;
        let mut buf = vec![0f64; n * n];
        let mut kernel = SahdKernel::new(n, &mut buf).map_err(|e| anyhow!("SAHD kernel: {e}"))?;
        self.accumulate_batch(mixing, batch, mode, &mut kernel)?;
        let mut scratch = vec![0f64; n * n + n];
        kernel
            .score(&mut scratch)
            .map_err(|e| anyhow!("SAHD log-det: {e}"))
    }

    /// The full kernel matrix K (`N x N`, row-major) of one batch.
    pub fn kernel_matrix(&self, mixing: &Mixing, batch: &Tensor, mode: Mode) -> Result<Vec<f64>> {
        let n = batch.dim(0)?;
        let mut buf = vec![0f64; n * n];
        let mut kernel = SahdKernel::new(n, &mut buf).map_err(|e| anyhow!("SAHD kernel: {e}"))?;
        self.accumulate_batch(mixing, batch, mode, &mut kernel)?;
        let mut k = vec![0f64; n * n];
        kernel
            .kernel(&mut k)
            .map_err(|e| anyhow!("SAHD kernel: {e}"))?;
        Ok(k)
    }

    /// The SAHD score averaged over the repeat batches (SPEC §5).
    pub fn sahd_score(&self, mixing: &Mixing, batches: &[Tensor], mode: Mode) -> Result<f64> {
        if batches.is_empty() {
            return Err(anyhow!(
                "no batches to score on (repeats must be at least 1)"
            ));
        }
        let mut total = 0.0;
        for b in batches {
            total += self.sahd_one(mixing, b, mode)?;
        }
        Ok(total / batches.len() as f64)
    }
}

/// Runs `net` on `batch` and adds every (LIF layer, timestep) code set to `kernel`.
pub fn accumulate_batch(
    net: &Network,
    mixing: &Mixing,
    batch: &Tensor,
    mode: Mode,
    path: KernelPath,
    kernel: &mut SahdKernel<'_>,
) -> Result<()> {
    Scorer::new(net, path)?.accumulate_batch(mixing, batch, mode, kernel)
}

/// The Candle forward pass feeding `kernel` along a Candle path.
fn candle_accumulate(
    net: &Network,
    mixing: &Mixing,
    batch: &Tensor,
    mode: Mode,
    path: KernelPath,
    kernel: &mut SahdKernel<'_>,
) -> Result<()> {
    let n = batch.dim(0)?;
    match path {
        KernelPath::CpuEvent => unreachable!("the CPU engine is not a Candle path"),
        KernelPath::BitPacked => {
            let mut sink = PackingSink {
                kernel,
                floats: Vec::new(),
                words: Vec::new(),
            };
            net.forward(batch, fwd(mixing, mode, &mut sink))?;
        }
        KernelPath::DeviceGram => {
            let mut sink = GramSink {
                grams: Vec::new(),
                meta: Vec::new(),
            };
            net.forward(batch, fwd(mixing, mode, &mut sink))?;
            // One transfer for the whole pass.
            let all: Vec<f32> = Tensor::stack(&sink.grams, 0)?.flatten_all()?.to_vec1()?;
            let mut pop = vec![0u32; n];
            let mut ham = vec![0u32; n * n];
            for (k, &(n_bits, mult)) in sink.meta.iter().enumerate() {
                let g = &all[k * n * n..(k + 1) * n * n];
                for i in 0..n {
                    pop[i] = g[i * n + i] as u32;
                }
                for i in 0..n {
                    for j in 0..n {
                        let h = pop[i] as i64 + pop[j] as i64 - 2 * g[i * n + j] as i64;
                        ham[i * n + j] = h.max(0) as u32;
                    }
                }
                kernel
                    .accumulate_hamming(&pop, &ham, n_bits, mult)
                    .map_err(|e| anyhow!("SAHD kernel: {e}"))?;
            }
        }
    }
    Ok(())
}

/// ln|det K| of `net` under `mixing` on one batch `[N, F, C, H, W]`.
pub fn sahd_one(
    net: &Network,
    mixing: &Mixing,
    batch: &Tensor,
    mode: Mode,
    path: KernelPath,
) -> Result<f64> {
    Scorer::new(net, path)?.sahd_one(mixing, batch, mode)
}

/// The full kernel matrix K (`N x N`, row-major) of one batch, for inspection and tests.
pub fn kernel_matrix(
    net: &Network,
    mixing: &Mixing,
    batch: &Tensor,
    mode: Mode,
    path: KernelPath,
) -> Result<Vec<f64>> {
    Scorer::new(net, path)?.kernel_matrix(mixing, batch, mode)
}

fn fwd<'a>(mixing: &'a Mixing, mode: Mode, sink: &'a mut dyn SpikeSink) -> Forward<'a> {
    Forward {
        mixing,
        mode,
        sink,
        dropout_rng: None,
    }
}

/// The SAHD score averaged over the repeat batches (SPEC §5). Builds a [`Scorer`] for this one
/// call; to score many mixings of one network, keep a [`Scorer`].
pub fn sahd_score(
    net: &Network,
    mixing: &Mixing,
    batches: &[Tensor],
    mode: Mode,
    path: KernelPath,
) -> Result<f64> {
    Scorer::new(net, path)?.sahd_score(mixing, batches, mode)
}
