//! The SAHD fitness of a network on a batch (docs/design.md, "The SAHD score"), computed by
//! `snn_nostd::sahd`.
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
use super::score_kind::ScoreKind;
use super::spread::RateSpread;
use super::trace::{CodeRecord, CodeTrace};
use crate::model::{LayerId, Mixing, Mode, Network, PackingSink, SpikeSink};
use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Tensor};
use snn_nostd::observer::SpikeObserver;
use snn_nostd::sahd::{Distance, SahdKernel};

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

/// Feeds the SAHD kernels (one per stacked candidate, one for a plain pass) from a Candle pass
/// on the device-Gram path: each layer's Gram matrices (`[G, N, N]`) stay on the device until
/// the pass ends. (The bit-packed path reports through [`PackingSink`].)
struct GramSink<'a, 'k> {
    kernels: &'a mut [SahdKernel<'k>],
    grams: Vec<Tensor>,
    meta: Vec<(usize, Vec<u32>)>,
}

impl SpikeSink for GramSink<'_, '_> {
    fn record(&mut self, l: LayerId, t: usize, spikes: &Tensor, mult: u32) -> Result<()> {
        self.record_groups(l, t, spikes, &[mult])
    }

    fn record_groups(&mut self, _: LayerId, _: usize, spikes: &Tensor, mult: &[u32]) -> Result<()> {
        let rows = spikes.dim(0)?;
        let flat = spikes.flatten_from(1)?;
        let n_bits = flat.dim(1)?;
        let groups = self.kernels.len();
        let x = flat.reshape((groups, rows / groups, n_bits))?;
        self.grams.push(gram(&x, !x.device().is_cpu())?);
        self.meta.push((n_bits, mult.to_vec()));
        Ok(())
    }
}

/// Column block of the half-precision Gram: every partial count is an integer of at most 2048,
/// which f16 represents exactly (11-bit significand), whatever the GEMM accumulates in.
const HALF_GRAM_BLOCK: usize = 2048;

/// The Gram matrices `X X^T`, `[G, N, N]` in f32, of 0/1 codes `x` `[G, N, D]`, exactly.
///
/// With `half` (the GPU path) the products run in f16 on tensor cores, in column blocks of
/// [`HALF_GRAM_BLOCK`], and the block results (exact integers) are summed in f32, exact up to
/// 2^24 bits per code; otherwise one f32 GEMM (exact for the same reason).
fn gram(x: &Tensor, half: bool) -> Result<Tensor> {
    let (g, n, d) = x.dims3()?;
    if !half {
        let x = x.to_dtype(DType::F32)?;
        return Ok(x.matmul(&x.transpose(1, 2)?.contiguous()?)?);
    }
    let blocks = d.div_ceil(HALF_GRAM_BLOCK);
    let width = d.div_ceil(blocks);
    let x = x
        .to_dtype(DType::F16)?
        .pad_with_zeros(2, 0, blocks * width - d)?;
    let xb = x
        .reshape((g, n, blocks, width))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((g * blocks, n, width))?;
    let partial = xb.matmul(&xb.transpose(1, 2)?.contiguous()?)?;
    Ok(partial
        .to_dtype(DType::F32)?
        .reshape((g, blocks, n, n))?
        .sum(1)?)
}

impl GramSink<'_, '_> {
    /// Ends the pass: copies every Gram matrix to the host in one transfer and accumulates the
    /// Hamming distances `p_i + p_j - 2 G_ij`.
    fn finish(self) -> Result<()> {
        let GramSink {
            kernels,
            grams,
            meta,
        } = self;
        if grams.is_empty() {
            return Ok(());
        }
        let n = grams[0].dim(1)?;
        let all: Vec<f32> = Tensor::stack(&grams, 0)?.flatten_all()?.to_vec1()?;
        let mut pop = vec![0u32; n];
        let mut ham = vec![0u32; n * n];
        let records = meta
            .iter()
            .flat_map(|(n_bits, m)| m.iter().enumerate().map(move |(g, &mg)| (g, *n_bits, mg)));
        for ((g, n_bits, mult), gram) in records.zip(all.chunks_exact(n * n)) {
            if mult == 0 {
                continue;
            }
            for i in 0..n {
                pop[i] = gram[i * n + i] as u32;
            }
            for i in 0..n {
                for j in 0..n {
                    let h = pop[i] as i64 + pop[j] as i64 - 2 * gram[i * n + j] as i64;
                    ham[i * n + j] = h.max(0) as u32;
                }
            }
            kernels[g]
                .accumulate_hamming(&pop, &ham, n_bits, mult)
                .context("SAHD kernel")?;
        }
        Ok(())
    }
}

/// Index of the largest score; NaN counts as -inf, ties go to the first (op-set order).
pub fn argmax_first(scores: &[f64]) -> Option<usize> {
    let key = |s: f64| if s.is_nan() { f64::NEG_INFINITY } else { s };
    let mut best: Option<usize> = None;
    for (i, &s) in scores.iter().enumerate() {
        match best {
            Some(b) if key(s) <= key(scores[b]) => {}
            _ => best = Some(i),
        }
    }
    best
}

/// Smallest batch a SAHD score can be computed on.
pub const MIN_BATCH: usize = 2;

/// Refuses batches below [`MIN_BATCH`]: the kernel of a single sample is the 1x1 matrix of the
/// mean code length, whose ln det does not depend on the spikes, so it cannot rank networks.
pub fn check_batch(batch: usize) -> Result<()> {
    if batch < MIN_BATCH {
        return Err(anyhow!(
            "batch {batch} is too small to score: the SAHD kernel compares the spike codes of \
             the samples of a batch, and with one sample it is the 1x1 matrix [mean code length] \
             whose ln det is the same whatever the network does; use --batch {MIN_BATCH} or more \
             (default 32)"
        ));
    }
    Ok(())
}

/// What a score of -inf (or NaN) means, and what to do about it.
pub const NOT_FINITE_HELP: &str = "the SAHD score is not finite: two samples of a batch have \
    the same spike codes at every layer and timestep (samples without events do, and so does a \
    network that fires nothing), so the kernel matrix is singular; check that every sample of \
    the data has events, or raise --timesteps or --width";

/// Scores mixings of one network along one [`KernelPath`], keeping what can be reused between
/// scorings (for [`KernelPath::CpuEvent`]: the copied weights and the stem outputs of the
/// batches seen, keyed by batch tensor). Build one per search.
#[derive(Debug)]
pub struct Scorer<'n> {
    net: &'n Network,
    path: KernelPath,
    engine: Option<CpuEngine<'n>>,
    stack: usize,
    distance: Distance,
    /// Score by the rate spread (`super::spread`) instead of a kernel.
    spread: bool,
}

impl<'n> Scorer<'n> {
    /// A scorer of `net` along `path`.
    pub fn new(net: &'n Network, path: KernelPath) -> Result<Scorer<'n>> {
        let engine = match path {
            KernelPath::CpuEvent => Some(CpuEngine::new(net)?),
            KernelPath::BitPacked | KernelPath::DeviceGram => None,
        };
        Ok(Scorer {
            net,
            path,
            engine,
            stack: 1,
            distance: Distance::SparsityAware,
            spread: false,
        })
    }

    /// Scores with the kernel of `distance` (default: the sparsity-aware SAHD kernel;
    /// [`Distance::Hamming`] gives NASWOT's).
    pub fn with_distance(mut self, distance: Distance) -> Scorer<'n> {
        self.distance = distance;
        self
    }

    /// Scores with `score`: its kernel's distance ([`with_distance`](Self::with_distance)), or
    /// the negated rate spread for [`ScoreKind::Spread`].
    pub fn with_score(mut self, score: ScoreKind) -> Scorer<'n> {
        match score.distance() {
            Some(d) => {
                self.distance = d;
                self.spread = false;
            }
            None => self.spread = true,
        }
        self
    }

    /// A kernel of `n` samples over `buf` with this scorer's distance.
    fn new_kernel<'b>(&self, n: usize, buf: &'b mut [f64]) -> Result<SahdKernel<'b>> {
        Ok(SahdKernel::new(n, buf)
            .context("SAHD kernel")?
            .with_distance(self.distance))
    }

    /// Scores up to `stack` candidates per Candle pass ([`Scorer::score_candidates`]; the CPU
    /// engine runs candidates in parallel threads instead). 0 counts as 1.
    pub fn with_stack(mut self, stack: usize) -> Scorer<'n> {
        self.stack = stack.max(1);
        self
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
    pub fn map_candidates<T: Sync, R: Send>(
        &self,
        items: &[T],
        f: impl Fn(&T) -> Result<R> + Sync + Send,
    ) -> Result<Vec<R>> {
        if self.engine.is_some() {
            use rayon::prelude::*;
            items.par_iter().map(f).collect()
        } else {
            items.iter().map(f).collect()
        }
    }

    /// SAHD scores of `candidates` (each averaged over `batches`, docs/design.md, "The SAHD
    /// score"), in candidate order.
    /// `done(k)` is called as `k` more candidates finish (for progress bars).
    ///
    /// The CPU engine scores candidates in parallel threads. The Candle paths stack up to
    /// [`with_stack`](Self::with_stack) candidates on the batch axis and score them in one
    /// forward pass per batch ([`Network::forward_candidates`]); each candidate's score equals
    /// its own unstacked scoring (tested).
    pub fn score_candidates(
        &self,
        candidates: &[Mixing],
        batches: &[Tensor],
        mode: Mode,
        done: impl Fn(usize) + Sync + Send,
    ) -> Result<Vec<f64>> {
        let per_repeat = self.score_candidates_per_repeat(candidates, batches, mode, done)?;
        Ok(per_repeat.iter().map(|r| mean_in_order(r)).collect())
    }

    /// Like [`score_candidates`](Self::score_candidates), but every candidate's score on each
    /// batch separately (`[candidate][repeat]`); their mean, summed in batch order, is the
    /// candidate's score bit for bit.
    pub fn score_candidates_per_repeat(
        &self,
        candidates: &[Mixing],
        batches: &[Tensor],
        mode: Mode,
        done: impl Fn(usize) + Sync + Send,
    ) -> Result<Vec<Vec<f64>>> {
        if batches.is_empty() {
            return Err(anyhow!(
                "no batches to score on (repeats must be at least 1)"
            ));
        }
        if self.engine.is_some() || self.stack == 1 || self.spread {
            return self.map_candidates(candidates, |m| {
                let s = batches
                    .iter()
                    .map(|b| self.sahd_one(m, b, mode))
                    .collect::<Result<Vec<f64>>>();
                done(1);
                s
            });
        }
        let mut out = Vec::with_capacity(candidates.len());
        for chunk in candidates.chunks(self.stack) {
            let mut per = vec![Vec::with_capacity(batches.len()); chunk.len()];
            for b in batches {
                for (p, s) in per.iter_mut().zip(self.stacked_scores(chunk, b, mode)?) {
                    p.push(s);
                }
            }
            out.extend(per);
            done(chunk.len());
        }
        Ok(out)
    }

    /// ln|det K| of each of `chunk` on one batch, from one stacked Candle pass.
    fn stacked_scores(&self, chunk: &[Mixing], batch: &Tensor, mode: Mode) -> Result<Vec<f64>> {
        let n = batch.dim(0)?;
        let g = chunk.len();
        let mut bufs = vec![0f64; g * n * n];
        let mut kernels = bufs
            .chunks_mut(n * n)
            .map(|b| self.new_kernel(n, b))
            .collect::<Result<Vec<_>>>()?;
        candle_accumulate(self.net, chunk, batch, mode, self.path, &mut kernels, None)?;
        let mut scratch = vec![0f64; n * n + n];
        kernels
            .iter()
            .map(|k| k.score(&mut scratch).context("SAHD log-det"))
            .collect()
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
            None => candle_accumulate(
                self.net,
                std::slice::from_ref(mixing),
                batch,
                mode,
                self.path,
                std::slice::from_mut(kernel),
                None,
            ),
        }
    }

    /// Runs the network on `batch` and reports every (LIF layer, timestep) code set to `obs`
    /// (several kernels at once through the observer pair, a trace, ...). The Candle paths
    /// report through the bit-packing path, whatever this scorer's path.
    pub fn observe_batch(
        &self,
        mixing: &Mixing,
        batch: &Tensor,
        mode: Mode,
        obs: &mut dyn SpikeObserver,
    ) -> Result<()> {
        match &self.engine {
            Some(e) => e.observe_batch(mixing, batch, mode, obs),
            None => {
                self.net.forward_candidates(
                    batch,
                    std::slice::from_ref(mixing),
                    mode,
                    &mut PackingSink::new(std::slice::from_mut(&mut &mut *obs)),
                )?;
                Ok(())
            }
        }
    }

    /// [`accumulate_batch`](Self::accumulate_batch), also returning every (LIF layer,
    /// timestep) code set added to `kernel`, in recording order. The Gram path traces through
    /// the packing feed (the codes must reach the host anyway).
    pub fn trace_batch(
        &self,
        mixing: &Mixing,
        batch: &Tensor,
        mode: Mode,
        kernel: &mut SahdKernel<'_>,
    ) -> Result<Vec<CodeRecord>> {
        match &self.engine {
            Some(e) => e.trace_batch(mixing, batch, mode, kernel),
            None => {
                let mut trace = CodeTrace::default();
                candle_accumulate(
                    self.net,
                    std::slice::from_ref(mixing),
                    batch,
                    mode,
                    KernelPath::BitPacked,
                    std::slice::from_mut(kernel),
                    Some(&mut trace),
                )?;
                Ok(trace.records)
            }
        }
    }

    /// The score on one batch `[N, F, C, H, W]`: ln|det K|, or for [`ScoreKind::Spread`] the
    /// negated rate spread (`-inf` if no cell layer fired or was recorded).
    pub fn sahd_one(&self, mixing: &Mixing, batch: &Tensor, mode: Mode) -> Result<f64> {
        if self.spread {
            let mut s = RateSpread::default();
            self.observe_batch(mixing, batch, mode, &mut s)?;
            return Ok(s.score());
        }
        let n = batch.dim(0)?;
        let mut buf = vec![0f64; n * n];
        let mut kernel = self.new_kernel(n, &mut buf)?;
        self.accumulate_batch(mixing, batch, mode, &mut kernel)?;
        let mut scratch = vec![0f64; n * n + n];
        kernel.score(&mut scratch).context("SAHD log-det")
    }

    /// The full kernel matrix K (`N x N`, row-major) of one batch.
    pub fn kernel_matrix(&self, mixing: &Mixing, batch: &Tensor, mode: Mode) -> Result<Vec<f64>> {
        let n = batch.dim(0)?;
        let mut buf = vec![0f64; n * n];
        let mut kernel = self.new_kernel(n, &mut buf)?;
        self.accumulate_batch(mixing, batch, mode, &mut kernel)?;
        let mut k = vec![0f64; n * n];
        kernel.kernel(&mut k).context("SAHD kernel")?;
        Ok(k)
    }

    /// The SAHD score averaged over the repeat batches (docs/design.md, "The SAHD score").
    pub fn sahd_score(&self, mixing: &Mixing, batches: &[Tensor], mode: Mode) -> Result<f64> {
        if batches.is_empty() {
            return Err(anyhow!(
                "no batches to score on (repeats must be at least 1)"
            ));
        }
        let per = batches
            .iter()
            .map(|b| self.sahd_one(mixing, b, mode))
            .collect::<Result<Vec<f64>>>()?;
        Ok(mean_in_order(&per))
    }
}

/// The mean of `v`, summed from the first element on (the order every score is averaged in).
pub fn mean_in_order(v: &[f64]) -> f64 {
    let mut total = 0.0;
    for x in v {
        total += x;
    }
    total / v.len() as f64
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

/// The Candle forward pass of `candidates` stacked on the batch axis (one candidate is a
/// plain pass: [`Network::forward_candidates`] then runs exactly [`Network::forward`]), feeding
/// `kernels` (one per candidate) along a Candle path, and `trace` (a plain pass on the packing
/// path) with every packed code set.
fn candle_accumulate(
    net: &Network,
    candidates: &[Mixing],
    batch: &Tensor,
    mode: Mode,
    path: KernelPath,
    kernels: &mut [SahdKernel<'_>],
    trace: Option<&mut CodeTrace>,
) -> Result<()> {
    match (path, trace) {
        (KernelPath::CpuEvent, _) => bail!("the CPU engine is not a Candle path"),
        (KernelPath::BitPacked, None) => {
            net.forward_candidates(
                batch,
                candidates,
                mode,
                &mut PackingSink::new(&mut *kernels),
            )?;
        }
        (KernelPath::BitPacked, Some(trace)) => {
            let [kernel] = &mut *kernels else {
                bail!("a traced pass runs one candidate, not {}", kernels.len());
            };
            let mut tee = [(kernel, trace)];
            net.forward_candidates(batch, candidates, mode, &mut PackingSink::new(&mut tee))?;
        }
        (KernelPath::DeviceGram, Some(_)) => {
            bail!("a traced pass runs on the packing path: the Gram path never sees the codes")
        }
        (KernelPath::DeviceGram, None) => {
            let mut sink = GramSink {
                kernels: &mut *kernels,
                grams: Vec::new(),
                meta: Vec::new(),
            };
            net.forward_candidates(batch, candidates, mode, &mut sink)?;
            sink.finish()?;
        }
    }
    kernels
        .iter()
        .try_for_each(|k| k.check())
        .context("SAHD kernel")
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

/// The SAHD score averaged over the repeat batches (docs/design.md, "The SAHD score"). Builds a
/// [`Scorer`] for this one call; to score many mixings of one network, keep a [`Scorer`].
pub fn sahd_score(
    net: &Network,
    mixing: &Mixing,
    batches: &[Tensor],
    mode: Mode,
    path: KernelPath,
) -> Result<f64> {
    Scorer::new(net, path)?.sahd_score(mixing, batches, mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rand::{Rng, SeedableRng};

    #[test]
    fn argmax_ties_and_nan() {
        assert_eq!(argmax_first(&[1.0, 3.0, 3.0]), Some(1));
        assert_eq!(argmax_first(&[f64::NAN, -5.0]), Some(1));
        assert_eq!(argmax_first(&[f64::NAN, f64::NAN]), Some(0));
        assert_eq!(argmax_first(&[]), None);
        assert_eq!(argmax_first(&[f64::NEG_INFINITY, 2.0, 1.0]), Some(1));
    }

    /// The f16 block Gram of the GPU path equals the f32 Gram exactly, including codes longer
    /// than one block, a ragged last block and dense codes (counts near 2048 per block).
    #[test]
    fn half_gram_is_exact() -> Result<()> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for (g, n, d, rate) in [
            (1, 5, 100, 0.5),
            (2, 4, 2048, 0.99),
            (3, 6, 5000, 0.15),
            (1, 8, 9000, 1.0),
        ] {
            let v: Vec<f32> = (0..g * n * d)
                .map(|_| rng.gen_bool(rate) as u8 as f32)
                .collect();
            let x = Tensor::from_vec(v, (g, n, d), &Device::Cpu)?;
            let want: Vec<f32> = gram(&x, false)?.flatten_all()?.to_vec1()?;
            let got: Vec<f32> = gram(&x, true)?.flatten_all()?.to_vec1()?;
            assert_eq!(got, want, "G {g}, N {n}, D {d}, rate {rate}");
        }
        Ok(())
    }
}
