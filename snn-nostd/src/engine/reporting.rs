//! How a timestep reports a layer's spikes: to the layer's counters ([`LayerStats`]) and to the
//! caller's [`SpikeObserver`].

use super::stats::LayerStats;
use crate::bits::words_for;
use crate::observer::{SpikeCodes, SpikeObserver};
use crate::skeleton::LayerId;

/// Counters and the observer, threaded through a timestep.
pub(super) struct Ctx<'o, O: SpikeObserver> {
    pub(super) obs: &'o mut O,
    pub(super) t: usize,
    pub(super) stats: &'o mut [LayerStats],
}

impl<O: SpikeObserver> Ctx<'_, O> {
    /// Layer `layer` (`neurons` neurons, standing for `multiplicity` reference LIFs) fired
    /// `spikes` spikes, bit-packed in `code`.
    pub(super) fn report(
        &mut self,
        layer: LayerId,
        code: &[u64],
        neurons: usize,
        spikes: u64,
        multiplicity: u32,
    ) {
        if let Some(s) = self.stats.iter_mut().find(|s| s.layer == layer) {
            s.spikes += spikes;
            s.steps += 1;
        }
        let wpc = words_for(neurons);
        let codes = SpikeCodes {
            words: &code[..wpc],
            words_per_code: wpc,
            n_bits: neurons,
            multiplicity,
        };
        self.obs.on_spikes(self.t, layer, &codes);
    }
}
