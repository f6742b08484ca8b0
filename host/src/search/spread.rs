//! The rate spread of a network's cells: how much each cell LIF layer's firing rate changes
//! from one input to the next, at initialisation.
//!
//! For every (cell LIF layer, timestep) code set of a batch, each sample's firing rate is the
//! share of the layer's neurons that fired; the spread of the code set is the standard deviation
//! of those rates over the batch (population form). A layer's spread is the mean over its
//! timesteps, and the network's is the mean over its cell LIF layers (the op inputs and the
//! cell outputs, each counted once; the classifier's hidden layer is not a cell layer).
//!
//! A low spread means every input drives the cells at about the same activity. On
//! SpikeNAS-Bench, among cells that differ only in their conv thresholds, a lower spread goes
//! with a higher trained accuracy (docs/spikenas-bench.md, "Thresholds by rate spread"). It is
//! not a score of op kinds: a cell that never fires has no spread at all.
//!
//! ```
//! use lightsnn::search::spread::RateSpread;
//! use snn_nostd::observer::{SpikeCodes, SpikeObserver};
//! use snn_nostd::skeleton::LayerId;
//!
//! let mut s = RateSpread::default();
//! // two samples of a 64-neuron layer: one fires 16 neurons (rate 1/4), the other 48 (3/4)
//! let words = [0xFFFFu64, 0xFFFF_FFFF_FFFF];
//! let codes = SpikeCodes { words: &words, words_per_code: 1, n_bits: 64, multiplicity: 1 };
//! s.on_spikes(0, LayerId::CellOut { cell: 0 }, &codes);
//! // the hidden layer is not a cell layer
//! s.on_spikes(0, LayerId::Hidden, &codes);
//! assert_eq!(s.value(), Some(0.25)); // rates 0.25 and 0.75: standard deviation 0.25
//! ```

use snn_nostd::observer::{SpikeCodes, SpikeObserver};
use snn_nostd::skeleton::LayerId;

/// Accumulates the rate spread of the code sets it observes ([`SpikeObserver`]).
#[derive(Clone, Debug, Default)]
pub struct RateSpread {
    /// Per cell LIF layer, in first-seen order: (layer, sum of its code sets' spreads, count).
    layers: Vec<(LayerId, f64, u32)>,
    /// Scratch: the rates of one code set.
    rates: Vec<f64>,
}

impl RateSpread {
    /// The mean over the observed cell LIF layers of each layer's mean spread; `None` if no
    /// cell layer was observed.
    pub fn value(&self) -> Option<f64> {
        if self.layers.is_empty() {
            return None;
        }
        let total: f64 = self
            .layers
            .iter()
            .map(|&(_, sum, n)| sum / f64::from(n))
            .sum();
        Some(total / self.layers.len() as f64)
    }
}

impl RateSpread {
    /// The score of what was observed: the negated [`value`](Self::value) (higher is
    /// better), `-inf` if no cell layer was observed.
    pub fn score(&self) -> f64 {
        self.value().map_or(f64::NEG_INFINITY, |v| -v)
    }
}

impl SpikeObserver for RateSpread {
    fn on_spikes(&mut self, _t: usize, layer: LayerId, codes: &SpikeCodes<'_>) {
        if !matches!(layer, LayerId::CellNode { .. } | LayerId::CellOut { .. }) {
            return;
        }
        let rows = codes.rows();
        if rows == 0 || codes.n_bits == 0 {
            return;
        }
        self.rates.clear();
        for i in 0..rows {
            let row = codes.row(i).unwrap_or(&[]);
            let fired: u32 = row.iter().map(|w| w.count_ones()).sum();
            self.rates.push(f64::from(fired) / codes.n_bits as f64);
        }
        let n = rows as f64;
        let mean = self.rates.iter().sum::<f64>() / n;
        let var = self
            .rates
            .iter()
            .map(|r| (r - mean) * (r - mean))
            .sum::<f64>()
            / n;
        let sd = var.sqrt();
        match self.layers.iter_mut().find(|(l, _, _)| *l == layer) {
            Some(entry) => {
                entry.1 += sd;
                entry.2 += 1;
            }
            None => self.layers.push((layer, sd, 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snn_nostd::genotype::LifClass;

    fn codes(words: &[u64]) -> SpikeCodes<'_> {
        SpikeCodes {
            words,
            words_per_code: 1,
            n_bits: 8,
            multiplicity: 3,
        }
    }

    #[test]
    fn layers_count_once_and_average_over_timesteps() {
        let mut s = RateSpread::default();
        assert_eq!(s.value(), None);
        let node = LayerId::CellNode {
            cell: 1,
            node: 2,
            class: LifClass::Th15,
        };
        // t 0: rates 0 and 1 (sd 0.5); t 1: rates 1/8 and 1/8 (sd 0)
        s.on_spikes(0, node, &codes(&[0x00, 0xFF]));
        s.on_spikes(1, node, &codes(&[0x01, 0x80]));
        // another layer, one timestep: rates 2/8, 4/8 and 6/8 (sd sqrt(1/24))
        s.on_spikes(0, LayerId::CellOut { cell: 1 }, &codes(&[0x03, 0x0F, 0x3F]));
        let want = (0.25 + (1.0f64 / 24.0).sqrt()) / 2.0;
        assert!((s.value().unwrap() - want).abs() < 1e-15);
    }

    #[test]
    fn silent_layers_have_no_spread() {
        let mut s = RateSpread::default();
        s.on_spikes(0, LayerId::CellOut { cell: 0 }, &codes(&[0, 0, 0, 0]));
        assert_eq!(s.value(), Some(0.0));
    }
}
