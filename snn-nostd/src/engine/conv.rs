//! Event-driven convolutions (stride 1, `k x k` with `k` = 1 or 3, pad `k / 2`).
//!
//! Every spike of the input map adds, for each kernel row `ky` whose output row exists, its `k`
//! weight columns (`k * C_out` contiguous weights: `[ci][ky][kx][co]`) into `k` contiguous
//! pixels of one output row. The output rows live in a ring of [`RING_ROWS`] rows, each padded
//! by `pad` pixels on both sides, so a spike never tests a border: the padding pixels absorb the
//! columns that fall outside the map and are never read. The input map is scanned once, row by
//! row; output row `oy` is complete once input row `oy + pad` has been scanned, and is then
//! requantised into the destination and cleared for reuse. Four rows suffice for the down conv
//! too, which keeps the two rows of a MaxPool2 pair until the second is complete.
//!
//! Two accumulators:
//! - `i16` lanes ([`lanes16_conv`]): `i8` weights, 4, 8 or 16 output channels, in groups of 4 as
//!   two `u32` words of two `i16` lanes, added with `SXTAB16` (one instruction per two synaptic
//!   events, [`crate::simd`]); the bias is added at read-out. Used only where [`lanes16_exact`]
//!   proves that no sum can leave the `i16` range, so the result equals the saturating `i32`
//!   reference exactly. Kernel size and channel count are compile-time constants, so the adds of
//!   one spike unroll into straight-line code.
//! - `i32` words ([`lanes32_conv`]): `i16` weights, 4, 8 or 16 output channels, wrapping adds
//!   (`LDM`, two weight-pair loads, `SXTAH` / `ADD ..., ASR #16`, `STM`: 8 instructions per 4
//!   synaptic events, [`crate::simd::add_i16x4`]); the bias is added at read-out. Used where
//!   [`lanes32_exact`] proves that no partial sum leaves the `i32` range (every real `i16`
//!   layer), so the result equals the saturating reference.
//! - [`Sat`] ([`conv`]): the general `i32` accumulator (any weight width and channel count),
//!   initialised with the bias, saturating after every add.

use super::fixed::{requant, sat_i16};
use super::geom::Geom;
use super::weights::Wt;
use crate::bits::{count_ones_range, for_each_set_bit};
use crate::model::{Bits, LayerParts};
use crate::simd;
use core::marker::PhantomData;

/// Output rows held by the ring.
pub(super) const RING_ROWS: usize = 4;

/// `i32` words of the ring of a conv over rows of `w` pixels with `c_out` outputs (the general
/// accumulator's size, twice the `i16` lanes').
pub(super) const fn ring_len(w: usize, c_out: usize) -> usize {
    RING_ROWS
        .saturating_mul(w.saturating_add(2))
        .saturating_mul(c_out)
}

/// How one output pixel accumulates its weight columns.
pub(super) trait Accum {
    /// `i32` words per output pixel.
    fn words(c_out: usize) -> usize;
    /// Initialises a ring row (`row` holds whole pixels).
    fn clear(row: &mut [i32], layer: &LayerParts<'_>, c_out: usize);
    /// Adds the weight column `col` (`c_out` weights) into the pixel `px`.
    fn add(px: &mut [i32], col: &[u8]);
    /// Where channel `co` lives in a pixel: word offset and bit shift.
    fn lane(co: usize) -> (usize, u32);
    /// The accumulated value (bias included) of a lane read from `word` at `shift`.
    fn value(word: i32, shift: u32, bias: i32) -> i32;
}

/// `i32` accumulators initialised with the bias, saturating adds (weights `W`).
pub(super) struct Sat<W>(PhantomData<W>);

impl<W: Wt> Accum for Sat<W> {
    #[inline]
    fn words(c_out: usize) -> usize {
        c_out
    }
    fn clear(row: &mut [i32], layer: &LayerParts<'_>, c_out: usize) {
        for px in row.chunks_exact_mut(c_out) {
            for (co, a) in px.iter_mut().enumerate() {
                *a = layer.bias_at(co);
            }
        }
    }
    #[inline(always)]
    fn add(px: &mut [i32], col: &[u8]) {
        W::add_col(px, col);
    }
    #[inline(always)]
    fn lane(co: usize) -> (usize, u32) {
        (co, 0)
    }
    #[inline(always)]
    fn value(word: i32, _: u32, _: i32) -> i32 {
        word
    }
}

/// Whether the `i16` lanes ([`lanes16_conv`]) compute `layer` (`c_out` outputs) exactly: `i8` weights, `c_out` a
/// multiple of 4, and for every output channel the sums of its positive and of its negative
/// weights fit an `i16`, and so do bias plus either sum an `i32`. Every partial sum of a
/// channel's spike contributions then lies between those two sums: the lanes never wrap and the
/// reference's saturating `i32` adds never saturate.
pub(super) fn lanes16_exact(layer: &LayerParts<'_>, bits: Bits, c_out: usize) -> bool {
    if bits != Bits::B8 || c_out == 0 || !c_out.is_multiple_of(4) {
        return false;
    }
    (0..c_out).all(|co| {
        let (pos, neg) = weight_sums::<super::W8>(layer, c_out, co);
        let bias = layer.bias_at(co) as i64;
        let fits32 = |v: i64| (i32::MIN as i64..=i32::MAX as i64).contains(&v);
        pos <= i16::MAX as i64 && neg >= i16::MIN as i64 && fits32(bias + pos) && fits32(bias + neg)
    })
}

/// Where the requantised conv outputs go, and how: an output `v` joins a node sum `d` either as
/// one more edge of the sum (`d = sat(d + v)`) or as a finished sum of its own, saturated before
/// the add (`d = sat(d + sat(v))`: the back state `B_i` of one edge added to the forward sum, or
/// the other way round; see `cell::cell_step`).
pub(super) enum Out<'d> {
    /// Added, saturating, into an `h x w x c_out` map: `d = sat(d + v)`.
    Add(&'d mut [i16]),
    /// Added as a finished sum into an `h x w x c_out` map: `d = sat(d + sat(v))`.
    AddSum(&'d mut [i16]),
    /// MaxPool2 (`h/2 x w/2 x c_out`), added as a finished sum: `d = sat(d + sat(max))` (a zeroed
    /// `d` receives the pooled values).
    MaxPool2(&'d mut [i16]),
}

/// `v` saturated to `i16`, as an `i32`.
#[inline(always)]
fn clamp16(v: i32) -> i32 {
    v.clamp(i16::MIN as i32, i16::MAX as i32)
}

/// The conv of the spikes `spk` (HWC, geometry `g`) by `layer` (`k x k`, `g.c -> c_out`, weights
/// of `wbytes` bytes), requantised per output channel into `out`. `ring` holds at least
/// [`ring_len`]`(g.w, c_out)` words. Returns the synaptic operations (weight adds of the
/// reference, padding excluded).
#[allow(clippy::too_many_arguments)]
pub(super) fn conv<A: Accum>(
    spk: &[u64],
    g: Geom,
    k: usize,
    layer: &LayerParts<'_>,
    wbytes: usize,
    c_out: usize,
    mut out: Out<'_>,
    ring: &mut [i32],
) -> u64 {
    let pad = k / 2;
    let pw = A::words(c_out);
    let rw = (g.w + 2 * pad) * pw;
    let ring = &mut ring[..RING_ROWS * rw];
    for r in ring.chunks_exact_mut(rw) {
        A::clear(r, layer, c_out);
    }
    let col = c_out * wbytes;
    let kcol = k * col;
    let row_bits = g.w * g.c;
    let mut taps = 0u64;
    for y in 0..g.h {
        // Kernel rows whose output row `y + pad - ky` lies inside the map.
        let ky_lo = (y + pad + 1).saturating_sub(g.h);
        let ky_hi = (k - 1).min(y + pad);
        let start = y * row_bits;
        let mut row_taps = 0u64;
        for_each_set_bit(spk, start, start + row_bits, |idx| {
            let rel = idx - start;
            let x = rel / g.c;
            let ci = rel - x * g.c;
            // Kernel columns whose output pixel `x + pad - kx` lies inside the map.
            row_taps += ((k - 1).min(x + pad) + 1 - (x + pad + 1).saturating_sub(g.w)) as u64;
            for ky in ky_lo..=ky_hi {
                let o = ((y + pad - ky) % RING_ROWS) * rw + x * pw;
                let wb = (ci * k + ky) * kcol;
                // Padded pixel `x + j` takes kernel column `kx = k - 1 - j`.
                let px = ring[o..o + k * pw].chunks_exact_mut(pw);
                for (p, c) in px.zip(layer.weights[wb..wb + kcol].chunks_exact(col).rev()) {
                    A::add(p, c);
                }
            }
        });
        taps += row_taps * (ky_hi + 1 - ky_lo) as u64;
        if y >= pad {
            emit::<A>(ring, rw, y - pad, g, pad, layer, c_out, &mut out);
        }
    }
    for oy in g.h.saturating_sub(pad)..g.h {
        emit::<A>(ring, rw, oy, g, pad, layer, c_out, &mut out);
    }
    taps * c_out as u64
}

/// Output row `oy` is complete: requantise it (or, for MaxPool2, the pair it closes) into `out`
/// and clear its ring row(s).
#[allow(clippy::too_many_arguments)]
pub(super) fn emit<A: Accum>(
    ring: &mut [i32],
    rw: usize,
    oy: usize,
    g: Geom,
    pad: usize,
    layer: &LayerParts<'_>,
    c_out: usize,
    out: &mut Out<'_>,
) {
    let pw = A::words(c_out);
    let slot = |r: usize| (r % RING_ROWS) * rw;
    let sum = matches!(out, Out::AddSum(_));
    match out {
        Out::Add(dst) | Out::AddSum(dst) => {
            let s = slot(oy);
            let row = &ring[s + pad * pw..s + rw];
            let d = &mut dst[oy * g.w * c_out..(oy + 1) * g.w * c_out];
            for co in 0..c_out {
                let (off, sh) = A::lane(co);
                let (bias, shift) = (layer.bias_at(co), layer.shift_at(co) as i32);
                for (dv, px) in d[co..].iter_mut().step_by(c_out).zip(row.chunks_exact(pw)) {
                    let v = requant(A::value(px[off], sh, bias), shift);
                    let v = if sum { clamp16(v) } else { v };
                    *dv = sat_i16(*dv as i64 + v as i64);
                }
            }
            A::clear(&mut ring[s..s + rw], layer, c_out);
        }
        Out::MaxPool2(dst) => {
            let (h2, w2) = (g.h / 2, g.w / 2);
            if oy.is_multiple_of(2) || oy / 2 >= h2 {
                return;
            }
            let oy2 = oy / 2;
            let (s0, s1) = (slot(oy - 1), slot(oy));
            let d = &mut dst[oy2 * w2 * c_out..(oy2 + 1) * w2 * c_out];
            for co in 0..c_out {
                let (off, sh) = A::lane(co);
                let (bias, shift) = (layer.bias_at(co), layer.shift_at(co) as i32);
                let at = |s: usize, x: usize| A::value(ring[s + (x + pad) * pw + off], sh, bias);
                for (ox2, dv) in d[co..].iter_mut().step_by(c_out).enumerate() {
                    let x = 2 * ox2;
                    let m = at(s0, x)
                        .max(at(s0, x + 1))
                        .max(at(s1, x))
                        .max(at(s1, x + 1));
                    // requant is monotone: max-then-requantise = requantise-then-max.
                    *dv = sat_i16(*dv as i64 + clamp16(requant(m, shift)) as i64);
                }
            }
            A::clear(&mut ring[s0..s0 + rw], layer, c_out);
            A::clear(&mut ring[s1..s1 + rw], layer, c_out);
        }
    }
}

/// A fast exact conv: spikes, geometry, layer, destination, ring; returns synaptic operations.
pub(super) type LaneConv = fn(&[u64], Geom, &LayerParts<'_>, Out<'_>, &mut [i32]) -> u64;

/// The accumulator a conv runs on, chosen once per layer when the engine is built.
#[derive(Clone, Copy)]
pub(super) enum Kernel {
    /// `i16` lanes ([`lanes16_conv`], half the ring).
    Lanes16(LaneConv),
    /// Non-saturating `i32` words ([`lanes32_conv`]).
    Lanes32(LaneConv),
    /// The general saturating `i32` accumulator ([`conv`] with [`Sat`]).
    Sat,
}

impl Kernel {
    /// The fastest exact kernel for `layer` (`k x k`, `c_out` outputs, `W` weights).
    pub(super) fn choose<W: Wt>(
        layer: &LayerParts<'_>,
        bits: Bits,
        k: usize,
        c_out: usize,
    ) -> Kernel {
        if let Some(f) = lanes16_conv(k, c_out).filter(|_| lanes16_exact(layer, bits, c_out)) {
            return Kernel::Lanes16(f);
        }
        match lanes32_conv::<W>(k, c_out) {
            Some(f) if lanes32_exact::<W>(layer, c_out) => Kernel::Lanes32(f),
            _ => Kernel::Sat,
        }
    }
}

/// The `i16`-lane conv for a `k x k` kernel and `c_out` outputs, if one is compiled in (4, 8 or
/// 16 channels; `k` = 1 or 3). Only valid where [`lanes16_exact`] holds.
pub(super) fn lanes16_conv(k: usize, c_out: usize) -> Option<LaneConv> {
    Some(match (k, c_out) {
        (3, 4) => conv_lanes::<L16, 3, 4>,
        (3, 8) => conv_lanes::<L16, 3, 8>,
        (3, 16) => conv_lanes::<L16, 3, 16>,
        (1, 4) => conv_lanes::<L16, 1, 4>,
        (1, 8) => conv_lanes::<L16, 1, 8>,
        (1, 16) => conv_lanes::<L16, 1, 16>,
        _ => return None,
    })
}

/// The `i32`-word conv for `W` weights, a `k x k` kernel and `c_out` outputs, if one is
/// compiled in (`i16` weights, 4, 8 or 16 channels; `k` = 1 or 3: `i8` weights take the `i16`
/// lanes, or the general kernel where those could wrap, which keeps the firmware's code small).
/// Only valid where [`lanes32_exact`] holds.
pub(super) fn lanes32_conv<W: Wt>(k: usize, c_out: usize) -> Option<LaneConv> {
    if W::BYTES != 2 {
        return None;
    }
    Some(match (k, c_out) {
        (3, 4) => conv_lanes::<L32<W>, 3, 4>,
        (3, 8) => conv_lanes::<L32<W>, 3, 8>,
        (3, 16) => conv_lanes::<L32<W>, 3, 16>,
        (1, 4) => conv_lanes::<L32<W>, 1, 4>,
        (1, 8) => conv_lanes::<L32<W>, 1, 8>,
        (1, 16) => conv_lanes::<L32<W>, 1, 16>,
        _ => return None,
    })
}

/// Whether the non-saturating `i32` words ([`lanes32_conv`]) compute `layer` (`c_out` outputs,
/// `W` weights) exactly: for every output channel the sums of its positive and of its negative
/// weights, and bias plus either sum, fit an `i32`. Every partial sum of the reference's
/// saturating adds (bias first) then lies between bias plus those sums, so it never saturates,
/// and the wrapping sum without the bias is exact.
pub(super) fn lanes32_exact<W: Wt>(layer: &LayerParts<'_>, c_out: usize) -> bool {
    if c_out == 0 || !c_out.is_multiple_of(2) {
        return false;
    }
    let fits = |v: i64| (i32::MIN as i64..=i32::MAX as i64).contains(&v);
    (0..c_out).all(|co| {
        let (pos, neg) = weight_sums::<W>(layer, c_out, co);
        let bias = layer.bias_at(co) as i64;
        fits(pos) && fits(neg) && fits(bias + pos) && fits(bias + neg)
    })
}

/// The sums of the positive and of the negative `W` weights of output channel `co` (weights
/// `[..][co]`): the range of every sum of its spike contributions.
fn weight_sums<W: Wt>(layer: &LayerParts<'_>, c_out: usize, co: usize) -> (i64, i64) {
    let (mut pos, mut neg) = (0i64, 0i64);
    let n = layer.weights.len() / W::BYTES;
    for i in (co..n).step_by(c_out) {
        let w = W::at(layer.weights, i) as i64;
        if w > 0 {
            pos += w;
        } else {
            neg += w;
        }
    }
    (pos, neg)
}

/// How the fast kernels hold a pixel's `C` channel sums (the ring starts at zero; the bias is
/// added at read-out).
pub(super) trait Lanes {
    /// Bytes per weight.
    const WBYTES: usize;
    /// `i32` words per pixel of `c` channels.
    fn words(c: usize) -> usize;
    /// Adds the weight column `col` (`C` weights) into the pixel's words, wrapping.
    fn add(px: &mut [i32], col: &[u8]);
    /// Adds the `K` weight columns `wk` (`K * C` weights, reversed: pixel `j` takes column `K - 1
    /// - j`) into the `K` pixels `px`, wrapping.
    #[inline(always)]
    fn add_run<const K: usize, const C: usize>(px: &mut [i32], wk: &[u8]) {
        let (pw, col) = (Self::words(C), C * Self::WBYTES);
        for (p, c) in px.chunks_exact_mut(pw).zip(wk.chunks_exact(col).rev()) {
            Self::add(p, c);
        }
    }
    /// Whether a 3x3 kernel's three rows may be added in one [`simd::add_i16_rows3`] (`i16`
    /// weights on `i32` words, 4 or 8 channels).
    const ROWS3: bool = false;
    /// Channel `co`'s sum in a pixel's words.
    fn lane(px: &[i32], co: usize) -> i32;
    /// A bound on every `|sum|` known without reading the weights, if any.
    const CHEAP_BOUND: Option<i64>;
    /// The largest `|sum|` channel `co` can reach (a pass over its weights).
    fn bound(layer: &LayerParts<'_>, c_out: usize, co: usize) -> i64;
}

/// `i8` weights on `i16` lanes, two lanes per word.
pub(super) struct L16;

impl Lanes for L16 {
    const WBYTES: usize = 1;
    #[inline(always)]
    fn words(c: usize) -> usize {
        c / 2
    }
    /// Four consecutive `i8` weights per channel group: channels `(4g, 4g + 2)` in word `2g`,
    /// `(4g + 1, 4g + 3)` in word `2g + 1` (what `SXTAB16` without and with `ROR #8` adds).
    #[inline(always)]
    fn add(px: &mut [i32], col: &[u8]) {
        for (pair, w4) in px.chunks_exact_mut(2).zip(col.chunks_exact(4)) {
            let w = u32::from_le_bytes([w4[0], w4[1], w4[2], w4[3]]);
            pair[0] = simd::sxtab16(pair[0] as u32, w) as i32;
            pair[1] = simd::sxtab16_ror8(pair[1] as u32, w) as i32;
        }
    }
    #[inline(always)]
    fn lane(px: &[i32], co: usize) -> i32 {
        let word = px[(co / 4) * 2 + (co & 1)] as u32;
        ((word >> ((co & 2) * 8)) as u16 as i16) as i32
    }
    const CHEAP_BOUND: Option<i64> = Some(1 << 15);
    fn bound(layer: &LayerParts<'_>, c_out: usize, co: usize) -> i64 {
        let (pos, neg) = weight_sums::<super::W8>(layer, c_out, co);
        pos.max(-neg)
    }
}

/// `W` weights on `i32` words, one per channel.
pub(super) struct L32<W>(PhantomData<W>);

impl<W: Wt> Lanes for L32<W> {
    const WBYTES: usize = W::BYTES;
    const CHEAP_BOUND: Option<i64> = None;
    const ROWS3: bool = W::BYTES == 2;
    #[inline(always)]
    fn words(c: usize) -> usize {
        c
    }
    #[inline(always)]
    fn add(px: &mut [i32], col: &[u8]) {
        W::add_col_wrapping(px, col);
    }
    #[inline(always)]
    fn add_run<const K: usize, const C: usize>(px: &mut [i32], wk: &[u8]) {
        if W::BYTES == 2 && C.is_multiple_of(4) {
            simd::add_i16_run::<K, C>(px, wk);
        } else {
            for (p, c) in px
                .chunks_exact_mut(C)
                .zip(wk.chunks_exact(C * W::BYTES).rev())
            {
                W::add_col_wrapping(p, c);
            }
        }
    }
    #[inline(always)]
    fn lane(px: &[i32], co: usize) -> i32 {
        px[co]
    }
    fn bound(layer: &LayerParts<'_>, c_out: usize, co: usize) -> i64 {
        let (pos, neg) = weight_sums::<W>(layer, c_out, co);
        pos.max(-neg)
    }
}

/// Per-channel read-out of `C` lane sums: `requant(sum + bias, shift)`.
pub(super) struct LaneRequant<const C: usize> {
    bias: [i32; C],
    shift: [i32; C],
    /// Whether every channel has an exact 32-bit multiply-add-shift form: then `requant(sum +
    /// bias, shift)` may be replaced by `(sum * mul + add) >> right`, which gives the same
    /// `sat_i16(d + v)` and `sat_i16(v)` (see [`requant`]). With `L` the largest `|sum|`
    /// ([`Lanes::bound`]):
    /// - shift `s` in `1..=31`, `L + |bias| + 2^(s-1) < 2^31`: `mul = 1`, `add = bias +
    ///   2^(s-1)`, `right = s` (round half up, no 32-bit overflow);
    /// - shift `s <= 0`, `(L + |bias|) * 2^-s <= 2^30`: `mul = 2^-s`, `add = bias * 2^-s`,
    ///   `right = 0` (the exact product, no 32-bit overflow; beyond `2^17` both saturate).
    fast: bool,
    mul: [i32; C],
    add: [i32; C],
    right: [u32; C],
}

impl<const C: usize> LaneRequant<C> {
    pub(super) fn new<L: Lanes>(layer: &LayerParts<'_>) -> Self {
        let bias: [i32; C] = core::array::from_fn(|co| layer.bias_at(co));
        let shift: [i32; C] = core::array::from_fn(|co| layer.shift_at(co) as i32);
        let (mut mul, mut add, mut right_shift) = ([1; C], [0; C], [0; C]);
        let mut fast = true;
        // Weights per output channel: `|sum| <= per_channel * 2^(bits - 1)`.
        let per_channel = (layer.weights.len() / (C * L::WBYTES)) as i64;
        for co in 0..C {
            let (b, s) = (bias[co] as i64, shift[co]);
            let right = (1..=31).contains(&s);
            let left = (-30..=0).contains(&s);
            let fits = |l: i64| {
                if right {
                    l + b.abs() + (1 << (s - 1)) < 1 << 31
                } else {
                    left && (l + b.abs()) << -s <= 1 << 30
                }
            };
            // The cheap bounds first (the lanes' own, then the weights per channel times the
            // largest weight magnitude); the exact one (a pass over the weights) if those fail.
            if !(right || left)
                || !(L::CHEAP_BOUND.is_some_and(fits)
                    || fits(per_channel << (8 * L::WBYTES - 1))
                    || fits(L::bound(layer, C, co)))
            {
                fast = false;
            } else if right {
                add[co] = (b + (1 << (s - 1))) as i32;
                right_shift[co] = s as u32;
            } else {
                mul[co] = 1 << -s;
                add[co] = (b << -s) as i32;
            }
        }
        LaneRequant {
            bias,
            shift,
            fast,
            mul,
            add,
            right: right_shift,
        }
    }

    /// The requantised value of channel `co` from its lane sum `a`; `|value| <= 2^30`.
    #[inline(always)]
    fn value(&self, a: i32, co: usize) -> i32 {
        if self.fast {
            (a * self.mul[co] + self.add[co]) >> self.right[co]
        } else {
            requant(a + self.bias[co], self.shift[co])
        }
    }
}

/// `d + v` saturated to `i16` (`|v| <= 2^30`: no 32-bit overflow).
#[inline(always)]
fn add_sat16(d: i16, v: i32) -> i16 {
    (d as i32 + v).clamp(i16::MIN as i32, i16::MAX as i32) as i16
}

/// [`conv`] on the lanes `L` for a `K x K` kernel and `C` output channels (see
/// [`lanes16_conv`], [`lanes32_conv`]).
fn conv_lanes<L: Lanes, const K: usize, const C: usize>(
    spk: &[u64],
    g: Geom,
    layer: &LayerParts<'_>,
    mut out: Out<'_>,
    ring: &mut [i32],
) -> u64 {
    let pad = K / 2;
    let pw = L::words(C);
    let rw = (g.w + 2 * pad) * pw;
    let ring = &mut ring[..RING_ROWS * rw];
    simd::zero_i32(ring);
    let col = C * L::WBYTES;
    let kcol = K * col;
    let row_bits = g.w * g.c;
    // Model validation gives every conv exactly `c_in * K * K * C` weights.
    let weights = &layer.weights[..g.c * K * kcol];
    let rq = LaneRequant::<C>::new::<L>(layer);
    let mut taps = 0u64;
    for y in 0..g.h {
        // (ring offset, weight offset) of every kernel row whose output row exists.
        let ky_lo = (y + pad + 1).saturating_sub(g.h);
        let ky_hi = (K - 1).min(y + pad);
        let mut rows = [(0usize, 0usize); K];
        let mut nr = 0;
        for ky in ky_lo..=ky_hi {
            rows[nr] = (((y + pad - ky) % RING_ROWS) * rw, ky * kcol);
            nr += 1;
        }
        let rows = &rows[..nr];
        let start = y * row_bits;
        let end = start + row_bits;
        // Taps: K per spike, less one for the spikes of the first and of the last column.
        let mut spikes = 0u32;
        let border = if pad == 0 {
            0
        } else {
            count_ones_range(spk, start, start + g.c) + count_ones_range(spk, end - g.c, end)
        };
        // The adds of the spike at `idx` for the kernel rows `rows`.
        #[inline(always)]
        fn scatter<L: Lanes, const K: usize, const C: usize>(
            ring: &mut [i32],
            weights: &[u8],
            rows: &[(usize, usize)],
            (po, wo): (usize, usize),
        ) {
            let pw = L::words(C);
            let col = C * L::WBYTES;
            let kcol = K * col;
            for &(ro, kyo) in rows {
                let o = ro + po;
                let w = wo + kyo;
                debug_assert!(o + K * pw <= ring.len() && w + kcol <= weights.len());
                // SAFETY: `ro <= 3 * rw` and `x < g.w`, so `o + K * pw <= 3 * rw + (g.w + 2 *
                // pad) * pw = 4 * rw = ring.len()`; `ci < g.c` and `ky < K`, so `w + kcol <=
                // g.c * K * kcol = weights.len()`. (Bounds checks here cost a third of the adds.)
                let (px, wk) = unsafe {
                    (
                        ring.get_unchecked_mut(o..o + K * pw),
                        weights.get_unchecked(w..w + kcol),
                    )
                };
                // Padded pixel `x + j` takes kernel column `kx = K - 1 - j`.
                L::add_run::<K, C>(px, wk);
            }
        }
        let at = |idx: usize| {
            let rel = idx - start;
            let x = rel / g.c;
            let ci = rel - x * g.c;
            (x * pw, ci * K * kcol)
        };
        if nr == K {
            // Every kernel row (all but the first and last `pad` rows): a constant trip count,
            // unrolled, its offsets in registers.
            let all: [(usize, usize); K] = core::array::from_fn(|r| rows[r]);
            // Kernel rows 0, 1, 2 in order (`ky_lo = 0`): one block for the three where allowed.
            let dd = if K == 3 && L::ROWS3 && (C == 4 || C == 8) {
                simd::rows3_deltas::<C>(core::array::from_fn(|r| all[r % K].0))
            } else {
                None
            };
            if let Some(dd) = dd {
                for_each_set_bit(spk, start, end, |idx| {
                    spikes += 1;
                    let (po, wo) = at(idx);
                    debug_assert!(wo + K * kcol <= weights.len());
                    // SAFETY: as in `scatter`: every row's `K` pixels lie in `ring` and the
                    // spike's `K * kcol = 18 C` weight bytes in `weights`; `dd` is the rows'
                    // deltas, `all[0].0 + po` the first row's offset.
                    unsafe {
                        simd::add_i16_rows3::<C>(
                            ring,
                            all[0].0 + po,
                            dd,
                            weights.get_unchecked(wo..wo + K * kcol),
                        );
                    }
                });
            } else {
                for_each_set_bit(spk, start, end, |idx| {
                    spikes += 1;
                    scatter::<L, K, C>(ring, weights, &all, at(idx));
                });
            }
        } else {
            for_each_set_bit(spk, start, end, |idx| {
                spikes += 1;
                scatter::<L, K, C>(ring, weights, rows, at(idx));
            });
        }
        taps += (K as u64 * spikes as u64 - border as u64) * nr as u64;
        if y >= pad {
            emit_lanes::<L, C>(ring, rw, y - pad, g, pad, &rq, &mut out);
        }
    }
    for oy in g.h.saturating_sub(pad)..g.h {
        emit_lanes::<L, C>(ring, rw, oy, g, pad, &rq, &mut out);
    }
    taps * C as u64
}

/// [`emit`] for the fast kernels.
pub(super) fn emit_lanes<L: Lanes, const C: usize>(
    ring: &mut [i32],
    rw: usize,
    oy: usize,
    g: Geom,
    pad: usize,
    rq: &LaneRequant<C>,
    out: &mut Out<'_>,
) {
    let pw = L::words(C);
    let slot = |r: usize| (r % RING_ROWS) * rw;
    let sum = matches!(out, Out::AddSum(_));
    match out {
        Out::Add(dst) | Out::AddSum(dst) => {
            let s = slot(oy);
            let row = &ring[s + pad * pw..s + rw];
            let d = &mut dst[oy * g.w * C..(oy + 1) * g.w * C];
            if pw == C && rq.fast {
                // One sum per word: channel by channel, its read-out constants in registers.
                let n = g.w.min(row.len() / C) * C;
                for co in 0..C {
                    let (m, a, r) = (rq.mul[co], rq.add[co], rq.right[co]);
                    let mut i = co;
                    // Two loops, so that the common one carries no test.
                    if sum {
                        while i < n {
                            // SAFETY: `i < n <= d.len()` and `n <= row.len()`.
                            unsafe {
                                let dv = d.get_unchecked_mut(i);
                                let v = (*row.get_unchecked(i) * m + a) >> r;
                                *dv = add_sat16(*dv, clamp16(v));
                            }
                            i += C;
                        }
                    } else {
                        while i < n {
                            // SAFETY: `i < n <= d.len()` and `n <= row.len()`.
                            unsafe {
                                let dv = d.get_unchecked_mut(i);
                                *dv = add_sat16(*dv, (*row.get_unchecked(i) * m + a) >> r);
                            }
                            i += C;
                        }
                    }
                }
            } else {
                for (dpx, px) in d.chunks_exact_mut(C).zip(row.chunks_exact(pw)) {
                    for (co, dv) in dpx.iter_mut().enumerate() {
                        let v = rq.value(L::lane(px, co), co);
                        *dv = add_sat16(*dv, if sum { clamp16(v) } else { v });
                    }
                }
            }
            simd::zero_i32(&mut ring[s..s + rw]);
        }
        Out::MaxPool2(dst) => {
            let (h2, w2) = (g.h / 2, g.w / 2);
            if oy.is_multiple_of(2) || oy / 2 >= h2 {
                return;
            }
            let oy2 = oy / 2;
            let (s0, s1) = (slot(oy - 1), slot(oy));
            let d = &mut dst[oy2 * w2 * C..(oy2 + 1) * w2 * C];
            let r0 = &ring[s0 + pad * pw..s0 + rw];
            let r1 = &ring[s1 + pad * pw..s1 + rw];
            let pairs = r0.chunks_exact(2 * pw).zip(r1.chunks_exact(2 * pw));
            for (dpx, (a, b)) in d.chunks_exact_mut(C).zip(pairs) {
                let (a0, a1) = a.split_at(pw);
                let (b0, b1) = b.split_at(pw);
                for (co, dv) in dpx.iter_mut().enumerate() {
                    let m = L::lane(a0, co)
                        .max(L::lane(a1, co))
                        .max(L::lane(b0, co))
                        .max(L::lane(b1, co));
                    // The read-out is monotone: max-then-requantise = requantise-then-max.
                    *dv = add_sat16(*dv, clamp16(rq.value(m, co)));
                }
            }
            simd::zero_i32(&mut ring[s0..s0 + rw]);
            simd::zero_i32(&mut ring[s1..s1 + rw]);
        }
    }
}
