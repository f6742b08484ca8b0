//! Export of a trained single-path network to a microcontroller model blob.
//!
//! - [`FloatNetwork`]: the weights of a trained network in plain Rust ([`from_network`] reads
//!   them from the Candle [`Network`](crate::model::Network)).
//! - [`calibrate`]: runs the Candle network in eval mode on sample inputs and records the
//!   largest magnitude of each activation group ([`Ranges`]).
//! - [`quantize`]: folds BatchNorm, picks the fixed-point formats from the ranges and writes a
//!   blob that `snn_nostd::model::decode` reads and `snn_nostd::engine::Engine` runs.
//! - [`Board`], [`BOARDS`], [`footprint`], [`check_fit`]: flash and RAM budgets of real parts;
//!   [`fit`]: the same footprint of a network before training, and sizing it to a board.
//! - [`run_integer`], [`run_integer_u8`]: run a blob with the device's integer engine on the
//!   host (bit-identical to the firmware).
//! - [`write_atomic`]: writes a file through a temporary file and a rename.

mod calibrate;
mod convert;
mod error;
pub mod fit;
pub mod nir;
pub mod pipeline;
mod quant;
#[cfg(test)]
mod testnet;
mod weights;

pub use calibrate::{calibrate, Ranges};
pub use convert::from_network;
pub use error::ExportError;
pub use quant::{quantize, quantize_with_report, QuantReport};
pub use snn_nostd::model::{Bits, InputKind};
pub use weights::{Bn, CellWeights, ConvBn, FloatNetwork, Normalization, BN_EPS};

use snn_nostd::engine::{
    buffer_sizes, quantize_input_f32, quantize_input_u8, BufferSizes, Engine, EngineError,
    LayerStats,
};
use snn_nostd::model::decode;
use std::path::Path;

/// A microcontroller part and its memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Board {
    /// Part name, lower case (`stm32f411`).
    pub name: &'static str,
    /// CPU core.
    pub core: &'static str,
    /// Internal flash bytes.
    pub flash_bytes: usize,
    /// Internal SRAM bytes (all banks).
    pub ram_bytes: usize,
}

/// The boards a blob can be checked against.
pub const BOARDS: [Board; 4] = [
    Board {
        name: "stm32f411",
        core: "Cortex-M4F",
        flash_bytes: 512 * 1024,
        ram_bytes: 128 * 1024,
    },
    Board {
        name: "stm32f746",
        core: "Cortex-M7F",
        flash_bytes: 1024 * 1024,
        ram_bytes: 320 * 1024,
    },
    Board {
        name: "nrf52840",
        core: "Cortex-M4F",
        flash_bytes: 1024 * 1024,
        ram_bytes: 256 * 1024,
    },
    Board {
        name: "stm32h743",
        core: "Cortex-M7F",
        flash_bytes: 2048 * 1024,
        ram_bytes: 1024 * 1024,
    },
];

/// Flash kept for the firmware's code (engine, runtime, logging). Measured on the demo
/// firmware (`lightsnn-tools e2e`): 172,662 B (168.6 KiB) besides the blob for every blob
/// tried (`trained.bin`, `model.bin`, a C1 = 8 export), of which 12,292 B are the embedded test
/// images: 156.6 KiB of code, most of it the engine's unrolled conv kernels (one per kernel
/// size, channel count and accumulator). The dense baseline (firmware feature `dense`) adds
/// about 26 KiB.
pub const FIRMWARE_FLASH_RESERVE: usize = 160 * 1024;
/// RAM kept for the stack, the firmware's own statics and the logging buffer. Measured on the
/// demo firmware (`lightsnn-tools e2e`, which checks the arenas against the ELF): stack peak
/// 8,228 B (blob decoding at start-up), 36 B of other statics, plus the 1 KiB RTT buffer.
pub const FIRMWARE_RAM_RESERVE: usize = 10 * 1024;

/// The board named `name` (case-insensitive; `stm32` prefix optional).
pub fn board(name: &str) -> Result<&'static Board, ExportError> {
    let n = name.trim().to_ascii_lowercase();
    BOARDS
        .iter()
        .find(|b| b.name == n || b.name.strip_prefix("stm32") == Some(n.as_str()))
        .ok_or_else(|| ExportError::UnknownBoard(name.to_string()))
}

/// What a blob costs on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// The whole blob (stored in flash).
    pub blob_bytes: usize,
    /// Weights, biases, shifts and BN parameters within the blob.
    pub weight_bytes: usize,
    /// Engine scratch (activations, accumulators, spike maps): [`BufferSizes::bytes`].
    pub activation_ram: usize,
    /// One quantised input sample (`i16`); 0 where the engine holds it
    /// ([`BufferSizes::input_staged`], as the firmware does).
    pub input_ram: usize,
    /// The scratch sizes per arena.
    pub buffers: BufferSizes,
}

impl Footprint {
    /// Flash needed with the firmware reserve.
    pub fn flash_needed(&self) -> usize {
        self.blob_bytes + FIRMWARE_FLASH_RESERVE
    }

    /// RAM needed with the firmware reserve.
    pub fn ram_needed(&self) -> usize {
        self.activation_ram + self.input_ram + FIRMWARE_RAM_RESERVE
    }
}

/// Decodes `blob` and measures its flash and RAM cost.
pub fn footprint(blob: &[u8]) -> Result<Footprint, ExportError> {
    let model = decode(blob)?;
    Ok(footprint_of(
        blob.len(),
        model.weight_bytes(),
        buffer_sizes(&model),
    ))
}

/// The footprint of a blob of `blob_bytes` bytes (`weight_bytes` of them weights, biases, shifts
/// and affines) whose engine needs `buffers`.
pub(crate) fn footprint_of(
    blob_bytes: usize,
    weight_bytes: usize,
    buffers: BufferSizes,
) -> Footprint {
    Footprint {
        blob_bytes,
        weight_bytes,
        activation_ram: buffers.bytes(),
        input_ram: if buffers.input_staged {
            0
        } else {
            buffers.input * 2
        },
        buffers,
    }
}

/// Checks that a footprint fits `board` (with the firmware reserves).
pub fn check_fit(fp: &Footprint, board: &Board) -> Result<(), ExportError> {
    if fp.flash_needed() > board.flash_bytes {
        return Err(ExportError::DoesNotFit {
            board: board.name,
            resource: "flash",
            need: fp.flash_needed(),
            reserve: FIRMWARE_FLASH_RESERVE,
            have: board.flash_bytes,
        });
    }
    if fp.ram_needed() > board.ram_bytes {
        return Err(ExportError::DoesNotFit {
            board: board.name,
            resource: "RAM",
            need: fp.ram_needed(),
            reserve: FIRMWARE_RAM_RESERVE,
            have: board.ram_bytes,
        });
    }
    Ok(())
}

/// The integer engine's results over a set of samples.
#[derive(Clone, Debug, PartialEq)]
pub struct IntegerRun {
    /// Predicted class per sample.
    pub predictions: Vec<usize>,
    /// Class scores per sample (format `out_exp`, summed over votes and timesteps).
    pub scores: Vec<Vec<i32>>,
    /// Spike statistics per LIF layer over all samples.
    pub stats: Vec<LayerStats>,
    /// Synaptic operations over all samples.
    pub synops: u64,
}

fn run_with(
    blob: &[u8],
    n: usize,
    mut quantise: impl FnMut(&snn_nostd::model::Model<'_>, usize, &mut [i16]) -> Result<(), EngineError>,
) -> Result<IntegerRun, ExportError> {
    let model = decode(blob)?;
    let s = buffer_sizes(&model);
    let (mut act, mut acc, mut bits) = (vec![0i16; s.act], vec![0i32; s.acc], vec![0u64; s.bits]);
    let mut engine = Engine::new(&model, &mut act, &mut acc, &mut bits)?;
    let mut input = vec![0i16; s.input];
    let mut run = IntegerRun {
        predictions: Vec::with_capacity(n),
        scores: Vec::with_capacity(n),
        stats: Vec::new(),
        synops: 0,
    };
    for i in 0..n {
        quantise(&model, i, &mut input)?;
        run.predictions.push(engine.infer(&input, &mut ())?);
        run.scores.push(engine.scores().to_vec());
    }
    run.stats = engine.stats().to_vec();
    run.synops = engine.synops();
    Ok(run)
}

/// Runs `blob` with the integer engine on real-valued samples (normalised CHW, one frame for
/// static input or `t` frames for events), quantised with `quantize_input_f32`.
pub fn run_integer<S: AsRef<[f32]>>(blob: &[u8], inputs: &[S]) -> Result<IntegerRun, ExportError> {
    run_with(blob, inputs.len(), |m, i, q| {
        quantize_input_f32(m, inputs[i].as_ref(), q)
    })
}

/// Runs `blob` with the integer engine on raw `u8` samples (CIFAR RGB planes, or event counts),
/// quantised with `quantize_input_u8` exactly as on the device.
pub fn run_integer_u8<S: AsRef<[u8]>>(
    blob: &[u8],
    inputs: &[S],
) -> Result<IntegerRun, ExportError> {
    run_with(blob, inputs.len(), |m, i, q| {
        quantize_input_u8(m, inputs[i].as_ref(), q)
    })
}

/// Writes `bytes` to `path` atomically (see [`crate::fsutil::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    crate::fsutil::write_atomic(path, bytes)
        .map_err(|e| ExportError::Io(std::io::Error::other(format!("{e:#}"))))
}

#[cfg(test)]
mod tests;
