//! What the CPU training path knows of the network it trains ([`FastNet`]): the configuration,
//! the cell plans and the LIF constants, or why the path does not cover it.

use super::cell::CellPlan;
use super::kernels::LifK;
use crate::config::NetConfig;
use snn_nostd::genotype::{Genotype, LifClass, LIF_CLASSES};

/// The static description of a network the CPU path trains.
#[derive(Clone, Debug)]
pub struct FastNet {
    pub(super) cfg: NetConfig,
    /// Input frames per sample.
    pub(super) frames: usize,
    pub(super) cells: [CellPlan; 2],
    /// LIF constants per threshold class ([`LifClass::index`]).
    pub(super) lifs: [LifK; LIF_CLASSES],
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
        if frames != 1 && frames != cfg.shape.timesteps {
            return Err(format!(
                "{frames} input frames per sample with T = {}",
                cfg.shape.timesteps
            ));
        }
        Ok(FastNet {
            cfg: cfg.clone(),
            frames,
            cells: [
                CellPlan::new(g, "cell1", cfg.shape.c1, cfg.shape.cell1_hw())?,
                CellPlan::new(g, "cell2", cfg.shape.c2, cfg.shape.cell2_hw())?,
            ],
            lifs: LifClass::ALL.map(|c| LifK::new(&cfg.lif_for(c))),
        })
    }

    /// The LIF constants of the layers outside the cells (the network's own threshold).
    pub(super) fn lif(&self) -> &LifK {
        &self.lifs[LifClass::Th10.index()]
    }
}
