//! A CPU scoring engine in plain Rust: the forward pass of `Network::forward` in the scoring
//! modes, event-driven on the binary spikes, writing every LIF layer's spikes straight into
//! bit-packed codes for the SAHD kernel ([`KernelPath::CpuEvent`](super::KernelPath)).
//!
//! Why: Candle's CPU ops are general (dense float convolutions, strided reductions) and slow
//! for this workload, whose convolutions all read 0/1 spikes at 10-20 % activity. Here:
//! - a convolution visits only the active inputs of each output's window and adds their weight
//!   rows (`[ky][kx][ci][co]` layout, output channels contiguous, accumulated in registers);
//!   all conv ops reading the same node share its spikes, so they run as one convolution with
//!   their output channels concatenated ([`conv`]);
//! - maps are channels-last (`[N][H][W][C]`); spikes are written by the LIF straight into
//!   bit-packed codes, which are both the SAHD input and, turned into per-pixel lists of
//!   active channels once per layer, the convolution input;
//! - the hidden layer runs over 64-unit column blocks of its weights for 4 samples at a time,
//!   masked by the pooled spikes (no data-dependent branches);
//! - node LIFs are deduplicated and recorded with their multiplicity, exactly as `network.rs`
//!   does, and the codes reach the [`SpikeObserver`] (the SAHD kernel) per (layer, timestep)
//!   in the same order as on the Candle path;
//! - the stem (the only layer with real-valued input) is computed by Candle itself: it is the
//!   same for every candidate, so it is computed once per batch and BN mode and cached by batch
//!   tensor;
//! - hot loops are compiled for AVX-512 and AVX2 besides the baseline and picked at run time
//!   (module `simd`); large buffers are recycled per thread (module `buffers`).
//!
//! Every arithmetic step reproduces Candle's f32 operations in Candle's order (element-wise
//! ops written out literally, sums in Candle's order: see [`conv`] and [`bn`]), so spikes and
//! kernels match the Candle path bit for bit (the module tests count the differing spikes; the
//! known exceptions, very wide convolutions and the hidden layer's gemm, are in [`conv`]).
//!
//! Parallelism (rayon): within a pass over samples (and channel blocks for batch statistics),
//! and across the candidates of a search round ([`Scorer::map_candidates`](
//! super::Scorer::map_candidates)). No reduction depends on scheduling, so results are
//! bit-identical for any number of threads.

pub mod bn;
mod buffers;
pub mod conv;
mod forward;
pub mod lif;
pub mod maps;
pub mod ops;
mod plan;
pub(crate) mod simd;
mod weights;

#[cfg(test)]
mod tests;

use super::trace::{CodeRecord, CodeTrace};
use crate::model::{Mixing, Mode, Network};
use anyhow::Context;
use anyhow::{bail, Result};
use candle_core::{Tensor, TensorId};
use forward::{Pass, Stats};
use maps::Maps;
use snn_nostd::observer::SpikeObserver;
use snn_nostd::sahd::SahdKernel;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use weights::Weights;

/// Most stem outputs kept (a pruning round uses R batches).
const STEM_CACHE_ENTRIES: usize = 8;
/// Most bytes of stem outputs kept (the newest entry is always kept).
const STEM_CACHE_BYTES: usize = 512 << 20;

/// Stem outputs by batch tensor and BN statistics, newest last.
#[derive(Default)]
struct StemCache {
    entries: VecDeque<(TensorId, Stats, Arc<Vec<Maps>>)>,
}

impl StemCache {
    fn get(&self, id: TensorId, stats: Stats) -> Option<Arc<Vec<Maps>>> {
        self.entries
            .iter()
            .find(|(i, s, _)| *i == id && *s == stats)
            .map(|(_, _, m)| m.clone())
    }

    fn insert(&mut self, id: TensorId, stats: Stats, maps: Arc<Vec<Maps>>) {
        self.entries.push_back((id, stats, maps));
        let bytes = |e: &VecDeque<(TensorId, Stats, Arc<Vec<Maps>>)>| -> usize {
            e.iter()
                .map(|(_, _, m)| m.iter().map(|x| x.data.len() * 4).sum::<usize>())
                .sum()
        };
        while self.entries.len() > 1
            && (self.entries.len() > STEM_CACHE_ENTRIES || bytes(&self.entries) > STEM_CACHE_BYTES)
        {
            self.entries.pop_front();
        }
    }
}

/// The BN statistics a mode uses; the engine refuses training.
fn stats_of(mode: Mode) -> Result<Stats> {
    Ok(match mode {
        Mode::ScoreBatchStats => Stats::Batch,
        Mode::ScoreRunningStats | Mode::Eval => Stats::Running,
        Mode::Train => bail!("the CPU engine scores only (no training mode)"),
    })
}

/// The CPU engine for one network: its weights copied to plain vectors once, and a cache of
/// stem outputs. Score any [`Mixing`] with [`accumulate_batch`](Self::accumulate_batch).
pub struct CpuEngine<'n> {
    net: &'n Network,
    weights: Weights,
    stems: Mutex<StemCache>,
}

impl std::fmt::Debug for CpuEngine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuEngine")
            .field("cfg", &self.net.cfg)
            .finish_non_exhaustive()
    }
}

impl<'n> CpuEngine<'n> {
    /// Copies the weights of `net` (on any device).
    pub fn new(net: &'n Network) -> Result<CpuEngine<'n>> {
        Ok(CpuEngine {
            net,
            weights: Weights::from_network(net)?,
            stems: Mutex::new(StemCache::default()),
        })
    }

    /// Runs the network under `mixing` on `batch` (`[N, F, C, H, W]`, F = 1 or T) and adds
    /// every (LIF layer, timestep) code set to `kernel`, like `score::accumulate_batch` on the
    /// Candle path. `mode` must be a scoring or evaluation mode (no dropout, no gradients).
    ///
    /// The stem output is cached by batch tensor (`Tensor::id`, shared by clones) and BN
    /// statistics: scoring many mixings on the same batch tensors computes it once. Do not
    /// change a batch tensor's contents in place between calls.
    pub fn accumulate_batch(
        &self,
        mixing: &Mixing,
        batch: &Tensor,
        mode: Mode,
        kernel: &mut SahdKernel<'_>,
    ) -> Result<()> {
        self.run(mixing, batch, mode, Some(kernel.n()), kernel)?;
        kernel.check().context("SAHD kernel")
    }

    /// Computes and caches the stem output of `batch` (what the first scoring on it would do).
    pub fn prepare(&self, batch: &Tensor, mode: Mode) -> Result<()> {
        let stats = stats_of(mode)?;
        self.stems(batch, mode, stats).map(|_| ())
    }

    /// [`accumulate_batch`](Self::accumulate_batch), also returning every recorded code set with
    /// its layer, timestep and multiplicity, in recording order.
    pub fn trace_batch(
        &self,
        mixing: &Mixing,
        batch: &Tensor,
        mode: Mode,
        kernel: &mut SahdKernel<'_>,
    ) -> Result<Vec<CodeRecord>> {
        let mut trace = CodeTrace::default();
        let n = Some(kernel.n());
        self.run(mixing, batch, mode, n, &mut (&mut *kernel, &mut trace))?;
        kernel.check().context("SAHD kernel")?;
        Ok(trace.records)
    }

    /// Runs the network under `mixing` on `batch` and reports every (LIF layer, timestep) code
    /// set to `obs`, in the Candle path's order.
    pub fn observe_batch(
        &self,
        mixing: &Mixing,
        batch: &Tensor,
        mode: Mode,
        obs: &mut dyn SpikeObserver,
    ) -> Result<()> {
        self.run(mixing, batch, mode, None, obs)
    }

    /// [`observe_batch`](Self::observe_batch), refusing a batch of other than `kernel_n`
    /// samples when given (the SAHD kernel's size).
    fn run(
        &self,
        mixing: &Mixing,
        batch: &Tensor,
        mode: Mode,
        kernel_n: Option<usize>,
        obs: &mut dyn SpikeObserver,
    ) -> Result<()> {
        let cfg = &self.net.cfg;
        let stats = stats_of(mode)?;
        let (n, _) = self.net.check_input(batch, mixing)?;
        if let Some(k) = kernel_n.filter(|&k| k != n) {
            bail!("the SAHD kernel is for {k} samples, the batch has {n}");
        }
        let stems = self.stems(batch, mode, stats)?;
        Pass::new(&self.weights, cfg, mixing, stats, n, obs)?.run(&stems)
    }

    /// The stem output of every frame of `batch`, from the cache or computed by Candle.
    fn stems(&self, batch: &Tensor, mode: Mode, stats: Stats) -> Result<Arc<Vec<Maps>>> {
        let id = batch.id();
        if let Some(m) = self.lock().get(id, stats) {
            return Ok(m);
        }
        let frames = batch.dim(1)?;
        let mut out = Vec::with_capacity(frames);
        for f in 0..frames {
            let s = self.net.stem(&batch.narrow(1, f, 1)?.squeeze(1)?, mode)?;
            let (n, c, h, w) = s.dims4()?;
            let v: Vec<f32> = s.flatten_all()?.to_vec1()?;
            out.push(Maps::from_nchw(&v, n, c, h, w));
        }
        let out = Arc::new(out);
        self.lock().insert(id, stats, out.clone());
        Ok(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StemCache> {
        // A panic while holding the lock leaves a consistent cache: ignore poisoning.
        self.stems.lock().unwrap_or_else(|e| e.into_inner())
    }
}
