//! Training throughput benchmark on the demo configuration: the built-in CIFAR-10 sample,
//! width 1/32 (C1/C2 = 8/16), H = 1024, V = 10, T = 5, batch 64; or on a preset's network
//! ([`bench_config`]).

use super::fast::{FastTrainer, TrainPath};
use super::metrics::LossKind;
use super::optim::{Sgd, SgdConfig};
use crate::config::{NetConfig, Overrides, Preset};
use crate::data::Split;
use crate::model::{Mixing, Network};
use anyhow::Result;
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use snn_nostd::genotype::Genotype;
use std::time::Instant;

/// Width multiplier of the demo configuration (as `lightsnn search` on the built-in sample).
pub const DEMO_WIDTH: f64 = 1.0 / 32.0;

/// The genotype benchmarked by default: a mix of conv3, skip and zero on forward and backward
/// edges (8 conv3 edges: a busy LightSNN cell).
pub const DEMO_GENOTYPE: &str =
    "conv3,skip,zero,conv3,conv3,skip,conv3,conv3,zero,conv3,conv3,conv3";

/// The genotype benchmarked by default on the SpikeNAS-Bench network: the benchmark's best
/// cell (id 12617; node 0 feeds one conv of each threshold, three LIF layers).
pub const PRESET_GENOTYPE: &str = "conv3@0.5,conv3,zero,conv3@1.5,zero,conv3@1.5";

/// Result of [`bench_train`].
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    /// The configuration measured.
    pub net: NetConfig,
    /// Batch size.
    pub batch: usize,
    /// Timed training steps (after one warm-up step).
    pub steps: usize,
    /// Wall time of the timed steps in seconds.
    pub seconds: f64,
    /// Training images per second (batch filling with augmentation, forward, backward and
    /// SGD update).
    pub images_per_s: f64,
    /// Which training path ran (see `train::select_path`).
    pub path: String,
    /// Trainable parameters of the network (as `lightsnn train` prints them).
    pub trainable: usize,
}

/// Times `steps` training steps (after one warm-up step) of `genotype` on the demo
/// configuration (T overridden by `timesteps`) with batches of `batch` on `device`, on the
/// training path `path` selects.
pub fn bench_train(
    genotype: &str,
    steps: usize,
    batch: usize,
    timesteps: Option<usize>,
    path: TrainPath,
    device: &Device,
) -> Result<BenchResult> {
    bench_train_net(
        bench_config(None, DEMO_WIDTH, timesteps)?,
        genotype,
        steps,
        batch,
        path,
        device,
    )
}

/// The network of `preset` (without one, CIFAR-10's) at `width`, T overridden by
/// `timesteps`; H and V the preset's or dataset's (the width scales C1/C2 only). The demo
/// configuration is `bench_config(None, DEMO_WIDTH, None)`.
pub fn bench_config(
    preset: Option<Preset>,
    width: f64,
    timesteps: Option<usize>,
) -> Result<NetConfig> {
    let o = Overrides {
        width: Some(width),
        timesteps,
        ..Default::default()
    };
    Ok(NetConfig::for_preset_or_dataset(preset, None, &o)?)
}

/// [`bench_train`] on the CIFAR-10 network `net_cfg` (e.g. one sized to a board, or a
/// preset's).
pub fn bench_train_net(
    net_cfg: NetConfig,
    genotype: &str,
    steps: usize,
    batch: usize,
    path: TrainPath,
    device: &Device,
) -> Result<BenchResult> {
    let g: Genotype = super::checkpoint::parse_genotype(genotype, &net_cfg)?;
    let data = crate::data::sample::cifar10_sample(Split::Train)?;
    let mixing = Mixing::single_path(&g);
    let net = Network::new(&net_cfg, &mixing.alive(), 0, device)?;
    let sgd = SgdConfig::paper(0.1);
    let mut opt = Sgd::new(sgd.momentum, sgd.weight_decay);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut buf = Vec::new();
    let [c, h, w] = data.frame_shape();
    let (fast, path) = super::select_path(path, &net_cfg, &g, 1, device)?;
    let mut fast = match fast {
        Some(f) => Some(FastTrainer::new(f, &net, &opt)?),
        None => None,
    };
    let mut step = |i: usize, rng: &mut ChaCha8Rng| -> Result<()> {
        let idx: Vec<usize> = (0..batch).map(|k| (i * batch + k) % data.len()).collect();
        data.fill_batch(&idx, Some(rng), &mut buf);
        let labels: Vec<u32> = idx.iter().map(|&k| data.label(k) as u32).collect();
        if let Some(f) = fast.as_mut() {
            f.step(&buf, &labels, LossKind::Ce, sgd.lr, rng)?;
            return Ok(());
        }
        let x = Tensor::from_slice(&buf, (batch, 1, c, h, w), device)?;
        super::train_step(
            &net,
            &mixing,
            &mut opt,
            LossKind::Ce,
            &x,
            &labels,
            sgd.lr,
            rng,
        )?;
        Ok(())
    };
    step(0, &mut rng)?;
    let start = Instant::now();
    for i in 0..steps {
        step(i + 1, &mut rng)?;
    }
    device.synchronize()?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(BenchResult {
        net: net_cfg,
        batch,
        steps,
        seconds,
        images_per_s: (steps * batch) as f64 / seconds,
        path,
        trainable: net.params.num_trainable(),
    })
}
