//! The engine's spike statistics per LIF layer.

use crate::skeleton::LayerId;

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
