//! The CPU training path against Candle's autograd: gradients of one pass, and weights after a
//! few SGD steps.

use super::*;
use crate::config::{DatasetKind, NetConfig, Overrides};
use crate::model::{Forward, Mixing, Mode, NoSink};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snn_nostd::genotype::Genotype;
use std::collections::BTreeMap;

/// Every op Candle can train (it has no backward for the 3x3 average pool), forward and
/// backward edges, both kernel sizes, nodes read by two convs.
const ALL_OPS: &str = "conv3,skip,conv1,skip,zero,conv3,conv3,conv3,skip,zero,conv1,conv3";

fn net_cfg(t: usize) -> NetConfig {
    let o = Overrides {
        width: Some(1.0 / 32.0),
        timesteps: Some(t),
        hidden: Some(32),
        votes: Some(2),
    };
    let mut cfg = NetConfig::for_dataset(DatasetKind::Cifar10, &o).unwrap();
    cfg.ops = snn_nostd::genotype::OpSet::snasnet();
    cfg
}

fn batch(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = (0..n * 3 * 32 * 32)
        .map(|_| rng.gen_range(-2.0..2.0))
        .collect();
    let y = (0..n).map(|_| rng.gen_range(0..10)).collect();
    (x, y)
}

/// max |a - b| / max |b| over a tensor.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    rel_diff_above(a, b, 1e-12)
}

/// max |a - b| / max(max |b|, floor) over a tensor.
fn rel_diff_above(a: &[f32], b: &[f32], floor: f32) -> f32 {
    let scale = max_abs(b).max(floor);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// max |b|.
fn max_abs(b: &[f32]) -> f32 {
    b.iter().fold(0f32, |m, v| m.max(v.abs()))
}

/// Below this share of the network's largest gradient, a tensor's gradient is zero up to
/// rounding: the BatchNorm biases of the edges into node 3 of a forward cell (its only
/// consumer, the cell's BatchNorm in training mode, makes the per-channel sum of its gradient
/// exactly 0), which both paths give as noise near 1e-10.
const ZERO_GRADIENT: f32 = 1e-6;

/// The `maxpool` op on forward and backward edges, with convs of both sizes and skips (Candle
/// trains the stride-1 max pool through `model::layers::max_pool3`).
const MAXPOOL_OPS: &str =
    "maxpool,skip,conv3,conv3,maxpool,zero,maxpool,conv1,zero,skip,conv3,maxpool";

/// The configuration of `dataset` at width 1/32 with `t` timesteps and a small classifier.
fn dataset_cfg(dataset: DatasetKind, t: usize, ops: &str) -> NetConfig {
    let o = Overrides {
        width: Some(1.0 / 32.0),
        timesteps: Some(t),
        hidden: Some(32),
        votes: Some(2),
    };
    let mut cfg = NetConfig::for_dataset(dataset, &o).unwrap();
    cfg.ops = ops.parse().unwrap();
    cfg
}

/// Random input `[n][frames][C][H][W]`: normalised-image-like values for one frame, event
/// counts 0..2 for several.
fn input(cfg: &NetConfig, n: usize, frames: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let len = n * frames * cfg.shape.in_chw().iter().product::<usize>();
    (0..len)
        .map(|_| {
            if frames == 1 {
                rng.gen_range(-2.0..2.0)
            } else {
                rng.gen_range(0..3) as f32
            }
        })
        .collect()
}

/// Compares every gradient and the loss of one pass (no dropout) of the CPU path with Candle's
/// autograd on `n` samples, relative to each tensor's largest gradient, and the BatchNorm
/// running statistics after it; returns the largest relative difference.
fn check_gradients(
    cfg: &NetConfig,
    genotype: &str,
    frames: usize,
    loss: LossKind,
    n: usize,
) -> Result<f32> {
    let g: Genotype = crate::train::checkpoint::parse_genotype(genotype, cfg)?;
    let mixing = Mixing::single_path(&g);
    let dev = Device::Cpu;
    let nets = [0, 1].map(|_| Network::new(cfg, &mixing.alive(), 3, &dev).unwrap());
    for net in &nets {
        crate::train::kaiming_linear_init(net, 3)?;
    }
    let opt = Sgd::new(0.9, 5e-4);
    let mut fast = FastTrainer::new(FastNet::new(cfg, &g, frames).unwrap(), &nets[1], &opt)?;
    let x = input(cfg, n, frames, 1);
    let y: Vec<u32> = (0..n as u32)
        .map(|i| (i * 7 + 3) % cfg.shape.classes as u32)
        .collect();
    let (out, grads) = fast.gradients(&x, &y, loss, None)?;
    let [c, h, w] = cfg.shape.in_chw();
    let xt = Tensor::from_slice(&x, (n, frames, c, h, w), &dev)?;
    let net = &nets[0];
    let o = net.forward(
        &xt,
        Forward {
            mixing: &mixing,
            mode: Mode::Train,
            sink: &mut NoSink,
            dropout_rng: None,
        },
    )?;
    let l = loss.loss(&o.logits, &y)?;
    let cl = l.to_scalar::<f32>()? as f64;
    assert!(
        (out.loss - cl).abs() < 1e-4 * cl.abs().max(1.0),
        "{genotype}: loss {} vs {cl}",
        out.loss
    );
    let cg = l.backward()?;
    let mut candle = BTreeMap::new();
    for (name, var) in net.params.trainable() {
        if let Some(w) = cg.get(var.as_tensor()) {
            candle.insert(name.clone(), w.flatten_all()?.to_vec1::<f32>()?);
        }
    }
    let zero = ZERO_GRADIENT * candle.values().map(|w| max_abs(w)).fold(0f32, f32::max);
    let mut worst = 0f32;
    for name in net.params.trainable().keys() {
        match (candle.get(name), grads.get(name)) {
            (None, None) => {}
            (Some(w), Some(gv)) if max_abs(w) < zero => {
                let m = max_abs(gv);
                assert!(m < zero, "{genotype}: {name}: {m:e} where Candle's is 0");
            }
            (Some(w), Some(gv)) => {
                let d = rel_diff(gv, w);
                worst = worst.max(d);
                assert!(d < 1e-4, "{genotype}: {name}: relative difference {d}");
            }
            (w, gv) => panic!(
                "{genotype}: {name}: Candle has a gradient: {}, the CPU path: {}",
                w.is_some(),
                gv.is_some()
            ),
        }
    }
    // The running statistics the CPU path updated, against Candle's, relative to the larger of
    // 1 and the tensor's largest value (a mean of BatchNorm outputs is 0 up to rounding).
    let mut check = Sgd::new(0.9, 5e-4);
    fast.store(&nets[1], &mut check)?;
    for ((name, a), (_, b)) in net.params.state().iter().zip(nets[1].params.state()) {
        let (va, vb): (Vec<f32>, Vec<f32>) = (
            a.as_tensor().flatten_all()?.to_vec1()?,
            b.as_tensor().flatten_all()?.to_vec1()?,
        );
        let scale = va.iter().fold(1f32, |m, v| m.max(v.abs()));
        let d = va
            .iter()
            .zip(&vb)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
            / scale;
        assert!(d < 1e-5, "{genotype}: {name}: difference {d}");
    }
    Ok(worst)
}

/// Every gradient of the CPU path matches Candle's autograd (no dropout), relative to the
/// tensor's largest gradient: 1e-4 (float rounding; measured below 5e-6; a spike that flips on a
/// rounding difference), and so do the BatchNorm running statistics.
#[test]
fn gradients_match_candle_autograd() -> Result<()> {
    for (genotype, t, loss) in [
        (ALL_OPS, 3, LossKind::Ce),
        (
            "conv3,conv3,conv3,skip,zero,zero,skip,conv3,conv3,skip,zero,conv3",
            2,
            LossKind::Mse,
        ),
    ] {
        let w = check_gradients(&net_cfg(t), genotype, 1, loss, 6)?;
        eprintln!("{genotype}: largest relative difference {w:e}");
    }
    Ok(())
}

/// The same on event frames (one per timestep): N-MNIST (2x34x34: map sizes the pools do not
/// divide), DVS128 Gesture (the stem's MaxPool2), the `maxpool` op, and a LIF reset to a
/// non-zero potential.
#[test]
fn event_data_and_max_pool_op_gradients_match_candle_autograd() -> Result<()> {
    let t = 3;
    let nmnist = dataset_cfg(DatasetKind::Nmnist, t, "zero,skip,conv1,conv3,maxpool");
    let w = check_gradients(&nmnist, MAXPOOL_OPS, t, LossKind::Ce, 4)?;
    eprintln!("N-MNIST, maxpool op: largest relative difference {w:e}");
    let mut dvs = dataset_cfg(DatasetKind::Dvs128, 2, "snasnet");
    // Smaller frames than DVS128's 128x128, odd after the stem's pool: 62 -> 31 -> 15 -> 7.
    (dvs.shape.in_c, dvs.shape.in_h, dvs.shape.in_w) = (2, 62, 62);
    let w = check_gradients(
        &dvs,
        "conv3,conv3,conv3,skip,zero,zero,skip,conv3,conv3,skip,zero,conv3",
        2,
        LossKind::Mse,
        3,
    )?;
    eprintln!("DVS (stem pool): largest relative difference {w:e}");
    let mut reset = net_cfg(2);
    reset.lif.v_reset = -0.25;
    let w = check_gradients(&reset, ALL_OPS, 1, LossKind::Ce, 4)?;
    eprintln!("LIF reset -0.25: largest relative difference {w:e}");
    Ok(())
}

/// The 3x3 average pool (zero padding, divisor 9) is its own adjoint, which its backward pass
/// relies on: <pool(a), b> = <a, pool(b)>.
#[test]
fn avg_pool_is_self_adjoint() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (h, w, c) = (5, 7, 3);
    let mut r = |_| rng.gen_range(-1.0f32..1.0);
    let a: Vec<f32> = (0..h * w * c).map(&mut r).collect();
    let b: Vec<f32> = (0..h * w * c).map(&mut r).collect();
    let (mut pa, mut pb) = (vec![0f32; a.len()], vec![0f32; b.len()]);
    kernels::avg_pool3(&a, h, w, c, &mut pa);
    kernels::avg_pool3(&b, h, w, c, &mut pb);
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| (p * q) as f64).sum::<f64>();
    let (l, rr) = (dot(&pa, &b), dot(&a, &pb));
    assert!((l - rr).abs() < 1e-5 * l.abs().max(1.0), "{l} vs {rr}");
}

/// Four SGD steps (dropout, momentum, weight decay) on each path from the same weights end
/// with every tensor (weights, BatchNorm running statistics, momentum buffers) within 1e-3 of
/// the Candle path's, relative to the tensor's largest value.
#[test]
fn weights_after_steps_match_candle() -> Result<()> {
    let genotype = "conv3,conv3,conv3,skip,zero,zero,skip,conv3,conv3,skip,zero,conv3";
    let worst = check_steps(&net_cfg(2), genotype)?;
    eprintln!("largest relative difference after 4 steps: {worst:e}");
    Ok(())
}

/// The smallest scale of [`check_steps`]' comparisons: a tensor a gradient of rounding noise
/// moved ([`ZERO_GRADIENT`]: a bias at 0 that stays near 1e-10, its momentum near 1e-9) is
/// compared absolutely.
const STEPS_FLOOR: f32 = 1e-5;

/// Four SGD steps of `genotype` on `cfg` (CIFAR-10 input) on each path from the same weights:
/// the losses within 1e-3, and every tensor within 1e-3 of the Candle path's, relative to the
/// larger of the tensor's largest value and [`STEPS_FLOOR`]; returns the largest relative
/// difference.
fn check_steps(cfg: &NetConfig, genotype: &str) -> Result<f32> {
    let cfg = cfg.clone();
    let g: Genotype = crate::train::checkpoint::parse_genotype(genotype, &cfg)?;
    let mixing = Mixing::single_path(&g);
    let dev = Device::Cpu;
    let nets = [0, 1].map(|_| Network::new(&cfg, &mixing.alive(), 5, &dev).unwrap());
    for n in &nets {
        crate::train::kaiming_linear_init(n, 5)?;
    }
    let mut opt_c = Sgd::new(0.9, 5e-4);
    let mut opt_f = Sgd::new(0.9, 5e-4);
    let mut fast = FastTrainer::new(FastNet::new(&cfg, &g, 1).unwrap(), &nets[1], &opt_f)?;
    let (mut rng_c, mut rng_f) = (ChaCha8Rng::seed_from_u64(7), ChaCha8Rng::seed_from_u64(7));
    for s in 0..4 {
        let (x, y) = batch(8, 10 + s);
        let xt = Tensor::from_slice(&x, (8, 1, 3, 32, 32), &dev)?;
        let (lc, _) = crate::train::train_step(
            &nets[0],
            &mixing,
            &mut opt_c,
            LossKind::Ce,
            &xt,
            &y,
            0.1,
            &mut rng_c,
        )?;
        let out = fast.step(&x, &y, LossKind::Ce, 0.1, &mut rng_f)?;
        let lc = lc.to_scalar::<f32>()? as f64;
        assert!(
            (out.loss - lc).abs() < 1e-3 * lc,
            "step {s}: loss {} vs {lc}",
            out.loss
        );
    }
    fast.store(&nets[1], &mut opt_f)?;
    let [a, b] = &nets;
    let pairs = a
        .params
        .all_tensors()
        .into_iter()
        .zip(b.params.all_tensors());
    let mut worst = 0f32;
    for ((name, ta), (_, tb)) in pairs {
        let (va, vb): (Vec<f32>, Vec<f32>) =
            (ta.flatten_all()?.to_vec1()?, tb.flatten_all()?.to_vec1()?);
        let d = rel_diff_above(&vb, &va, STEPS_FLOOR);
        worst = worst.max(d);
        assert!(d < 1e-3, "{name}: relative difference {d}");
    }
    for (name, ba) in opt_c.buffers() {
        let va: Vec<f32> = ba.flatten_all()?.to_vec1()?;
        let vb: Vec<f32> = opt_f.buffers()[name].flatten_all()?.to_vec1()?;
        assert!(
            rel_diff_above(&vb, &va, STEPS_FLOOR) < 1e-3,
            "momentum {name}"
        );
    }
    assert_eq!(opt_c.buffers().len(), opt_f.buffers().len());
    Ok(worst)
}

/// SpikeNAS-Bench cells: node 0 feeds one conv of each threshold (three LIF layers on one
/// node) and node 2 a `conv3@0.5`; node 0 feeds two convs of one threshold (a shared layer),
/// node 1 a `conv3`.
const PRESET_GENOTYPES: [&str; 2] = [
    "conv3@0.5,conv3,conv3@1.5,conv3@1.5,skip,conv3@0.5",
    "conv3@1.5,conv3@1.5,skip,zero,conv3,conv3@0.5",
];

/// The SpikeNAS-Bench network at width 1/32 (C1/C2 4/8; average pools, forward cell, 100
/// outputs voted to 10) with `t` timesteps and H 32.
fn preset_cfg(t: usize) -> NetConfig {
    let o = Overrides {
        width: Some(1.0 / 32.0),
        timesteps: Some(t),
        hidden: Some(32),
        votes: None,
    };
    let cfg = NetConfig::for_preset(crate::config::Preset::SpikenasBench, &o).unwrap();
    assert_eq!(
        (
            cfg.shape.c1,
            cfg.shape.c2,
            cfg.shape.classes * cfg.shape.votes
        ),
        (4, 8, 100)
    );
    cfg
}

/// The gradients of the SpikeNAS-Bench network (thresholded convs, average pools, votes) match
/// Candle's autograd (no dropout) as in [`gradients_match_candle_autograd`].
#[test]
fn preset_gradients_match_candle_autograd() -> Result<()> {
    for (genotype, t, loss) in [
        (PRESET_GENOTYPES[0], 3, LossKind::Ce),
        (PRESET_GENOTYPES[1], 2, LossKind::Mse),
    ] {
        let w = check_gradients(&preset_cfg(t), genotype, 1, loss, 6)?;
        eprintln!("preset {genotype}: largest relative difference {w:e}");
    }
    Ok(())
}

/// Four SGD steps with dropout (the same mask draws on both paths) on the SpikeNAS-Bench
/// network end within 1e-3 of the Candle path, as in [`weights_after_steps_match_candle`].
#[test]
fn preset_weights_after_steps_match_candle() -> Result<()> {
    let worst = check_steps(&preset_cfg(2), PRESET_GENOTYPES[0])?;
    eprintln!("preset: largest relative difference after 4 steps: {worst:e}");
    Ok(())
}

/// Three SGD steps with dropout on the SpikeNAS-Bench network on 1 and on 2 threads: every
/// tensor and momentum buffer bit-identical (reductions over samples run in sample order).
#[test]
fn preset_steps_are_identical_on_one_and_two_threads() -> Result<()> {
    let cfg = preset_cfg(2);
    let g: Genotype = crate::train::checkpoint::parse_genotype(PRESET_GENOTYPES[0], &cfg)?;
    let alive = Mixing::single_path(&g).alive();
    let run = |threads: usize| -> Result<Vec<(String, Vec<u32>)>> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?;
        pool.install(|| {
            let net = Network::new(&cfg, &alive, 5, &Device::Cpu)?;
            let mut opt = Sgd::new(0.9, 5e-4);
            let mut fast = FastTrainer::new(FastNet::new(&cfg, &g, 1).unwrap(), &net, &opt)?;
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            for s in 0..3 {
                let (x, y) = batch(8, 20 + s);
                fast.step(&x, &y, LossKind::Ce, 0.1, &mut rng)?;
            }
            fast.store(&net, &mut opt)?;
            let mut bits = Vec::new();
            let tensors = net.params.all_tensors().into_iter();
            let buffers = opt.buffers().iter().map(|(k, t)| (k.clone(), t.clone()));
            for (name, t) in tensors.chain(buffers) {
                let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
                bits.push((name, v.into_iter().map(f32::to_bits).collect()));
            }
            Ok(bits)
        })
    };
    let one = run(1)?;
    assert!(one == run(2)?, "1 and 2 threads differ");
    assert!(one == run(1)?, "two runs on 1 thread differ");
    Ok(())
}

/// The gradient of `sum(g * pool(x))` w.r.t. `x` (`[h][w]`, one channel) on the Candle path
/// (`Mode::Train`), as `[h][w]`; `k == 0` is the 3x3 stride-1 `maxpool` op.
fn candle_pool_grad(x: &[f32], (h, w): (usize, usize), k: usize, g: &[f32]) -> Result<Vec<f32>> {
    use crate::model::layers::{max_pool, max_pool3};
    let dev = Device::Cpu;
    let xv = candle_core::Var::from_slice(x, (1, 1, h, w), &dev)?;
    let y = if k == 0 {
        max_pool3(xv.as_tensor(), Mode::Train)?
    } else {
        max_pool(xv.as_tensor(), k, Mode::Train)?
    };
    let gt = Tensor::from_slice(g, y.shape(), &dev)?;
    let grads = (y * gt)?.sum_all()?.backward()?;
    Ok(grads
        .get(xv.as_tensor())
        .expect("x has a gradient")
        .flatten_all()?
        .to_vec1()?)
}

/// The same gradient on the CPU path's kernel.
fn fast_pool_grad(x: &[f32], (h, w): (usize, usize), k: usize, g: &[f32]) -> Vec<f32> {
    let p = if k == 0 {
        kernels::Pool::same3(h, w, 1)
    } else {
        kernels::Pool::strided(h, w, 1, k)
    };
    let mut dx = vec![0f32; x.len()];
    kernels::max_pool_backward(x, &p, g, &mut dx);
    dx
}

/// Max-pool gradients follow PyTorch's `MaxPool2d`: one element per window, the first maximum
/// in row-major order. Hand-computed on maps with ties and unique maxima, on both paths.
/// (Candle 0.11's own max-pool backward gives a tied 2x2 window's elements half the gradient
/// each, and has no backward for the stride-1 pool.)
#[test]
fn max_pool_gradients_go_to_the_first_maximum() -> Result<()> {
    // 2x2, stride 2: windows {1,3,3,0} (tie: (0,1) first), {2,2,2,2} (all tied: (0,2)),
    // {5,1,0,0} (unique: (2,0)), {0,0,0,0} (all tied: (2,2)).
    let x2 = [
        1., 3., 2., 2., 3., 0., 2., 2., 5., 1., 0., 0., 0., 0., 0., 0.,
    ];
    let g2 = [1., 2., 3., 4.];
    let mut want2 = [0f32; 16];
    (want2[1], want2[2], want2[8], want2[10]) = (1., 2., 3., 4.);
    // 3x3, stride 1, padding 1 on [[0,1,0],[1,0,3],[2,2,0]] with g = 1..9: (0,0)'s window
    // ties (0,1) and (1,0): (0,1) gets 1; the 3 at (1,2) wins windows (0,1), (0,2), (1,1),
    // (1,2), (2,1), (2,2): 2+3+5+6+8+9; (1,0) and (2,0) tie (2,0) and (2,1): (2,0) gets 4+7.
    let x3 = [0., 1., 0., 1., 0., 3., 2., 2., 0.];
    let g3: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let mut want3 = [0f32; 9];
    (want3[1], want3[5], want3[6]) = (1., 33., 11.);
    for (x, hw, k, g, want) in [
        (&x2[..], (4, 4), 2, &g2[..], &want2[..]),
        (&x3[..], (3, 3), 0, &g3[..], &want3[..]),
    ] {
        assert_eq!(candle_pool_grad(x, hw, k, g)?, want, "Candle, k {k}");
        assert_eq!(fast_pool_grad(x, hw, k, g), want, "CPU path, k {k}");
    }
    Ok(())
}

/// The two paths' max-pool gradients agree exactly on random maps: spikes (ties everywhere),
/// real values, sizes the window does not divide (the trailing row and column get nothing).
#[test]
fn max_pool_gradients_match_between_paths() -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for (hw, k) in [
        ((6usize, 8usize), 2usize),
        ((5, 7), 2),
        ((9, 9), 3),
        ((5, 6), 0),
        ((1, 4), 0),
    ] {
        for spikes in [true, false] {
            let x: Vec<f32> = (0..hw.0 * hw.1)
                .map(|_| {
                    if spikes {
                        rng.gen_range(0..2) as f32
                    } else {
                        rng.gen_range(-2.0..2.0)
                    }
                })
                .collect();
            let outs = match (hw.0.checked_div(k), hw.1.checked_div(k)) {
                (Some(oh), Some(ow)) => oh * ow,
                _ => hw.0 * hw.1,
            };
            let g: Vec<f32> = (0..outs).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let want = candle_pool_grad(&x, hw, k, &g)?;
            assert_eq!(fast_pool_grad(&x, hw, k, &g), want, "{hw:?} k {k}");
        }
    }
    Ok(())
}
