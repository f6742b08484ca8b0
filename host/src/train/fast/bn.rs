//! BatchNorm in training mode over whole batches of channels-last rows: batch statistics,
//! the normalisation added into a destination, and the backward pass.
//!
//! Reductions are per-sample partial sums (f64) added in sample order, so results do not depend
//! on the number of threads.

use crate::model::layers::{BN_EPS, BN_MOMENTUM};
use rayon::prelude::*;

/// The batch statistics of one BatchNorm call.
#[derive(Clone, Debug)]
pub struct BnStats {
    /// Per-channel mean.
    pub mean: Vec<f32>,
    /// Per-channel `1 / sqrt(var + eps)` (biased variance).
    pub inv: Vec<f32>,
}

/// Channels `c0..c0 + width` of rows of `stride` values, `n` samples of equal size.
#[derive(Clone, Copy, Debug)]
pub struct Cols {
    /// Values per row.
    pub stride: usize,
    /// First channel.
    pub c0: usize,
    /// Channels.
    pub width: usize,
}

/// Sums over rows and samples of `f(row slice)` per channel, partial per sample, in order.
fn reduce(x: &[f32], n: usize, width: usize, f: impl Fn(&[f32], &mut [f64]) + Sync) -> Vec<f64> {
    let per = x.len() / n;
    let parts: Vec<Vec<f64>> = x
        .par_chunks(per)
        .map(|s| {
            let mut acc = vec![0f64; width];
            f(s, &mut acc);
            acc
        })
        .collect();
    let mut out = vec![0f64; width];
    for p in parts {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
    out
}

/// Batch statistics of `cols` of `x` (`n` samples); updates the running statistics
/// (momentum [`BN_MOMENTUM`], unbiased variance) as Candle's training BatchNorm does.
pub fn forward_stats(
    x: &[f32],
    n: usize,
    cols: Cols,
    running_mean: &mut [f32],
    running_var: &mut [f32],
) -> BnStats {
    let Cols { stride, c0, width } = cols;
    let m = (x.len() / stride) as f64;
    let sums = reduce(x, n, width, |s, acc| {
        for row in s.chunks_exact(stride) {
            for (a, &v) in acc.iter_mut().zip(&row[c0..c0 + width]) {
                *a += v as f64;
            }
        }
    });
    let mean: Vec<f64> = sums.iter().map(|s| s / m).collect();
    let sq = reduce(x, n, width, |s, acc| {
        for row in s.chunks_exact(stride) {
            for ((a, &v), &mu) in acc.iter_mut().zip(&row[c0..c0 + width]).zip(&mean) {
                let d = v as f64 - mu;
                *a += d * d;
            }
        }
    });
    let var: Vec<f64> = sq.iter().map(|s| s / m).collect();
    let keep = (1.0 - BN_MOMENTUM) as f32;
    let mom = BN_MOMENTUM as f32;
    let unbias = m / (m - 1.0).max(1.0);
    for i in 0..width {
        running_mean[i] = running_mean[i] * keep + mean[i] as f32 * mom;
        running_var[i] = running_var[i] * keep + (var[i] * unbias) as f32 * mom;
    }
    BnStats {
        mean: mean.iter().map(|&v| v as f32).collect(),
        inv: var
            .iter()
            .map(|&v| (1.0 / (v + BN_EPS).sqrt()) as f32)
            .collect(),
    }
}

/// `dst[row][..width] += (x[row][c0 + i] - mean) * inv * gamma + beta` (rows of `width`).
pub fn apply_add(
    x: &[f32],
    n: usize,
    cols: Cols,
    st: &BnStats,
    gamma: &[f32],
    beta: &[f32],
    dst: &mut [f32],
) {
    let Cols { stride, c0, width } = cols;
    let scale: Vec<f32> = st.inv.iter().zip(gamma).map(|(&i, &g)| i * g).collect();
    let per_x = x.len() / n;
    let per_d = dst.len() / n;
    dst.par_chunks_mut(per_d)
        .zip(x.par_chunks(per_x))
        .for_each(|(d, s)| {
            for (drow, srow) in d.chunks_exact_mut(width).zip(s.chunks_exact(stride)) {
                for i in 0..width {
                    drow[i] += (srow[c0 + i] - st.mean[i]) * scale[i] + beta[i];
                }
            }
        });
}

/// The backward pass of a training BatchNorm: from `dy` (rows of `width`) and the input `x`
/// (`cols` of rows of `stride`), adds `sum dy * xhat` to `dgamma` and `sum dy` to `dbeta` and
/// writes `dx = gamma * inv * (dy - mean(dy) - xhat * mean(dy * xhat))` into channels
/// `c0..c0 + width` of `dx` (rows of `stride`).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    x: &[f32],
    n: usize,
    cols: Cols,
    st: &BnStats,
    gamma: &[f32],
    dy: &[f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    dx: &mut [f32],
) {
    let Cols { stride, c0, width } = cols;
    let m = (x.len() / stride) as f64;
    let per_x = x.len() / n;
    let per_d = dy.len() / n;
    let sums: Vec<(Vec<f64>, Vec<f64>)> = x
        .par_chunks(per_x)
        .zip(dy.par_chunks(per_d))
        .map(|(s, d)| {
            let (mut sd, mut sdx) = (vec![0f64; width], vec![0f64; width]);
            for (srow, drow) in s.chunks_exact(stride).zip(d.chunks_exact(width)) {
                for i in 0..width {
                    let xh = (srow[c0 + i] - st.mean[i]) * st.inv[i];
                    sd[i] += drow[i] as f64;
                    sdx[i] += (drow[i] * xh) as f64;
                }
            }
            (sd, sdx)
        })
        .collect();
    let (mut sd, mut sdx) = (vec![0f64; width], vec![0f64; width]);
    for (a, b) in sums {
        for i in 0..width {
            sd[i] += a[i];
            sdx[i] += b[i];
        }
    }
    for i in 0..width {
        dgamma[i] += sdx[i] as f32;
        dbeta[i] += sd[i] as f32;
    }
    let mdy: Vec<f32> = sd.iter().map(|&v| (v / m) as f32).collect();
    let mdx: Vec<f32> = sdx.iter().map(|&v| (v / m) as f32).collect();
    let scale: Vec<f32> = st.inv.iter().zip(gamma).map(|(&i, &g)| i * g).collect();
    dx.par_chunks_mut(per_x)
        .zip(x.par_chunks(per_x))
        .zip(dy.par_chunks(per_d))
        .for_each(|((o, s), d)| {
            for ((orow, srow), drow) in o
                .chunks_exact_mut(stride)
                .zip(s.chunks_exact(stride))
                .zip(d.chunks_exact(width))
            {
                for i in 0..width {
                    let xh = (srow[c0 + i] - st.mean[i]) * st.inv[i];
                    orow[c0 + i] = scale[i] * (drow[i] - mdy[i] - xh * mdx[i]);
                }
            }
        });
}
