//! Allocation-free, event-driven integer inference of a decoded [`Model`].
//!
//! # Arithmetic
//! - Activations (stem output, node sums `x_i`, node inputs `x_i + B_i`, back states `B_i`,
//!   membranes) are `i16` in the format of their layer (value = `int / 2^exp`, see
//!   [`crate::model`]); every add into an `i16` saturates. Accumulators of weighted layers are
//!   `i32` with saturating adds (`i64` in the dense stem, whose inputs are `i16`).
//! - [`round_shift`]`(x, s)`: `s > 0` is a right shift with round half up,
//!   `(x + 2^(s-1)) >> s` (arithmetic shift = floor); `s < 0` is a saturating left shift.
//! - LIF charge, tau = 4/3, `V <- V + (X - V) * 3/4 = (V + 3X) / 4`: computed exactly in `i32` as
//!   `(V + 3X + 2) >> 2`, i.e. `(V + 3X) / 4` rounded half up; the result always fits an `i16`
//!   (it lies between `V` and `X`), so no saturation is needed. Fire if `V >= 2^exp` (threshold
//!   1.0), then hard reset to 0. Membranes start at 0 on [`Engine::reset`].
//! - AvgPool 3x3: the sum of the 9 neighbours (zero padding) divided by 9, rounded half up
//!   (`floor((2 sum + 9) / 18)`). MaxPool 3x3 ignores padding.
//! - Node sums add their incoming edges in canonical edge order, saturating after each edge.
//!
//! # Event-driven layers and spike maps
//! Spike maps are bit-packed, LSB-first in `u64` words (bit `i` is `word[i / 64] >> (i % 64)`),
//! in HWC order: neuron `(c, y, x)` of a `C x H x W` map is bit `(y * W + x) * C + c`. Padding bits
//! of the last word are 0. Every layer fed by spikes (cell convs, the down conv, fc1, fc2) walks
//! the set bits only and adds, per spike, a contiguous weight column of `C_out` values (weights
//! are stored `[ci][ky][kx][co]`): its cost follows the spike count. Convolutions scan their
//! input once and accumulate into a ring of four padded output rows (`conv` module; the down
//! conv's MaxPool2 is fused), so no full-size accumulator tensor is ever needed and no spike
//! tests a border. With `i8` weights and 4, 8 or 16 output channels the accumulators are `i16`
//! lanes added two at a time with `SXTAB16` (feature `dsp` on Cortex-M4/M7, portable code
//! elsewhere), wherever the weight sums prove the result equal to the saturating `i32` adds of
//! the definition above; every other layer uses those `i32` adds. Only the stem is dense (its
//! input is real-valued): static input runs it once per sample, event input once per frame
//! (with the DVS MaxPool2 fused).
//!
//! # Buffers
//! The caller provides three arenas sized by [`buffer_sizes`] (or the `const`
//! [`buffer_sizes_for`]): `act` (`i16`), `acc` (`i32`), `bits` (`u64`). The four node tensors are
//! transient and shared by both cells; back states and membranes persist across timesteps.
//!
//! # Use
//! ```ignore
//! use snn_nostd::engine::{buffer_sizes, buffer_sizes_for, quantize_input_u8, Engine};
//! use snn_nostd::model::decode;
//!
//! static BLOB: &[u8] = include_bytes!("model.lsnn");
//! // Sizes known at build time (same dims and genotype as the blob), checked by Engine::new:
//! // const SIZES: BufferSizes = buffer_sizes_for(&DIMS, CellType::Backward, &OPS);
//! let model = decode(BLOB)?;
//! let s = buffer_sizes(&model);
//! let (mut act, mut acc, mut bits) = ([0i16; N_ACT], [0i32; N_ACC], [0u64; N_BITS]);
//! let mut engine = Engine::new(&model, &mut act, &mut acc, &mut bits)?;
//! let mut input = [0i16; N_INPUT]; // s.input elements
//! quantize_input_u8(&model, &raw_rgb_planes, &mut input)?;
//! let class = engine.infer(&input, &mut ())?; // or a SpikeObserver for SAHD codes
//! for layer in engine.stats() { /* layer.spikes, layer.sar() */ }
//! ```

#[cfg(test)]
use crate::bits::count_ones_range;
use crate::bits::{for_each_set_bit, set_bit, words_for};
use crate::genotype::{CellType, Genotype, Op, NUM_EDGES, NUM_NODES};
use crate::model::{Bits, CellParts, CellPlan, Dims, InputKind, LayerParts, Model, PostParts};
use core::fmt;

// ---------------------------------------------------------------------------------------------
// Bit helpers live in `crate::bits` (same LSB-first u64 layout as the SAHD kernel).

// ---------------------------------------------------------------------------------------------
// Arithmetic.

/// Shifts `x` right by `s` with round half up (`s > 0`), or left by `-s` with saturation
/// (`s < 0`). `s` is clamped to `-62..=62`.
#[inline]
pub fn round_shift(x: i64, s: i32) -> i64 {
    let s = s.clamp(-62, 62);
    if s > 0 {
        // floor((x + 2^(s-1)) / 2^s) without overflow: floor(x / 2^s) + bit s-1 of x.
        (x >> s) + ((x >> (s - 1)) & 1)
    } else if s < 0 {
        let l = (-s) as u32;
        if x.unsigned_abs() > (i64::MAX >> l) as u64 {
            if x < 0 {
                i64::MIN
            } else {
                i64::MAX
            }
        } else {
            x << l
        }
    } else {
        x
    }
}

/// Saturates to `i16`.
#[inline]
pub fn sat_i16(x: i64) -> i16 {
    x.clamp(i16::MIN as i64, i16::MAX as i64) as i16
}

/// Saturates to `i32`.
#[inline]
pub fn sat_i32(x: i64) -> i32 {
    x.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// Bound of [`requant`]'s result: any `|v| >= 2^17` saturates `dst + v` for every `i16` `dst`.
const REQUANT_BOUND: i64 = 1 << 17;

/// `round_shift(a, s)` in 32-bit arithmetic, clamped to `±2^17` where a left shift would make it
/// larger: the same `sat_i16(d + v)` for every `i16` `d`, and the same `sat_i16(v)`, as the
/// `i64` [`round_shift`] (tested against it).
#[inline(always)]
fn requant(a: i32, s: i32) -> i32 {
    if s > 0 {
        if s >= 32 {
            // |a| < 2^31 <= 2^(s-1): rounds to 0 (round half up of a value in (-1/2, 1/2)).
            0
        } else {
            (a >> s) + ((a >> (s - 1)) & 1)
        }
    } else if s == 0 {
        a.clamp(-(REQUANT_BOUND as i32), REQUANT_BOUND as i32)
    } else {
        let l = (-s).min(18) as u32;
        ((a as i64) << l).clamp(-REQUANT_BOUND, REQUANT_BOUND) as i32
    }
}

/// LIF charge with tau = 4/3: `(v + 3x) / 4` rounded half up, exactly (`(v + 3x + 2) >> 2`).
#[inline]
pub fn lif_charge(v: i16, x: i16) -> i16 {
    // |v + 3x + 2| <= 4 * 32768, and the quotient lies between v and x: no overflow.
    ((v as i32 + 3 * x as i32 + 2) >> 2) as i16
}

/// One LIF step: charge, fire if `v >= threshold`, hard reset to 0. Returns the spike.
#[inline]
pub fn lif_update(v: &mut i16, x: i16, threshold: i16) -> bool {
    let nv = lif_charge(*v, x);
    if nv >= threshold {
        *v = 0;
        true
    } else {
        *v = nv;
        false
    }
}

/// The threshold 1.0 in format `exp` (`exp <= 14`).
#[inline]
fn threshold(exp: u8) -> i16 {
    1i16 << exp.min(14)
}

/// Weight element access, monomorphised for `i8` and little-endian `i16`.
trait Wt {
    const BYTES: usize;
    fn at(w: &[u8], i: usize) -> i32;
    /// `acc[o] += col[o]`, saturating (the reference's adds).
    fn add_col(acc: &mut [i32], col: &[u8]);
    /// `acc[o] += col[o]`, wrapping (only where no sum can leave the `i32` range).
    fn add_col_wrapping(acc: &mut [i32], col: &[u8]);
}

struct W8;
struct W16;

impl Wt for W8 {
    const BYTES: usize = 1;
    #[inline]
    fn at(w: &[u8], i: usize) -> i32 {
        w[i] as i8 as i32
    }
    #[inline]
    fn add_col(acc: &mut [i32], col: &[u8]) {
        for (a, &b) in acc.iter_mut().zip(col) {
            *a = a.saturating_add(b as i8 as i32);
        }
    }
    #[inline(always)]
    fn add_col_wrapping(acc: &mut [i32], col: &[u8]) {
        for (a, &b) in acc.iter_mut().zip(col) {
            *a = a.wrapping_add(b as i8 as i32);
        }
    }
}

impl Wt for W16 {
    const BYTES: usize = 2;
    #[inline]
    fn at(w: &[u8], i: usize) -> i32 {
        i16::from_le_bytes([w[2 * i], w[2 * i + 1]]) as i32
    }
    #[inline]
    fn add_col(acc: &mut [i32], col: &[u8]) {
        for (a, b) in acc.iter_mut().zip(col.chunks_exact(2)) {
            *a = a.saturating_add(i16::from_le_bytes([b[0], b[1]]) as i32);
        }
    }
    /// Two weights per 32-bit load: the low one sign-extended and added (`SXTAH`), the high one
    /// added arithmetic-shifted (`ADD ..., ASR #16`).
    #[inline(always)]
    fn add_col_wrapping(acc: &mut [i32], col: &[u8]) {
        let mut quads = acc.chunks_exact_mut(4);
        let mut wq = col.chunks_exact(8);
        for (a, w) in (&mut quads).zip(&mut wq) {
            if let (Ok(a), Ok(w)) = (a.try_into(), w.try_into()) {
                crate::simd::add_i16x4(a, w);
            }
        }
        for (a, w) in quads
            .into_remainder()
            .chunks_exact_mut(2)
            .zip(wq.remainder().chunks_exact(4))
        {
            let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            a[0] = crate::simd::sxtah(a[0], w);
            a[1] = crate::simd::add_asr16(a[1], w);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Kernels.

/// A `c x h x w` map (stored HWC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Geom {
    c: usize,
    h: usize,
    w: usize,
}

impl Geom {
    fn len(&self) -> usize {
        self.c * self.h * self.w
    }
}

/// The event-driven `k x k` conv of `spk` by `l` (`g.c -> c_out`) into `out`, on the accumulator
/// `kernel` ([`conv::Kernel::choose`]); or, given `dense` scratch, the dense baseline (where
/// exact, see [`dense::dense_exact`]).
#[allow(clippy::too_many_arguments)]
fn conv_edge<W: Wt>(
    spk: &[u64],
    g: Geom,
    k: usize,
    l: &LayerParts<'_>,
    kernel: conv::Kernel,
    c_out: usize,
    out: conv::Out<'_>,
    ring: &mut [i32],
    dense: Option<&mut [i32]>,
) -> u64 {
    #[cfg(any(feature = "dense", test))]
    if let Some(scratch) = dense {
        if dense::dense_exact::<W>(l, c_out) {
            return dense::conv_dense::<W>(spk, g, k, l, c_out, out, scratch);
        }
    }
    #[cfg(not(any(feature = "dense", test)))]
    let _ = dense;
    match kernel {
        conv::Kernel::Lanes16(f) | conv::Kernel::Lanes32(f) => f(spk, g, l, out, ring),
        conv::Kernel::Sat => conv::conv::<conv::Sat<W>>(spk, g, k, l, W::BYTES, c_out, out, ring),
    }
}

/// `dst += pool3x3(src)` (stride 1, pad 1), HWC, saturating. `avg`: AvgPool (divide by 9, round
/// half up, zero padding counted); else MaxPool (padding ignored). Separable: for each output
/// row, the vertical sums (maxima) of the rows it covers go into `col` (scratch of at least
/// `g.w * g.c` words), then three neighbouring columns of `col` give each output, the same
/// values as summing (maximising) the 3x3 window directly.
fn pool3_add(src: &[i16], g: Geom, avg: bool, dst: &mut [i16], col: &mut [i32]) {
    if avg {
        pool3::<true>(src, g, dst, col);
    } else {
        pool3::<false>(src, g, dst, col);
    }
}

/// [`pool3_add`] for one pool kind (`AVG`), so that the inner loops do not branch on it.
fn pool3<const AVG: bool>(src: &[i16], g: Geom, dst: &mut [i16], col: &mut [i32]) {
    let avg = AVG;
    let (c, w) = (g.c, g.w);
    let rl = w * c;
    if rl == 0 {
        return;
    }
    let col = &mut col[..rl];
    let out = |v: i32| -> i32 {
        if avg {
            // floor((2 v + 9) / 18) for |2 v + 9| < 18 * 2^15, on a positive offset (a
            // multiply-by-reciprocal instead of a signed division).
            const OFF: i32 = 18 << 15;
            ((2 * v + 9 + OFF) as u32 / 18) as i32 - (1 << 15)
        } else {
            v
        }
    };
    let comb = |a: i32, b: i32| if avg { a + b } else { a.max(b) };
    for y in 0..g.h {
        let (y0, y1) = (y.saturating_sub(1), (y + 1).min(g.h - 1));
        for (a, &v) in col.iter_mut().zip(&src[y0 * rl..(y0 + 1) * rl]) {
            *a = v as i32;
        }
        for yy in y0 + 1..=y1 {
            for (a, &v) in col.iter_mut().zip(&src[yy * rl..(yy + 1) * rl]) {
                *a = comb(*a, v as i32);
            }
        }
        let d = &mut dst[y * rl..(y + 1) * rl];
        let put = |d: &mut i16, v: i32| *d = (*d as i32 + out(v)).clamp(-32768, 32767) as i16;
        if w == 1 {
            for (dv, &a) in d.iter_mut().zip(col.iter()) {
                put(dv, a);
            }
            continue;
        }
        // First and last column: two neighbours.
        for ch in 0..c {
            put(&mut d[ch], comb(col[ch], col[c + ch]));
            let l = rl - c + ch;
            put(&mut d[l], comb(col[l - c], col[l]));
        }
        // Interior columns: three.
        let (left, mid, right) = (&col[..rl - 2 * c], &col[c..rl - c], &col[2 * c..]);
        for (dv, ((&l, &m), &r)) in d[c..rl - c].iter_mut().zip(left.iter().zip(mid).zip(right)) {
            put(dv, comb(comb(l, m), r));
        }
    }
}

/// `dst += src`, saturating.
fn add_sat(dst: &mut [i16], src: &[i16]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = d.saturating_add(s);
    }
}

/// A LIF layer over `mem.len()` neurons whose input `i` is `input(i)` (called once per neuron,
/// in increasing `i`); writes the packed spikes into `bits` and returns the spike count.
#[inline]
fn lif_layer(
    mem: &mut [i16],
    th: i16,
    bits: &mut [u64],
    mut input: impl FnMut(usize) -> i16,
) -> u64 {
    let mut count = 0u64;
    for (wi, (chunk, out)) in mem.chunks_mut(64).zip(bits.iter_mut()).enumerate() {
        let mut word = 0u64;
        for (b, v) in chunk.iter_mut().enumerate() {
            if lif_update(v, input(wi * 64 + b), th) {
                word |= 1u64 << b;
            }
        }
        *out = word;
        count += word.count_ones() as u64;
    }
    count
}

/// Event-driven linear layer: `acc = bias + sum of the weight rows of the set bits of
/// spk[..n_in]` (weights `[in][out]`). Returns the number of weight adds.
fn fc_event<W: Wt>(spk: &[u64], n_in: usize, layer: &LayerParts<'_>, acc: &mut [i32]) -> u64 {
    let n_out = acc.len();
    for (o, a) in acc.iter_mut().enumerate() {
        *a = layer.bias_at(o);
    }
    let col = n_out * W::BYTES;
    let mut ops = 0;
    for_each_set_bit(spk, 0, n_in, |j| {
        W::add_col(acc, &layer.weights[j * col..(j + 1) * col]);
        ops += n_out as u64;
    });
    ops
}

// ---------------------------------------------------------------------------------------------
// Public engine types.

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

/// Spike counts of one LIF layer since the last [`Engine::reset_stats`].
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

/// Scratch sizes, in elements of each arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BufferSizes {
    /// `i16` activations: nodes, back states, membranes, cached stem output.
    pub act: usize,
    /// `i32` accumulators: conv output-row ring, fc outputs, class scores.
    pub acc: usize,
    /// `u64` words of bit-packed spike maps.
    pub bits: usize,
    /// `i16` elements of one quantised input sample (the caller's input buffer; not part of
    /// [`BufferSizes::bytes`]).
    pub input: usize,
    /// Whether the engine can hold the input itself ([`Engine::staged_input`]: static input
    /// whose frame fits a node buffer), so that a caller using [`Engine::infer_staged`] needs
    /// no input buffer.
    pub input_staged: bool,
}

impl BufferSizes {
    /// Bytes of the three arenas (`act * 2 + acc * 4 + bits * 8`).
    pub const fn bytes(&self) -> usize {
        self.act
            .saturating_mul(2)
            .saturating_add(self.acc.saturating_mul(4))
            .saturating_add(self.bits.saturating_mul(8))
    }

    /// Bytes of the arenas plus the input buffer (none where the input is staged).
    pub const fn bytes_with_input(&self) -> usize {
        if self.input_staged {
            self.bytes()
        } else {
            self.bytes().saturating_add(self.input.saturating_mul(2))
        }
    }
}

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// Arena layout, shared by [`buffer_sizes_for`] and [`Engine::new`].
#[derive(Clone, Copy)]
struct Layout {
    n1: usize,
    n2: usize,
    nmax: usize,
    stem: usize,
    row: usize,
}

/// `lanes_only`: every conv runs on `i16` lanes, so the ring needs half the words.
const fn layout(d: &Dims, lanes_only: bool) -> Layout {
    let n1 = d.n1();
    let n2 = d.n2();
    let (_, w1) = d.cell1_hw();
    let (_, w2) = d.cell2_hw();
    let c1 = d.c1 as usize;
    let c2 = d.c2 as usize;
    let ring = max(conv::ring_len(w1, max(c1, c2)), conv::ring_len(w2, c2));
    let ring = if lanes_only { ring / 2 } else { ring };
    let row = max(ring, max(d.hidden as usize, stem::scratch_len(d)));
    Layout {
        n1,
        n2,
        nmax: max(n1, n2),
        stem: match d.input {
            InputKind::Static => n1,
            InputKind::Events => 0,
        },
        row,
    }
}

/// Scratch sizes for a network of shape `dims` whose cells have genotype `ops` (one op per edge
/// of `cell`). `const`, so firmware can size static buffers at build time; [`Engine::new`]
/// checks them at start-up. They do not depend on the weights, so they can exceed
/// [`buffer_sizes`] (by the half of the conv ring that `i16` lanes do not need).
pub const fn buffer_sizes_for(dims: &Dims, cell: CellType, ops: &[Op]) -> BufferSizes {
    sizes(dims, cell, ops, false)
}

const fn sizes(dims: &Dims, cell: CellType, ops: &[Op], lanes_only: bool) -> BufferSizes {
    let plan = CellPlan::new(cell, ops);
    let l = layout(dims, lanes_only);
    let per_cell = plan.backs() + plan.lifs();
    let hidden = dims.hidden as usize;
    let act = l
        .stem
        .saturating_add(l.nmax.saturating_mul(plan.slots as usize))
        .saturating_add(per_cell.saturating_mul(l.n1.saturating_add(l.n2)))
        .saturating_add(l.n1)
        .saturating_add(l.n2)
        .saturating_add(hidden);
    let bits = (plan.lifs() + 1)
        .saturating_mul(words_for(l.n1).saturating_add(words_for(l.n2)))
        .saturating_add(words_for(dims.fc1_in()))
        .saturating_add(words_for(hidden));
    let acc = l
        .row
        .saturating_add(dims.outputs())
        .saturating_add(dims.classes as usize);
    BufferSizes {
        act,
        acc,
        bits,
        input: dims.input_len(),
        input_staged: matches!(dims.input, InputKind::Static) && l.nmax >= dims.input_len(),
    }
}

/// `i32` words of scratch the dense baseline needs ([`Engine::use_dense`]).
pub fn dense_scratch_len(model: &Model<'_>) -> usize {
    dense::scratch_len(model.dims())
}

/// Scratch sizes for `model`.
pub fn buffer_sizes(model: &Model<'_>) -> BufferSizes {
    let g = model.genotype();
    let lanes_only = KernelPlan::new(model).lanes16_only(model);
    sizes(model.dims(), g.cell(), g.ops(), lanes_only)
}

/// Why the engine refused to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EngineError {
    /// A scratch arena is smaller than [`buffer_sizes`] requires.
    BufferTooSmall {
        /// `act`, `acc` or `bits`.
        buffer: &'static str,
        /// Elements required.
        needed: usize,
        /// Elements given.
        got: usize,
    },
    /// [`Engine::infer_staged`] on a model whose input the engine cannot hold (event input, or
    /// a frame larger than a node buffer).
    NoStagedInput,
    /// An input slice has the wrong length.
    InputLength {
        /// Elements expected.
        expected: usize,
        /// Elements given.
        got: usize,
    },
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::BufferTooSmall {
                buffer,
                needed,
                got,
            } => write!(
                f,
                "engine buffer `{buffer}` too small: needs {needed} elements, got {got}"
            ),
            EngineError::NoStagedInput => {
                f.write_str("this model's input cannot be staged in the engine's buffers")
            }
            EngineError::InputLength { expected, got } => {
                write!(f, "input has {got} elements, expected {expected}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EngineError {}

/// Quantises raw `u8` input (whole CHW frames: CIFAR RGB planes, or event counts) into the
/// model's `i16` input format, using the blob's integer normalisation if it has one (else
/// `q = raw << exp`). The host and the device share this code, so they feed identical inputs.
pub fn quantize_input_u8(
    model: &Model<'_>,
    raw: &[u8],
    out: &mut [i16],
) -> Result<(), EngineError> {
    let d = model.dims();
    check_input_len(d, raw.len(), out.len())?;
    let plane = d.in_h as usize * d.in_w as usize;
    let frame = d.frame_len();
    let inp = &model.parts().input;
    for (i, (&r, o)) in raw.iter().zip(out.iter_mut()).enumerate() {
        let c = (i % frame) / plane;
        *o = match &inp.norm {
            Some(n) => {
                let v = r as i64 * n.mul[c] as i64 + n.add[c] as i64;
                sat_i16(round_shift(v, n.shift as i32))
            }
            None => sat_i16(round_shift(r as i64, -(inp.exp as i32))),
        };
    }
    Ok(())
}

/// Quantises real-valued input (already normalised, whole CHW frames) into the model's input
/// format: `round(x * 2^exp)` (half away from zero), saturated; NaN gives 0.
pub fn quantize_input_f32(
    model: &Model<'_>,
    x: &[f32],
    out: &mut [i16],
) -> Result<(), EngineError> {
    let d = model.dims();
    check_input_len(d, x.len(), out.len())?;
    let scale = (1u32 << model.parts().input.exp) as f32;
    for (&v, o) in x.iter().zip(out.iter_mut()) {
        let s = v * scale;
        let r = if s >= 0.0 { s + 0.5 } else { s - 0.5 };
        *o = r as i16; // `as` saturates and maps NaN to 0
    }
    Ok(())
}

fn check_input_len(d: &Dims, n: usize, out: usize) -> Result<(), EngineError> {
    let frame = d.frame_len();
    if n == 0 || !n.is_multiple_of(frame) || n != out {
        return Err(EngineError::InputLength {
            expected: if n != out { out } else { frame },
            got: n,
        });
    }
    Ok(())
}

/// Per-cell persistent state.
struct CellState<'b> {
    back: [&'b mut [i16]; 3],
    mem: [&'b mut [i16]; NUM_NODES],
    spk: [&'b mut [u64]; NUM_NODES],
}

/// Takes the next `n` elements of `rest`.
fn carve<'x, T>(rest: &mut &'x mut [T], n: usize) -> &'x mut [T] {
    let r = core::mem::take(rest);
    let (a, b) = r.split_at_mut(n);
    *rest = b;
    a
}

/// Counters and the observer, threaded through a timestep.
struct Ctx<'o, O: SpikeObserver> {
    obs: &'o mut O,
    t: usize,
    stats: &'o mut [LayerStats],
}

impl<O: SpikeObserver> Ctx<'_, O> {
    fn report(&mut self, layer: LayerId, code: &[u64], neurons: usize, spikes: u64) {
        if let Some(s) = self.stats.iter_mut().find(|s| s.layer == layer) {
            s.spikes += spikes;
            s.steps += 1;
        }
        self.obs.on_spikes(self.t, layer, code, neurons);
    }
}

/// The accumulator of every convolution ([`conv::Kernel::choose`]), fixed when the engine is
/// built.
#[derive(Clone, Copy)]
struct KernelPlan {
    /// Per cell, per edge: the conv's kernel (`Sat` where the edge has no conv).
    cells: [[conv::Kernel; NUM_EDGES]; 2],
    /// The down conv.
    down: conv::Kernel,
}

impl KernelPlan {
    fn new(model: &Model<'_>) -> KernelPlan {
        match model.bits() {
            Bits::B8 => Self::with::<W8>(model),
            Bits::B16 => Self::with::<W16>(model),
        }
    }

    fn with<W: Wt>(model: &Model<'_>) -> KernelPlan {
        let p = model.parts();
        let d = model.dims();
        let bits = model.bits();
        let g = model.genotype();
        let cell = |cp: &CellParts<'_>, c: u16| {
            let mut ks = [conv::Kernel::Sat; NUM_EDGES];
            for (k, (l, &op)) in cp.convs.iter().zip(g.ops()).enumerate() {
                let size = if op == Op::Conv1 { 1 } else { 3 };
                if let Some(l) = l {
                    ks[k] = conv::Kernel::choose::<W>(l, bits, size, c as usize);
                }
            }
            ks
        };
        KernelPlan {
            cells: [cell(&p.cell1, d.c1), cell(&p.cell2, d.c2)],
            down: conv::Kernel::choose::<W>(&p.down, bits, 3, d.c2 as usize),
        }
    }

    /// Whether every conv of `model` (cells and down conv) runs on `i16` lanes (then the ring
    /// needs half the words).
    fn lanes16_only(&self, model: &Model<'_>) -> bool {
        let p = model.parts();
        let is16 = |k: &conv::Kernel| matches!(k, conv::Kernel::Lanes16(_));
        let covered = |cp: &CellParts<'_>, ks: &[conv::Kernel; NUM_EDGES]| {
            cp.convs.iter().zip(ks).all(|(l, k)| l.is_none() || is16(k))
        };
        is16(&self.down) && covered(&p.cell1, &self.cells[0]) && covered(&p.cell2, &self.cells[1])
    }
}

/// The integer inference engine: a model plus caller-provided scratch.
pub struct Engine<'m, 'b> {
    model: &'m Model<'m>,
    stem_out: &'b mut [i16],
    stem_valid: bool,
    nodes: [&'b mut [i16]; NUM_NODES],
    cells: [CellState<'b>; 2],
    post_mem: [&'b mut [i16]; 2],
    post_spk: [&'b mut [u64]; 2],
    pooled: &'b mut [u64],
    hid_mem: &'b mut [i16],
    hid_spk: &'b mut [u64],
    row: &'b mut [i32],
    out: &'b mut [i32],
    scores: &'b mut [i32],
    kernels: KernelPlan,
    /// [`BufferSizes::input_staged`].
    input_staged: bool,
    /// Scratch of the dense baseline while it is selected ([`Engine::use_dense`]).
    dense: Option<&'b mut [i32]>,
    t: usize,
    stats: [LayerStats; MAX_LAYERS],
    n_stats: usize,
    synops: u64,
}

impl<'m, 'b> Engine<'m, 'b> {
    /// An engine over `model` using the arenas `act`, `acc`, `bits` (at least
    /// [`buffer_sizes`]; extra space is unused). The state starts reset.
    pub fn new(
        model: &'m Model<'m>,
        act: &'b mut [i16],
        acc: &'b mut [i32],
        bits: &'b mut [u64],
    ) -> Result<Engine<'m, 'b>, EngineError> {
        let need = buffer_sizes(model);
        for (buffer, needed, got) in [
            ("act", need.act, act.len()),
            ("acc", need.acc, acc.len()),
            ("bits", need.bits, bits.len()),
        ] {
            if got < needed {
                return Err(EngineError::BufferTooSmall {
                    buffer,
                    needed,
                    got,
                });
            }
        }
        let d = *model.dims();
        let plan = *model.plan();
        let kernels = KernelPlan::new(model);
        let l = layout(&d, kernels.lanes16_only(model));
        let hidden = d.hidden as usize;
        let mut act = act;
        let mut acc = acc;
        let mut bits = bits;
        let stem_out = carve(&mut act, l.stem);
        let nodes = [
            carve(&mut act, l.nmax),
            carve(&mut act, if plan.slots > 1 { l.nmax } else { 0 }),
            carve(&mut act, if plan.slots > 2 { l.nmax } else { 0 }),
            carve(&mut act, if plan.slots > 3 { l.nmax } else { 0 }),
        ];
        let cell = |n: usize, act: &mut &'b mut [i16], bits: &mut &'b mut [u64]| {
            let back: [&'b mut [i16]; 3] =
                core::array::from_fn(|i| carve(act, if plan.need_back[i] { n } else { 0 }));
            let mem: [&'b mut [i16]; 4] =
                core::array::from_fn(|i| carve(act, if plan.need_lif[i] { n } else { 0 }));
            let spk: [&'b mut [u64]; 4] = core::array::from_fn(|i| {
                carve(bits, if plan.need_lif[i] { words_for(n) } else { 0 })
            });
            CellState { back, mem, spk }
        };
        let c1 = cell(l.n1, &mut act, &mut bits);
        let c2 = cell(l.n2, &mut act, &mut bits);
        let post_mem = [carve(&mut act, l.n1), carve(&mut act, l.n2)];
        let post_spk = [
            carve(&mut bits, words_for(l.n1)),
            carve(&mut bits, words_for(l.n2)),
        ];
        let hid_mem = carve(&mut act, hidden);
        let pooled = carve(&mut bits, words_for(d.fc1_in()));
        let hid_spk = carve(&mut bits, words_for(hidden));
        let row = carve(&mut acc, l.row);
        let out = carve(&mut acc, d.outputs());
        let scores = carve(&mut acc, d.classes as usize);

        let mut stats = [LayerStats {
            layer: LayerId::Hidden,
            neurons: 0,
            spikes: 0,
            steps: 0,
        }; MAX_LAYERS];
        let mut n_stats = 0;
        let mut push = |layer: LayerId, neurons: usize| {
            stats[n_stats] = LayerStats {
                layer,
                neurons: neurons as u32,
                spikes: 0,
                steps: 0,
            };
            n_stats += 1;
        };
        for (cell, n) in [(1u8, l.n1), (2u8, l.n2)] {
            for node in 0..NUM_NODES {
                if plan.need_lif[node] {
                    push(
                        LayerId::Cell {
                            cell,
                            node: node as u8,
                        },
                        n,
                    );
                }
            }
            push(LayerId::Post { cell }, n);
        }
        push(LayerId::Hidden, hidden);

        let mut e = Engine {
            model,
            stem_out,
            stem_valid: false,
            nodes,
            cells: [c1, c2],
            post_mem,
            post_spk,
            pooled,
            hid_mem,
            hid_spk,
            row,
            out,
            scores,
            kernels,
            input_staged: need.input_staged,
            dense: None,
            t: 0,
            stats,
            n_stats,
            synops: 0,
        };
        e.reset();
        Ok(e)
    }

    /// Selects the dense baseline for the convolutions (every input multiplied, `SMLAD`
    /// direct convolution; same results, see the `dense` module) with `scratch` of at least
    /// [`dense_scratch_len`] words, until [`Engine::use_events`]. Feature `dense`.
    #[cfg(any(feature = "dense", test))]
    pub fn use_dense(&mut self, scratch: &'b mut [i32]) -> Result<(), EngineError> {
        let needed = dense_scratch_len(self.model);
        if scratch.len() < needed {
            return Err(EngineError::BufferTooSmall {
                buffer: "dense",
                needed,
                got: scratch.len(),
            });
        }
        self.dense = Some(scratch);
        Ok(())
    }

    /// Back to the event-driven convolutions; returns the dense scratch, if one was in use.
    /// Feature `dense`.
    #[cfg(any(feature = "dense", test))]
    pub fn use_events(&mut self) -> Option<&'b mut [i32]> {
        self.dense.take()
    }

    /// The model.
    pub fn model(&self) -> &'m Model<'m> {
        self.model
    }

    /// Starts a new sample: zeroes membranes, back states and class scores, timestep 0.
    /// Statistics are kept (see [`Engine::reset_stats`]).
    pub fn reset(&mut self) {
        for c in self.cells.iter_mut() {
            for b in c.back.iter_mut() {
                b.fill(0);
            }
            for m in c.mem.iter_mut() {
                m.fill(0);
            }
        }
        for m in self.post_mem.iter_mut() {
            m.fill(0);
        }
        self.hid_mem.fill(0);
        self.scores.fill(0);
        self.t = 0;
        self.stem_valid = false;
    }

    /// Zeroes the spike and synaptic-operation counters.
    pub fn reset_stats(&mut self) {
        for s in self.stats.iter_mut() {
            s.spikes = 0;
            s.steps = 0;
        }
        self.synops = 0;
    }

    /// Per-layer spike statistics, in network order (cell-1 LIFs by node, post 1, cell-2 LIFs,
    /// post 2, hidden).
    pub fn stats(&self) -> &[LayerStats] {
        &self.stats[..self.n_stats]
    }

    /// Synaptic operations (weight additions) since [`Engine::reset_stats`]; the dense stem's
    /// multiply-accumulates are not counted.
    pub fn synops(&self) -> u64 {
        self.synops
    }

    /// Timesteps run since [`Engine::reset`].
    pub fn timestep(&self) -> usize {
        self.t
    }

    /// Class scores: the fc2 outputs summed over each voting group and over the timesteps run,
    /// in format `out_exp` (real mean output = `score / (votes * T * 2^out_exp)`).
    pub fn scores(&self) -> &[i32] {
        self.scores
    }

    /// The predicted class: the first index of the largest score.
    pub fn prediction(&self) -> usize {
        let mut best = 0;
        for (i, &s) in self.scores.iter().enumerate() {
            if s > self.scores[best] {
                best = i;
            }
        }
        best
    }

    /// The bit-packed spike code (HWC) that `layer` produced at the latest timestep, with its
    /// neuron count; `None` if the network has no such layer.
    pub fn spikes(&self, layer: LayerId) -> Option<(&[u64], usize)> {
        let d = self.model.dims();
        let (n1, n2) = (d.n1(), d.n2());
        match layer {
            LayerId::Cell { cell, node } => {
                let node = node as usize;
                let n = match cell {
                    1 => n1,
                    2 => n2,
                    _ => return None,
                };
                if node >= NUM_NODES || !self.model.plan().need_lif[node] {
                    return None;
                }
                Some((&*self.cells[cell as usize - 1].spk[node], n))
            }
            LayerId::Post { cell: 1 } => Some((&*self.post_spk[0], n1)),
            LayerId::Post { cell: 2 } => Some((&*self.post_spk[1], n2)),
            LayerId::Post { .. } => None,
            LayerId::Hidden => Some((&*self.hid_spk, d.hidden as usize)),
        }
    }

    /// Runs a whole sample from [`Engine::reset`]: `input` is one quantised frame (static input,
    /// repeated for `T` timesteps) or `T` frames back to back (events). Returns the prediction;
    /// see also [`Engine::scores`].
    pub fn infer<O: SpikeObserver>(
        &mut self,
        input: &[i16],
        obs: &mut O,
    ) -> Result<usize, EngineError> {
        let d = *self.model.dims();
        if input.len() != d.input_len() {
            return Err(EngineError::InputLength {
                expected: d.input_len(),
                got: input.len(),
            });
        }
        self.reset();
        let frame = d.frame_len();
        for t in 0..d.t as usize {
            let f = match d.input {
                InputKind::Static => input,
                InputKind::Events => &input[t * frame..(t + 1) * frame],
            };
            self.step(f, obs)?;
        }
        Ok(self.prediction())
    }

    /// Runs one timestep on `frame` (one quantised CHW frame). For static input the frame is
    /// read only at the first step after [`Engine::reset`] (the stem output is cached).
    pub fn step<O: SpikeObserver>(
        &mut self,
        frame: &[i16],
        obs: &mut O,
    ) -> Result<(), EngineError> {
        let d = *self.model.dims();
        if frame.len() != d.frame_len() {
            return Err(EngineError::InputLength {
                expected: d.frame_len(),
                got: frame.len(),
            });
        }
        self.step_from(Some(frame), obs);
        Ok(())
    }

    /// The engine's own input buffer, for static input whose frame fits a node buffer
    /// ([`BufferSizes::input_staged`]): quantise a sample into it (e.g. with
    /// [`quantize_input_u8`]) and run [`Engine::infer_staged`], and the caller needs no input
    /// buffer. The buffer is free until the stem has read it; any step overwrites it.
    pub fn staged_input(&mut self) -> Option<&mut [i16]> {
        let d = *self.model.dims();
        let n = d.input_len();
        (self.input_staged && self.nodes[0].len() >= n).then(|| &mut self.nodes[0][..n])
    }

    /// [`Engine::infer`] of the sample in [`Engine::staged_input`].
    pub fn infer_staged<O: SpikeObserver>(&mut self, obs: &mut O) -> Result<usize, EngineError> {
        if self.staged_input().is_none() {
            return Err(EngineError::NoStagedInput);
        }
        self.reset();
        for _ in 0..self.model.dims().t {
            self.step_from(None, obs);
        }
        Ok(self.prediction())
    }

    /// One timestep on `frame`, or on the staged input (`None`; static input only).
    fn step_from<O: SpikeObserver>(&mut self, frame: Option<&[i16]>, obs: &mut O) {
        match self.model.bits() {
            Bits::B8 => self.step_w::<W8, O>(frame, obs),
            Bits::B16 => self.step_w::<W16, O>(frame, obs),
        }
        self.t += 1;
    }

    fn step_w<W: Wt, O: SpikeObserver>(&mut self, frame: Option<&[i16]>, obs: &mut O) {
        let model = self.model;
        let p = model.parts();
        let d = *model.dims();
        let plan = *model.plan();
        let g = &p.genotype;
        let (h1, w1) = d.cell1_hw();
        let (h2, w2) = d.cell2_hw();
        let (ph, pw) = d.pooled_hw();
        let (c1, c2) = (d.c1 as usize, d.c2 as usize);
        let g1 = Geom {
            c: c1,
            h: h1,
            w: w1,
        };
        let g2 = Geom {
            c: c2,
            h: h2,
            w: w2,
        };
        let (n1, n2) = (g1.len(), g2.len());
        let mut ctx = Ctx {
            obs,
            t: self.t,
            stats: &mut self.stats[..self.n_stats],
        };
        let mut synops = 0u64;

        // Stem -> cell-1 input x0 (nodes[0]).
        let (in_c, in_h, in_w) = (d.in_c as usize, d.in_h as usize, d.in_w as usize);
        let shape = stem::Shape {
            c: in_c,
            h: in_h,
            w: in_w,
            pool: d.stem_pool,
        };
        match d.input {
            InputKind::Static => {
                if !self.stem_valid {
                    // The staged input lives in node buffer 0, which the stem does not write.
                    let input = frame.unwrap_or(&self.nodes[0][..d.frame_len()]);
                    stem::stem::<W>(input, shape, &p.stem, c1, self.stem_out, self.row);
                    self.stem_valid = true;
                }
                self.nodes[0][..n1].copy_from_slice(self.stem_out);
            }
            InputKind::Events => {
                // `infer_staged` refuses event input: a frame is always given here.
                let frame = frame.unwrap_or(&[]);
                let dst = &mut self.nodes[0][..n1];
                stem::stem::<W>(frame, shape, &p.stem, c1, dst, self.row);
            }
        }

        // Cell 1 and cell 2, each followed by BN -> LIF.
        let stages = [(&p.cell1, &p.post1, g1), (&p.cell2, &p.post2, g2)];
        for (k, (cp, post, geom)) in stages.into_iter().enumerate() {
            if k == 1 {
                // Down conv + BN + MaxPool2 of the cell-1 spikes -> cell-2 input x0.
                synops += conv_edge::<W>(
                    self.post_spk[0],
                    g1,
                    3,
                    &p.down,
                    self.kernels.down,
                    c2,
                    conv::Out::MaxPool2(&mut self.nodes[0][..n2]),
                    self.row,
                    self.dense.as_deref_mut(),
                );
            }
            let cell = k as u8 + 1;
            synops += cell_step::<W, O>(
                &mut self.nodes,
                &mut self.cells[k],
                cp,
                g,
                &plan,
                geom,
                &self.kernels.cells[k],
                self.row,
                self.dense.as_deref_mut(),
                &mut ctx,
                cell,
            );
            let n = geom.len();
            let spikes = post_lif(
                &self.nodes[plan.slot[3] as usize][..n],
                geom.c,
                post,
                self.post_mem[k],
                self.post_spk[k],
            );
            ctx.report(LayerId::Post { cell }, self.post_spk[k], n, spikes);
        }

        // MaxPool(p) on the cell-2 spikes (OR).
        let pp = d.p as usize;
        self.pooled.fill(0);
        for_each_set_bit(self.post_spk[1], 0, n2, |idx| {
            let pix = idx / c2;
            let c = idx - pix * c2;
            let (y, x) = (pix / w2, pix % w2);
            let (py, px) = (y / pp, x / pp);
            if py < ph && px < pw {
                set_bit(self.pooled, (py * pw + px) * c2 + c);
            }
        });

        // fc1 -> hidden LIF.
        let hidden = d.hidden as usize;
        let acc = &mut self.row[..hidden];
        synops += fc_event::<W>(self.pooled, d.fc1_in(), &p.fc1, acc);
        let th = threshold(p.hidden_exp);
        let n = lif_layer(self.hid_mem, th, self.hid_spk, |i| {
            sat_i16(round_shift(acc[i] as i64, p.fc1.shift_at(i) as i32))
        });
        ctx.report(LayerId::Hidden, self.hid_spk, hidden, n);

        // fc2 -> voting -> scores.
        synops += fc_event::<W>(self.hid_spk, hidden, &p.fc2, self.out);
        let v = d.votes as usize;
        for (c, s) in self.scores.iter_mut().enumerate() {
            let mut sum = *s as i64;
            for (k, &a) in self.out[c * v..(c + 1) * v].iter().enumerate() {
                sum += sat_i32(round_shift(a as i64, p.fc2.shift_at(c * v + k) as i32)) as i64;
            }
            *s = sat_i32(sum);
        }
        self.synops += synops;
    }
}

/// Affine (folded BN) -> LIF over a cell output `x` (HWC, `c` channels).
fn post_lif(x: &[i16], c: usize, post: &PostParts<'_>, mem: &mut [i16], bits: &mut [u64]) -> u64 {
    let th = threshold(post.exp);
    // `round_shift(v, s)` is `(v + 2^(s-1)) >> s` here: `|v| < 2^47` cannot overflow with the
    // rounding term (`s <= 62`, as `round_shift` clamps it).
    let s = (post.shift as u32).min(62);
    let round = (1i64 << s) >> 1;
    // `lif_layer` asks for the neurons in order: the channel is a running counter.
    let mut ch = 0;
    lif_layer(mem, th, bits, |i| {
        let mul = crate::model::read_i32(post.mul, ch) as i64;
        let add = crate::model::read_i32(post.add, ch) as i64;
        ch += 1;
        if ch == c {
            ch = 0;
        }
        sat_i16((x[i] as i64 * mul + add + round) >> s)
    })
}

/// Applies edge op `op` from node input `src` (spikes `spk` for convs) into `dst`.
#[allow(clippy::too_many_arguments)]
fn apply_edge<W: Wt>(
    op: Op,
    src: &[i16],
    spk: &[u64],
    conv: Option<&LayerParts<'_>>,
    kernel: conv::Kernel,
    g: Geom,
    dst: &mut [i16],
    row: &mut [i32],
    dense: Option<&mut [i32]>,
) -> u64 {
    match (op, conv) {
        (Op::Zero, _) => 0,
        (Op::Skip, _) => {
            add_sat(dst, src);
            0
        }
        (Op::AvgPool, _) => {
            pool3_add(src, g, true, dst, row);
            0
        }
        (Op::MaxPool, _) => {
            pool3_add(src, g, false, dst, row);
            0
        }
        (Op::Conv3, Some(l)) => {
            conv_edge::<W>(spk, g, 3, l, kernel, g.c, conv::Out::Add(dst), row, dense)
        }
        (Op::Conv1, Some(l)) => {
            conv_edge::<W>(spk, g, 1, l, kernel, g.c, conv::Out::Add(dst), row, dense)
        }
        // Validation guarantees a conv on every conv edge.
        (Op::Conv3 | Op::Conv1, None) => 0,
    }
}

/// One timestep of a cell. On entry node buffer 0 holds the cell input `x0`; on exit buffer
/// `plan.slot[3]` holds the output `x3`, and the buffer of every kept node `j < 3`
/// (`plan.keep_x`) holds `x_j + B_j`. Returns the weight adds.
#[allow(clippy::too_many_arguments)]
fn cell_step<W: Wt, O: SpikeObserver>(
    nodes: &mut [&mut [i16]; NUM_NODES],
    st: &mut CellState<'_>,
    cp: &CellParts<'_>,
    g: &Genotype,
    plan: &CellPlan,
    geom: Geom,
    kernels: &[conv::Kernel; NUM_EDGES],
    row: &mut [i32],
    mut dense: Option<&mut [i32]>,
    ctx: &mut Ctx<'_, O>,
    cell_no: u8,
) -> u64 {
    let n = geom.len();
    let th = threshold(cp.exp);
    let mut ops = 0;
    let slot = plan.slot.map(usize::from);
    let edges = g.cell().edges();
    // The tensor an op reads (skip, pools), in a buffer other than `dst`'s (`CellPlan::slot`).
    let source = |op: Op, j: usize| (!op.has_lif()).then_some(slot[j]);
    for i in 0..NUM_NODES {
        if i > 0 {
            nodes[slot[i]][..n].fill(0);
            for (k, (edge, &op)) in edges.iter().zip(g.ops()).enumerate() {
                if edge.to as usize != i || edge.is_backward() || op == Op::Zero {
                    continue;
                }
                let j = edge.from as usize;
                let (dst, src) = dst_and_src(nodes, slot[i], source(op, j), n);
                let conv = cp.convs[k].as_ref();
                let dense = dense.as_deref_mut();
                ops += apply_edge::<W>(op, src, st.spk[j], conv, kernels[k], geom, dst, row, dense);
            }
        }
        let xi = &mut nodes[slot[i]][..n];
        if i < 3 && plan.need_back[i] {
            add_sat(xi, st.back[i]);
        }
        if plan.need_lif[i] {
            let src = &*xi;
            let cnt = lif_layer(st.mem[i], th, st.spk[i], |k| src[k]);
            ctx.report(
                LayerId::Cell {
                    cell: cell_no,
                    node: i as u8,
                },
                st.spk[i],
                n,
                cnt,
            );
        }
    }
    // Back states for the next timestep, from x_j + B_j (j < 3, old B) and x3.
    for i in 0..3 {
        if !plan.need_back[i] {
            continue;
        }
        let dst = &mut *st.back[i];
        dst.fill(0);
        for (k, (edge, &op)) in edges.iter().zip(g.ops()).enumerate() {
            if edge.to as usize != i || !edge.is_backward() || op == Op::Zero {
                continue;
            }
            let j = edge.from as usize;
            let src: &[i16] = match source(op, j) {
                Some(s) => &nodes[s][..n],
                None => &[],
            };
            let conv = cp.convs[k].as_ref();
            let dense = dense.as_deref_mut();
            ops += apply_edge::<W>(op, src, st.spk[j], conv, kernels[k], geom, dst, row, dense);
        }
    }
    ops
}

/// Node buffer `d` (first `n` elements) for writing and, if asked, buffer `s != d` for
/// reading. `s == d` cannot happen for a plan from [`CellPlan::new`] (tested); it would read
/// nothing.
fn dst_and_src<'a>(
    nodes: &'a mut [&mut [i16]; NUM_NODES],
    d: usize,
    s: Option<usize>,
    n: usize,
) -> (&'a mut [i16], &'a [i16]) {
    match s {
        Some(s) if s < d => {
            let (lo, hi) = nodes.split_at_mut(d);
            (&mut hi[0][..n], &lo[s][..n])
        }
        Some(s) if s > d => {
            let (lo, hi) = nodes.split_at_mut(s);
            (&mut lo[d][..n], &hi[0][..n])
        }
        _ => (&mut nodes[d][..n], &[]),
    }
}

mod conv;
mod dense;
mod stem;
#[cfg(test)]
mod tests;
