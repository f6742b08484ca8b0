//! The model blob: a quantised single-path LightSNN network, zero-copy decoded from flash.
//!
//! # Blob layout
//! ```text
//! offset size
//!  0      4   magic  b"LSNN"
//!  4      2   format version, u16 little-endian (FORMAT_VERSION)
//!  6      4   payload length in bytes, u32 little-endian
//! 10      4   CRC-32 (IEEE) of the payload, u32 little-endian
//! 14      n   payload: ModelParts, postcard-encoded
//! ```
//! Format 2 added the dataset ([`DatasetKind`]) at the start of the payload; format-1 blobs are
//! refused by their version (re-export them).
//! [`decode`] checks, in this order, length, magic, version, payload length, checksum, the
//! postcard encoding and then every count, shape and value range against each other (see
//! [`Model::new`]); every input gives a [`Model`] or a [`DecodeError`], never a panic. Weights,
//! biases and shifts stay borrowed from the blob (`&[u8]`): 16-bit weights and 32-bit values are
//! read as little-endian byte groups, so the blob needs no alignment.
//!
//! # Number formats
//! A value in *format `a`* is the integer `round(x * 2^a)` of the real value `x`. Every
//! activation (node sums, back states, membranes) is an `i16` in the format of its layer, with
//! saturating arithmetic; the LIF threshold 1.0 is `2^a` (so `a <= 14`). Weighted layers hold
//! per-output-channel power-of-two scales: output channel `o` has real weights
//! `q * 2^-e[o]`, an `i32` bias in accumulator units, and an `i8` shift `shift[o]` that takes the
//! accumulator to the output format with round-half-up (`round_shift`, see [`crate::engine`]).
//!
//! | layer | weight layout | accumulator units | shift |
//! |---|---|---|---|
//! | stem (dense) | `[co][ci][ky][kx]` | `2^-(in.exp + e[co])` | `in.exp + e[co] - cell1.exp` |
//! | cell conv3/conv1, down | `[ci][ky][kx][co]` | `2^-e[co]` | `e[co] - out format` |
//! | fc1 | `[j][h]`, `j` = HWC index of the pooled map | `2^-e[h]` | `e[h] - hidden_exp` |
//! | fc2 | `[h][o]`, `o = class * votes + v` | `2^-e[o]` | `e[o] - out_exp` |
//!
//! The post-cell BatchNorm (cell -> BN -> LIF) is a per-channel affine applied to the LIF input:
//! `y = round_shift(x * mul[c] + add[c], shift)` (i64 arithmetic), from the cell format to the
//! post format, with `mul = round(g * 2^(post.exp - cell.exp + shift))` and
//! `add = round(b * 2^(post.exp + shift))` for the BN's `y = g x + b`.

use crate::crc32;
use crate::dataset::DatasetKind;
use crate::genotype::{CellType, Genotype, Op, NUM_EDGES, NUM_NODES};
pub use crate::shape::{InputKind, Shape};
use crate::skeleton::CellSchedule;
use core::fmt;
use serde::{Deserialize, Serialize};

/// First four bytes of every blob.
pub const MAGIC: [u8; 4] = *b"LSNN";
/// The blob format version this crate reads and writes.
pub const FORMAT_VERSION: u16 = 2;
/// Length of the fixed header before the postcard payload.
pub const HEADER_LEN: usize = 14;

/// Upper bounds that [`Model::new`] enforces, so that no size computation can overflow (even
/// with a 32-bit `usize`) and no blob can claim absurd buffers.
pub mod limits {
    /// Input channels.
    pub const MAX_IN_C: usize = 8;
    /// Input height and width.
    pub const MAX_SIDE: usize = 1024;
    /// Cell channels `C1`, `C2`.
    pub const MAX_CHANNELS: usize = 4096;
    /// Timesteps.
    pub const MAX_T: usize = 4096;
    /// Hidden units `H`.
    pub const MAX_HIDDEN: usize = 16384;
    /// Classes.
    pub const MAX_CLASSES: usize = 4096;
    /// Voting group size `V`.
    pub const MAX_VOTES: usize = 256;
    /// Pool size after cell 2 (one byte in the blob).
    pub const MAX_POOL: usize = 255;
    /// Elements of any one activation tensor (and of the fc1 input, and classes * votes).
    pub const MAX_TENSOR: usize = 1 << 24;
    /// Largest activation format exponent (the threshold `2^a` must fit an `i16`).
    pub const MAX_ACT_EXP: u8 = 14;
    /// Largest input format exponent.
    pub const MAX_IN_EXP: u8 = 15;
    /// Largest logit format exponent.
    pub const MAX_OUT_EXP: u8 = 30;
    /// Shift range of weighted layers (negative: left shift).
    pub const MIN_SHIFT: i8 = -31;
    /// Shift range of weighted layers.
    pub const MAX_SHIFT: i8 = 62;
    /// Largest right shift of the affine and input-normalisation stages.
    pub const MAX_AFFINE_SHIFT: u8 = 62;
}

/// Weight precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Bits {
    /// `i8` weights.
    B8,
    /// `i16` weights, stored little-endian.
    B16,
}

impl Bits {
    /// Bytes per weight.
    pub const fn bytes(self) -> usize {
        match self {
            Bits::B8 => 1,
            Bits::B16 => 2,
        }
    }

    /// Bits per weight (8 or 16).
    pub const fn bits(self) -> u32 {
        match self {
            Bits::B8 => 8,
            Bits::B16 => 16,
        }
    }

    /// Largest weight magnitude used (symmetric range): 127 or 32767.
    pub const fn qmax(self) -> i32 {
        match self {
            Bits::B8 => 127,
            Bits::B16 => 32767,
        }
    }

    /// `Bits` from 8 or 16.
    pub const fn from_bits(bits: u32) -> Option<Bits> {
        match bits {
            8 => Some(Bits::B8),
            16 => Some(Bits::B16),
            _ => None,
        }
    }
}

/// Which node tensors of a cell need state, from the genotype: the [`CellSchedule`] (which node
/// has a LIF, which back states exist, which node tensors skip and pool edges read) and the
/// integer engine's buffer allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellPlan {
    /// The cell's schedule. A node `j` whose tensor some skip or pool edge reads
    /// (`schedule.reads_tensor[j]`) must keep `x_j` until the cell's back states are done; node
    /// 3's tensor is read after the cell (post BN) in any case.
    pub schedule: CellSchedule,
    /// `slot[j]`: the node buffer that holds `x_j` during a timestep. A node whose tensor is
    /// dead after its own LIF (not `schedule.reads_tensor[j]`, `j < 3`) frees its buffer for the
    /// next nodes: convs read spikes, never the tensor. Node 0 is always in buffer 0.
    pub slot: [u8; NUM_NODES],
    /// Number of node buffers (`1..=4`).
    pub slots: u8,
    /// `stored_back[i]`: the back state `B_i` is kept in a buffer between timesteps, because
    /// some backward edge into node `i` reads a tensor (skip, pools), which is gone by the next
    /// timestep. Where every backward edge into node `i` is a conv (`need_back[i]` and not
    /// stored), the engine computes `B_i` at the next timestep from the source nodes' spikes of
    /// the previous one, which their spike maps still hold: no buffer.
    pub stored_back: [bool; 3],
}

impl CellPlan {
    /// The plan of a cell with `ops` (one per edge of `cell`, canonical order; extra or missing
    /// ops are ignored).
    pub const fn new(cell: CellType, ops: &[Op]) -> CellPlan {
        let schedule = CellSchedule::of_genotype(cell, ops);
        let keep_x = schedule.reads_tensor;
        let mut plan = CellPlan {
            schedule,
            slot: [0; NUM_NODES],
            slots: 1,
            stored_back: [false; 3],
        };
        let edges = cell.edges();
        let mut k = 0;
        while k < edges.len() && k < ops.len() {
            let (e, op) = (edges[k], ops[k]);
            let tensor = !matches!(op, Op::Zero) && !op.has_lif();
            if e.is_backward() && (e.to as usize) < 3 && tensor {
                plan.stored_back[e.to as usize] = true;
            }
            k += 1;
        }
        // Buffers: a node reuses the buffer of the latest dead node before it, else takes a new
        // one. Node j < 3 is dead once its LIF has run, unless its tensor is kept.
        let mut free: i32 = if keep_x[0] { -1 } else { 0 };
        let mut j = 1;
        while j < NUM_NODES {
            let s = if free >= 0 {
                free as u8
            } else {
                plan.slots += 1;
                plan.slots - 1
            };
            plan.slot[j] = s;
            free = if j < 3 && !keep_x[j] { s as i32 } else { -1 };
            j += 1;
        }
        plan
    }

    /// Number of back-state tensors kept between timesteps ([`CellPlan::stored_back`]).
    pub const fn stored_backs(&self) -> usize {
        let b = self.stored_back;
        b[0] as usize + b[1] as usize + b[2] as usize
    }

    /// Whether the engine computes `B_i` from the previous timestep's spikes (every backward
    /// edge into node `i` is a conv; see [`CellPlan::stored_back`]).
    pub const fn back_from_spikes(&self, i: usize) -> bool {
        i < 3 && self.schedule.need_back[i] && !self.stored_back[i]
    }

    /// Number of LIF layers (one per node at most: the engine runs the network's own threshold
    /// only, see [`Model::new`]).
    pub const fn lifs(&self) -> usize {
        let s = &self.schedule;
        let base = crate::genotype::LifClass::Th10;
        s.has_lif(0, base) as usize
            + s.has_lif(1, base) as usize
            + s.has_lif(2, base) as usize
            + s.has_lif(3, base) as usize
    }
}

/// A weighted layer: quantised weights, per-output bias and shift, borrowed from the blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerParts<'a> {
    /// Weights, one byte (`i8`) or two little-endian bytes (`i16`) each; layout per layer in the
    /// module docs.
    pub weights: &'a [u8],
    /// Per-output bias in accumulator units, `i32` little-endian.
    pub bias: &'a [u8],
    /// Per-output shift from accumulator units to the output format, `i8` (negative: left).
    pub shift: &'a [u8],
}

impl LayerParts<'_> {
    /// Number of outputs (channels or units).
    pub fn outputs(&self) -> usize {
        self.shift.len()
    }

    /// Bias of output `o` (0 if out of range).
    pub fn bias_at(&self, o: usize) -> i32 {
        read_i32(self.bias, o)
    }

    /// Shift of output `o` (0 if out of range).
    pub fn shift_at(&self, o: usize) -> i8 {
        self.shift.get(o).map_or(0, |&s| s as i8)
    }

    /// Weight `i` for `bits`-wide weights (0 if out of range).
    pub fn weight_at(&self, bits: Bits, i: usize) -> i32 {
        match bits {
            Bits::B8 => self.weights.get(i).map_or(0, |&b| b as i8 as i32),
            Bits::B16 => match self.weights.get(2 * i..2 * i + 2) {
                Some(b) => i16::from_le_bytes([b[0], b[1]]) as i32,
                None => 0,
            },
        }
    }
}

/// Reads the `i`-th little-endian `i32` of `bytes` (0 if out of range).
pub fn read_i32(bytes: &[u8], i: usize) -> i32 {
    match bytes.get(4 * i..4 * i + 4) {
        Some(b) => i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

/// A cell's quantisation: its activation format and one optional conv per edge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellParts<'a> {
    /// Format exponent of every node sum, back state and cell LIF membrane.
    pub exp: u8,
    /// One entry per edge of the cell type in canonical order: `Some` exactly for conv ops.
    #[serde(borrow)]
    pub convs: heapless::Vec<Option<LayerParts<'a>>, NUM_EDGES>,
}

/// The post-cell stage: the folded BatchNorm (per-channel affine) in front of a LIF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostParts<'a> {
    /// Format exponent of the affine output and the LIF membrane.
    pub exp: u8,
    /// Per-channel multiplier, `i32` little-endian.
    pub mul: &'a [u8],
    /// Per-channel offset, `i32` little-endian.
    pub add: &'a [u8],
    /// Right shift (round half up) after `x * mul + add`.
    pub shift: u8,
}

/// Integer input normalisation for raw `u8` pixels: `q = round_shift(raw * mul[c] + add[c],
/// shift)` gives channel `c` in the input format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputNorm {
    /// Per-channel multiplier.
    pub mul: heapless::Vec<i32, 8>,
    /// Per-channel offset.
    pub add: heapless::Vec<i32, 8>,
    /// Right shift (round half up).
    pub shift: u8,
}

impl InputNorm {
    /// A normalisation from per-channel multipliers and offsets (`None` if the lengths differ
    /// or exceed 8 channels).
    pub fn new(mul: &[i32], add: &[i32], shift: u8) -> Option<InputNorm> {
        if mul.len() != add.len() {
            return None;
        }
        Some(InputNorm {
            mul: heapless::Vec::from_slice(mul).ok()?,
            add: heapless::Vec::from_slice(add).ok()?,
            shift,
        })
    }
}

/// Input quantisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputParts {
    /// Format exponent of the `i16` input.
    pub exp: u8,
    /// Normalisation of raw `u8` pixels; `None`: raw values are taken as they are
    /// (`q = raw << exp`, e.g. event counts).
    pub norm: Option<InputNorm>,
}

/// Everything a blob holds: the postcard payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelParts<'a> {
    /// The dataset the network was trained on (its input kind is `shape.input`'s).
    pub dataset: DatasetKind,
    /// The network's shape.
    pub shape: Shape,
    /// The genotype shared by both cells.
    pub genotype: Genotype,
    /// Weight precision.
    pub bits: Bits,
    /// Input format.
    pub input: InputParts,
    /// Stem conv (+ folded BN), `in_c -> c1`, 3x3, dense.
    #[serde(borrow)]
    pub stem: LayerParts<'a>,
    /// Cell 1 (`c1` channels).
    #[serde(borrow)]
    pub cell1: CellParts<'a>,
    /// BN -> LIF after cell 1.
    #[serde(borrow)]
    pub post1: PostParts<'a>,
    /// Down conv (+ folded BN), `c1 -> c2`, 3x3, followed by MaxPool2.
    #[serde(borrow)]
    pub down: LayerParts<'a>,
    /// Cell 2 (`c2` channels).
    #[serde(borrow)]
    pub cell2: CellParts<'a>,
    /// BN -> LIF after cell 2.
    #[serde(borrow)]
    pub post2: PostParts<'a>,
    /// Linear `fc1_in -> hidden` (the float layer has no bias; the bias here is normally 0).
    #[serde(borrow)]
    pub fc1: LayerParts<'a>,
    /// Format exponent of the hidden LIF.
    pub hidden_exp: u8,
    /// Linear `hidden -> classes * votes`, with bias.
    #[serde(borrow)]
    pub fc2: LayerParts<'a>,
    /// Format exponent of the fc2 outputs (`i32`).
    pub out_exp: u8,
}

/// Why a model's parts are inconsistent: the field or relation that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Invalid(pub &'static str);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid model: {}", self.0)
    }
}

/// Why a byte string is not a model blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DecodeError {
    /// Shorter than the header, or than the payload length it declares.
    Truncated,
    /// Does not start with [`MAGIC`].
    BadMagic,
    /// A format version this build does not read.
    UnsupportedVersion(u16),
    /// Bytes after the declared payload.
    TrailingBytes,
    /// The payload's CRC-32 differs from the header's.
    ChecksumMismatch {
        /// CRC in the header.
        expected: u32,
        /// CRC of the payload.
        found: u32,
    },
    /// The payload is not a valid postcard encoding of [`ModelParts`].
    Malformed,
    /// The payload decodes but its parts are inconsistent.
    Invalid(Invalid),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("model blob is truncated"),
            DecodeError::BadMagic => f.write_str("not a model blob (bad magic, expected \"LSNN\")"),
            DecodeError::UnsupportedVersion(v) => write!(
                f,
                "model blob format version {v} is not supported (this build reads {FORMAT_VERSION}; re-export it with `lightsnn export`)"
            ),
            DecodeError::TrailingBytes => f.write_str("model blob has bytes after its payload"),
            DecodeError::ChecksumMismatch { expected, found } => write!(
                f,
                "model blob checksum mismatch (header {expected:#010x}, payload {found:#010x})"
            ),
            DecodeError::Malformed => f.write_str("model blob payload is malformed"),
            DecodeError::Invalid(i) => fmt::Display::fmt(i, f),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}
#[cfg(feature = "std")]
impl std::error::Error for Invalid {}

impl From<Invalid> for DecodeError {
    fn from(i: Invalid) -> Self {
        DecodeError::Invalid(i)
    }
}

/// Why [`encode_into`] or `encode` (feature `alloc`) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EncodeError {
    /// The parts are inconsistent (nothing inconsistent is ever written).
    Invalid(Invalid),
    /// The output buffer is too small.
    BufferTooSmall,
    /// The payload exceeds 4 GiB.
    TooLarge,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::Invalid(i) => fmt::Display::fmt(i, f),
            EncodeError::BufferTooSmall => {
                f.write_str("output buffer too small for the model blob")
            }
            EncodeError::TooLarge => f.write_str("model payload exceeds 4 GiB"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EncodeError {}

/// Checks a network's shape against the blob's [`limits`]: every size in range, maps that survive
/// the pooling stages, no tensor above [`limits::MAX_TENSOR`]. [`Model::new`] runs it first; the
/// exporter runs it before quantising.
pub fn check_shape(d: &Shape) -> Result<(), Invalid> {
    use limits::*;
    ensure(
        (1..=MAX_IN_C).contains(&d.in_c),
        "shape.in_c out of range 1..=8",
    )?;
    ensure(
        (1..=MAX_SIDE).contains(&d.in_h) && (1..=MAX_SIDE).contains(&d.in_w),
        "shape.in_h/in_w out of range",
    )?;
    ensure(
        (1..=MAX_T).contains(&d.timesteps),
        "shape.timesteps out of range",
    )?;
    ensure(
        (1..=MAX_CHANNELS).contains(&d.c1) && (1..=MAX_CHANNELS).contains(&d.c2),
        "shape.c1/c2 out of range",
    )?;
    ensure(
        (1..=MAX_POOL).contains(&d.pool),
        "shape.pool out of range 1..=255",
    )?;
    ensure(
        (1..=MAX_HIDDEN).contains(&d.hidden),
        "shape.hidden out of range",
    )?;
    ensure(
        (1..=MAX_CLASSES).contains(&d.classes) && (1..=MAX_VOTES).contains(&d.votes),
        "shape.classes/votes out of range",
    )?;
    let (h1, w1) = d.cell1_hw();
    let (h2, w2) = d.cell2_hw();
    let (ph, pw) = d.pooled_hw();
    ensure(
        h1 >= 1 && w1 >= 1 && h2 >= 1 && w2 >= 1,
        "input too small for the pooling stages",
    )?;
    ensure(ph >= 1 && pw >= 1, "shape.pool larger than the cell-2 map")?;
    ensure(
        d.n1() <= MAX_TENSOR
            && d.n2() <= MAX_TENSOR
            && d.fc1_in() <= MAX_TENSOR
            && d.outputs() <= MAX_TENSOR
            && d.input_len() <= MAX_TENSOR,
        "a tensor exceeds limits::MAX_TENSOR elements",
    )?;
    Ok(())
}

/// A validated model: parts whose every shape, count and range is consistent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model<'a> {
    parts: ModelParts<'a>,
    plan: CellPlan,
}

fn ensure(cond: bool, what: &'static str) -> Result<(), Invalid> {
    if cond {
        Ok(())
    } else {
        Err(Invalid(what))
    }
}

fn check_layer(
    l: &LayerParts<'_>,
    bits: Bits,
    weights: u64,
    outputs: u64,
    what: &'static str,
) -> Result<(), Invalid> {
    ensure(
        l.weights.len() as u64 == weights.saturating_mul(bits.bytes() as u64),
        what,
    )?;
    ensure(l.bias.len() as u64 == outputs.saturating_mul(4), what)?;
    ensure(l.shift.len() as u64 == outputs, what)?;
    ensure(
        l.shift
            .iter()
            .all(|&s| (limits::MIN_SHIFT..=limits::MAX_SHIFT).contains(&(s as i8))),
        what,
    )
}

fn check_post(p: &PostParts<'_>, channels: u64, what: &'static str) -> Result<(), Invalid> {
    ensure(p.exp <= limits::MAX_ACT_EXP, what)?;
    ensure(p.mul.len() as u64 == channels * 4, what)?;
    ensure(p.add.len() as u64 == channels * 4, what)?;
    ensure(p.shift <= limits::MAX_AFFINE_SHIFT, what)
}

fn check_cell(
    c: &CellParts<'_>,
    g: &Genotype,
    bits: Bits,
    channels: u64,
    what: &'static str,
) -> Result<(), Invalid> {
    ensure(c.exp <= limits::MAX_ACT_EXP, what)?;
    ensure(c.convs.len() == g.ops().len(), what)?;
    for (conv, &op) in c.convs.iter().zip(g.ops()) {
        let k: u64 = match op {
            Op::Conv3 => 3,
            Op::Conv1 => 1,
            _ => 0,
        };
        match conv {
            Some(l) if k > 0 => check_layer(l, bits, channels * channels * k * k, channels, what)?,
            None if k == 0 => {}
            _ => return Err(Invalid(what)),
        }
    }
    Ok(())
}

impl<'a> Model<'a> {
    /// Validates `parts`: every dimension within [`limits`] and non-degenerate, the genotype
    /// consistent with its cell type and free of thresholded convs (`conv3@0.5`, `conv3@1.5`:
    /// one LIF per node here), every weight, bias and shift array of the right length,
    /// every shift and exponent in range, a conv exactly on the conv edges.
    pub fn new(parts: ModelParts<'a>) -> Result<Model<'a>, Invalid> {
        use limits::*;
        check_shape(&parts.shape)?;
        let d = parts.shape;
        let g = &parts.genotype;
        ensure(
            Genotype::new(g.cell(), g.ops()).is_ok(),
            "genotype has the wrong number of ops for its cell type",
        )?;
        ensure(
            crate::skeleton::CellSchedule::of_genotype(g.cell(), g.ops()).base_class_only(),
            "the genotype has thresholded conv ops (conv3@0.5, conv3@1.5), which the integer engine does not run yet",
        )?;
        ensure(
            parts.dataset.input() == d.input,
            "the dataset's input kind differs from shape.input",
        )?;
        ensure(parts.input.exp <= MAX_IN_EXP, "input.exp out of range")?;
        if let Some(n) = &parts.input.norm {
            ensure(
                n.mul.len() == d.in_c && n.add.len() == d.in_c && n.shift <= MAX_AFFINE_SHIFT,
                "input.norm does not match the input channels",
            )?;
        }
        ensure(parts.hidden_exp <= MAX_ACT_EXP, "hidden_exp out of range")?;
        ensure(parts.out_exp <= MAX_OUT_EXP, "out_exp out of range")?;
        let bits = parts.bits;
        let (c_in, c1, c2) = (d.in_c as u64, d.c1 as u64, d.c2 as u64);
        check_layer(&parts.stem, bits, c1 * c_in * 9, c1, "stem layer sizes")?;
        check_cell(&parts.cell1, g, bits, c1, "cell1 sizes")?;
        check_post(&parts.post1, c1, "post1 sizes")?;
        check_layer(&parts.down, bits, c2 * c1 * 9, c2, "down layer sizes")?;
        check_cell(&parts.cell2, g, bits, c2, "cell2 sizes")?;
        check_post(&parts.post2, c2, "post2 sizes")?;
        let hidden = d.hidden as u64;
        check_layer(
            &parts.fc1,
            bits,
            (d.fc1_in() as u64).saturating_mul(hidden),
            hidden,
            "fc1 layer sizes",
        )?;
        check_layer(
            &parts.fc2,
            bits,
            hidden.saturating_mul(d.outputs() as u64),
            d.outputs() as u64,
            "fc2 layer sizes",
        )?;
        let plan = CellPlan::new(g.cell(), g.ops());
        Ok(Model { parts, plan })
    }

    /// The validated parts.
    pub fn parts(&self) -> &ModelParts<'a> {
        &self.parts
    }

    /// The network's shape.
    pub fn shape(&self) -> &Shape {
        &self.parts.shape
    }

    /// The dataset the network was trained on.
    pub fn dataset(&self) -> DatasetKind {
        self.parts.dataset
    }

    /// The genotype of both cells.
    pub fn genotype(&self) -> &Genotype {
        &self.parts.genotype
    }

    /// Weight precision.
    pub fn bits(&self) -> Bits {
        self.parts.bits
    }

    /// Which back states and LIFs the cells need.
    pub fn plan(&self) -> &CellPlan {
        &self.plan
    }

    /// Bytes of weights, biases, shifts and affine parameters (what the weights cost in flash).
    pub fn weight_bytes(&self) -> usize {
        let p = &self.parts;
        let layer = |l: &LayerParts<'_>| l.weights.len() + l.bias.len() + l.shift.len();
        let cell = |c: &CellParts<'_>| c.convs.iter().flatten().map(layer).sum::<usize>();
        let post = |q: &PostParts<'_>| q.mul.len() + q.add.len();
        layer(&p.stem)
            + cell(&p.cell1)
            + post(&p.post1)
            + layer(&p.down)
            + cell(&p.cell2)
            + post(&p.post2)
            + layer(&p.fc1)
            + layer(&p.fc2)
    }
}

/// Decodes and validates a blob; every input gives a model or an error, never a panic. The
/// model borrows its weights from `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Model<'_>, DecodeError> {
    if bytes.len() < HEADER_LEN {
        // A short prefix of something else is still "bad magic" if the magic is wrong.
        if bytes.len() >= 4 && bytes[..4] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        return Err(DecodeError::Truncated);
    }
    if bytes[..4] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let len = u32::from_le_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]) as u64;
    let expected = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]);
    let rest = &bytes[HEADER_LEN..];
    if (rest.len() as u64) < len {
        return Err(DecodeError::Truncated);
    }
    if (rest.len() as u64) > len {
        return Err(DecodeError::TrailingBytes);
    }
    let found = crc32::crc32(rest);
    if found != expected {
        return Err(DecodeError::ChecksumMismatch { expected, found });
    }
    let (parts, tail): (ModelParts<'_>, &[u8]) =
        postcard::take_from_bytes(rest).map_err(|_| DecodeError::Malformed)?;
    if !tail.is_empty() {
        return Err(DecodeError::Malformed);
    }
    Ok(Model::new(parts)?)
}

/// Encodes `parts` (validated first) as a blob into `out`; returns the blob length.
pub fn encode_into(parts: &ModelParts<'_>, out: &mut [u8]) -> Result<usize, EncodeError> {
    Model::new(parts.clone()).map_err(EncodeError::Invalid)?;
    if out.len() < HEADER_LEN {
        return Err(EncodeError::BufferTooSmall);
    }
    let (head, body) = out.split_at_mut(HEADER_LEN);
    let n = postcard::to_slice(parts, body)
        .map_err(|_| EncodeError::BufferTooSmall)?
        .len();
    let len = u32::try_from(n).map_err(|_| EncodeError::TooLarge)?;
    let crc = crc32::crc32(&body[..n]);
    head[..4].copy_from_slice(&MAGIC);
    head[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    head[6..10].copy_from_slice(&len.to_le_bytes());
    head[10..14].copy_from_slice(&crc.to_le_bytes());
    Ok(HEADER_LEN + n)
}

/// Length of the blob [`encode_into`] would write.
pub fn encoded_len(parts: &ModelParts<'_>) -> Result<usize, EncodeError> {
    let n = postcard::serialize_with_flavor::<_, postcard::ser_flavors::Size, usize>(
        parts,
        postcard::ser_flavors::Size::default(),
    )
    .map_err(|_| EncodeError::TooLarge)?;
    Ok(HEADER_LEN + n)
}

/// Encodes `parts` (validated first) as a blob.
#[cfg(any(test, feature = "alloc"))]
pub fn encode(parts: &ModelParts<'_>) -> Result<alloc::vec::Vec<u8>, EncodeError> {
    let mut out = alloc::vec![0u8; encoded_len(parts)?];
    let n = encode_into(parts, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// Owned storage for building [`ModelParts`] on the host (quantisation, tests).
#[cfg(any(test, feature = "alloc"))]
pub mod owned {
    use super::*;
    use alloc::vec::Vec;

    /// An owned [`LayerParts`].
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct OwnedLayer {
        /// Weight bytes.
        pub weights: Vec<u8>,
        /// Bias bytes (`i32` LE).
        pub bias: Vec<u8>,
        /// Shift bytes (`i8`).
        pub shift: Vec<u8>,
    }

    impl OwnedLayer {
        /// Packs integer weights (clamped to the range of `bits`), biases and shifts.
        pub fn new(bits: Bits, weights: &[i32], bias: &[i32], shift: &[i8]) -> OwnedLayer {
            let mut w = Vec::with_capacity(weights.len() * bits.bytes());
            for &q in weights {
                let q = q.clamp(-bits.qmax() - 1, bits.qmax());
                match bits {
                    Bits::B8 => w.push(q as i8 as u8),
                    Bits::B16 => w.extend_from_slice(&(q as i16).to_le_bytes()),
                }
            }
            OwnedLayer {
                weights: w,
                bias: i32s_to_le(bias),
                shift: shift.iter().map(|&s| s as u8).collect(),
            }
        }

        /// An owned copy of `l`.
        pub fn from_view(l: &LayerParts<'_>) -> OwnedLayer {
            OwnedLayer {
                weights: l.weights.to_vec(),
                bias: l.bias.to_vec(),
                shift: l.shift.to_vec(),
            }
        }

        /// The borrowed view.
        pub fn view(&self) -> LayerParts<'_> {
            LayerParts {
                weights: &self.weights,
                bias: &self.bias,
                shift: &self.shift,
            }
        }
    }

    /// `i32`s as little-endian bytes.
    pub fn i32s_to_le(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// An owned [`CellParts`].
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct OwnedCell {
        /// Format exponent.
        pub exp: u8,
        /// One entry per edge.
        pub convs: Vec<Option<OwnedLayer>>,
    }

    /// An owned [`PostParts`].
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct OwnedPost {
        /// Format exponent.
        pub exp: u8,
        /// Multipliers, `i32` LE.
        pub mul: Vec<u8>,
        /// Offsets, `i32` LE.
        pub add: Vec<u8>,
        /// Right shift.
        pub shift: u8,
    }

    impl OwnedPost {
        /// A post stage from per-channel integers.
        pub fn new(exp: u8, mul: &[i32], add: &[i32], shift: u8) -> OwnedPost {
            OwnedPost {
                exp,
                mul: i32s_to_le(mul),
                add: i32s_to_le(add),
                shift,
            }
        }
    }

    /// An owned [`ModelParts`].
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct OwnedModel {
        /// The dataset.
        pub dataset: DatasetKind,
        /// The network's shape.
        pub shape: Shape,
        /// Genotype.
        pub genotype: Genotype,
        /// Weight precision.
        pub bits: Bits,
        /// Input format.
        pub input: InputParts,
        /// Stem.
        pub stem: OwnedLayer,
        /// Cell 1.
        pub cell1: OwnedCell,
        /// Post-cell-1 stage.
        pub post1: OwnedPost,
        /// Down conv.
        pub down: OwnedLayer,
        /// Cell 2.
        pub cell2: OwnedCell,
        /// Post-cell-2 stage.
        pub post2: OwnedPost,
        /// fc1.
        pub fc1: OwnedLayer,
        /// Hidden LIF format.
        pub hidden_exp: u8,
        /// fc2.
        pub fc2: OwnedLayer,
        /// Logit format.
        pub out_exp: u8,
    }

    fn cell_view(c: &OwnedCell) -> CellParts<'_> {
        let mut convs = heapless::Vec::new();
        for l in c.convs.iter().take(NUM_EDGES) {
            let _ = convs.push(l.as_ref().map(OwnedLayer::view));
        }
        CellParts { exp: c.exp, convs }
    }

    fn post_view(p: &OwnedPost) -> PostParts<'_> {
        PostParts {
            exp: p.exp,
            mul: &p.mul,
            add: &p.add,
            shift: p.shift,
        }
    }

    impl OwnedModel {
        /// An owned copy of a model's parts (e.g. of a decoded blob, to edit and re-encode).
        pub fn from_parts(p: &ModelParts<'_>) -> OwnedModel {
            let cell = |c: &CellParts<'_>| OwnedCell {
                exp: c.exp,
                convs: c
                    .convs
                    .iter()
                    .map(|l| l.as_ref().map(OwnedLayer::from_view))
                    .collect(),
            };
            let post = |q: &PostParts<'_>| OwnedPost {
                exp: q.exp,
                mul: q.mul.to_vec(),
                add: q.add.to_vec(),
                shift: q.shift,
            };
            OwnedModel {
                dataset: p.dataset,
                shape: p.shape,
                genotype: p.genotype.clone(),
                bits: p.bits,
                input: p.input.clone(),
                stem: OwnedLayer::from_view(&p.stem),
                cell1: cell(&p.cell1),
                post1: post(&p.post1),
                down: OwnedLayer::from_view(&p.down),
                cell2: cell(&p.cell2),
                post2: post(&p.post2),
                fc1: OwnedLayer::from_view(&p.fc1),
                hidden_exp: p.hidden_exp,
                fc2: OwnedLayer::from_view(&p.fc2),
                out_exp: p.out_exp,
            }
        }

        /// The borrowed view (unvalidated; see [`Model::new`]).
        pub fn parts(&self) -> ModelParts<'_> {
            ModelParts {
                dataset: self.dataset,
                shape: self.shape,
                genotype: self.genotype.clone(),
                bits: self.bits,
                input: self.input.clone(),
                stem: self.stem.view(),
                cell1: cell_view(&self.cell1),
                post1: post_view(&self.post1),
                down: self.down.view(),
                cell2: cell_view(&self.cell2),
                post2: post_view(&self.post2),
                fc1: self.fc1.view(),
                hidden_exp: self.hidden_exp,
                fc2: self.fc2.view(),
                out_exp: self.out_exp,
            }
        }

        /// Validates and encodes as a blob.
        pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
            encode(&self.parts())
        }
    }
}
