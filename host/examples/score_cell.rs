//! Scores one genotype through the library, untrained, on the built-in CIFAR-10 sample: what
//! `lightsnn score --genotype G` does with its defaults (C1/C2 8/16, seed 0, batch 32, two
//! repeats, the CPU engine), so both print the same SAHD score.
//!
//! Run: `cargo run --release -p lightsnn --example score_cell [-- "GENOTYPE"]`

use anyhow::{Context, Result};
use candle_core::Device;
use lightsnn::config::{DatasetKind, NetConfig, Overrides};
use lightsnn::data::{sample::cifar10_sample, Split};
use lightsnn::model::{Mixing, Mode, Network};
use lightsnn::search::batches::{draw_batches, round_batch_seed};
use lightsnn::search::{KernelPath, Scorer};
use snn_nostd::genotype::Genotype;

fn main() -> Result<()> {
    let text = std::env::args().nth(1).unwrap_or_else(|| {
        "conv3 skip conv3 zero conv3 skip zero zero conv3 skip zero zero".to_string()
    });
    let genotype: Genotype = text.parse().with_context(|| format!("genotype {text:?}"))?;
    let (seed, batch, repeats) = (0, 32, 2);

    // The network: CIFAR-10's, at 1/32 of the paper's widths, with the genotype's cell.
    let shape = Overrides {
        width: Some(1.0 / 32.0),
        ..Overrides::default()
    };
    let mut cfg = NetConfig::for_dataset(DatasetKind::Cifar10, &shape)?;
    cfg.cell = genotype.cell();
    genotype.check_op_set(&cfg.ops)?;

    // One op alive per edge, weights drawn from the seed.
    let device = Device::Cpu;
    let alive: Vec<Vec<_>> = genotype.ops().iter().map(|&op| vec![op]).collect();
    let net = Network::new(&cfg, &alive, seed, &device)?;

    // The search batches: `repeats` batches of `batch` training images.
    let data = cifar10_sample(Split::Train)?;
    let batches = draw_batches(&data, batch, repeats, round_batch_seed(seed, 1), &device)?;

    // ln |det K| of the SAHD kernel, averaged over the batches.
    let scorer = Scorer::new(&net, KernelPath::CpuEvent)?;
    let mode = Mode::scoring(cfg.bn_mode);
    let score = scorer.sahd_score(&Mixing::single_path(&genotype), &batches, mode)?;
    println!("genotype: {genotype}");
    println!("SAHD ln|det K|: {score:.6}");
    Ok(())
}
