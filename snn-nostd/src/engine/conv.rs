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
//! Two accumulators ([`Accum`]):
//! - [`Lanes16`]: `i8` weights, channels in groups of 4 as two `u32` words of two `i16` lanes,
//!   added with `SXTAB16` (one instruction per two synaptic events, [`crate::simd`]); the bias
//!   is added at read-out. Used only where [`lanes16_exact`] proves that no sum can leave the
//!   `i16` range, so the result equals the saturating `i32` reference exactly.
//! - [`Sat`]: the general `i32` accumulator (any weight width and channel count), initialised
//!   with the bias, saturating after every add.

use super::{requant, sat_i16, Geom, Wt};
use crate::bits::for_each_set_bit;
use crate::model::{Bits, LayerParts};
use crate::simd;
use core::marker::PhantomData;

/// Output rows held by the ring.
pub(super) const RING_ROWS: usize = 4;

/// `i32` words of the ring of a conv over rows of `w` pixels with `c_out` outputs (the general
/// accumulator's size, which bounds [`Lanes16`]'s).
pub(super) const fn ring_len(w: usize, c_out: usize) -> usize {
    RING_ROWS.saturating_mul(w.saturating_add(2)).saturating_mul(c_out)
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

/// Two `i16` lanes per word, channels `(4g, 4g + 2)` in word `2g` and `(4g + 1, 4g + 3)` in word
/// `2g + 1`, which is what `SXTAB16` without and with `ROR #8` adds from four consecutive `i8`
/// weights. Starts at 0; the bias is added at read-out.
pub(super) struct Lanes16;

impl Accum for Lanes16 {
    #[inline]
    fn words(c_out: usize) -> usize {
        c_out / 2
    }
    fn clear(row: &mut [i32], _: &LayerParts<'_>, _: usize) {
        row.fill(0);
    }
    #[inline(always)]
    fn add(px: &mut [i32], col: &[u8]) {
        for (pair, w4) in px.chunks_exact_mut(2).zip(col.chunks_exact(4)) {
            let w = u32::from_le_bytes([w4[0], w4[1], w4[2], w4[3]]);
            pair[0] = simd::sxtab16(pair[0] as u32, w) as i32;
            pair[1] = simd::sxtab16_ror8(pair[1] as u32, w) as i32;
        }
    }
    #[inline(always)]
    fn lane(co: usize) -> (usize, u32) {
        ((co / 4) * 2 + (co & 1), (co & 2) as u32 * 8)
    }
    #[inline(always)]
    fn value(word: i32, shift: u32, bias: i32) -> i32 {
        ((word as u32 >> shift) as u16 as i16) as i32 + bias
    }
}

/// Whether [`Lanes16`] computes `layer` (`c_out` outputs) exactly: `i8` weights, `c_out` a
/// multiple of 4, and for every output channel the sums of its positive and of its negative
/// weights fit an `i16`, and so do bias plus either sum an `i32`. Every partial sum of a
/// channel's spike contributions then lies between those two sums: the lanes never wrap and the
/// reference's saturating `i32` adds never saturate.
pub(super) fn lanes16_exact(layer: &LayerParts<'_>, bits: Bits, c_out: usize) -> bool {
    if bits != Bits::B8 || c_out == 0 || !c_out.is_multiple_of(4) {
        return false;
    }
    (0..c_out).all(|co| {
        let (mut pos, mut neg) = (0i32, 0i32);
        for &b in layer.weights.iter().skip(co).step_by(c_out) {
            let w = b as i8 as i32;
            if w > 0 {
                pos += w;
            } else {
                neg += w;
            }
        }
        let bias = layer.bias_at(co);
        pos <= i16::MAX as i32
            && neg >= i16::MIN as i32
            && bias.checked_add(pos).is_some()
            && bias.checked_add(neg).is_some()
    })
}

/// Where the requantised conv outputs go.
pub(super) enum Out<'d> {
    /// Added, saturating, into an `h x w x c_out` map.
    Add(&'d mut [i16]),
    /// MaxPool2 (`h/2 x w/2 x c_out`), written.
    MaxPool2(&'d mut [i16]),
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
fn emit<A: Accum>(
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
    match out {
        Out::Add(dst) => {
            let s = slot(oy);
            let row = &ring[s + pad * pw..s + rw];
            let d = &mut dst[oy * g.w * c_out..(oy + 1) * g.w * c_out];
            for co in 0..c_out {
                let (off, sh) = A::lane(co);
                let (bias, shift) = (layer.bias_at(co), layer.shift_at(co) as i32);
                for (dv, px) in d[co..].iter_mut().step_by(c_out).zip(row.chunks_exact(pw)) {
                    let v = requant(A::value(px[off], sh, bias), shift);
                    *dv = sat_i16(*dv as i64 + v as i64);
                }
            }
            A::clear(&mut ring[s..s + rw], layer, c_out);
        }
        Out::MaxPool2(dst) => {
            let (h2, w2) = (g.h / 2, g.w / 2);
            if oy % 2 == 0 || oy / 2 >= h2 {
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
                    let m = at(s0, x).max(at(s0, x + 1)).max(at(s1, x)).max(at(s1, x + 1));
                    // requant is monotone: max-then-requantise = requantise-then-max.
                    *dv = sat_i16(requant(m, shift) as i64);
                }
            }
            A::clear(&mut ring[s0..s0 + rw], layer, c_out);
            A::clear(&mut ring[s1..s1 + rw], layer, c_out);
        }
    }
}
