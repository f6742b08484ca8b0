//! What the CPU training path knows of the network it trains ([`FastNet`]): the configuration,
//! the cell plans and the LIF constants, or why the path does not cover it.

use super::cell::CellPlan;
use super::kernels::LifK;
use crate::config::NetConfig;
use snn_nostd::genotype::{Genotype, Op};

/// The static description of a network the CPU path trains.
#[derive(Clone, Debug)]
pub struct FastNet {
    pub(super) cfg: NetConfig,
    /// Input frames per sample.
    pub(super) frames: usize,
    pub(super) cells: [CellPlan; 2],
    pub(super) lif: LifK,
}

impl FastNet {
    /// The CPU path for `cfg` and `g` with `frames` input frames per sample (1: a static
    /// image repeated over the timesteps; T: one event frame per timestep), or why it does
    /// not cover them.
    pub fn new(
        cfg: &NetConfig,
        g: &Genotype,
        frames: usize,
    ) -> std::result::Result<FastNet, String> {
        if frames != 1 && frames != cfg.timesteps {
            return Err(format!(
                "{frames} input frames per sample with T = {}",
                cfg.timesteps
            ));
        }
        if !cfg.downsample.is_max() {
            return Err("average-pool downsampling (the SpikeNAS-Bench network)".into());
        }
        if g.ops()
            .iter()
            .any(|o| matches!(o, Op::Conv3Th05 | Op::Conv3Th15))
        {
            return Err("a thresholded conv op (conv3@0.5, conv3@1.5)".into());
        }
        let (h1, w1) = cfg.cell1_hw();
        let (h2, w2) = cfg.cell2_hw();
        Ok(FastNet {
            cfg: cfg.clone(),
            frames,
            cells: [
                CellPlan::new(g, "cell1", cfg.c1, (h1, w1)),
                CellPlan::new(g, "cell2", cfg.c2, (h2, w2)),
            ],
            lif: LifK::new(&cfg.lif),
        })
    }
}
