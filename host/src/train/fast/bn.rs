//! BatchNorm in training mode over whole batches of channels-last rows: batch statistics,
//! the normalisation written or added into a destination, and the backward pass.
//!
//! Each pass runs per sample on rayon through a kernel compiled for AVX-512 / AVX2
//! (`simd_kernel!`) with the channel count as a constant where it is a usual one. Reductions are
//! per-sample partial sums (f64) added in sample order, so results do not depend on the number
//! of threads.

use super::buf::Buf;
use super::kernels::with_width;
use super::params::{Grads, Params};
use crate::model::layers::{BN_EPS, BN_MOMENTUM};
use crate::search::cpu::simd::simd_kernel;
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

/// Per-sample partials of two per-channel f64 sums (`f(sample, sums, sums2)` adds to them),
/// added in sample order.
fn reduce2(
    n: usize,
    width: usize,
    f: impl Fn(usize, &mut [f64], &mut [f64]) + Sync,
) -> (Vec<f64>, Vec<f64>) {
    let parts: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut acc = vec![0f64; 2 * width];
            let (a, b) = acc.split_at_mut(width);
            f(i, a, b);
            acc
        })
        .collect();
    let mut a = vec![0f64; width];
    let mut b = vec![0f64; width];
    for p in parts {
        for i in 0..width {
            a[i] += p[i];
            b[i] += p[width + i];
        }
    }
    (a, b)
}

simd_kernel! {
    /// Adds the per-channel sums and sums of squares (in f64) of channels `c0..c0 +
    /// sum.len()` of the rows of `x` (each `stride` values) to `sum` and `sq`.
    fn moments(x: &[f32], stride: usize, c0: usize, sum: &mut [f64], sq: &mut [f64]) => moments_impl
}

#[inline(always)]
fn moments_impl(x: &[f32], stride: usize, c0: usize, sum: &mut [f64], sq: &mut [f64]) {
    with_width!(
        sum.len(),
        moments_fixed,
        moments_dyn(x, stride, c0, sum, sq)
    )
}

#[inline(always)]
fn moments_fixed<const W: usize>(
    x: &[f32],
    stride: usize,
    c0: usize,
    sum: &mut [f64],
    sq: &mut [f64],
) {
    let (mut s, mut q) = ([0f64; W], [0f64; W]);
    for row in x.chunks_exact(stride) {
        let r: &[f32; W] = row[c0..c0 + W].try_into().expect("row");
        for i in 0..W {
            let v = r[i] as f64;
            s[i] += v;
            q[i] += v * v;
        }
    }
    for i in 0..W {
        sum[i] += s[i];
        sq[i] += q[i];
    }
}

fn moments_dyn(x: &[f32], stride: usize, c0: usize, sum: &mut [f64], sq: &mut [f64]) {
    let width = sum.len();
    for row in x.chunks_exact(stride) {
        for i in 0..width {
            let v = row[c0 + i] as f64;
            sum[i] += v;
            sq[i] += v * v;
        }
    }
}

/// Batch statistics of `cols` of `x` (`n` samples); updates the running statistics
/// (momentum [`BN_MOMENTUM`], unbiased variance) as Candle's training BatchNorm does. The
/// variance is `E[x^2] - E[x]^2` in f64.
pub fn forward_stats(
    x: &[f32],
    n: usize,
    cols: Cols,
    running_mean: &mut [f32],
    running_var: &mut [f32],
) -> BnStats {
    let Cols { stride, c0, width } = cols;
    let m = (x.len() / stride) as f64;
    let per = x.len() / n;
    let (sums, sq) = reduce2(n, width, |i, s, q| {
        moments(&x[i * per..(i + 1) * per], stride, c0, s, q)
    });
    let mean: Vec<f64> = sums.iter().map(|s| s / m).collect();
    let var: Vec<f64> = sq
        .iter()
        .zip(&mean)
        .map(|(q, mu)| (q / m - mu * mu).max(0.0))
        .collect();
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

simd_kernel! {
    /// `dst[row][i] = y` or `dst[row][i] += y` (when `add`) with `y = (x[row][c0 + i] -
    /// mean[i]) * scale[i] + beta[i]`, over the rows of `x` (`stride` values) and `dst`
    /// (`mean.len()` values).
    fn apply_rows(
        x: &[f32],
        stride: usize,
        c0: usize,
        mean: &[f32],
        scale: &[f32],
        beta: &[f32],
        add: bool,
        dst: &mut [f32],
    ) => apply_impl
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn apply_impl(
    x: &[f32],
    stride: usize,
    c0: usize,
    mean: &[f32],
    scale: &[f32],
    beta: &[f32],
    add: bool,
    dst: &mut [f32],
) {
    with_width!(
        mean.len(),
        apply_fixed,
        apply_dyn(x, stride, c0, mean, scale, beta, add, dst)
    )
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn apply_fixed<const W: usize>(
    x: &[f32],
    stride: usize,
    c0: usize,
    mean: &[f32],
    scale: &[f32],
    beta: &[f32],
    add: bool,
    dst: &mut [f32],
) {
    let mean: &[f32; W] = mean.try_into().expect("width");
    let scale: &[f32; W] = scale.try_into().expect("width");
    let beta: &[f32; W] = beta.try_into().expect("width");
    for (d, row) in dst.chunks_exact_mut(W).zip(x.chunks_exact(stride)) {
        let r: &[f32; W] = row[c0..c0 + W].try_into().expect("row");
        let d: &mut [f32; W] = d.try_into().expect("row");
        for i in 0..W {
            let y = (r[i] - mean[i]) * scale[i] + beta[i];
            d[i] = if add { d[i] + y } else { y };
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn apply_dyn(
    x: &[f32],
    stride: usize,
    c0: usize,
    mean: &[f32],
    scale: &[f32],
    beta: &[f32],
    add: bool,
    dst: &mut [f32],
) {
    let width = mean.len();
    for (d, row) in dst.chunks_exact_mut(width).zip(x.chunks_exact(stride)) {
        for i in 0..width {
            let y = (row[c0 + i] - mean[i]) * scale[i] + beta[i];
            d[i] = if add { d[i] + y } else { y };
        }
    }
}

/// Writes (or adds, when `add`) `(x[row][c0 + i] - mean) * inv * gamma + beta` into `dst`
/// (rows of `width`).
#[allow(clippy::too_many_arguments)]
pub fn apply(
    x: &[f32],
    n: usize,
    cols: Cols,
    st: &BnStats,
    gamma: &[f32],
    beta: &[f32],
    add: bool,
    dst: &mut [f32],
) {
    let Cols { stride, c0, .. } = cols;
    let scale: Vec<f32> = st.inv.iter().zip(gamma).map(|(&i, &g)| i * g).collect();
    let per_x = x.len() / n;
    let per_d = dst.len() / n;
    dst.par_chunks_mut(per_d)
        .zip(x.par_chunks(per_x))
        .for_each(|(d, s)| apply_rows(s, stride, c0, &st.mean, &scale, beta, add, d));
}

simd_kernel! {
    /// Adds `dy[row][i]` to `sd[i]` and `dy[row][i] * xhat` to `sdx[i]` (in f64), with `xhat =
    /// (x[row][c0 + i] - mean[i]) * inv[i]`, over the rows of `x` (`stride` values) and `dy`
    /// (`mean.len()` values).
    fn grad_sums(
        x: &[f32],
        stride: usize,
        c0: usize,
        mean: &[f32],
        inv: &[f32],
        dy: &[f32],
        sd: &mut [f64],
        sdx: &mut [f64],
    ) => grad_sums_impl
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn grad_sums_impl(
    x: &[f32],
    stride: usize,
    c0: usize,
    mean: &[f32],
    inv: &[f32],
    dy: &[f32],
    sd: &mut [f64],
    sdx: &mut [f64],
) {
    with_width!(
        mean.len(),
        grad_sums_fixed,
        grad_sums_dyn(x, stride, c0, mean, inv, dy, sd, sdx)
    )
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn grad_sums_fixed<const W: usize>(
    x: &[f32],
    stride: usize,
    c0: usize,
    mean: &[f32],
    inv: &[f32],
    dy: &[f32],
    sd: &mut [f64],
    sdx: &mut [f64],
) {
    let mean: &[f32; W] = mean.try_into().expect("width");
    let inv: &[f32; W] = inv.try_into().expect("width");
    let (mut a, mut b) = ([0f64; W], [0f64; W]);
    for (d, row) in dy.chunks_exact(W).zip(x.chunks_exact(stride)) {
        let r: &[f32; W] = row[c0..c0 + W].try_into().expect("row");
        let d: &[f32; W] = d.try_into().expect("row");
        for i in 0..W {
            let xh = (r[i] - mean[i]) * inv[i];
            a[i] += d[i] as f64;
            b[i] += (d[i] * xh) as f64;
        }
    }
    for i in 0..W {
        sd[i] += a[i];
        sdx[i] += b[i];
    }
}

#[allow(clippy::too_many_arguments)]
fn grad_sums_dyn(
    x: &[f32],
    stride: usize,
    c0: usize,
    mean: &[f32],
    inv: &[f32],
    dy: &[f32],
    sd: &mut [f64],
    sdx: &mut [f64],
) {
    let width = mean.len();
    for (d, row) in dy.chunks_exact(width).zip(x.chunks_exact(stride)) {
        for i in 0..width {
            let xh = (row[c0 + i] - mean[i]) * inv[i];
            sd[i] += d[i] as f64;
            sdx[i] += (d[i] * xh) as f64;
        }
    }
}

/// The per-channel constants of the input gradient.
struct GradK<'a> {
    mean: &'a [f32],
    inv: &'a [f32],
    scale: &'a [f32],
    mdy: &'a [f32],
    mdx: &'a [f32],
}

simd_kernel! {
    /// `dx[row][c0 + i] = scale[i] * (dy[row][i] - mdy[i] - xhat * mdx[i])` with `xhat =
    /// (x[row][c0 + i] - mean[i]) * inv[i]`, over the rows of `x` and `dx` (`stride` values)
    /// and `dy` (the constants' width).
    fn grad_input(x: &[f32], stride: usize, c0: usize, k: &GradK<'_>, dy: &[f32], dx: &mut [f32])
        => grad_input_impl
}

#[inline(always)]
fn grad_input_impl(x: &[f32], stride: usize, c0: usize, k: &GradK<'_>, dy: &[f32], dx: &mut [f32]) {
    with_width!(
        k.mean.len(),
        grad_input_fixed,
        grad_input_dyn(x, stride, c0, k, dy, dx)
    )
}

#[inline(always)]
fn grad_input_fixed<const W: usize>(
    x: &[f32],
    stride: usize,
    c0: usize,
    k: &GradK<'_>,
    dy: &[f32],
    dx: &mut [f32],
) {
    let arr = |v: &[f32]| -> [f32; W] { v.try_into().expect("width") };
    let (mean, inv, scale, mdy, mdx) = (
        arr(k.mean),
        arr(k.inv),
        arr(k.scale),
        arr(k.mdy),
        arr(k.mdx),
    );
    for ((o, row), d) in dx
        .chunks_exact_mut(stride)
        .zip(x.chunks_exact(stride))
        .zip(dy.chunks_exact(W))
    {
        let r: &[f32; W] = row[c0..c0 + W].try_into().expect("row");
        let o: &mut [f32; W] = (&mut o[c0..c0 + W]).try_into().expect("row");
        let d: &[f32; W] = d.try_into().expect("row");
        for i in 0..W {
            let xh = (r[i] - mean[i]) * inv[i];
            o[i] = scale[i] * (d[i] - mdy[i] - xh * mdx[i]);
        }
    }
}

fn grad_input_dyn(x: &[f32], stride: usize, c0: usize, k: &GradK<'_>, dy: &[f32], dx: &mut [f32]) {
    let width = k.mean.len();
    for ((o, row), d) in dx
        .chunks_exact_mut(stride)
        .zip(x.chunks_exact(stride))
        .zip(dy.chunks_exact(width))
    {
        for i in 0..width {
            let xh = (row[c0 + i] - k.mean[i]) * k.inv[i];
            o[c0 + i] = k.scale[i] * (d[i] - k.mdy[i] - xh * k.mdx[i]);
        }
    }
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
    let (sd, sdx) = reduce2(n, width, |i, a, b| {
        grad_sums(
            &x[i * per_x..(i + 1) * per_x],
            stride,
            c0,
            &st.mean,
            &st.inv,
            &dy[i * per_d..(i + 1) * per_d],
            a,
            b,
        )
    });
    for i in 0..width {
        dgamma[i] += sdx[i] as f32;
        dbeta[i] += sd[i] as f32;
    }
    let mdy: Vec<f32> = sd.iter().map(|&v| (v / m) as f32).collect();
    let mdx: Vec<f32> = sdx.iter().map(|&v| (v / m) as f32).collect();
    let scale: Vec<f32> = st.inv.iter().zip(gamma).map(|(&i, &g)| i * g).collect();
    let k = GradK {
        mean: &st.mean,
        inv: &st.inv,
        scale: &scale,
        mdy: &mdy,
        mdx: &mdx,
    };
    dx.par_chunks_mut(per_x)
        .zip(x.par_chunks(per_x))
        .zip(dy.par_chunks(per_d))
        .for_each(|((o, s), d)| grad_input(s, stride, c0, &k, d, o));
}

impl Cols {
    /// All `c` channels of rows of `c`.
    pub fn all(c: usize) -> Cols {
        Cols {
            stride: c,
            c0: 0,
            width: c,
        }
    }
}

/// The BatchNorm `prefix` of `cols` of `raw` (`n` samples) into fresh rows of `cols.width`,
/// with its batch statistics; updates its running statistics in `p`.
pub fn normalise(
    raw: &[f32],
    n: usize,
    cols: Cols,
    p: &mut Params,
    prefix: &str,
) -> (Buf, BnStats) {
    let (rm, rv) = p.running_mut(prefix);
    let st = forward_stats(raw, n, cols, rm, rv);
    let mut out = Buf::scratch(raw.len() / cols.stride * cols.width);
    apply(
        raw,
        n,
        cols,
        &st,
        p.get(&format!("{prefix}.weight")),
        p.get(&format!("{prefix}.bias")),
        false,
        &mut out,
    );
    (out, st)
}

/// The backward of [`normalise`] for the output gradient `dy`: the input gradient (rows of
/// `cols.stride`, the other channels 0); adds the weight and bias gradients to `grads`.
#[allow(clippy::too_many_arguments)]
pub fn normalise_back(
    raw: &[f32],
    n: usize,
    cols: Cols,
    st: &BnStats,
    p: &Params,
    prefix: &str,
    dy: &[f32],
    grads: &mut Grads,
) -> Buf {
    let mut dx = if cols.stride == cols.width {
        Buf::scratch(raw.len())
    } else {
        Buf::zeros(raw.len())
    };
    let (dg, db) = grads.bn_pair(prefix, cols.width);
    backward(
        raw,
        n,
        cols,
        st,
        p.get(&format!("{prefix}.weight")),
        dy,
        dg,
        db,
        &mut dx,
    );
    dx
}
