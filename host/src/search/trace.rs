//! What a forward pass leaves behind when it is traced: every spike-code set it reported, in
//! order ([`CodeTrace`]). The engines fill it ([`Scorer::trace_batch`](super::Scorer)); the
//! code dump ([`super::dump`]) writes it out.

use crate::model::LayerId;
use snn_nostd::observer::{SpikeCodes, SpikeObserver};

/// One (LIF layer, timestep) code set of a batch, bit-packed.
#[derive(Clone, Debug, PartialEq)]
pub struct CodeRecord {
    /// The layer.
    pub layer: LayerId,
    /// The timestep (0-based).
    pub t: usize,
    /// Samples (codes).
    pub n: usize,
    /// Bits per code.
    pub n_bits: usize,
    /// `u64` words per code.
    pub words_per_code: usize,
    /// The codes, row after row (`n * words_per_code` words).
    pub words: Vec<u64>,
    /// How many LIF modules of the reference network the layer stands for.
    pub mult: u32,
}

/// A spike observer keeping every code set it sees, in order (a pass's trace).
#[derive(Clone, Debug, Default)]
pub struct CodeTrace {
    /// The code sets seen.
    pub records: Vec<CodeRecord>,
}

impl SpikeObserver for CodeTrace {
    fn on_spikes(&mut self, t: usize, layer: LayerId, codes: &SpikeCodes<'_>) {
        self.records.push(CodeRecord {
            layer,
            t,
            n: codes.rows(),
            n_bits: codes.n_bits,
            words_per_code: codes.words_per_code,
            words: codes.words.to_vec(),
            mult: codes.multiplicity,
        });
    }
}
