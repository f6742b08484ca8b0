//! Zero-cost proxies of a cell's trained accuracy, computed on its untrained network:
//! the scores `lightsnn bench nas` compares against the benchmark.

use super::cell_id::BenchCell;
use crate::config::NetConfig;
use crate::data::Dataset;
use crate::model::{Forward, Mixing, Mode, Network, NoSink};
use crate::progress::Progress;
use crate::search::random::sample::effective;
use crate::search::spread::RateSpread;
use crate::search::{KernelPath, Scorer};
use crate::train::LossKind;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use snn_nostd::genotype::{Genotype, Op};
use snn_nostd::sahd::{Distance, SahdKernel};
use std::time::Instant;

/// A zero-cost proxy.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Proxy {
    /// LightSNN's score: ln|det K| of the sparsity-aware Hamming kernel, BatchNorm on the batch's
    /// statistics.
    Sahd,
    /// The same with BatchNorm's running statistics (the authors' reference code; on an
    /// untrained network BatchNorm then only divides by sqrt(1 + eps)).
    SahdRunning,
    /// NASWOT: ln|det K| of the plain Hamming kernel (`n - H`), batch statistics.
    Naswot,
    /// SAHD (batch statistics) of the cell's effective network: the ops of dangling nodes
    /// removed (an op whose value never reaches the output cannot change it, but its LIF's
    /// spikes would still enter the kernel).
    SahdEff,
    /// The network's trainable parameter count.
    Params,
    /// The trainable parameter count of the cell's effective network (dangling ops removed).
    ParamsEff,
    /// The sum over weight tensors (convolutions and linear layers) of the L2 norm of the
    /// cross-entropy gradient through the surrogate, on the first score batch
    /// (Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021).
    GradNorm,
    /// The negated rate spread of the cells' LIF layers (`search::spread`): how little their
    /// firing rates change from one input to the next, batch statistics. A score of conv
    /// thresholds, not of op kinds (`search --thresholds spread`).
    Spread,
}

impl Proxy {
    /// Every proxy, in report order.
    pub const ALL: [Proxy; 8] = [
        Proxy::Sahd,
        Proxy::SahdRunning,
        Proxy::Naswot,
        Proxy::SahdEff,
        Proxy::Params,
        Proxy::ParamsEff,
        Proxy::GradNorm,
        Proxy::Spread,
    ];

    /// The proxy's name in files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Proxy::Sahd => "sahd",
            Proxy::SahdRunning => "sahd-running",
            Proxy::Naswot => "naswot",
            Proxy::SahdEff => "sahd-eff",
            Proxy::Params => "params",
            Proxy::ParamsEff => "params-eff",
            Proxy::GradNorm => "grad-norm",
            Proxy::Spread => "spread",
        }
    }
}

/// Where a cell's untrained weights come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum WeightsFrom {
    /// One network holding every op on every edge (the search's supernet), drawn once from the
    /// seed; each cell is scored as a single path on it, so two cells that share an op on an
    /// edge share its weights (fewer sources of noise between cells).
    Shared,
    /// A fresh network per cell, drawn from the seed and the cell's id (what `lightsnn score`
    /// does for one genotype, and SNASNet's random search per candidate).
    PerCell,
}

/// How the proxies are computed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProxySetup {
    /// The network around the cell (forward cell over the benchmark's op set).
    pub net: NetConfig,
    /// Samples per score batch.
    pub batch: usize,
    /// Score batches (each proxy is averaged over them; grad-norm uses the first).
    pub repeats: usize,
    /// Seed of the weights and the batches.
    pub seed: u64,
    /// Where the weights come from.
    pub weights: WeightsFrom,
}

/// The genotype of a benchmark cell: a forward cell over the benchmark's op set.
pub fn genotype_of(cell: BenchCell) -> Result<Genotype> {
    cell.genotype_string()
        .parse()
        .with_context(|| format!("the benchmark cell `{}`", cell.genotype_string()))
}

/// The batches every cell is scored on: `repeats` batches of `batch` training samples drawn from
/// `data` with the setup's seed, with their labels.
pub fn score_batches(
    setup: &ProxySetup,
    data: &Dataset,
    device: &Device,
) -> Result<Vec<(Tensor, Vec<u32>)>> {
    if data.len() < setup.batch {
        bail!(
            "the dataset has {} samples; a score batch needs {}",
            data.len(),
            setup.batch
        );
    }
    let mut rng = ChaCha8Rng::seed_from_u64(setup.seed);
    let [c, h, w] = data.frame_shape();
    let f = data.frames();
    let mut buf = Vec::new();
    (0..setup.repeats)
        .map(|_| {
            let idx = rand::seq::index::sample(&mut rng, data.len(), setup.batch).into_vec();
            data.fill_batch(&idx, None, &mut buf);
            let x = Tensor::from_slice(&buf, (setup.batch, f, c, h, w), device)?;
            Ok((x, idx.iter().map(|&i| data.label(i) as u32).collect()))
        })
        .collect()
}

/// Seconds spent per proxy.
pub type ProxySeconds = Vec<(Proxy, f64)>;

/// Scores every cell of `cells` with `proxies` (in that order), on `batches`
/// ([`score_batches`]), calling `done(i, scores)` as cell `i` finishes (in order). Returns the
/// seconds spent per proxy.
///
/// SAHD and NASWOT come from the same forward pass (both kernels observe it); cells are scored
/// in parallel where the scoring engine allows it (the CPU engine).
pub fn score_cells(
    setup: &ProxySetup,
    proxies: &[Proxy],
    cells: &[BenchCell],
    batches: &[(Tensor, Vec<u32>)],
    device: &Device,
    progress: &dyn Progress,
    mut done: impl FnMut(usize, Vec<f64>) -> Result<()>,
) -> Result<ProxySeconds> {
    if batches.is_empty() {
        bail!("no score batches (repeats must be at least 1)");
    }
    crate::search::score::check_batch(setup.batch)?;
    let xs: Vec<Tensor> = batches.iter().map(|(x, _)| x.clone()).collect();
    let supernet = Mixing::supernet(setup.net.cell, &setup.net.ops);
    let path = KernelPath::for_device(device);
    let shared = match setup.weights {
        WeightsFrom::Shared => Some(Network::new(
            &setup.net,
            &supernet.alive(),
            setup.seed,
            device,
        )?),
        WeightsFrom::PerCell => None,
    };
    let shared_scorer = match &shared {
        Some(net) => Some(Scorer::new(net, path)?),
        None => None,
    };
    let wants = |p: Proxy| proxies.contains(&p);
    let need = KernelNeeds {
        batch_stats: wants(Proxy::Sahd)
            || wants(Proxy::Naswot)
            || wants(Proxy::SahdEff)
            || wants(Proxy::Spread),
        running: wants(Proxy::SahdRunning),
        effective: wants(Proxy::SahdEff),
    };
    if let Some(s) = &shared_scorer {
        if need.batch_stats {
            s.prepare(&xs, Mode::ScoreBatchStats)?;
        }
        if need.running {
            s.prepare(&xs, Mode::ScoreRunningStats)?;
        }
    }
    let kernel_proxies = [
        Proxy::Sahd,
        Proxy::SahdRunning,
        Proxy::Naswot,
        Proxy::SahdEff,
        Proxy::Spread,
    ];
    let mut seconds: Vec<(Proxy, f64)> = proxies.iter().map(|&p| (p, 0.0)).collect();
    let mut add_secs = |p: &[Proxy], s: f64| {
        let mine: Vec<Proxy> = p.iter().copied().filter(|q| proxies.contains(q)).collect();
        for (q, t) in seconds.iter_mut() {
            if mine.contains(q) {
                *t += s / mine.len() as f64;
            }
        }
    };
    // Kernel proxies: cells in parallel chunks on the CPU engine.
    let chunk = rayon::current_num_threads().max(1) * 2;
    progress.start(cells.len() as u64, "scoring benchmark cells");
    for (ci, group) in cells.chunks(chunk).enumerate() {
        let t0 = Instant::now();
        let one = |cell: &BenchCell| -> Result<KernelScores> {
            let g = genotype_of(*cell)?;
            match &shared_scorer {
                Some(s) => kernel_scores(s, &g, &xs, need, setup.batch),
                None => {
                    let net = single_path_net(setup, &g, *cell, device)?;
                    kernel_scores(&Scorer::new(&net, path)?, &g, &xs, need, setup.batch)
                }
            }
        };
        let scores: Vec<KernelScores> = if !(need.batch_stats || need.running) {
            vec![KernelScores::default(); group.len()]
        } else if let Some(s) = &shared_scorer {
            s.map_candidates(group, one)?
        } else if path == KernelPath::CpuEvent {
            use rayon::prelude::*;
            group.par_iter().map(one).collect::<Result<_>>()?
        } else {
            group.iter().map(one).collect::<Result<_>>()?
        };
        add_secs(&kernel_proxies, t0.elapsed().as_secs_f64());
        for (k, cell) in group.iter().enumerate() {
            let g = genotype_of(*cell)?;
            let mut out = Vec::with_capacity(proxies.len());
            for &p in proxies {
                let t0 = Instant::now();
                let v = match p {
                    Proxy::Sahd => scores[k].sahd,
                    Proxy::Naswot => scores[k].naswot,
                    Proxy::SahdRunning => scores[k].sahd_running,
                    Proxy::SahdEff => scores[k].sahd_eff,
                    Proxy::Spread => scores[k].spread,
                    Proxy::Params => param_count(&setup.net, &g) as f64,
                    Proxy::ParamsEff => param_count(&setup.net, &effective(&g)?) as f64,
                    Proxy::GradNorm => {
                        let (x, labels) = &batches[0];
                        let mixing = Mixing::single_path(&g);
                        let v = match &shared {
                            Some(net) => grad_norm(net, &mixing, x, labels)?,
                            None => {
                                let net = single_path_net(setup, &g, *cell, device)?;
                                grad_norm(&net, &mixing, x, labels)?
                            }
                        };
                        add_secs(&[Proxy::GradNorm], t0.elapsed().as_secs_f64());
                        v
                    }
                };
                out.push(v);
            }
            done(ci * chunk + k, out)?;
            progress.advance(1);
        }
    }
    progress.finish();
    Ok(seconds)
}

/// The network of one cell ([`WeightsFrom::PerCell`]): its own ops only, drawn from the seed
/// and the cell's id.
fn single_path_net(
    setup: &ProxySetup,
    g: &Genotype,
    cell: BenchCell,
    device: &Device,
) -> Result<Network> {
    let alive: Vec<Vec<Op>> = g.ops().iter().map(|&o| vec![o]).collect();
    let seed = setup.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(cell.id());
    Network::new(&setup.net, &alive, seed, device)
}

/// Which kernel passes a cell needs.
#[derive(Clone, Copy, Debug)]
struct KernelNeeds {
    /// A batch-statistics pass (SAHD and NASWOT).
    batch_stats: bool,
    /// A running-statistics pass.
    running: bool,
    /// The effective cell's SAHD (a second batch-statistics pass where it differs).
    effective: bool,
}

/// The kernel-based scores of one cell, each averaged over the batches; NaN where not asked.
#[derive(Clone, Copy, Debug)]
struct KernelScores {
    sahd: f64,
    naswot: f64,
    sahd_running: f64,
    sahd_eff: f64,
    spread: f64,
}

impl Default for KernelScores {
    fn default() -> Self {
        KernelScores {
            sahd: f64::NAN,
            naswot: f64::NAN,
            sahd_running: f64::NAN,
            sahd_eff: f64::NAN,
            spread: f64::NAN,
        }
    }
}

/// The kernel scores of cell `g` on `xs` with scorer `s`. SAHD and NASWOT observe the same
/// batch-statistics pass; the effective cell reuses it when nothing dangles.
fn kernel_scores(
    s: &Scorer<'_>,
    g: &Genotype,
    xs: &[Tensor],
    need: KernelNeeds,
    n: usize,
) -> Result<KernelScores> {
    let mut out = KernelScores::default();
    let mixing = Mixing::single_path(g);
    if need.batch_stats {
        (out.sahd, out.naswot, out.spread) = mean_pair(s, &mixing, xs, Mode::ScoreBatchStats, n)?;
    }
    if need.running {
        out.sahd_running = mean_pair(s, &mixing, xs, Mode::ScoreRunningStats, n)?.0;
    }
    if need.effective {
        let eff = effective(g)?;
        out.sahd_eff = if &eff == g {
            out.sahd
        } else {
            mean_pair(s, &Mixing::single_path(&eff), xs, Mode::ScoreBatchStats, n)?.0
        };
    }
    Ok(out)
}

/// (SAHD, NASWOT, negated rate spread) of `mixing` in `mode`, each averaged over `xs`, from
/// one pass per batch (the spread is `-inf` where no cell layer was recorded).
fn mean_pair(
    s: &Scorer<'_>,
    mixing: &Mixing,
    xs: &[Tensor],
    mode: Mode,
    n: usize,
) -> Result<(f64, f64, f64)> {
    let mut scratch = vec![0f64; n * n + n];
    let (mut sahd, mut naswot, mut spread) = (0.0, 0.0, 0.0);
    for x in xs {
        let (mut a, mut b) = (vec![0f64; n * n], vec![0f64; n * n]);
        let mut ka = SahdKernel::new(n, &mut a).context("SAHD kernel")?;
        let mut kb = SahdKernel::new(n, &mut b)
            .context("NASWOT kernel")?
            .with_distance(Distance::Hamming);
        let mut rs = RateSpread::default();
        s.observe_batch(mixing, x, mode, &mut (&mut ka, (&mut kb, &mut rs)))?;
        spread += rs.score();
        ka.check().context("SAHD kernel")?;
        kb.check().context("NASWOT kernel")?;
        sahd += ka.score(&mut scratch).context("SAHD log-det")?;
        naswot += kb.score(&mut scratch).context("NASWOT log-det")?;
    }
    let r = xs.len() as f64;
    Ok((sahd / r, naswot / r, spread / r))
}

/// Trainable parameters of the network of `cfg` with cell `g` (weights, BatchNorm's affine
/// parameters, the output bias; not BatchNorm's running statistics).
pub fn param_count(cfg: &NetConfig, g: &Genotype) -> u64 {
    let alive: Vec<Vec<Op>> = g.ops().iter().map(|&o| vec![o]).collect();
    let all = Network::param_count(cfg, &alive);
    // param_count counts 4 values per BatchNorm channel (weight, bias, running mean, var)
    let bn_channels = cfg.shape.c1 as u64 * 2 + cfg.shape.c2 as u64 * 2 // stem, cell-1 BN, down, cell-2 BN
        + g.ops().iter().filter(|o| o.has_weights()).count() as u64 * (cfg.shape.c1 + cfg.shape.c2) as u64;
    all - 2 * bn_channels
}

/// The grad-norm proxy: the sum over conv and linear weight tensors of the L2 norm of the
/// gradient of the cross-entropy on `(x, labels)`, through the surrogate, BatchNorm on batch
/// statistics, no dropout. The network's running statistics are updated by the pass (use a
/// network whose running statistics nothing else reads).
pub fn grad_norm(net: &Network, mixing: &Mixing, x: &Tensor, labels: &[u32]) -> Result<f64> {
    let out = net.forward(
        x,
        Forward {
            mixing,
            mode: Mode::Train,
            sink: &mut NoSink,
            dropout_rng: None,
        },
    )?;
    let loss = LossKind::Ce.loss(&out.logits, labels)?;
    let grads = loss.backward()?;
    let mut total = 0.0;
    for (name, var) in net.params.trainable() {
        let is_weight = name.ends_with(".conv.weight") || name.starts_with("fc");
        if !is_weight || name.ends_with("bias") {
            continue;
        }
        if let Some(g) = grads.get(var) {
            let sq: f32 = g.sqr()?.sum_all()?.to_scalar()?;
            total += (sq as f64).sqrt();
        }
    }
    Ok(total)
}
