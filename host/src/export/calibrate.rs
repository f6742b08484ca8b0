//! Calibration of the export's activation formats: the trained Candle network runs in eval mode
//! (running-statistics BatchNorm, as the device computes it) on sample inputs, and a
//! [`SpikeSink`] observing its real-valued tensors ([`Probe`]) records the largest magnitude of
//! each group of values that the integer engine stores in one fixed-point format.

use super::error::ExportError;
use crate::model::{Forward, LayerId, Mixing, Mode, Network, Probe, SpikeSink};
use candle_core::Tensor;
use snn_nostd::genotype::Genotype;

/// Largest magnitudes seen by the float forward pass: the calibration statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ranges {
    /// Network input.
    pub input: f32,
    /// Every node sum, partial sum, edge output and back state of cell 1, cell 2 (and the cell
    /// input: stem / down output): [`Probe::Cell`].
    pub cell: [f32; 2],
    /// BN outputs feeding the post-cell LIFs.
    pub post: [f32; 2],
    /// fc1 outputs (hidden LIF input).
    pub hidden: f32,
    /// fc2 outputs.
    pub out: f32,
}

/// Samples per forward pass of [`calibrate`] (bounds the memory of one pass).
const BATCH: usize = 32;

/// Records [`Ranges`] from the observed tensors; ignores spikes.
struct RangeSink(Ranges);

impl SpikeSink for RangeSink {
    fn record(&mut self, _: LayerId, _: usize, _: &Tensor, _: u32) -> anyhow::Result<()> {
        Ok(())
    }

    fn observe(&mut self, probe: Probe, _t: usize, value: &Tensor) -> anyhow::Result<()> {
        let r = &mut self.0;
        let slot = match probe {
            Probe::Input => &mut r.input,
            Probe::Cell { cell } => cell_slot(&mut r.cell, cell)?,
            Probe::CellOut { cell } => cell_slot(&mut r.post, cell)?,
            Probe::Hidden => &mut r.hidden,
            Probe::Output => &mut r.out,
        };
        let m = value.abs()?.max_all()?.to_scalar::<f32>()?;
        // NaN never raises a range.
        if m > *slot {
            *slot = m;
        }
        Ok(())
    }
}

fn cell_slot(slots: &mut [f32; 2], cell: u8) -> anyhow::Result<&mut f32> {
    slots
        .get_mut(usize::from(cell))
        .ok_or_else(|| anyhow::anyhow!("cell index {cell} out of range"))
}

/// Runs `net` (single path `genotype`, eval mode) on `samples` and returns the largest
/// magnitudes of its activations. Each sample is one normalised CHW frame for static input or
/// `T` frames for event input (the layout of `Dataset::fill_batch`).
pub fn calibrate<S: AsRef<[f32]>>(
    net: &Network,
    genotype: &Genotype,
    samples: &[S],
) -> Result<Ranges, ExportError> {
    if samples.is_empty() {
        return Err(ExportError::NoCalibration);
    }
    let cfg = &net.cfg;
    let [c, h, w] = cfg.shape.in_chw();
    let frames = if cfg.dataset.is_event() {
        cfg.shape.timesteps
    } else {
        1
    };
    let per = frames * c * h * w;
    if let Some(s) = samples.iter().find(|s| s.as_ref().len() != per) {
        return Err(ExportError::InputLength {
            expected: per,
            got: s.as_ref().len(),
        });
    }
    let mix = Mixing::single_path(genotype);
    let mut sink = RangeSink(Ranges::default());
    for chunk in samples.chunks(BATCH) {
        let data: Vec<f32> = chunk.iter().flat_map(|s| s.as_ref()).copied().collect();
        let pass = |sink: &mut RangeSink| -> anyhow::Result<()> {
            let x = Tensor::from_vec(data, (chunk.len(), frames, c, h, w), net.fc1.device())?;
            net.forward(
                &x,
                Forward {
                    mixing: &mix,
                    mode: Mode::Eval,
                    sink,
                    dropout_rng: None,
                },
            )?;
            Ok(())
        };
        pass(&mut sink).map_err(ExportError::Forward)?;
    }
    Ok(sink.0)
}
