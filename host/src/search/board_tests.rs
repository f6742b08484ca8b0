//! `--board` in the search: every cell a search returns fits the board when exported, and cells
//! that do not fit are excluded (the best-scoring fitting one is returned).

use super::run::run_search;
use super::setup::{Method, SearchSetup};
use super::KernelPath;
use crate::config::{DatasetKind, NetConfig, Overrides};
use crate::export::fit::{heaviest_genotype, planned_footprint, Cells, FitFilter};
use crate::export::{check_fit, footprint, from_network, quantize, Bits, Board, Ranges};
use crate::model::{Mixing, Network};
use anyhow::Result;
use candle_core::Device;
use snn_nostd::genotype::{CellType, Genotype, OpSet};
use std::sync::Arc;

/// C1/C2 4/8 (the engine's `i16` lanes), T 2, H 24, V 2, the LightSNN op set.
fn net() -> Result<NetConfig> {
    let o = Overrides {
        width: Some(4.0 / 256.0),
        timesteps: Some(2),
        hidden: Some(24),
        votes: Some(2),
    };
    let mut cfg = NetConfig::for_dataset(DatasetKind::Cifar10, &o)?;
    cfg.cell = CellType::Backward;
    cfg.ops = OpSet::lightsnn();
    Ok(cfg)
}

/// A part with exactly the RAM the all-conv3 cell needs at `cfg`'s sizes, and ample flash:
/// cells whose skips make the engine keep node tensors or back states do not fit.
fn tight_board(cfg: &NetConfig) -> Result<Board> {
    let all_conv = heaviest_genotype(cfg.cell, &cfg.ops);
    let fp = planned_footprint(cfg, Cells::One(&all_conv), Bits::B8)?;
    Ok(Board {
        name: "tight",
        core: "Cortex-M4F",
        flash_bytes: 4 << 20,
        ram_bytes: fp.ram_needed(),
    })
}

/// The blob of an untrained network of `cfg` with cell `g`, as `lightsnn export` writes it
/// (BatchNorm folded, 8-bit weights; fixed calibration ranges stand in for the data's).
fn exported(cfg: &NetConfig, g: &Genotype) -> Result<Vec<u8>> {
    let mixing = Mixing::single_path(g);
    let net = Network::new(cfg, &mixing.alive(), 3, &Device::Cpu)?;
    let float = from_network(&net, g)?;
    let ranges = Ranges {
        input: 2.5,
        cell: [6.0, 9.0],
        post: [3.0, 3.0],
        hidden: 4.0,
        out: 12.0,
    };
    Ok(quantize(&float, Bits::B8, &ranges)?)
}

#[test]
fn every_cell_a_board_search_returns_fits_when_exported() -> Result<()> {
    let cfg = net()?;
    let board = tight_board(&cfg)?;
    let fit = Arc::new(FitFilter::new(&board, &cfg, Bits::B8));
    let data = crate::data::sample::cifar10_sample(crate::data::Split::Train)?;
    let pb = crate::progress::NoProgress;
    let setup = |method: Method, seed: u64| SearchSetup {
        net: cfg.clone(),
        batch: 8,
        repeats: 2,
        seed,
        method,
        score: Default::default(),
        thresholds: Default::default(),
        random_samples: 12,
        kernel_path: KernelPath::CpuEvent,
        candidates_per_pass: 0,
        data_label: "builtin".into(),
        fit: Some(fit.clone()),
    };
    let mut excluded = 0;
    for seed in [0, 1] {
        for report in [
            run_search(&setup(Method::Prune, seed), &data, &Device::Cpu, &pb)?,
            run_search(&setup(Method::Random, seed), &data, &Device::Cpu, &pb)?,
            run_search(&setup(Method::RandomShared, seed), &data, &Device::Cpu, &pb)?,
        ] {
            let g: Genotype = report.genotype.parse()?;
            let fp = footprint(&exported(&cfg, &g)?)?;
            assert!(
                check_fit(&fp, &board).is_ok(),
                "{} (seed {seed}) returned {g}: {} B of RAM, the board has {}",
                report.config.method,
                fp.ram_needed(),
                board.ram_bytes
            );
            assert!(fit.fits(&g)?);
            excluded += report.rounds.iter().map(|r| r.board.len()).sum::<usize>();
            // Random searches: the kept sample is the best-scoring one that fits.
            if report.config.method != "prune" {
                let round = &report.rounds[0];
                let best_fitting = round
                    .scores
                    .iter()
                    .filter(|c| fit.fits(&c.candidate.parse().unwrap()).unwrap())
                    .map(|c| c.score)
                    .fold(f64::NEG_INFINITY, f64::max);
                assert_eq!(report.best_score, Some(best_fitting));
            }
        }
    }
    // The board did exclude cells (so the test shows the filter at work).
    assert!(excluded > 0, "no search met a cell that does not fit");
    Ok(())
}

#[test]
fn a_board_that_no_cell_fits_is_refused() -> Result<()> {
    let cfg = net()?;
    let mut board = tight_board(&cfg)?;
    board.ram_bytes = 1024;
    let fit = Arc::new(FitFilter::new(&board, &cfg, Bits::B8));
    let data = crate::data::sample::cifar10_sample(crate::data::Split::Train)?;
    let setup = SearchSetup {
        net: cfg,
        batch: 8,
        repeats: 1,
        seed: 0,
        method: Method::Prune,
        score: Default::default(),
        thresholds: Default::default(),
        random_samples: 3,
        kernel_path: KernelPath::CpuEvent,
        candidates_per_pass: 0,
        data_label: "builtin".into(),
        fit: Some(fit),
    };
    let pb = crate::progress::NoProgress;
    for method in [Method::Prune, Method::RandomShared] {
        let s = SearchSetup {
            method,
            score: Default::default(),
            thresholds: Default::default(),
            ..setup.clone()
        };
        let e = run_search(&s, &data, &Device::Cpu, &pb)
            .unwrap_err()
            .to_string();
        assert!(e.contains("board tight") && e.contains("fits"), "{e}");
    }
    Ok(())
}
