//! Network-level tests on random inputs.

use super::*;
use crate::config::{DatasetKind, NetConfig, Overrides};
use anyhow::Result;
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use snn_nostd::genotype::Genotype;

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
        let net = Network::new(&cfg, &alive, 0, &Device::Cpu)?;
        let allocated: usize = net
            .params
            .all_tensors()
            .values()
            .map(|t| t.elem_count())
            .sum();
        assert_eq!(
            Network::param_count(&cfg, &alive),
            allocated as u64,
            "{ops} {cell}"
        );
    }
    Ok(())
}
