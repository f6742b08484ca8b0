//! `lightsnn bench`: benchmarks that print ratios against baselines run in the same process.
//!
//! Nothing here asserts a time: machines are noisy. Each figure is a median of repeated runs.

use crate::config::{DatasetKind, NetConfig, Overrides};
use crate::data::{Dataset, Split};
use crate::progress::NoProgress;
use crate::search::{run_search, KernelPath, Method, SearchReport, SearchSetup};
use anyhow::Result;
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use snn_nostd::{bits, SahdKernel};
use std::time::Instant;

/// Median wall time in seconds of `reps` calls of `f` (after one warm-up call).
pub fn median_secs(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

/// The SAHD kernel benchmark (N codes of n bits at a given spike rate).
#[derive(Debug, Serialize)]
pub struct KernelBench {
    /// Batch size N.
    pub n: usize,
    /// Bits per code.
    pub bits: usize,
    /// The all-pairs implementation the kernel dispatches to on this CPU.
    pub kernel: String,
    /// Bit-packed popcount kernel (`SahdKernel::accumulate` on packed codes), seconds.
    pub packed_s: f64,
    /// `SahdKernel::accumulate` with each pair implementation this CPU runs (name, seconds).
    pub per_kernel_s: Vec<(String, f64)>,
    /// Dense f32 formulation: Gram matrix `X X^T` of the 0/1 codes with a GEMM, then the same
    /// accumulation from Hamming counts, seconds.
    pub dense_s: f64,
    /// `dense_s / packed_s`.
    pub speedup: f64,
    /// Bytes of packed codes (`N * words * 8`): the least data the kernel must read.
    pub code_bytes: usize,
    /// Single-core read bandwidth from DRAM (a 256 MiB sum), bytes/s.
    pub dram_read_bps: f64,
    /// Single-core read bandwidth of a cache-resident buffer the size of the codes, bytes/s.
    pub cache_read_bps: f64,
    /// The bandwidth bound: reading every code once from DRAM, `code_bytes / dram_read_bps`.
    pub bandwidth_bound_s: f64,
    /// `packed_s / bandwidth_bound_s` (1 = at the bound).
    pub vs_bound: f64,
    /// The stricter cache bound: reading every code once from cache, seconds.
    pub cache_bound_s: f64,
    /// `packed_s / cache_bound_s`.
    pub vs_cache_bound: f64,
}

/// Seconds to sum `words` (the read bandwidth of one core over that buffer, as the median of
/// `reps` passes after a warm-up pass).
fn read_pass_s(words: &[u64], reps: usize) -> Result<f64> {
    median_secs(reps, || {
        let mut acc = [0u64; 8];
        for c in words.chunks_exact(8) {
            for (a, &x) in acc.iter_mut().zip(c) {
                *a = a.wrapping_add(x);
            }
        }
        std::hint::black_box(acc);
        Ok(())
    })
}

/// Runs the kernel benchmark with random codes at spike rate 0.15.
///
/// The bandwidth bound: the kernel cannot finish before it has read every code once, so the
/// bound is the codes' bytes over the single-core read bandwidth measured in the same process
/// (a plain sum over a 256 MiB buffer, i.e. from DRAM). The stricter cache bound uses the
/// bandwidth of the same sum over a buffer the size of the codes, which stays in cache.
pub fn kernel_bench(n: usize, n_bits: usize, reps: usize) -> Result<KernelBench> {
    use snn_nostd::pairwise::PairKernel;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let spikes: Vec<u8> = (0..n * n_bits).map(|_| rng.gen_bool(0.15) as u8).collect();
    let wpc = bits::words_for(n_bits);
    let mut codes = vec![0u64; n * wpc];
    bits::pack_rows_u8(&spikes, n, &mut codes).map_err(anyhow::Error::from)?;
    let mut buf = vec![0f64; n * n];
    let packed_s = median_secs(reps, || {
        let mut k = SahdKernel::new(n, &mut buf).map_err(anyhow::Error::from)?;
        k.accumulate(&codes, wpc, n_bits, 1)
            .map_err(anyhow::Error::from)?;
        Ok(())
    })?;
    // Each pair implementation on its own, through the same all-pairs driver.
    let mut per_kernel_s = Vec::new();
    for pk in PairKernel::ALL.into_iter().filter(|k| k.available()) {
        let mut h = vec![0u64; n * n];
        let s = median_secs(reps, || {
            snn_nostd::pairwise::for_each_pair_with(pk, &codes, n, wpc, wpc, |i, j, d| {
                h[i * n + j] += u64::from(d)
            })
            .map_err(anyhow::Error::from)
        })?;
        per_kernel_s.push((pk.name().to_string(), s));
    }
    let floats: Vec<f32> = spikes.iter().map(|&s| s as f32).collect();
    let x = Tensor::from_vec(floats, (n, n_bits), &Device::Cpu)?;
    let mut pop = vec![0u32; n];
    let mut ham = vec![0u32; n * n];
    let dense_s = median_secs(reps, || {
        let g: Vec<f32> = x.matmul(&x.t()?)?.flatten_all()?.to_vec1()?;
        for i in 0..n {
            pop[i] = g[i * n + i] as u32;
        }
        for i in 0..n {
            for j in 0..n {
                ham[i * n + j] =
                    (pop[i] as i64 + pop[j] as i64 - 2 * g[i * n + j] as i64).max(0) as u32;
            }
        }
        let mut k = SahdKernel::new(n, &mut buf).map_err(anyhow::Error::from)?;
        k.accumulate_hamming(&pop, &ham, n_bits, 1)
            .map_err(anyhow::Error::from)?;
        Ok(())
    })?;
    let code_bytes = codes.len() * 8;
    let big: Vec<u64> = (0..32usize << 20).map(|i| i as u64).collect();
    let dram_read_bps = (big.len() * 8) as f64 / read_pass_s(&big, 3)?;
    drop(big);
    let cache_read_bps = code_bytes as f64 / read_pass_s(&codes, reps.max(50))?;
    let bandwidth_bound_s = code_bytes as f64 / dram_read_bps;
    let cache_bound_s = code_bytes as f64 / cache_read_bps;
    Ok(KernelBench {
        n,
        bits: n_bits,
        kernel: PairKernel::best().name().to_string(),
        packed_s,
        per_kernel_s,
        dense_s,
        speedup: dense_s / packed_s,
        code_bytes,
        dram_read_bps,
        cache_read_bps,
        bandwidth_bound_s,
        vs_bound: packed_s / bandwidth_bound_s,
        cache_bound_s,
        vs_cache_bound: packed_s / cache_bound_s,
    })
}

/// One search configuration's timing.
#[derive(Debug, Serialize)]
pub struct SearchBench {
    /// Name of the configuration.
    pub name: String,
    /// Path used.
    pub engine: String,
    /// Total wall time, seconds.
    pub wall_s: f64,
    /// Wall time per round, seconds.
    pub rounds_s: Vec<f64>,
    /// Scorings per second.
    pub scorings_per_s: f64,
    /// The genotype found (to compare engines).
    pub genotype: String,
}

/// Times one search.
pub fn search_bench(
    name: &str,
    setup: &SearchSetup,
    data: &Dataset,
    device: &Device,
) -> Result<(SearchBench, SearchReport)> {
    let r = run_search(setup, data, device, &NoProgress)?;
    let scorings: usize = r.rounds.iter().map(|x| x.scores.len()).sum();
    Ok((
        SearchBench {
            name: name.to_string(),
            engine: format!("{:?}", setup.kernel_path),
            wall_s: r.wall_s,
            rounds_s: r.rounds.iter().map(|x| x.wall_s).collect(),
            scorings_per_s: scorings as f64 / r.wall_s,
            genotype: r.genotype.clone(),
        },
        r,
    ))
}

/// The search setups of the benchmark: the demo (built-in sample, width 1/32) and the CIFAR-10
/// width-1/16 config (16/32 channels, batch 32, T = 5, 2 repeats); with `full`, also the
/// paper's full CIFAR-10 config (256/512 channels, docs/design.md, "Macro skeleton"), which is
/// for GPUs.
pub fn bench_setups(path: KernelPath, full: bool) -> Result<Vec<(String, SearchSetup)>> {
    let mut widths = vec![32, 16];
    if full {
        widths.push(1);
    }
    widths
        .into_iter()
        .map(|inv| search_setup(path, inv, None))
        .collect()
}

/// The configs of [`bench_setups`] shrunk for a smoke run (`lightsnn bench search --smoke`, CI's
/// dry run of `tools/gpu-bench.sh`): widths 1/128, 1/64 and 1/32 (the third standing for the
/// full-width config), T = 2, batch 8. Their figures mean nothing; they exercise the code.
pub fn smoke_setups(path: KernelPath) -> Result<Vec<(String, SearchSetup)>> {
    [128, 64, 32]
        .into_iter()
        .map(|inv| search_setup(path, inv, Some((2, 8))))
        .collect()
}

/// A pruning search of CIFAR-10 at width `1 / inv_width`, batch 32, 2 repeats, seed 0, with
/// `(timesteps, batch)` overridden by `small`.
fn search_setup(
    path: KernelPath,
    inv_width: usize,
    small: Option<(usize, usize)>,
) -> Result<(String, SearchSetup)> {
    let net = NetConfig::for_dataset(
        DatasetKind::Cifar10,
        &Overrides {
            width: Some(1.0 / inv_width as f64),
            timesteps: small.map(|(t, _)| t),
            ..Default::default()
        },
    )?;
    let name = match (inv_width, small) {
        (32, None) => format!("demo (width 1/32, C1/C2 {}/{})", net.shape.c1, net.shape.c2),
        (1, _) => format!(
            "cifar10 full width (C1/C2 {}/{})",
            net.shape.c1, net.shape.c2
        ),
        (k, None) => format!(
            "cifar10 width 1/{k} (C1/C2 {}/{})",
            net.shape.c1, net.shape.c2
        ),
        (k, Some((t, b))) => format!(
            "smoke: cifar10 width 1/{k} (C1/C2 {}/{}), T {t}, batch {b}",
            net.shape.c1, net.shape.c2
        ),
    };
    let setup = SearchSetup {
        net,
        batch: small.map_or(32, |(_, b)| b),
        repeats: 2,
        seed: 0,
        method: Method::Prune,
        score: Default::default(),
        thresholds: Default::default(),
        random_samples: 0,
        kernel_path: path,
        candidates_per_pass: 0,
        data_label: "bench".into(),
        fit: None,
    };
    Ok((name, setup))
}

/// Candle scoring of round-1 candidates, one forward pass per candidate against all of them
/// stacked on the batch axis (a before/after ratio measured in one process).
#[derive(Debug, Serialize)]
pub struct StackBench {
    /// Configuration name.
    pub name: String,
    /// Candidates scored (each on R batches).
    pub candidates: usize,
    /// Candidates per stacked pass.
    pub per_pass: usize,
    /// Seconds for all candidates, one pass each.
    pub single_s: f64,
    /// Seconds for all candidates, stacked.
    pub stacked_s: f64,
    /// `single_s / stacked_s`.
    pub speedup: f64,
    /// Largest relative difference between a candidate's two scores (0 when bit-exact).
    pub score_rel_diff: f64,
}

/// Times the first `max_candidates` round-1 candidates of `setup` on the Candle path of
/// `device`, single passes against `per_pass` candidates per stacked pass.
pub fn stack_bench(
    name: &str,
    setup: &SearchSetup,
    data: &Dataset,
    device: &Device,
    max_candidates: usize,
    per_pass: usize,
) -> Result<StackBench> {
    use crate::model::{Mixing, Network};
    use crate::search::batches::{draw_batches, round_batch_seed};
    use crate::search::prune::round_candidates;
    use crate::search::score::Scorer;
    let cfg = &setup.net;
    let sup = Mixing::supernet(cfg.cell, &cfg.ops);
    let net = Network::new(cfg, &sup.alive(), setup.seed, device)?;
    let batches = draw_batches(
        data,
        setup.batch,
        setup.repeats,
        round_batch_seed(setup.seed, 1),
        device,
    )?;
    let mut cands: Vec<Mixing> = round_candidates(&sup.alive())
        .into_iter()
        .map(|(_, _, m)| m)
        .collect();
    cands.truncate(max_candidates.max(1));
    let path = KernelPath::candle_for_device(device);
    let per_pass = per_pass.clamp(1, cands.len());
    let mut scores = [Vec::new(), Vec::new()];
    let mut times = [0.0; 2];
    for (k, stack) in [1, per_pass].into_iter().enumerate() {
        let scorer = Scorer::new(&net, path)?.with_stack(stack);
        // One untimed warm-up candidate (CUDA kernels load on first use).
        scorer.score_candidates(&cands[..1], &batches, setup.mode(), |_| {})?;
        let t = Instant::now();
        scores[k] = scorer.score_candidates(&cands, &batches, setup.mode(), |_| {})?;
        times[k] = t.elapsed().as_secs_f64();
    }
    let score_rel_diff = scores[0]
        .iter()
        .zip(&scores[1])
        .map(|(a, b)| ((a - b) / a.abs().max(1e-12)).abs())
        .fold(0.0, f64::max);
    Ok(StackBench {
        name: name.to_string(),
        candidates: cands.len(),
        per_pass,
        single_s: times[0],
        stacked_s: times[1],
        speedup: times[0] / times[1],
        score_rel_diff,
    })
}

/// Loads the bench data: `dir` (CIFAR-10 layout) or the built-in sample.
pub fn bench_data(dir: Option<&std::path::Path>) -> Result<Dataset> {
    match dir {
        Some(d) => Ok(Dataset::load(DatasetKind::Cifar10, d, Split::Train, 1)?),
        None => crate::data::sample::cifar10_sample(Split::Train),
    }
}

/// One supernet scoring timed with the Candle path and with the event-driven CPU engine, on the
/// same network and batches (a before/after ratio measured in one process).
#[derive(Debug, Serialize)]
pub struct EngineBench {
    /// Configuration name.
    pub name: String,
    /// Seconds per scoring, Candle forward + bit packing.
    pub candle_s: f64,
    /// Seconds per scoring, event-driven CPU engine.
    pub cpu_event_s: f64,
    /// `candle_s / cpu_event_s`.
    pub speedup: f64,
    /// Relative difference of the two scores.
    pub score_rel_diff: f64,
}

/// Times one full-supernet scoring (R batches) with both CPU paths.
pub fn engine_bench(name: &str, setup: &SearchSetup, data: &Dataset) -> Result<EngineBench> {
    use crate::model::{Mixing, Network};
    use crate::search::batches::{draw_batches, round_batch_seed};
    use crate::search::score::Scorer;
    let dev = Device::Cpu;
    let cfg = &setup.net;
    let mix = Mixing::supernet(cfg.cell, &cfg.ops);
    let net = Network::new(cfg, &mix.alive(), setup.seed, &dev)?;
    let batches = draw_batches(
        data,
        setup.batch,
        setup.repeats,
        round_batch_seed(setup.seed, 1),
        &dev,
    )?;
    let mut scores = [0.0f64; 2];
    let mut times = [0.0f64; 2];
    for (k, path) in [KernelPath::BitPacked, KernelPath::CpuEvent]
        .into_iter()
        .enumerate()
    {
        let scorer = Scorer::new(&net, path)?;
        let reps = if path == KernelPath::BitPacked { 1 } else { 3 };
        times[k] = median_secs(reps, || {
            scores[k] = scorer.sahd_score(&mix, &batches, setup.mode())?;
            Ok(())
        })?;
    }
    Ok(EngineBench {
        name: name.to_string(),
        candle_s: times[0],
        cpu_event_s: times[1],
        speedup: times[0] / times[1],
        score_rel_diff: ((scores[0] - scores[1]) / scores[0]).abs(),
    })
}
