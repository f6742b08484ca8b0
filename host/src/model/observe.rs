//! The adapter from the Candle network's [`SpikeSink`] (0/1 tensors) to the one spike-observer
//! interface of `snn_nostd::observer`: each layer's spikes are copied to the host, bit-packed
//! (`snn_nostd::bits`) and handed to a [`SpikeObserver`] (the SAHD kernel, a trace), as the CPU
//! engine and the integer engine hand theirs.

use super::network::{LayerId, SpikeSink};
use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use snn_nostd::bits;
use snn_nostd::observer::{SpikeCodes, SpikeObserver};

/// A [`SpikeSink`] that packs every layer's spikes and reports them to one observer per
/// candidate of the pass (one for a plain pass, `G` for a pass over `G` stacked candidates).
pub struct PackingSink<'a, O> {
    observers: &'a mut [O],
    floats: Vec<f32>,
    words: Vec<u64>,
}

impl<'a, O: SpikeObserver> PackingSink<'a, O> {
    /// A sink reporting candidate `g`'s spikes to `observers[g]`.
    pub fn new(observers: &'a mut [O]) -> PackingSink<'a, O> {
        PackingSink {
            observers,
            floats: Vec::new(),
            words: Vec::new(),
        }
    }
}

impl<O: SpikeObserver> SpikeSink for PackingSink<'_, O> {
    fn record(&mut self, layer: LayerId, t: usize, spikes: &Tensor, mult: u32) -> Result<()> {
        self.record_groups(layer, t, spikes, &[mult])
    }

    /// Candidate `g` (rows `g * N..(g + 1) * N`) goes to observer `g`, unless its multiplicity
    /// is 0 (the layer does not exist in that candidate).
    fn record_groups(
        &mut self,
        layer: LayerId,
        t: usize,
        spikes: &Tensor,
        mult: &[u32],
    ) -> Result<()> {
        if mult.len() != self.observers.len() {
            bail!(
                "{layer}: a pass over {} candidates reported to {} observers",
                mult.len(),
                self.observers.len()
            );
        }
        let rows = spikes.dim(0)?;
        if mult.is_empty() || rows % mult.len() != 0 {
            bail!(
                "{layer}: {rows} rows do not split into {} candidates",
                mult.len()
            );
        }
        let flat = spikes.flatten_from(1)?;
        let n_bits = flat.dim(1)?;
        self.floats.clear();
        self.floats.extend(flat.flatten_all()?.to_vec1::<f32>()?);
        let wpc = bits::words_for(n_bits);
        self.words.clear();
        self.words.resize(rows * wpc, 0);
        bits::pack_rows_f32(&self.floats, rows, &mut self.words)
            .with_context(|| format!("packing the spikes of {layer}"))?;
        let per_group = self.words.len() / mult.len();
        for ((obs, &m), words) in self
            .observers
            .iter_mut()
            .zip(mult)
            .zip(self.words.chunks(per_group.max(1)))
        {
            if m == 0 {
                continue;
            }
            let codes = SpikeCodes {
                words,
                words_per_code: wpc,
                n_bits,
                multiplicity: m,
            };
            obs.on_spikes(t, layer, &codes);
        }
        Ok(())
    }
}
