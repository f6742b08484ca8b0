//! Network-level tests on random inputs.

use super::*;
use crate::config::{DatasetKind, NetConfig, Overrides, Preset};
use crate::model::params::ParamCount;
use anyhow::Result;
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use snn_nostd::genotype::Genotype;
use snn_nostd::genotype::Op;

fn tiny_cfg() -> NetConfig {
    let o = Overrides {
        width: Some(4.0 / 256.0),
        timesteps: Some(4),
        hidden: Some(32),
        votes: Some(2),
    };
    NetConfig::for_dataset(DatasetKind::Cifar10, &o).unwrap()
}

fn random_input(n: usize, seed: u64) -> Tensor {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let data: Vec<f32> = (0..n * 3 * 32 * 32)
        .map(|_| rng.gen_range(-2.0..2.0))
        .collect();
    Tensor::from_vec(data, (n, 1, 3, 32, 32), &Device::Cpu).unwrap()
}

fn run(net: &Network, g: &Genotype, x: &Tensor) -> Result<Vec<f32>> {
    let mix = Mixing::single_path(g);
    let out = net.forward(
        x,
        Forward {
            mixing: &mix,
            mode: Mode::ScoreBatchStats,
            sink: &mut NoSink,
            dropout_rng: None,
        },
    )?;
    Ok(out.logits.flatten_all()?.to_vec1()?)
}

#[test]
fn backward_edge_changes_output() -> Result<()> {
    // Build a network holding conv3 on every edge, then compare two genotypes that differ only
    // on backward edge 0<-3 (zero vs conv3) and on 1<-2 (zero vs skip).
    let cfg = tiny_cfg();
    let alive = Mixing::supernet(cfg.cell, &cfg.ops).alive();
    let net = Network::new(&cfg, &alive, 7, &Device::Cpu)?;
    // The reference init (N(0, 0.01)) keeps the hidden LIF silent on an untrained network, so
    // every logit equals the bias. Scale the classifier up so that the output reflects the cell.
    net.fc1.set(&(net.fc1.as_tensor() * 30.0)?)?;
    net.fc2.set(&(net.fc2.as_tensor() * 30.0)?)?;
    let x = random_input(4, 1);
    let base: Genotype =
        "zero,zero,zero,conv3,zero,zero,skip,conv3,zero,conv3,skip,conv3".parse()?;
    let with_back: Genotype =
        "zero,zero,conv3,conv3,zero,zero,skip,conv3,zero,conv3,skip,conv3".parse()?;
    let with_skip_back: Genotype =
        "zero,zero,zero,conv3,skip,zero,skip,conv3,zero,conv3,skip,conv3".parse()?;
    let a = run(&net, &base, &x)?;
    let b = run(&net, &with_back, &x)?;
    let c = run(&net, &with_skip_back, &x)?;
    assert_ne!(a, b, "backward conv edge 0<-3 must change the output");
    assert_ne!(a, c, "backward skip edge 1<-2 must change the output");
    assert!(
        a.iter().any(|&v| v != a[0]),
        "the logits must not be constant"
    );
    // and the same genotype twice gives the same bits
    assert_eq!(a, run(&net, &base, &x)?);
    Ok(())
}

#[test]
fn forward_cell_and_all_ops_run() -> Result<()> {
    let mut cfg = tiny_cfg();
    cfg.cell = snn_nostd::genotype::CellType::Forward;
    cfg.ops = "zero,skip,conv1,conv3,avgpool,maxpool".parse()?;
    let g: Genotype = "conv1,avgpool,maxpool,conv3,skip,zero".parse()?;
    let alive: Vec<Vec<_>> = g.ops().iter().map(|&o| vec![o]).collect();
    let net = Network::new(&cfg, &alive, 3, &Device::Cpu)?;
    let out = run(&net, &g, &random_input(2, 5))?;
    assert_eq!(out.len(), 2 * 10);
    assert!(out.iter().all(|v| v.is_finite()));
    Ok(())
}

#[test]
fn wrong_input_shape_is_an_error() -> Result<()> {
    let cfg = tiny_cfg();
    let g: Genotype = "zero,zero,zero,conv3,zero,zero,skip,conv3,zero,conv3,skip,conv3".parse()?;
    let alive: Vec<Vec<_>> = g.ops().iter().map(|&o| vec![o]).collect();
    let net = Network::new(&cfg, &alive, 3, &Device::Cpu)?;
    let x = Tensor::zeros((2, 1, 2, 34, 34), candle_core::DType::F32, &Device::Cpu)?;
    let err = run(&net, &g, &x).unwrap_err().to_string();
    assert!(err.contains("2x34x34"), "{err}");
    Ok(())
}

#[test]
fn param_count_matches_the_allocated_tensors() -> Result<()> {
    use snn_nostd::genotype::{CellType, OpSet};
    for (ops, cell, dataset) in [
        (OpSet::lightsnn(), CellType::Backward, DatasetKind::Cifar10),
        (
            "snasnet".parse::<OpSet>()?,
            CellType::Forward,
            DatasetKind::Nmnist,
        ),
        (
            "conv1,conv3".parse::<OpSet>()?,
            CellType::Backward,
            DatasetKind::Dvs128,
        ),
    ] {
        let mut cfg = NetConfig::for_dataset(
            dataset,
            &Overrides {
                width: Some(1.0 / 32.0),
                hidden: Some(24),
                ..Default::default()
            },
        )?;
        cfg.cell = cell;
        let alive = Mixing::supernet(cell, &ops).alive();
        check_param_count(&cfg, &alive, &format!("{ops} {cell}"))?;
    }
    // The SpikeNAS-Bench preset, small: its supernet and single paths.
    let o = Overrides {
        width: Some(1.0 / 16.0),
        hidden: Some(24),
        ..Default::default()
    };
    let cfg = NetConfig::for_preset(Preset::SpikenasBench, &o)?;
    check_param_count(
        &cfg,
        &Mixing::supernet(cfg.cell, &cfg.ops).alive(),
        "preset supernet",
    )?;
    for g in BENCH_ROWS.iter().map(|r| r.1) {
        let g: Genotype = g.parse()?;
        let alive: Vec<Vec<_>> = g.ops().iter().map(|&o| vec![o]).collect();
        check_param_count(&cfg, &alive, &g.to_string())?;
    }
    Ok(())
}

/// [`ParamCount::of`] against the tensors [`Network::new`] allocates (all, and trainable).
fn check_param_count(cfg: &NetConfig, alive: &[Vec<Op>], what: &str) -> Result<()> {
    let net = Network::new(cfg, alive, 0, &Device::Cpu)?;
    let allocated: usize = net
        .params
        .all_tensors()
        .values()
        .map(|t| t.elem_count())
        .sum();
    let count = ParamCount::of(cfg, alive);
    assert_eq!(Network::param_count(cfg, alive), allocated as u64, "{what}");
    assert_eq!(count.total(), allocated as u64, "{what}");
    assert_eq!(
        count.trainable,
        net.params.num_trainable() as u64,
        "{what}: trainable"
    );
    Ok(())
}

/// Rows of SpikeNAS-Bench's CIFAR-10 table (`cifar10.csv` of the benchmark's data, columns
/// `id`, `ops`, `params`; sha256 3578287c...9c6b): the trainable parameters of the full-width
/// network around each cell.
const BENCH_ROWS: [(u32, &str, u64); 7] = [
    (0, "zero zero zero zero zero zero", 17_179_620),
    (2, "conv3_th0.5 zero zero zero zero zero", 17_917_668),
    (
        1234,
        "conv3_th1.5 skip conv3_th1.5 conv3_th1.5 skip zero",
        19_393_764,
    ),
    (
        7312,
        "conv3_th0.5 conv3_th0.5 conv3_th1.0 conv3_th0.5 skip conv3_th0.5",
        20_869_860,
    ),
    (10001, "skip zero zero zero skip conv3_th1.0", 17_917_668),
    (
        12617,
        "conv3_th0.5 conv3_th1.0 zero conv3_th1.5 zero conv3_th1.5",
        20_131_812,
    ),
    (
        15624,
        "conv3_th1.5 conv3_th1.5 conv3_th1.5 conv3_th1.5 conv3_th1.5 conv3_th1.5",
        21_607_908,
    ),
];

#[test]
fn preset_param_count_is_the_benchmark_table() -> Result<()> {
    let cfg = NetConfig::for_preset(Preset::SpikenasBench, &Overrides::default())?;
    assert_eq!(
        (
            cfg.shape.c1,
            cfg.shape.c2,
            cfg.shape.hidden,
            cfg.shape.votes
        ),
        (128, 256, 1024, 10)
    );
    for (id, ops, params) in BENCH_ROWS {
        let g: Genotype = ops.parse()?;
        g.check_op_set(&cfg.ops)?;
        assert_eq!(
            ParamCount::of_genotype(&cfg, &g).trainable,
            params,
            "id {id}: {g}"
        );
    }
    // +147,712 per conv op in cell 1 (128 channels) and +590,336 in cell 2 (256).
    let conv = |c: u64| 9 * c * c + 2 * c;
    assert_eq!((conv(128), conv(256)), (147_712, 590_336));
    Ok(())
}
