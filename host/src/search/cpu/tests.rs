//! The CPU engine against the Candle path (the reference): kernels bit for bit, every recorded
//! spike, the K matrices and scores, a whole pruning search; and determinism across thread
//! counts.

use super::bn::{batch_stats, BnAffine};
use super::conv::{conv_gather, padded, Active, ConvGeom};
use super::maps::{Codes, Maps};
use super::CpuEngine;
use crate::config::{DatasetKind, NetConfig, Overrides, Preset};
use crate::model::layers::{batch_norm, Mode};
use crate::model::params::ParamStore;
use crate::model::{Forward, LayerId, Mixing, Network, SpikeSink};
use crate::search::prune::round_candidates;
use crate::search::run::run_search;
use crate::search::score::{KernelPath, Scorer};
use crate::search::setup::{Method, SearchSetup};
use anyhow::Result;
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snn_nostd::bits;
use snn_nostd::genotype::{CellType, Genotype, OpSet};
use snn_nostd::sahd::SahdKernel;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Packs `[N, C, H, W]` 0/1 values into channels-last codes.
fn codes_from_nchw(v: &[f32], n: usize, c: usize, h: usize, w: usize) -> Codes {
    let mut codes = Codes::zeros(n, h, w, c);
    let hw = h * w;
    for i in 0..n {
        let row = &mut codes.words[i * codes.wpc..(i + 1) * codes.wpc];
        for ch in 0..c {
            for p in 0..hw {
                if v[(i * c + ch) * hw + p] > 0.5 {
                    bits::set(row, p * c + ch, true).unwrap();
                }
            }
        }
    }
    codes
}

#[test]
fn conv_gather_matches_candle_bitwise() -> Result<()> {
    let dev = Device::Cpu;
    let mut r = rng(1);
    for &(cin, cout, k, h) in &[
        (6, 18, 3, 8),
        (12, 12, 3, 8),
        (16, 48, 3, 32),
        (32, 96, 3, 16),
        (12, 24, 1, 8),
        (64, 32, 3, 8),
        (8, 100, 3, 8),
    ] {
        let n = 3;
        let wt: Vec<f32> = (0..cout * cin * k * k)
            .map(|_| r.gen_range(-0.3f32..0.3))
            .collect();
        let x: Vec<f32> = (0..n * cin * h * h)
            .map(|_| if r.gen_bool(0.2) { 1.0 } else { 0.0 })
            .collect();
        let xt = Tensor::from_vec(x.clone(), (n, cin, h, h), &dev)?;
        let wtt = Tensor::from_vec(wt.clone(), (cout, cin, k, k), &dev)?;
        let want: Vec<f32> = xt.conv2d(&wtt, k / 2, 1, 1, 1)?.flatten_all()?.to_vec1()?;
        let stride = padded(cout);
        let mut taps = vec![0f32; k * k * cin * stride];
        for co in 0..cout {
            for ci in 0..cin {
                for t in 0..k * k {
                    taps[(t * cin + ci) * stride + co] = wt[(co * cin + ci) * k * k + t];
                }
            }
        }
        let codes = codes_from_nchw(&x, n, cin, h, h);
        let g = ConvGeom {
            h,
            w: h,
            cin,
            k,
            cout: stride,
        };
        let (mut diff, mut worst) = (0, 0f32);
        for i in 0..n {
            let mut out = vec![0f32; h * h * stride];
            let act = Active::new(codes.row(i), h, h, cin);
            conv_gather(&act, &g, &taps, &mut out);
            for co in 0..cout {
                for p in 0..h * h {
                    let (a, b) = (out[p * stride + co], want[(i * cout + co) * h * h + p]);
                    if a.to_bits() != b.to_bits() {
                        diff += 1;
                        worst = worst.max((a - b).abs());
                    }
                }
            }
        }
        if k * k * cin <= 512 {
            // One gemm depth block: Candle sums each output in (ky, kx, ci) order from 0.
            assert_eq!(
                diff, 0,
                "cin {cin} cout {cout} k {k}: {diff} outputs differ"
            );
        } else {
            // gemm splits depths above 512 into cache-dependent blocks summed separately, so
            // the last bits may differ (wider networks than the CPU search uses: C > 56).
            assert!(
                worst < 1e-5,
                "cin {cin} cout {cout} k {k}: differs by {worst}"
            );
        }
    }
    Ok(())
}

#[test]
fn batch_norm_matches_candle_bitwise() -> Result<()> {
    let dev = Device::Cpu;
    let mut r = rng(2);
    let (n, c, h, w) = (5, 7, 9, 6);
    let mut ps = ParamStore::new(0, &dev);
    let bn = ps.bn("bn", c)?;
    let rand_vec = |r: &mut ChaCha8Rng, lo: f32, hi: f32| -> Vec<f32> {
        (0..c).map(|_| r.gen_range(lo..hi)).collect()
    };
    let (wv, bv, mv, vv) = (
        rand_vec(&mut r, 0.5, 1.5),
        rand_vec(&mut r, -0.5, 0.5),
        rand_vec(&mut r, -0.5, 0.5),
        rand_vec(&mut r, 0.5, 2.0),
    );
    bn.weight.set(&Tensor::new(wv.as_slice(), &dev)?)?;
    bn.bias.set(&Tensor::new(bv.as_slice(), &dev)?)?;
    bn.running_mean.set(&Tensor::new(mv.as_slice(), &dev)?)?;
    bn.running_var.set(&Tensor::new(vv.as_slice(), &dev)?)?;
    let x: Vec<f32> = (0..n * c * h * w)
        .map(|_| r.gen_range(-3.0f32..5.0))
        .collect();
    let xt = Tensor::from_vec(x.clone(), (n, c, h, w), &dev)?;
    let m = Maps::from_nchw(&x, n, c, h, w);
    for mode in [Mode::ScoreBatchStats, Mode::ScoreRunningStats] {
        let want: Vec<f32> = batch_norm(&xt, &bn, mode)?.flatten_all()?.to_vec1()?;
        let want = Maps::from_nchw(&want, n, c, h, w);
        let aff = if mode == Mode::ScoreBatchStats {
            let (mean, var) = batch_stats(&m.data, c, 0, c);
            BnAffine::new(mean, &var, &wv, &bv)
        } else {
            BnAffine::new(mv.clone(), &vv, &wv, &bv)
        };
        let mut got = vec![0f32; m.data.len()];
        aff.apply(&m.data, c, 0, &mut got, c);
        assert_eq!(got, want.data, "{mode:?}");
    }
    Ok(())
}

/// Keeps every spike record of the Candle path, as channels-last codes.
struct CodeSink {
    layers: Vec<(LayerId, usize, Codes, u32)>,
}

impl SpikeSink for CodeSink {
    fn record(&mut self, l: LayerId, t: usize, spikes: &Tensor, m: u32) -> Result<()> {
        let dims = spikes.dims().to_vec();
        let v: Vec<f32> = spikes.flatten_all()?.to_vec1()?;
        let codes = match dims.as_slice() {
            &[n, c, h, w] => codes_from_nchw(&v, n, c, h, w),
            &[n, c] => codes_from_nchw(&v, n, c, 1, 1),
            d => anyhow::bail!("unexpected spike shape {d:?}"),
        };
        self.layers.push((l, t, codes, m));
        Ok(())
    }
}

fn tiny_cfg(cell: CellType, ops: &OpSet) -> Result<NetConfig> {
    let o = Overrides {
        width: Some(6.0 / 256.0),
        timesteps: Some(3),
        hidden: Some(24),
        votes: Some(2),
    };
    let mut cfg = NetConfig::for_dataset(DatasetKind::Cifar10, &o)?;
    cfg.cell = cell;
    cfg.ops = ops.clone();
    Ok(cfg)
}

/// The SpikeNAS-Bench preset in small: C1/C2 6/12 (its forward cell over
/// {zero, skip, conv3@0.5, conv3, conv3@1.5}, average-pool downsampling).
fn tiny_preset() -> Result<NetConfig> {
    let o = Overrides {
        width: Some(6.0 / 128.0),
        timesteps: Some(3),
        hidden: Some(24),
        votes: Some(2),
    };
    Ok(NetConfig::for_preset(Preset::SpikenasBench, &o)?)
}

/// SpikeNAS-Bench cells: node 0 feeds one conv of each threshold (three LIF layers on one
/// node), and one with two convs of one threshold on one node (a shared layer).
const BENCH_GENOTYPES: &[&str] = &[
    "conv3@0.5 conv3 conv3@1.5 conv3@1.5 skip conv3@0.5",
    "conv3@1.5 skip conv3@0.5 conv3@1.5 conv3 zero",
];

fn static_batch(cfg: &NetConfig, n: usize, seed: u64) -> Result<Tensor> {
    let [c, h, w] = cfg.shape.in_chw();
    let mut r = rng(seed);
    let v: Vec<f32> = (0..n * c * h * w).map(|_| r.gen_range(-2.0..2.0)).collect();
    Ok(Tensor::from_vec(v, (n, 1, c, h, w), &Device::Cpu)?)
}

fn event_batch(cfg: &NetConfig, n: usize, seed: u64) -> Result<Tensor> {
    let [c, h, w] = cfg.shape.in_chw();
    let t = cfg.shape.timesteps;
    let mut r = rng(seed);
    let v: Vec<f32> = (0..n * t * c * h * w)
        .map(|_| {
            if r.gen_bool(0.3) {
                r.gen_range(1..4) as f32
            } else {
                0.0
            }
        })
        .collect();
    Ok(Tensor::from_vec(v, (n, t, c, h, w), &Device::Cpu)?)
}

/// What one comparison found.
#[derive(Default, Debug)]
struct Tally {
    runs: usize,
    /// Spike slots compared (neurons x samples x timesteps).
    spikes: u64,
    /// Hidden-layer spikes of the Candle path, and its slots.
    hidden_fired: u64,
    hidden_slots: u64,
    differing: u64,
    max_k_rel: f64,
    max_score_rel: f64,
}

/// Active both paths on one (mixing, batch, mode), checks the record sequence, counts differing
/// spikes and compares K and the score.
fn compare(
    net: &Network,
    engine: &CpuEngine<'_>,
    mixing: &Mixing,
    x: &Tensor,
    mode: Mode,
    tally: &mut Tally,
    what: &str,
) -> Result<()> {
    let n = x.dim(0)?;
    let mut sink = CodeSink { layers: Vec::new() };
    net.forward(
        x,
        Forward {
            mixing,
            mode,
            sink: &mut sink,
            dropout_rng: None,
        },
    )?;
    let mut buf = vec![0f64; n * n];
    let mut kern = SahdKernel::new(n, &mut buf).unwrap();
    let trace = engine.trace_batch(mixing, x, mode, &mut kern)?;
    assert_eq!(trace.len(), sink.layers.len(), "{what}: record count");
    for ((l, t, want, wm), tr) in sink.layers.iter().zip(&trace) {
        let (got, gm) = (tr, &tr.mult);
        assert_eq!((l, t), (&tr.layer, &tr.t), "{what}: record order");
        assert_eq!(wm, gm, "{what}: multiplicity of {l} at t={t}");
        assert_eq!(
            (want.n, want.n_bits()),
            (got.n, got.n_bits),
            "{what}: shape of {l} at t={t}"
        );
        tally.spikes += (want.n * want.n_bits()) as u64;
        if *l == LayerId::Hidden {
            tally.hidden_fired += want
                .words
                .iter()
                .map(|w| w.count_ones() as u64)
                .sum::<u64>();
            tally.hidden_slots += (want.n * want.n_bits()) as u64;
        }
        tally.differing += want
            .words
            .iter()
            .zip(&got.words)
            .map(|(a, b)| (a ^ b).count_ones() as u64)
            .sum::<u64>();
    }
    let mut k_fast = vec![0f64; n * n];
    kern.kernel(&mut k_fast).unwrap();
    let reference = Scorer::new(net, KernelPath::BitPacked)?;
    let k_ref = reference.kernel_matrix(mixing, x, mode)?;
    for (a, b) in k_fast.iter().zip(&k_ref) {
        tally.max_k_rel = tally.max_k_rel.max(((a - b) / b).abs());
    }
    let s_ref = reference.sahd_one(mixing, x, mode)?;
    let mut scratch = vec![0f64; n * n + n];
    let s_fast = kern.score(&mut scratch).unwrap();
    assert!(s_ref.is_finite() && s_fast.is_finite(), "{what}: scores");
    tally.max_score_rel = tally
        .max_score_rel
        .max(((s_fast - s_ref) / s_ref.abs().max(1e-12)).abs());
    tally.runs += 1;
    Ok(())
}

/// Mixings to test on a supernet of `ops`: the supernet, one op removed from two edges
/// (uneven weights), and single-path genotypes.
fn mixings(cell: CellType, ops: &OpSet, genotypes: &[&str]) -> Vec<(String, Mixing)> {
    let mut out = vec![("supernet".to_string(), Mixing::supernet(cell, ops))];
    let mut alive = vec![ops.ops().to_vec(); cell.num_edges()];
    alive[0].remove(1);
    alive[cell.num_edges() - 1].remove(0);
    out.push(("pruned".to_string(), Mixing::uniform(&alive)));
    for g in genotypes {
        let g: Genotype = g.parse().unwrap();
        assert_eq!(g.cell(), cell);
        out.push((g.to_string(), Mixing::single_path(&g)));
    }
    out
}

fn equivalence(cfg: &NetConfig, genotypes: &[&str], event: bool, tally: &mut Tally) -> Result<()> {
    let dev = Device::Cpu;
    let sup = Mixing::supernet(cfg.cell, &cfg.ops);
    let net = Network::new(cfg, &sup.alive(), 11, &dev)?;
    let engine = CpuEngine::new(&net)?;
    let n = 6;
    let x = if event {
        event_batch(cfg, n, 5)?
    } else {
        static_batch(cfg, n, 5)?
    };
    for (name, mix) in mixings(cfg.cell, &cfg.ops, genotypes) {
        for mode in [Mode::ScoreBatchStats, Mode::ScoreRunningStats] {
            let what = format!(
                "{} cell, ops {}, {name}, {mode:?}, {}",
                cfg.cell,
                cfg.ops,
                if event { "event" } else { "static" }
            );
            compare(&net, &engine, &mix, &x, mode, tally, &what)?;
        }
    }
    Ok(())
}

/// Differing spikes allowed, as a fraction of all recorded spikes. The engine repeats Candle's
/// f32 operations in Candle's order, so this is 0 in practice; the only sum whose order it
/// cannot guarantee is the hidden layer's matmul (gemm blocks long sums), where a last-bit
/// difference could flip a spike sitting exactly at the threshold.
const MAX_DIFF_FRACTION: f64 = 1e-4;

fn check(tally: &Tally, label: &str) {
    println!(
        "{label}: {} runs, {} of {} spikes differ, max |dK|/K {:.2e}, max |dscore|/score {:.2e}",
        tally.runs, tally.differing, tally.spikes, tally.max_k_rel, tally.max_score_rel
    );
    assert!(
        (tally.differing as f64) <= MAX_DIFF_FRACTION * tally.spikes as f64,
        "{label}: {} of {} spikes differ",
        tally.differing,
        tally.spikes
    );
    assert!(
        tally.max_k_rel <= 1e-6,
        "{label}: K differs by {:e}",
        tally.max_k_rel
    );
    assert!(
        tally.max_score_rel <= 1e-6,
        "{label}: score differs by {:e}",
        tally.max_score_rel
    );
}

const BACKWARD_GENOTYPES: &[&str] = &[
    "conv3 avgpool maxpool conv1 skip zero conv1 conv3 maxpool avgpool skip conv3",
    "zero zero zero conv3 conv1 maxpool avgpool conv3 zero skip conv1 conv3",
];
const FORWARD_GENOTYPES: &[&str] = &[
    "conv3 avgpool conv1 maxpool skip conv3",
    "conv1 zero maxpool conv3 avgpool skip",
];

#[test]
fn engine_matches_candle_static_input() -> Result<()> {
    let mut tally = Tally::default();
    let all: OpSet = "zero,skip,conv1,conv3,avgpool,maxpool".parse().unwrap();
    for ops in [OpSet::lightsnn(), all] {
        let g = |gs: &'static [&'static str]| -> Vec<&'static str> {
            if ops.len() > 3 {
                gs.to_vec()
            } else {
                vec![]
            }
        };
        equivalence(
            &tiny_cfg(CellType::Backward, &ops)?,
            &g(BACKWARD_GENOTYPES),
            false,
            &mut tally,
        )?;
        equivalence(
            &tiny_cfg(CellType::Forward, &ops)?,
            &g(FORWARD_GENOTYPES),
            false,
            &mut tally,
        )?;
    }
    check(&tally, "static input");
    Ok(())
}

#[test]
fn engine_matches_candle_on_the_spikenas_bench_preset() -> Result<()> {
    // The supernet (every op of the space on every edge: three LIF classes on nodes 0-2), a
    // pruned supernet and single-path cells, average pools before cell 2 and before fc1.
    let mut tally = Tally::default();
    equivalence(&tiny_preset()?, BENCH_GENOTYPES, false, &mut tally)?;
    check(&tally, "spikenas-bench preset");
    Ok(())
}

#[test]
fn engine_matches_candle_event_input() -> Result<()> {
    let mut tally = Tally::default();
    let all: OpSet = "zero,skip,conv1,conv3,avgpool,maxpool".parse().unwrap();
    equivalence(
        &tiny_cfg(CellType::Backward, &all)?,
        BACKWARD_GENOTYPES,
        true,
        &mut tally,
    )?;
    equivalence(
        &tiny_cfg(CellType::Forward, &OpSet::lightsnn())?,
        &[],
        true,
        &mut tally,
    )?;
    // The DVS skeleton in small: 2 polarities, MaxPool2 after the stem.
    let mut dvs = tiny_cfg(CellType::Backward, &OpSet::lightsnn())?;
    dvs.dataset = DatasetKind::Dvs128;
    dvs.shape.input = snn_nostd::shape::InputKind::Events;
    (dvs.shape.in_c, dvs.shape.in_h, dvs.shape.in_w) = (2, 32, 32);
    dvs.shape.stem_pool = true;
    dvs.shape.classes = 11;
    dvs.validate()?;
    equivalence(&dvs, &[], true, &mut tally)?;
    check(&tally, "event input");
    Ok(())
}

#[test]
fn engine_matches_candle_wide_hidden() -> Result<()> {
    // 100 hidden units: one full block of 64 columns and a narrow one; batch 6: one block of
    // 4 samples and two single ones.
    let mut tally = Tally::default();
    let mut cfg = tiny_cfg(CellType::Forward, &OpSet::lightsnn())?;
    cfg.shape.hidden = 100;
    equivalence(&cfg, &[], false, &mut tally)?;
    check(&tally, "100 hidden units");
    Ok(())
}

/// With the classifier's first layer scaled up so that the hidden LIF fires on a good part of
/// its slots (at the default initialisation it stays silent, and a feature-order bug in fc1
/// would pass unnoticed), both paths still agree spike for spike, on the supernet and on
/// single-path genotypes.
#[test]
fn engine_matches_candle_with_the_hidden_layer_firing() -> Result<()> {
    let all: OpSet = "zero,skip,conv1,conv3,avgpool,maxpool".parse().unwrap();
    hidden_layer_firing(
        &tiny_cfg(CellType::Backward, &all)?,
        BACKWARD_GENOTYPES,
        "max pool",
    )
}

/// [`engine_matches_candle_with_the_hidden_layer_firing`] with the preset's average pool
/// before fc1: its inputs are 0, 1/4, 1/2, 3/4 or 1.
#[test]
fn engine_matches_candle_with_the_hidden_layer_firing_after_an_average_pool() -> Result<()> {
    hidden_layer_firing(&tiny_preset()?, BENCH_GENOTYPES, "average pool")
}

fn hidden_layer_firing(cfg: &NetConfig, genotypes: &[&str], label: &str) -> Result<()> {
    let dev = Device::Cpu;
    let sup = Mixing::supernet(cfg.cell, &cfg.ops);
    let net = Network::new(cfg, &sup.alive(), 11, &dev)?;
    net.fc1.set(&(net.fc1.as_tensor() * 40.0)?)?;
    let engine = CpuEngine::new(&net)?;
    let x = static_batch(cfg, 6, 5)?;
    let mut tally = Tally::default();
    for (name, mix) in mixings(cfg.cell, &cfg.ops, genotypes) {
        for mode in [Mode::ScoreBatchStats, Mode::ScoreRunningStats] {
            let what = format!("fc1 x40, {name}, {mode:?}");
            compare(&net, &engine, &mix, &x, mode, &mut tally, &what)?;
        }
    }
    let rate = tally.hidden_fired as f64 / tally.hidden_slots.max(1) as f64;
    println!("hidden layer fires on {:.1}% of its slots", 100.0 * rate);
    assert!(
        (0.05..=0.95).contains(&rate),
        "the hidden layer should fire on some slots and not on others: {rate}"
    );
    check(&tally, &format!("hidden layer firing, {label}"));
    Ok(())
}

fn tiny_setup(cfg: NetConfig, path: KernelPath) -> SearchSetup {
    SearchSetup {
        net: cfg,
        batch: 6,
        repeats: 2,
        seed: 3,
        method: Method::Prune,
        score: Default::default(),
        thresholds: Default::default(),
        random_samples: 0,
        kernel_path: path,
        candidates_per_pass: 0,
        data_label: "builtin".to_string(),
        fit: None,
    }
}

#[test]
fn pruning_search_matches_candle() -> Result<()> {
    pruning_search_on_both_paths(tiny_cfg(CellType::Backward, &OpSet::lightsnn())?)
}

fn pruning_search_on_both_paths(cfg: NetConfig) -> Result<()> {
    let data = crate::data::sample::cifar10_sample(crate::data::Split::Train)?;
    let pb = crate::progress::NoProgress;
    let a = run_search(
        &tiny_setup(cfg.clone(), KernelPath::BitPacked),
        &data,
        &Device::Cpu,
        &pb,
    )?;
    let b = run_search(
        &tiny_setup(cfg, KernelPath::CpuEvent),
        &data,
        &Device::Cpu,
        &pb,
    )?;
    assert_eq!(a.genotype, b.genotype);
    assert_eq!(a.rounds.len(), b.rounds.len());
    let mut worst = 0f64;
    for (ra, rb) in a.rounds.iter().zip(&b.rounds) {
        assert_eq!(ra.pruned, rb.pruned);
        assert_eq!(ra.alive_after, rb.alive_after);
        for (sa, sb) in ra.scores.iter().zip(&rb.scores) {
            assert_eq!((&sa.edge, &sa.candidate), (&sb.edge, &sb.candidate));
            worst = worst.max(((sa.score - sb.score) / sa.score.abs().max(1e-12)).abs());
        }
    }
    println!(
        "pruning search: genotype {} on both paths; max relative score difference {worst:.2e}; \
         Candle {:.2} s, CPU engine {:.2} s",
        a.genotype, a.wall_s, b.wall_s
    );
    assert!(worst <= 1e-6, "scores differ by {worst:e}");
    assert_eq!(b.config.engine, "cpu-event");
    Ok(())
}

#[test]
fn random_search_matches_candle() -> Result<()> {
    let data = crate::data::sample::cifar10_sample(crate::data::Split::Train)?;
    let ops: OpSet = "zero,skip,conv1,conv3,avgpool,maxpool".parse().unwrap();
    let cfg = tiny_cfg(CellType::Backward, &ops)?;
    let pb = crate::progress::NoProgress;
    for method in [Method::Random, Method::RandomShared] {
        let setup = |path| SearchSetup {
            method,
            random_samples: 6,
            ..tiny_setup(cfg.clone(), path)
        };
        let a = run_search(&setup(KernelPath::BitPacked), &data, &Device::Cpu, &pb)?;
        let b = run_search(&setup(KernelPath::CpuEvent), &data, &Device::Cpu, &pb)?;
        assert_eq!(a.genotype, b.genotype, "{method:?}");
        assert_eq!(
            a.rounds[0].scores, b.rounds[0].scores,
            "{method:?}: same genotypes, same scores"
        );
        assert_eq!(a.best_score, b.best_score, "{method:?}");
    }
    Ok(())
}

#[test]
fn engine_is_deterministic_across_thread_counts() -> Result<()> {
    let all: OpSet = "zero,skip,conv1,conv3,avgpool,maxpool".parse().unwrap();
    let cfg = tiny_cfg(CellType::Backward, &all)?;
    let sup = Mixing::supernet(cfg.cell, &cfg.ops);
    let net = Network::new(&cfg, &sup.alive(), 4, &Device::Cpu)?;
    let scorer = Scorer::new(&net, KernelPath::CpuEvent)?;
    let x = static_batch(&cfg, 16, 9)?;
    let run = || -> Result<Vec<u64>> {
        let k = scorer.kernel_matrix(&sup, &x, Mode::ScoreBatchStats)?;
        let s = scorer.sahd_one(&sup, &x, Mode::ScoreBatchStats)?;
        Ok(k.iter().chain([&s]).map(|v| v.to_bits()).collect())
    };
    let first = run()?;
    assert_eq!(first, run()?, "two runs in the global pool");
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?;
        assert_eq!(first, pool.install(run)?, "{threads}-thread pool");
    }
    // A fresh engine (no cached stem) gives the same bits too.
    let fresh = Scorer::new(&net, KernelPath::CpuEvent)?;
    let k = fresh.kernel_matrix(&sup, &x, Mode::ScoreBatchStats)?;
    assert_eq!(
        k.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        first[..first.len() - 1]
    );
    Ok(())
}

#[test]
fn engine_rejects_bad_input() -> Result<()> {
    let cfg = tiny_cfg(CellType::Backward, &OpSet::lightsnn())?;
    let sup = Mixing::supernet(cfg.cell, &cfg.ops);
    let net = Network::new(&cfg, &sup.alive(), 4, &Device::Cpu)?;
    let scorer = Scorer::new(&net, KernelPath::CpuEvent)?;
    let x = static_batch(&cfg, 4, 1)?;
    assert!(scorer.sahd_one(&sup, &x, Mode::Train).is_err());
    let wrong = Tensor::zeros((4, 2, 3, 32, 32), candle_core::DType::F32, &Device::Cpu)?;
    assert!(scorer
        .sahd_one(&sup, &wrong, Mode::ScoreBatchStats)
        .is_err());
    let forward = Mixing::supernet(CellType::Forward, &cfg.ops);
    assert!(scorer
        .sahd_one(&forward, &x, Mode::ScoreBatchStats)
        .is_err());
    // A conv op the network has no weights for.
    let g: Genotype = "conv1 zero zero zero zero zero zero zero zero zero zero zero"
        .parse()
        .unwrap();
    assert!(scorer
        .sahd_one(&Mixing::single_path(&g), &x, Mode::ScoreBatchStats)
        .is_err());
    Ok(())
}

/// The round-1 candidates of a pruning search on `cfg` (one op removed from one edge each).
fn round_one_candidates(cfg: &NetConfig) -> Vec<Mixing> {
    let alive = vec![cfg.ops.ops().to_vec(); cfg.cell.num_edges()];
    round_candidates(&alive)
        .into_iter()
        .map(|(_, _, m)| m)
        .collect()
}

#[test]
fn stacked_candidates_match_single_passes() -> Result<()> {
    let dev = Device::Cpu;
    let mut worst = 0f64;
    let mut scored = 0;
    for (cell, ops, genotypes) in [
        (
            CellType::Backward,
            OpSet::lightsnn(),
            vec!["conv3 skip zero conv3 conv3 skip zero conv3 skip zero zero conv3"],
        ),
        (
            CellType::Forward,
            OpSet::snasnet(),
            vec!["conv1 avgpool skip conv3 zero conv3"],
        ),
    ] {
        let cfg = tiny_cfg(cell, &ops)?;
        let sup = Mixing::supernet(cell, &ops);
        let net = Network::new(&cfg, &sup.alive(), 11, &dev)?;
        // Every third round-1 candidate (uneven weights on every edge in turn) and single paths.
        let mut cands: Vec<Mixing> = round_one_candidates(&cfg).into_iter().step_by(3).collect();
        for g in &genotypes {
            cands.push(Mixing::single_path(&g.parse()?));
        }
        for event in [false, true] {
            let x = if event {
                event_batch(&cfg, 5, 9)?
            } else {
                static_batch(&cfg, 5, 9)?
            };
            let batches = [x];
            for (mode, path) in [
                (Mode::ScoreBatchStats, KernelPath::BitPacked),
                (Mode::ScoreRunningStats, KernelPath::BitPacked),
                (Mode::ScoreBatchStats, KernelPath::DeviceGram),
            ] {
                {
                    let single = Scorer::new(&net, path)?;
                    let want: Vec<f64> = cands
                        .iter()
                        .map(|m| single.sahd_score(m, &batches, mode))
                        .collect::<Result<_>>()?;
                    // 7 per pass: uneven chunks, and a last chunk of another size.
                    let stacked = Scorer::new(&net, path)?.with_stack(7);
                    let got = stacked.score_candidates(&cands, &batches, mode, |_| {})?;
                    assert_eq!(got.len(), want.len());
                    for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                        assert!(a.is_finite() && b.is_finite(), "candidate {k}: {a} {b}");
                        worst = worst.max(((a - b) / b.abs().max(1e-12)).abs());
                        scored += 1;
                    }
                }
            }
        }
    }
    println!(
        "stacked Candle passes: {scored} candidate scores, max relative difference to single \
         passes {worst:.2e}"
    );
    assert!(worst <= 1e-12, "stacked scores differ by {worst:e}");
    Ok(())
}

/// Keeps each recorded code set of the cells' LIF layers as per-sample firing rates.
struct RateSink {
    sets: Vec<(LayerId, Vec<f64>)>,
}

impl SpikeSink for RateSink {
    fn record(&mut self, l: LayerId, _: usize, spikes: &Tensor, _: u32) -> Result<()> {
        if matches!(l, LayerId::Hidden) {
            return Ok(());
        }
        let rows: Vec<Vec<f32>> = spikes.flatten_from(1)?.to_vec2()?;
        let rates = rows
            .iter()
            .map(|r| r.iter().map(|&v| f64::from(v)).sum::<f64>() / r.len() as f64)
            .collect();
        self.sets.push((l, rates));
        Ok(())
    }
}

/// `--score spread`: the rate spread by its definition (search/spread.rs), from the Candle
/// pass's spikes, equals the scorer's on every path, on the SpikeNAS-Bench network (three LIF
/// classes on one node).
#[test]
fn rate_spread_matches_its_definition_on_every_path() -> Result<()> {
    use crate::search::setup::ScoreKind;
    let cfg = tiny_preset()?;
    let g: Genotype = "conv3@0.5,conv3,conv3@1.5,conv3@0.5,skip,conv3@1.5".parse()?;
    let mix = Mixing::single_path(&g);
    let net = Network::new(&cfg, &mix.alive(), 5, &Device::Cpu)?;
    let x = static_batch(&cfg, 8, 3)?;
    let mut sink = RateSink { sets: Vec::new() };
    net.forward(
        &x,
        Forward {
            mixing: &mix,
            mode: Mode::ScoreBatchStats,
            sink: &mut sink,
            dropout_rng: None,
        },
    )?;
    let mut layers: Vec<(LayerId, f64, f64)> = Vec::new();
    for (l, rates) in &sink.sets {
        let n = rates.len() as f64;
        let mean = rates.iter().sum::<f64>() / n;
        let sd = (rates.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / n).sqrt();
        match layers.iter_mut().find(|e| e.0 == *l) {
            Some(e) => {
                e.1 += sd;
                e.2 += 1.0;
            }
            None => layers.push((*l, sd, 1.0)),
        }
    }
    assert!(
        layers.len() >= 5,
        "three classes on node 0, more on the others"
    );
    let want = -layers.iter().map(|e| e.1 / e.2).sum::<f64>() / layers.len() as f64;
    assert!(want < 0.0, "the cells fire unevenly over the batch");
    for path in [
        KernelPath::BitPacked,
        KernelPath::DeviceGram,
        KernelPath::CpuEvent,
    ] {
        let scorer = Scorer::new(&net, path)?.with_score(ScoreKind::Spread);
        let got = scorer.sahd_one(&mix, &x, Mode::ScoreBatchStats)?;
        assert!((got - want).abs() < 1e-12, "{path:?}: {got} vs {want}");
    }
    Ok(())
}

/// `--thresholds spread`: the first stage prunes the op kinds (each threshold family as its
/// `conv3`), the second only the thresholds of the convs kept; the same result on the Candle
/// path and the CPU engine, and again on a second run.
#[test]
fn threshold_stage_prunes_only_thresholds() -> Result<()> {
    use crate::search::setup::{ScoreKind, Thresholds};
    let data = crate::data::sample::cifar10_sample(crate::data::Split::Train)?;
    let cfg = tiny_preset()?;
    let pb = crate::progress::NoProgress;
    let setup = |path| SearchSetup {
        thresholds: Thresholds::Spread,
        ..tiny_setup(cfg.clone(), path)
    };
    let a = run_search(&setup(KernelPath::BitPacked), &data, &Device::Cpu, &pb)?;
    let b = run_search(&setup(KernelPath::CpuEvent), &data, &Device::Cpu, &pb)?;
    assert_eq!(a.genotype, b.genotype);
    let again = run_search(&setup(KernelPath::CpuEvent), &data, &Device::Cpu, &pb)?;
    assert_eq!(b.genotype, again.genotype);
    assert_eq!(b.rounds.len(), again.rounds.len());
    assert_eq!(b.config.thresholds, Thresholds::Spread);
    let kinds = ["zero", "skip", "conv3"];
    let thresholds = ["conv3@0.5", "conv3", "conv3@1.5"];
    // stage 1: three kinds per edge, two rounds (6 x 3 then 6 x 2 candidates)
    assert_eq!(b.rounds[0].scores.len(), 18);
    assert_eq!(b.rounds[1].scores.len(), 12);
    for r in &b.rounds[..2] {
        assert!(r
            .scores
            .iter()
            .all(|s| kinds.contains(&s.candidate.as_str())));
    }
    let after_kinds = &b.rounds[1].alive_after;
    let convs = after_kinds.iter().filter(|a| a[0] == "conv3").count();
    // stage 2: only the threshold families of the edges that kept `conv3`
    for r in &b.rounds[2..] {
        for s in &r.scores {
            assert!(
                thresholds.contains(&s.candidate.as_str()),
                "{}",
                s.candidate
            );
            let ei = b.edges.iter().position(|e| *e == s.edge).unwrap();
            assert_eq!(after_kinds[ei], ["conv3"], "edge {}", s.edge);
        }
    }
    if convs > 0 {
        assert_eq!(b.rounds.len(), 4);
        assert_eq!(b.rounds[2].scores.len(), 3 * convs);
    }
    let g: Vec<&str> = b.genotype.split(',').collect();
    for (ei, op) in g.iter().enumerate() {
        if after_kinds[ei][0] == "conv3" {
            assert!(thresholds.contains(op));
        } else {
            assert_eq!(*op, after_kinds[ei][0]);
        }
    }
    // the rate spread alone chooses no op kinds; joint pruning of a thresholds-only space is
    // fine
    let bad = SearchSetup {
        score: ScoreKind::Spread,
        ..tiny_setup(cfg.clone(), KernelPath::CpuEvent)
    };
    let e = run_search(&bad, &data, &Device::Cpu, &pb).unwrap_err();
    assert!(e.to_string().contains("op kinds"), "{e}");
    let mut only = cfg.clone();
    only.ops = "conv3@0.5,conv3,conv3@1.5".parse().unwrap();
    let ok = SearchSetup {
        score: ScoreKind::Spread,
        ..tiny_setup(only, KernelPath::CpuEvent)
    };
    run_search(&ok, &data, &Device::Cpu, &pb)?;
    // --thresholds spread needs thresholded convs and the pruning search
    let mut plain = tiny_cfg(CellType::Forward, &OpSet::lightsnn())?;
    plain.cell = CellType::Forward;
    let e = run_search(
        &SearchSetup {
            thresholds: Thresholds::Spread,
            ..tiny_setup(plain, KernelPath::CpuEvent)
        },
        &data,
        &Device::Cpu,
        &pb,
    )
    .unwrap_err();
    assert!(e.to_string().contains("no thresholded convs"), "{e}");
    let e = run_search(
        &SearchSetup {
            method: Method::RandomShared,
            random_samples: 4,
            ..setup(KernelPath::CpuEvent)
        },
        &data,
        &Device::Cpu,
        &pb,
    )
    .unwrap_err();
    assert!(e.to_string().contains("--method prune"), "{e}");
    Ok(())
}
