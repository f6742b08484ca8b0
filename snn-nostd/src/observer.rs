//! The one spike-observer interface: every forward pass (the Candle network through its sink
//! adapter, the host CPU scoring engine, the integer engine on the device) reports each LIF
//! layer's spikes through [`SpikeObserver`], as bit-packed codes ([`SpikeCodes`]). The SAHD
//! kernel ([`SahdKernel`](crate::sahd::SahdKernel)) is an observer, so the search scores a
//! network the same way whichever pass runs it.

use crate::skeleton::LayerId;

/// The spikes of one LIF layer at one timestep, for a batch of `rows()` samples.
///
/// Layout: row `i` (one sample) is `words[i * words_per_code..(i + 1) * words_per_code]`, bit
/// `k` of the code in word `k / 64`, bit `k % 64` (the layout of
/// [`pack_rows_f32`](crate::bits::pack_rows_f32)); bits at or beyond `n_bits` are 0. The neuron
/// order is the pass's own (HWC on the integer engine, CHW on the host): every use of the codes
/// (popcounts, Hamming distances) is invariant to it.
#[derive(Clone, Copy, Debug)]
pub struct SpikeCodes<'a> {
    /// The codes, `rows * words_per_code` words.
    pub words: &'a [u64],
    /// Words per code (at least [`words_for(n_bits)`](crate::bits::words_for)).
    pub words_per_code: usize,
    /// Neurons of the layer (bits per code).
    pub n_bits: usize,
    /// How many LIF modules of the reference network the layer stands for
    /// ([`CellSchedule::lif_multiplicity`](crate::skeleton::CellSchedule::lif_multiplicity);
    /// 1 for the cell outputs and the hidden layer).
    pub multiplicity: u32,
}

impl SpikeCodes<'_> {
    /// Number of codes (samples): `words.len() / words_per_code` (0 if `words_per_code == 0`).
    pub fn rows(&self) -> usize {
        self.words
            .len()
            .checked_div(self.words_per_code)
            .unwrap_or(0)
    }

    /// Code `i`, or `None` past the last row.
    pub fn row(&self, i: usize) -> Option<&[u64]> {
        let w = self.words_per_code;
        self.words
            .get(i.checked_mul(w)?..i.checked_add(1)?.checked_mul(w)?)
    }
}

/// Receives every LIF layer's spikes as the pass produces them: layer by layer in network order
/// within a timestep on the host's passes; on the integer engine stage by stage (cell 1 at every
/// timestep, then the rest of the network at every timestep; see [`crate::engine`]). Every use of
/// the codes (SAHD sums) is invariant to the order.
///
/// The method cannot fail, so that a pass never needs to unwind half a timestep: an observer
/// that can refuse its input (the SAHD kernel on malformed codes) keeps the first error and
/// reports it when asked for its result.
pub trait SpikeObserver {
    /// Layer `layer` produced `codes` at timestep `t`.
    fn on_spikes(&mut self, t: usize, layer: LayerId, codes: &SpikeCodes<'_>);
}

/// An observer that ignores everything.
impl SpikeObserver for () {
    fn on_spikes(&mut self, _: usize, _: LayerId, _: &SpikeCodes<'_>) {}
}

impl<O: SpikeObserver + ?Sized> SpikeObserver for &mut O {
    fn on_spikes(&mut self, t: usize, layer: LayerId, codes: &SpikeCodes<'_>) {
        (**self).on_spikes(t, layer, codes);
    }
}

/// Both observers see every layer, the first one first (e.g. a kernel and a trace).
impl<A: SpikeObserver, B: SpikeObserver> SpikeObserver for (A, B) {
    fn on_spikes(&mut self, t: usize, layer: LayerId, codes: &SpikeCodes<'_>) {
        self.0.on_spikes(t, layer, codes);
        self.1.on_spikes(t, layer, codes);
    }
}

/// Every observer of the slice sees every layer, in order.
impl<O: SpikeObserver> SpikeObserver for [O] {
    fn on_spikes(&mut self, t: usize, layer: LayerId, codes: &SpikeCodes<'_>) {
        for o in self {
            o.on_spikes(t, layer, codes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    struct Log(Vec<(usize, LayerId, usize, u32)>);

    impl SpikeObserver for Log {
        fn on_spikes(&mut self, t: usize, layer: LayerId, codes: &SpikeCodes<'_>) {
            self.0.push((t, layer, codes.rows(), codes.multiplicity));
        }
    }

    #[test]
    fn rows_and_tees() {
        let words = [1u64, 0, 3, 0, 7, 0];
        let codes = SpikeCodes {
            words: &words,
            words_per_code: 2,
            n_bits: 70,
            multiplicity: 2,
        };
        assert_eq!(codes.rows(), 3);
        assert_eq!(codes.row(1), Some(&[3u64, 0][..]));
        assert_eq!(codes.row(3), None);
        let empty = SpikeCodes {
            words_per_code: 0,
            ..codes
        };
        assert_eq!(empty.rows(), 0);

        let mut pair = (Log(Vec::new()), Log(Vec::new()));
        pair.on_spikes(4, LayerId::Hidden, &codes);
        let r = &mut pair;
        r.on_spikes(5, LayerId::CellOut { cell: 1 }, &codes);
        assert_eq!(pair.0 .0, pair.1 .0);
        assert_eq!(
            pair.0 .0,
            [
                (4, LayerId::Hidden, 3, 2),
                (5, LayerId::CellOut { cell: 1 }, 3, 2)
            ]
        );
        let mut many = [Log(Vec::new()), Log(Vec::new())];
        many[..].on_spikes(0, LayerId::Hidden, &codes);
        assert!(many.iter().all(|l| l.0.len() == 1));
    }
}
