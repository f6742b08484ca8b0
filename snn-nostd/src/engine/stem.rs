//! The dense stem: 3x3 conv (pad 1) of the real-valued CHW input + folded BN, optionally fused
//! with a MaxPool2, added into the cell-1 input (HWC) as a finished sum (see `cell::cell_step`:
//! the cell input `x0` joins the back state `B_0`; into a zeroed buffer it is written).
//!
//! For the datasets' inputs (2 or 3 channels) the stem runs output pixel by output pixel
//! ([`stem_patch`]): the pixel's inputs are packed once into `i16` pairs, then every output
//! channel is a chain of dual multiply-accumulates (`SMLAD` on `i32` sums where no channel can
//! reach `2^31`, `|bias| + 2^15 * sum |w| < 2^31`, always so for `i8` weights with a moderate
//! bias; `SMLALD` on `i64` sums otherwise). Any other input, or scratch too small, takes
//! [`stem_any`], each output summed by definition in `i64`. Both give the exact sums of the
//! definition (`crate::engine` docs).

use super::{requant, round_shift, sat_i16, Wt};
use crate::model::LayerParts;
use crate::shape::Shape;
use crate::simd;

/// Input geometry of the stem.
#[derive(Clone, Copy, Debug)]
pub(super) struct StemInput {
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// MaxPool2 after the conv.
    pub pool: bool,
}

/// Input channels the patch path ([`stem_patch`]) handles at most.
const PATCH_MAX_C: usize = 3;

/// `i16` pair words of a patch of `c` input channels (see [`stem_patch`]).
const fn patch_words(c: usize) -> usize {
    3 * c + (3 * c).div_ceil(2)
}

/// `i32` words per output channel of the patch path's packed weights for `c` input channels:
/// the sum's start (two words), the shift and the [`patch_words`] weight pairs.
const fn patch_stride(c: usize) -> usize {
    3 + patch_words(c)
}

/// `i32` scratch of the patch path: the packed weights and one running maximum per output
/// channel (MaxPool2).
const fn patch_scratch(c: usize, c_out: usize) -> usize {
    (patch_stride(c) + 1).saturating_mul(c_out)
}

/// `i32` scratch the stem needs for its fast path (see [`stem`]).
pub(super) const fn scratch_len(d: &Shape) -> usize {
    let c = d.in_c;
    if c == 2 || c == 3 {
        patch_scratch(c, d.c1)
    } else {
        0
    }
}

/// `d + sat(v)`, saturated: a stem output joins the cell input as a finished sum (into a zeroed
/// `d`, the output itself).
#[inline(always)]
fn add_sum(d: i16, v: i64) -> i16 {
    sat_i16(d as i64 + sat_i16(v) as i64)
}

/// The stem of `input` added into `dst` (`c_out` channels) as a finished sum ([`add_sum`]; the
/// stem itself where `dst` is zeroed); `row` is scratch, fast with at least [`scratch_len`]
/// words.
pub(super) fn stem<W: Wt>(
    input: &[i16],
    s: StemInput,
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
    let fast = (s.c == 2 || s.c == 3)
        && row.len() >= patch_scratch(s.c, c_out)
        && input.len() >= s.c * s.h * s.w;
    if !fast {
        stem_any::<W>(input, s, layer, c_out, dst);
        return;
    }
    const N2: usize = patch_words(2);
    const N3: usize = patch_words(3);
    let scratch = &mut row[..patch_scratch(s.c, c_out)];
    pack_weights::<W>(
        layer,
        s.c,
        !fits32,
        &mut scratch[..patch_stride(s.c) * c_out],
    );
    let f = match (s.c, fits32) {
        (2, true) => stem_patch::<2, N2, false>,
        (3, true) => stem_patch::<3, N3, false>,
        (2, false) => stem_patch::<2, N2, true>,
        _ => stem_patch::<3, N3, true>,
    };
    f(input, s, c_out, dst, scratch);
}

/// The stem for `C` = 2 or 3 input channels, full-resolution pixel by pixel: the pixel's `9 C`
/// inputs (its patch, zeros for the padding) are packed once into `N` `i16` pairs
/// ([`patch_words`]), then each output channel is `N` dual multiply-accumulates of the patch
/// with the channel's weight pairs (packed the same way once per call, [`pack_weights`], into
/// the front of `scratch`): `SMLAD` on `i32` sums where no channel can reach `2^31` (`WIDE =
/// false`, [`stem`]'s test, so the wrapping sums are exact), else `SMLALD` on `i64` sums; two
/// output channels at a time. With a MaxPool2 the four pixels' saturated outputs are maximised
/// in the back of `scratch` (requantising and saturating are monotone, so this is the maximum
/// of the sums, requantised).
///
/// Pairs: kernel row `r = 3 ci + ky` holds inputs `(a, b, c)` (columns `x - 1, x, x + 1`);
/// word `r` is `(a_r, b_r)` (one unaligned 32-bit load in the interior), and the `c`s of rows
/// `2k, 2k + 1` make word `3 C + k`.
#[inline(never)]
fn stem_patch<const C: usize, const N: usize, const WIDE: bool>(
    input: &[i16],
    s: StemInput,
    c_out: usize,
    dst: &mut [i16],
    scratch: &mut [i32],
) {
    let (h, w) = (s.h, s.w);
    let rows = 3 * C;
    debug_assert_eq!(N, patch_words(C));
    let (packed, maxs) = scratch.split_at_mut(patch_stride(C) * c_out);
    let maxs = &mut maxs[..c_out];
    let input = &input[..C * h * w];
    // Kernel row r's inputs start at `offs[r]` from the pixel's top-left input.
    let offs: [usize; 3 * PATCH_MAX_C] = core::array::from_fn(|r| (r / 3) * h * w + (r % 3) * w);
    let patch_at = |y: usize, x: usize| -> [u32; N] {
        let mut patch = [0u32; N];
        if y >= 1 && y + 1 < h && x >= 1 && x + 1 < w {
            let top = (y - 1) * w + x - 1;
            for r in 0..rows {
                let at = top + offs[r];
                debug_assert!(at + 3 <= input.len());
                // SAFETY: `ci < C`, `y + ky - 1 < h` and `x + 1 < w`: `at + 3 <= C * h * w`,
                // the length of `input`. Little-endian: the word of two `i16` is their pair.
                #[cfg(target_endian = "little")]
                {
                    patch[r] = unsafe { input.as_ptr().add(at).cast::<u32>().read_unaligned() };
                }
                #[cfg(not(target_endian = "little"))]
                {
                    patch[r] = simd::pack(input[at], input[at + 1]);
                }
            }
            for k in 0..rows.div_ceil(2) {
                let c = |r: usize| {
                    if r < rows {
                        let at = top + offs[r] + 2;
                        debug_assert!(at < input.len());
                        // SAFETY: as above, `at < C * h * w`.
                        unsafe { *input.get_unchecked(at) }
                    } else {
                        0
                    }
                };
                patch[rows + k] = simd::pack(c(2 * k), c(2 * k + 1));
            }
        } else {
            let p = pack_patch(rows, |r| {
                let (ci, ky) = (r / 3, r % 3);
                let at = |kx: usize| {
                    let inside = (1..=h).contains(&(y + ky)) && (1..=w).contains(&(x + kx));
                    if inside {
                        input[(ci * h + y + ky - 1) * w + x + kx - 1]
                    } else {
                        0
                    }
                };
                (at(0), at(1), at(2))
            });
            patch.copy_from_slice(&p[..N]);
        }
        patch
    };
    if !s.pool {
        for y in 0..h {
            for x in 0..w {
                let d = &mut dst[(y * w + x) * c_out..(y * w + x + 1) * c_out];
                patch_px::<N, WIDE, i16>(&patch_at(y, x), packed, d, |d, v| *d = add_sum(*d, v));
            }
        }
        return;
    }
    let (oh, ow) = (h / 2, w / 2);
    for oy in 0..oh {
        for ox in 0..ow {
            maxs.fill(i16::MIN as i32);
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let patch = patch_at(2 * oy + dy, 2 * ox + dx);
                patch_px::<N, WIDE, i32>(&patch, packed, maxs, |m, v| {
                    *m = (*m).max(sat_i16(v) as i32)
                });
            }
            let d = &mut dst[(oy * ow + ox) * c_out..(oy * ow + ox + 1) * c_out];
            for (dv, &m) in d.iter_mut().zip(maxs.iter()) {
                *dv = add_sum(*dv, m as i64);
            }
        }
    }
}

/// The `N` weight pairs of one channel's packed words (see [`patch_px`]).
#[inline(always)]
fn patch_weights<const N: usize>(p: &[i32]) -> Option<&[i32; N]> {
    <&[i32; N]>::try_from(p.get(3..3 + N)?).ok()
}

/// The outputs of one pixel from its `N` patch words and the packed weights (`N + 3` words per
/// channel: the sum's start, the shift, the pairs), two channels at a time: `put(d[co], value)`
/// for each of the `d.len()` channels, `value` requantised but not saturated.
#[inline(always)]
fn patch_px<const N: usize, const WIDE: bool, T>(
    patch: &[u32; N],
    packed: &[i32],
    d: &mut [T],
    put: impl Fn(&mut T, i64),
) {
    let stride = N + 3;
    let start = |p: &[i32]| (p[0] as u32 as i64) | ((p[1] as i64) << 32);
    for (dd, pp) in d.chunks_exact_mut(2).zip(packed.chunks_exact(2 * stride)) {
        let (p0, p1) = pp.split_at(stride);
        let (Some(w0), Some(w1)) = (patch_weights::<N>(p0), patch_weights::<N>(p1)) else {
            continue;
        };
        let (v0, v1) = if WIDE {
            let (mut a0, mut a1) = (start(p0), start(p1));
            for ((&x, &k0), &k1) in patch.iter().zip(w0).zip(w1) {
                a0 = simd::smlald(x, k0 as u32, a0);
                a1 = simd::smlald(x, k1 as u32, a1);
            }
            (read64(a0, p0[2]), read64(a1, p1[2]))
        } else {
            let (mut a0, mut a1) = (p0[0], p1[0]);
            for ((&x, &k0), &k1) in patch.iter().zip(w0).zip(w1) {
                a0 = simd::smlad(x, k0 as u32, a0);
                a1 = simd::smlad(x, k1 as u32, a1);
            }
            (shift32(a0, p0[2]), shift32(a1, p1[2]))
        };
        put(&mut dd[0], v0);
        put(&mut dd[1], v1);
    }
    if d.len() % 2 == 1 {
        let last = d.len() - 1;
        let p = &packed[last * stride..(last + 1) * stride];
        let Some(wk) = patch_weights::<N>(p) else {
            return;
        };
        let v = if WIDE {
            let mut a = start(p);
            for (&x, &k) in patch.iter().zip(wk) {
                a = simd::smlald(x, k as u32, a);
            }
            read64(a, p[2])
        } else {
            let mut a = p[0];
            for (&x, &k) in patch.iter().zip(wk) {
                a = simd::smlad(x, k as u32, a);
            }
            shift32(a, p[2])
        };
        put(&mut d[last], v);
    }
}

/// The stem's weights for [`stem_patch`] (`c` input channels) into `packed` (one output
/// channel per [`patch_stride`]`(c)` words: the sum's start as two words, the shift, the weight
/// pairs). `wide`: the sums are `i64` and start at `bias + 2^(s-1)` for a right shift `s`, so
/// that the read-out is a plain shift ([`read64`]); `i32` sums start at the bias ([`shift32`]
/// rounds).
fn pack_weights<W: Wt>(layer: &LayerParts<'_>, c: usize, wide: bool, packed: &mut [i32]) {
    let (rows, taps) = (3 * c, 9 * c);
    for (co, p) in packed.chunks_exact_mut(patch_stride(c)).enumerate() {
        let (bias, shift) = (layer.bias_at(co), layer.shift_at(co) as i32);
        let start = if wide && (1..63).contains(&shift) {
            bias as i64 + (1i64 << (shift - 1))
        } else {
            bias as i64
        };
        p[0] = start as i32;
        p[1] = (start >> 32) as i32;
        p[2] = shift;
        let wt = |r: usize, kx: usize| {
            if r < rows {
                W::at(layer.weights, co * taps + 3 * r + kx) as i16
            } else {
                0
            }
        };
        let pk = pack_patch(rows, |r| (wt(r, 0), wt(r, 1), wt(r, 2)));
        for (d, &v) in p[3..].iter_mut().zip(&pk[..patch_words(c)]) {
            *d = v as i32;
        }
    }
}

/// The pair words of the `rows` kernel rows `row(r) = (a, b, c)`: `(a_r, b_r)` for each row,
/// then `(c_2k, c_2k+1)` (0 past the last row).
#[inline(always)]
fn pack_patch(
    rows: usize,
    row: impl Fn(usize) -> (i16, i16, i16),
) -> [u32; patch_words(PATCH_MAX_C)] {
    let mut out = [0u32; patch_words(PATCH_MAX_C)];
    let mut c_prev = 0i16;
    for r in 0..rows {
        let (a, b, c) = row(r);
        out[r] = simd::pack(a, b);
        if r % 2 == 1 {
            out[rows + r / 2] = simd::pack(c_prev, c);
        }
        c_prev = c;
    }
    if rows % 2 == 1 {
        out[rows + rows / 2] = simd::pack(c_prev, 0);
    }
    out
}

/// `requant(a, s)` (as `i64`): the right shifts with round half up inline, the rest by
/// [`requant`].
#[inline(always)]
fn shift32(a: i32, s: i32) -> i64 {
    if (1..32).contains(&s) {
        ((a >> s) + ((a >> (s - 1)) & 1)) as i64
    } else {
        requant_cold(a, s)
    }
}

/// [`requant`] out of line, for the shifts the stem's fast read-outs do not take.
#[cold]
#[inline(never)]
fn requant_cold(a: i32, s: i32) -> i64 {
    requant(a, s) as i64
}

/// `round_shift(x, s)` of an `i64` sum that started at `bias + 2^(s-1)` for a right shift `s`
/// (so `a = x + 2^(s-1)`): `a >> s`, from the high word alone for `s >= 32`. Other shifts
/// started at the bias: [`round_shift`].
#[inline(always)]
fn read64(a: i64, s: i32) -> i64 {
    if (32..63).contains(&s) {
        (((a >> 32) as i32) >> (s - 32)) as i64
    } else if (1..32).contains(&s) {
        a >> s
    } else {
        round_shift_cold(a, s)
    }
}

/// [`round_shift`] out of line, for the shifts the stem's fast read-outs do not take.
#[cold]
#[inline(never)]
fn round_shift_cold(a: i64, s: i32) -> i64 {
    round_shift(a, s)
}

/// Every output pixel summed in `i64` (any channel count, weight width and bias), added into
/// `dst` as a finished sum: the definition, for inputs the patch path does not take.
#[inline(never)]
pub(super) fn stem_any<W: Wt>(
    input: &[i16],
    s: StemInput,
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
                let d = &mut dst[(y * ow + x) * c_out + co];
                *d = add_sum(*d, round_shift(v, layer.shift_at(co) as i32));
            }
        }
    }
}
