//! BatchNorm on channels-last rows, with Candle's arithmetic.
//!
//! Candle's `batch_norm` takes the mean over `(N, H, W)` of a contiguous NCHW tensor by adding
//! the elements to a per-channel f32 accumulator in memory order (sample by sample, row by
//! row), multiplies by `f32(1 / count)`, and does the same for the squared deviations; then
//! `y = (x - mean) * (recip(sqrt(var * 1 + eps)) * weight) + bias`. [`batch_stats`] and
//! [`BnAffine`] repeat exactly those operations, so results are bit-identical.

use super::conv::LANES;
use super::simd::simd_kernel;
use crate::model::layers::BN_EPS;

simd_kernel! {
    /// Batch statistics of channels `c0..c1` of `x` (rows of `c` values, one per `(n, y, x)`),
    /// in Candle's order (see the module doc): returns `(mean, biased variance)`.
    pub fn batch_stats(x: &[f32], c: usize, c0: usize, c1: usize) -> (Vec<f32>, Vec<f32>)
        => batch_stats_impl
}

#[inline(always)]
fn batch_stats_impl(x: &[f32], c: usize, c0: usize, c1: usize) -> (Vec<f32>, Vec<f32>) {
    let rows = x.len() / c;
    let s = (1.0 / rows as f64) as f32;
    let width = c1 - c0;
    let mut sum = vec![0f32; width];
    let mut sq = vec![0f32; width];
    let mut b0 = 0;
    while b0 < width {
        let b = if width - b0 >= 4 * LANES {
            4 * LANES
        } else if width - b0 >= 2 * LANES {
            2 * LANES
        } else if width - b0 >= LANES {
            LANES
        } else {
            1
        };
        let (su, sq) = (&mut sum[b0..b0 + b], &mut sq[b0..b0 + b]);
        match b {
            32 => stats_block::<32>(x, c, c0 + b0, s, su, sq),
            16 => stats_block::<16>(x, c, c0 + b0, s, su, sq),
            8 => stats_block::<8>(x, c, c0 + b0, s, su, sq),
            _ => stats_block::<1>(x, c, c0 + b0, s, su, sq),
        }
        b0 += b;
    }
    let mean = sum.iter().map(|&v| v * s + 0.0).collect();
    let var = sq.iter().map(|&v| v * s + 0.0).collect();
    (mean, var)
}

/// Sum and sum of squared deviations from the mean of channels `lo..lo + B`, in registers.
#[inline(always)]
fn stats_block<const B: usize>(
    x: &[f32],
    c: usize,
    lo: usize,
    s: f32,
    sum_out: &mut [f32],
    sq_out: &mut [f32],
) {
    let mut sum = [0f32; B];
    for row in x.chunks_exact(c) {
        let r: &[f32; B] = row[lo..lo + B].try_into().expect("block in range");
        for i in 0..B {
            sum[i] += r[i];
        }
    }
    let mut mean = [0f32; B];
    for i in 0..B {
        mean[i] = sum[i] * s + 0.0;
    }
    let mut sq = [0f32; B];
    for row in x.chunks_exact(c) {
        let r: &[f32; B] = row[lo..lo + B].try_into().expect("block in range");
        for i in 0..B {
            let d = r[i] - mean[i];
            sq[i] += d * d;
        }
    }
    sum_out.copy_from_slice(&sum);
    sq_out.copy_from_slice(&sq);
}

/// Per-channel affine form of a BatchNorm: `y = (x - mean) * scale + bias`.
#[derive(Clone, Debug)]
pub struct BnAffine {
    /// Mean subtracted.
    pub mean: Vec<f32>,
    /// `recip(sqrt(var * 1 + eps)) * weight`, as Candle computes it.
    pub scale: Vec<f32>,
    /// Bias added.
    pub bias: Vec<f32>,
}

impl BnAffine {
    /// From statistics and the affine parameters.
    pub fn new(mean: Vec<f32>, var: &[f32], weight: &[f32], bias: &[f32]) -> BnAffine {
        let eps = BN_EPS as f32;
        let scale = var
            .iter()
            .zip(weight)
            .map(|(&v, &w)| (v * 1.0 + eps).sqrt().recip() * w)
            .collect();
        BnAffine {
            mean,
            scale,
            bias: bias.to_vec(),
        }
    }

    /// Applies channels `c0..c0 + width` of the BN to rows of `src` (row stride `src_c`),
    /// writing rows of `width` values to `dst`.
    pub fn apply(&self, src: &[f32], src_c: usize, c0: usize, dst: &mut [f32], width: usize) {
        bn_apply(self, src, src_c, c0, dst, width)
    }
}

simd_kernel! {
    /// [`BnAffine::apply`].
    fn bn_apply(a: &BnAffine, src: &[f32], src_c: usize, c0: usize, dst: &mut [f32], width: usize)
        => apply_impl
}

#[inline(always)]
fn apply_impl(a: &BnAffine, src: &[f32], src_c: usize, c0: usize, dst: &mut [f32], width: usize) {
    let (m, s, b) = (
        &a.mean[c0..c0 + width],
        &a.scale[c0..c0 + width],
        &a.bias[c0..c0 + width],
    );
    match width {
        8 => apply_rows::<8>(m, s, b, src, src_c, c0, dst),
        16 => apply_rows::<16>(m, s, b, src, src_c, c0, dst),
        32 => apply_rows::<32>(m, s, b, src, src_c, c0, dst),
        64 => apply_rows::<64>(m, s, b, src, src_c, c0, dst),
        _ => {
            for (srow, drow) in src.chunks_exact(src_c).zip(dst.chunks_exact_mut(width)) {
                for ((((d, &x), &m), &s), &b) in drow
                    .iter_mut()
                    .zip(&srow[c0..c0 + width])
                    .zip(m)
                    .zip(s)
                    .zip(b)
                {
                    *d = (x - m) * s + b;
                }
            }
        }
    }
}

/// [`apply_impl`] for rows of `W` channels, the parameters in registers.
#[inline(always)]
fn apply_rows<const W: usize>(
    m: &[f32],
    s: &[f32],
    b: &[f32],
    src: &[f32],
    src_c: usize,
    c0: usize,
    dst: &mut [f32],
) {
    let m: &[f32; W] = m.try_into().expect("width");
    let s: &[f32; W] = s.try_into().expect("width");
    let b: &[f32; W] = b.try_into().expect("width");
    for (srow, drow) in src.chunks_exact(src_c).zip(dst.chunks_exact_mut(W)) {
        let x: &[f32; W] = srow[c0..c0 + W].try_into().expect("width");
        let d: &mut [f32; W] = drow.try_into().expect("width");
        for i in 0..W {
            d[i] = (x[i] - m[i]) * s[i] + b[i];
        }
    }
}
