//! What the engine reports: the LIF layers, their spike statistics and the spike observer.

use core::fmt;

/// A LIF layer of the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LayerId {
    /// The LIF of cell `cell` (1 or 2) on node input `node`: `x_node + B_node` for node 0..2,
    /// `x3` for node 3 (shared by every conv edge leaving that node).
    Cell {
        /// 1 or 2.
        cell: u8,
        /// 0..=3.
        node: u8,
    },
    /// The LIF after cell `cell` (1 or 2) and its BatchNorm.
    Post {
        /// 1 or 2.
        cell: u8,
    },
    /// The LIF after fc1.
    Hidden,
}

impl fmt::Display for LayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerId::Cell { cell, node } => write!(f, "cell{cell}.lif{node}"),
            LayerId::Post { cell } => write!(f, "post{cell}.lif"),
            LayerId::Hidden => f.write_str("hidden.lif"),
        }
    }
}

/// Maximum number of LIF layers: 4 per cell, 2 post-cell, 1 hidden.
pub const MAX_LAYERS: usize = 11;

/// Spike counts of one LIF layer since the last [`Engine::reset_stats`](super::Engine::reset_stats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LayerStats {
    /// Which layer.
    pub layer: LayerId,
    /// Neurons in the layer.
    pub neurons: u32,
    /// Spikes counted.
    pub spikes: u64,
    /// Timesteps evaluated.
    pub steps: u64,
}

impl LayerStats {
    /// Spike activity rate: `spikes / (neurons * steps)` (0 before any step).
    pub fn sar(&self) -> f32 {
        let d = self.neurons as f64 * self.steps as f64;
        if d == 0.0 {
            0.0
        } else {
            (self.spikes as f64 / d) as f32
        }
    }
}

/// Receives every LIF layer's spike code as it is produced (e.g. for the SAHD kernel).
pub trait SpikeObserver {
    /// Layer `layer` fired `code` (bit-packed, HWC, `neurons` valid bits) at timestep `t`.
    fn on_spikes(&mut self, t: usize, layer: LayerId, code: &[u64], neurons: usize);
}

/// An observer that ignores everything.
impl SpikeObserver for () {
    fn on_spikes(&mut self, _: usize, _: LayerId, _: &[u64], _: usize) {}
}
