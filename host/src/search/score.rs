//! The SAHD fitness of a network on a batch (SPEC §5), computed by `snn_nostd::sahd`.
//!
//! Two ways to feed the kernel, chosen by device:
//! - CPU: each LIF layer's spikes are packed to bits (`snn_nostd::bits`) and the kernel counts
//!   Hamming distances with popcount.
//! - GPU: the spikes never leave the device per layer. For every (layer, timestep) the Gram
//!   matrix `X X^T` of the 0/1 codes and the popcounts are computed there (exact in f32: counts
//!   stay below 2^24), stacked, and copied to the host once per forward pass; the kernel then
//!   takes Hamming distances `p_i + p_j - 2 G_ij`.

use crate::model::{Forward, LayerId, Mixing, Mode, Network, SpikeSink};
use anyhow::{anyhow, Result};
use candle_core::{DType, Tensor};
use snn_nostd::bits;
use snn_nostd::sahd::SahdKernel;

/// How spike codes reach the SAHD kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelPath {
    /// Copy spikes to the host per layer, pack to bits, popcount.
    BitPacked,
    /// Gram matrices on the device, one copy per forward pass.
    DeviceGram,
}

impl KernelPath {
    /// The natural path for a device: bit packing on the CPU, Gram matrices on a GPU.
    pub fn for_device(dev: &candle_core::Device) -> KernelPath {
        if dev.is_cpu() {
            KernelPath::BitPacked
        } else {
            KernelPath::DeviceGram
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

/// Runs `net` on `batch` and adds every (LIF layer, timestep) code set to `kernel`.
pub fn accumulate_batch(
    net: &Network,
    mixing: &Mixing,
    batch: &Tensor,
    mode: Mode,
    path: KernelPath,
    kernel: &mut SahdKernel<'_>,
) -> Result<()> {
    let n = batch.dim(0)?;
    match path {
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
    let n = batch.dim(0)?;
    let mut buf = vec![0f64; n * n];
    let mut kernel = SahdKernel::new(n, &mut buf).map_err(|e| anyhow!("SAHD kernel: {e}"))?;
    accumulate_batch(net, mixing, batch, mode, path, &mut kernel)?;
    let mut scratch = vec![0f64; n * n + n];
    kernel
        .score(&mut scratch)
        .map_err(|e| anyhow!("SAHD log-det: {e}"))
}

/// The full kernel matrix K (`N x N`, row-major) of one batch, for inspection and tests.
pub fn kernel_matrix(
    net: &Network,
    mixing: &Mixing,
    batch: &Tensor,
    mode: Mode,
    path: KernelPath,
) -> Result<Vec<f64>> {
    let n = batch.dim(0)?;
    let mut buf = vec![0f64; n * n];
    let mut kernel = SahdKernel::new(n, &mut buf).map_err(|e| anyhow!("SAHD kernel: {e}"))?;
    accumulate_batch(net, mixing, batch, mode, path, &mut kernel)?;
    let mut k = vec![0f64; n * n];
    kernel
        .kernel(&mut k)
        .map_err(|e| anyhow!("SAHD kernel: {e}"))?;
    Ok(k)
}

fn fwd<'a>(mixing: &'a Mixing, mode: Mode, sink: &'a mut dyn SpikeSink) -> Forward<'a> {
    Forward {
        mixing,
        mode,
        sink,
        dropout_rng: None,
    }
}

/// The SAHD score averaged over the repeat batches (SPEC §5).
pub fn sahd_score(
    net: &Network,
    mixing: &Mixing,
    batches: &[Tensor],
    mode: Mode,
    path: KernelPath,
) -> Result<f64> {
    if batches.is_empty() {
        return Err(anyhow!(
            "no batches to score on (repeats must be at least 1)"
        ));
    }
    let mut total = 0.0;
    for b in batches {
        total += sahd_one(net, mixing, b, mode, path)?;
    }
    Ok(total / batches.len() as f64)
}
