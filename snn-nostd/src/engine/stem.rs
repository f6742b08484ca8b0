//! The dense stem: 3x3 conv (pad 1) of the real-valued CHW input + folded BN, optionally fused
//! with a MaxPool2, written into the cell-1 input (HWC).
//!
//! Where no output channel can reach `2^31` (`|bias| + 2^15 * sum |w| < 2^31`, always so for
//! `i8` weights with a moderate bias), the stem runs weight-stationary on `i32` rows: for each
//! output channel and row, each weight adds its scaled input row into a row accumulator (one
//! multiply-accumulate per instruction pair, no padding tests). Otherwise (e.g. `i16` weights)
//! it runs the same way on `i64` sums of a few output pixels at a time. Both give the exact sums
//! of the definition (`crate::engine` docs); [`stem_pixels`], each output pixel summed by
//! definition, is the tests' reference.

use super::{requant, round_shift, sat_i16, Wt};
use crate::model::{Dims, LayerParts};
use crate::simd;

/// Input geometry of the stem.
#[derive(Clone, Copy, Debug)]
pub(super) struct Shape {
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// MaxPool2 after the conv.
    pub pool: bool,
}

/// `i32` scratch the row path needs: two input-width rows.
pub(super) const fn scratch_len(d: &Dims) -> usize {
    (d.in_w as usize).saturating_mul(2)
}

/// The stem of `input` into `dst` (`c_out` channels); `row` is scratch of at least
/// [`scratch_len`] words.
pub(super) fn stem<W: Wt>(
    input: &[i16],
    s: Shape,
    layer: &LayerParts<'_>,
    c_out: usize,
    dst: &mut [i16],
    row: &mut [i32],
) {
    let taps = s.c * 9;
    let fits32 = (0..c_out).all(|co| {
        let l1: i64 = (0..taps)
            .map(|t| (W::at(layer.weights, co * taps + t) as i64).abs())
            .sum();
        (layer.bias_at(co) as i64).abs() + (l1 << 15) < 1 << 31
    });
    if fits32 && row.len() >= 2 * s.w {
        stem_rows::<W>(input, s, layer, c_out, dst, row);
    } else if W::BYTES == 2 && s.c == 3 && input.len() >= 3 * s.h * s.w {
        stem_gather3(input, s, layer, c_out, dst);
    } else {
        stem_chunks64::<W>(input, s, layer, c_out, dst);
    }
}

/// The `i64` stem for three input channels and `i16` weights, output pixel by output pixel:
/// each of the nine (channel, kernel row) rows of an interior pixel is one `SMLALD` (two
/// adjacent inputs times two adjacent weights) and one `SMLAL`; border pixels are summed with
/// their padding tests. Exact (the definition's sums, in `i64`).
fn stem_gather3(input: &[i16], s: Shape, layer: &LayerParts<'_>, c_out: usize, dst: &mut [i16]) {
    let (h, w) = (s.h, s.w);
    let (oh, ow) = if s.pool { (h / 2, w / 2) } else { (h, w) };
    let plane = h * w;
    let input = &input[..3 * plane];
    let wt = |i: usize| super::W16::at(layer.weights, i);
    for co in 0..c_out {
        let shift = layer.shift_at(co) as i32;
        let bias = layer.bias_at(co) as i64;
        // Kernel row r = 3 ci + ky: weights (kx 0, kx 1) as lanes and kx 2.
        let base = co * 27;
        let pairs: [u32; 9] = core::array::from_fn(|r| {
            simd::pack(wt(base + 3 * r) as i16, wt(base + 3 * r + 1) as i16)
        });
        let third: [i32; 9] = core::array::from_fn(|r| wt(base + 3 * r + 2));
        let px = |y: usize, x: usize| -> i64 {
            let mut acc = bias;
            if y >= 1 && y + 1 < h && x >= 1 && x + 1 < w {
                let top = (y - 1) * w + x - 1;
                for (r, (&p, &t)) in pairs.iter().zip(&third).enumerate() {
                    let i = (r / 3) * plane + (r % 3) * w + top;
                    debug_assert!(i + 3 <= input.len());
                    // SAFETY: `ci < 3`, `y + ky - 1 < h` and `x + 1 < w`: `i + 3 <= 3 * h * w`,
                    // the length of `input`. Little-endian: the word of two `i16` is their pair.
                    let (v01, v2) = unsafe {
                        let q = input.as_ptr().add(i);
                        (q.cast::<u32>().read_unaligned(), *q.add(2))
                    };
                    #[cfg(not(target_endian = "little"))]
                    let v01 = simd::pack(input[i], input[i + 1]);
                    acc = simd::smlald(v01, p, acc);
                    acc += t as i64 * v2 as i64;
                }
            } else {
                // The same with the padding's zeros (columns) and rows skipped (exact `i64`
                // sums: the order does not matter).
                let (left, right) = (x >= 1, x + 1 < w);
                for ky in 0..3 {
                    // Input row `y + ky - 1`.
                    if y + ky < 1 || y + ky > h {
                        continue;
                    }
                    for ci in 0..3 {
                        let r = 3 * ci + ky;
                        let i = ci * plane + (y + ky - 1) * w + x;
                        debug_assert!(i < input.len());
                        // SAFETY: `ci < 3`, `y + ky - 1 < h`, `x < w`: `i < 3 * h * w`, the
                        // length of `input`; `i - 1` and `i + 1` only inside the row.
                        let (a, b, c) = unsafe {
                            let q = input.as_ptr().add(i);
                            let a = if left { *q.sub(1) } else { 0 };
                            let c = if right { *q.add(1) } else { 0 };
                            (a, *q, c)
                        };
                        // SAFETY: `r < 9`.
                        let (p, t) = unsafe { (*pairs.get_unchecked(r), *third.get_unchecked(r)) };
                        acc = simd::smlald(simd::pack(a, b), p, acc);
                        acc += t as i64 * c as i64;
                    }
                }
            }
            acc
        };
        for oy in 0..oh {
            for ox in 0..ow {
                let v = if s.pool {
                    let (y, x) = (2 * oy, 2 * ox);
                    px(y, x)
                        .max(px(y, x + 1))
                        .max(px(y + 1, x))
                        .max(px(y + 1, x + 1))
                } else {
                    px(oy, ox)
                };
                if let Some(d) = dst.get_mut((oy * ow + ox) * c_out + co) {
                    *d = sat_i16(round_shift(v, shift));
                }
            }
        }
    }
}

/// Output pixels per `i64` accumulator chunk of [`stem_chunks64`] (even, for the MaxPool2
/// pairs; two chunks of 8-byte sums live on the stack).
const CHUNK: usize = 32;

/// Weight-stationary like [`stem_rows`], but on `i64` sums (one `SMLAL` per tap and pixel) of
/// [`CHUNK`] output pixels at a time: exact for any weight width and bias.
fn stem_chunks64<W: Wt>(
    input: &[i16],
    s: Shape,
    layer: &LayerParts<'_>,
    c_out: usize,
    dst: &mut [i16],
) {
    let (h, w) = (s.h, s.w);
    let (oh, ow) = if s.pool { (h / 2, w / 2) } else { (h, w) };
    let mut acc = [[0i64; CHUNK]; 2];
    let conv_row = |co: usize, y: usize, x0: usize, acc: &mut [i64]| {
        conv_row::<W, i64>(input, s, layer, co, y, x0, acc)
    };
    let full_w = if s.pool { 2 * ow } else { ow };
    for co in 0..c_out {
        let shift = layer.shift_at(co) as i32;
        for y in 0..oh {
            let mut x0 = 0;
            while x0 < full_w {
                let n = CHUNK.min(full_w - x0);
                let d = &mut dst[y * ow * c_out..(y + 1) * ow * c_out];
                if s.pool {
                    let (a0, a1) = acc.split_at_mut(1);
                    let (a0, a1) = (&mut a0[0][..n], &mut a1[0][..n]);
                    conv_row(co, 2 * y, x0, a0);
                    conv_row(co, 2 * y + 1, x0, a1);
                    let pairs = a0.chunks_exact(2).zip(a1.chunks_exact(2));
                    let d = d[(x0 / 2) * c_out + co..].iter_mut().step_by(c_out);
                    for (dv, (a, b)) in d.zip(pairs) {
                        let m = a[0].max(a[1]).max(b[0]).max(b[1]);
                        *dv = sat_i16(round_shift(m, shift));
                    }
                } else {
                    let a0 = &mut acc[0][..n];
                    conv_row(co, y, x0, a0);
                    let d = d[x0 * c_out + co..].iter_mut().step_by(c_out);
                    for (dv, &a) in d.zip(a0.iter()) {
                        *dv = sat_i16(round_shift(a, shift));
                    }
                }
                x0 += n;
            }
        }
    }
}

/// Output rows (pooled: row pairs) of one channel on `i32` row accumulators.
fn stem_rows<W: Wt>(
    input: &[i16],
    s: Shape,
    layer: &LayerParts<'_>,
    c_out: usize,
    dst: &mut [i16],
    row: &mut [i32],
) {
    let (h, w) = (s.h, s.w);
    let (oh, ow) = if s.pool { (h / 2, w / 2) } else { (h, w) };
    let (acc0, rest) = row.split_at_mut(w);
    let acc1 = &mut rest[..w];
    for co in 0..c_out {
        let shift = layer.shift_at(co) as i32;
        // Full-resolution row `y` of channel `co` into `acc`.
        let conv_row =
            |y: usize, acc: &mut [i32]| conv_row::<W, i32>(input, s, layer, co, y, 0, acc);
        for y in 0..oh {
            let d = dst[y * ow * c_out..(y + 1) * ow * c_out].iter_mut();
            if s.pool {
                conv_row(2 * y, acc0);
                conv_row(2 * y + 1, acc1);
                let pairs = acc0.chunks_exact(2).zip(acc1.chunks_exact(2));
                for (dv, (a, b)) in d.skip(co).step_by(c_out).zip(pairs) {
                    let m = a[0].max(a[1]).max(b[0]).max(b[1]);
                    *dv = sat_i16(requant(m, shift) as i64);
                }
            } else {
                conv_row(y, acc0);
                for (dv, &a) in d.skip(co).step_by(c_out).zip(acc0.iter()) {
                    *dv = sat_i16(requant(a, shift) as i64);
                }
            }
        }
    }
}

/// A stem sum: `i32` where no channel can leave it ([`stem_rows`]), else `i64`.
trait StemSum: Copy {
    /// The sum's start.
    fn bias(b: i32) -> Self;
    /// `self += w * v`.
    fn mac(&mut self, w: i32, v: i16);
}

impl StemSum for i32 {
    #[inline(always)]
    fn bias(b: i32) -> Self {
        b
    }
    #[inline(always)]
    fn mac(&mut self, w: i32, v: i16) {
        *self += w * v as i32;
    }
}

impl StemSum for i64 {
    #[inline(always)]
    fn bias(b: i32) -> Self {
        b as i64
    }
    #[inline(always)]
    fn mac(&mut self, w: i32, v: i16) {
        *self += w as i64 * v as i64;
    }
}

/// Full-resolution output row `y`, columns `x0..x0 + acc.len()`, of channel `co` into `acc`:
/// the bias, then each non-zero weight times its shifted input row (no padding tests).
#[inline(always)]
fn conv_row<W: Wt, A: StemSum>(
    input: &[i16],
    s: Shape,
    layer: &LayerParts<'_>,
    co: usize,
    y: usize,
    x0: usize,
    acc: &mut [A],
) {
    let (h, w) = (s.h, s.w);
    acc.fill(A::bias(layer.bias_at(co)));
    let n = acc.len();
    let wbase = co * s.c * 9;
    for ci in 0..s.c {
        for ky in 0..3 {
            let iy = y + ky;
            if iy < 1 || iy > h {
                continue;
            }
            let plane = &input[(ci * h + iy - 1) * w..(ci * h + iy) * w];
            for kx in 0..3 {
                let wv = W::at(layer.weights, wbase + (ci * 3 + ky) * 3 + kx);
                if wv == 0 {
                    continue;
                }
                // Output x reads input x + kx - 1, for the x of the chunk inside the map.
                let lo = x0.max(1usize.saturating_sub(kx));
                let hi = (w + 1 - kx).min(x0 + n);
                if lo >= hi {
                    continue;
                }
                let src = &plane[lo + kx - 1..hi + kx - 1];
                for (a, &v) in acc[lo - x0..hi - x0].iter_mut().zip(src) {
                    a.mac(wv, v);
                }
            }
        }
    }
}

/// Every output pixel summed in `i64` (any weight width and bias): the definition.
#[cfg(test)]
pub(super) fn stem_pixels<W: Wt>(
    input: &[i16],
    s: Shape,
    layer: &LayerParts<'_>,
    c_out: usize,
    dst: &mut [i16],
) {
    let (in_c, in_h, in_w) = (s.c, s.h, s.w);
    let at = |y: usize, x: usize, co: usize| -> i64 {
        let mut acc = layer.bias_at(co) as i64;
        for ci in 0..in_c {
            for ky in 0..3 {
                let iy = y + ky;
                if iy < 1 || iy > in_h {
                    continue;
                }
                let plane = &input[(ci * in_h + iy - 1) * in_w..(ci * in_h + iy) * in_w];
                for kx in 0..3 {
                    let ix = x + kx;
                    if ix < 1 || ix > in_w {
                        continue;
                    }
                    let w = W::at(layer.weights, ((co * in_c + ci) * 3 + ky) * 3 + kx);
                    acc += plane[ix - 1] as i64 * w as i64;
                }
            }
        }
        acc
    };
    let (oh, ow) = if s.pool {
        (in_h / 2, in_w / 2)
    } else {
        (in_h, in_w)
    };
    for y in 0..oh {
        for x in 0..ow {
            for co in 0..c_out {
                let v = if s.pool {
                    at(2 * y, 2 * x, co)
                        .max(at(2 * y, 2 * x + 1, co))
                        .max(at(2 * y + 1, 2 * x, co))
                        .max(at(2 * y + 1, 2 * x + 1, co))
                } else {
                    at(y, x, co)
                };
                dst[(y * ow + x) * c_out + co] = sat_i16(round_shift(v, layer.shift_at(co) as i32));
            }
        }
    }
}
