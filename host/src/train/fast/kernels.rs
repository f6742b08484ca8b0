//! The per-sample kernels of the CPU training path, on channels-last maps (`[h][w][c]`):
//! the LIF forward and backward, BatchNorm in training mode, dense and event-driven
//! convolutions and their gradients, and the pools.
//!
//! Hot loops are plain Rust compiled for AVX-512 / AVX2 at run time (`simd_kernel!`, see
//! `search::cpu`); none depends on the number of threads.

use crate::search::cpu::conv::Active;
use crate::search::cpu::simd::simd_kernel;
use std::f64::consts::PI;

/// The LIF constants in f32 (see docs/design.md, 'The spiking neuron').
#[derive(Clone, Copy, Debug)]
pub struct LifK {
    /// `1 / tau`.
    pub k: f32,
    /// `1 - 1 / tau`.
    pub decay: f32,
    /// Firing threshold.
    pub th: f32,
    /// `pi / 2 * alpha`.
    pub slope: f32,
    /// `alpha / 2`.
    pub half_alpha: f32,
    /// Membrane after a spike (the hard reset).
    pub reset: f32,
}

impl LifK {
    /// From the network's LIF parameters.
    pub fn new(p: &crate::config::LifParams) -> LifK {
        let k = 1.0 / p.tau;
        LifK {
            k: k as f32,
            decay: (1.0 - k) as f32,
            th: p.v_threshold as f32,
            slope: (PI / 2.0 * p.alpha) as f32,
            half_alpha: (p.alpha / 2.0) as f32,
            reset: p.v_reset as f32,
        }
    }

    /// The ATan surrogate derivative at membrane `charged`.
    #[inline(always)]
    pub fn surrogate(&self, charged: f32) -> f32 {
        let z = (charged - self.th) * self.slope;
        self.half_alpha / (z * z + 1.0)
    }
}

simd_kernel! {
    /// One LIF step of one sample: `charged = decay * v + k * x` (`v` is 0 when `first`),
    /// spike where `charged >= th`, `v = reset` where it fired, else `charged`. Writes `charged` (what the
    /// backward pass needs) and the spikes as bits into `code` (bit `e` = element `e`).
    pub fn lif_forward(x: &[f32], v: &mut [f32], first: bool, p: &LifK, charged: &mut [f32], code: &mut [u64])
        => lif_forward_impl
}

#[inline(always)]
fn lif_forward_impl(
    x: &[f32],
    v: &mut [f32],
    first: bool,
    p: &LifK,
    charged: &mut [f32],
    code: &mut [u64],
) {
    assert!(x.len() == v.len() && x.len() == charged.len());
    assert_eq!(code.len(), x.len().div_ceil(64));
    for (((xc, vc), cc), word) in x
        .chunks(64)
        .zip(v.chunks_mut(64))
        .zip(charged.chunks_mut(64))
        .zip(code.iter_mut())
    {
        let mut bits = 0u64;
        for (i, ((&xi, vi), ci)) in xc.iter().zip(vc.iter_mut()).zip(cc.iter_mut()).enumerate() {
            let ch = if first {
                xi * p.k
            } else {
                *vi * p.decay + xi * p.k
            };
            let fire = ch >= p.th;
            *ci = ch;
            *vi = if fire { p.reset } else { ch };
            bits |= (fire as u64) << i;
        }
        *word = bits;
    }
}

simd_kernel! {
    /// The backward of [`lif_forward`] for one sample: with `g = ds * surrogate(charged) +
    /// dv * (1 - spike)` (absent terms 0), writes `dx = k * g` and `dv_prev = decay * g`, the
    /// gradient of the previous step's membrane.
    pub fn lif_backward(
        charged: &[f32],
        ds: Option<&[f32]>,
        dv: Option<&[f32]>,
        p: &LifK,
        dx: &mut [f32],
        dv_prev: &mut [f32],
    ) => lif_backward_impl
}

#[inline(always)]
fn lif_backward_impl(
    charged: &[f32],
    ds: Option<&[f32]>,
    dv: Option<&[f32]>,
    p: &LifK,
    dx: &mut [f32],
    dv_prev: &mut [f32],
) {
    let n = charged.len();
    assert!(dx.len() == n && dv_prev.len() == n);
    // One loop per case, over zipped slices (no bounds checks: the loops vectorise).
    let out = dx.iter_mut().zip(dv_prev.iter_mut());
    match (ds, dv) {
        (Some(ds), Some(dv)) => {
            assert!(ds.len() == n && dv.len() == n);
            for ((&ch, (&d, &v)), (x, vp)) in charged.iter().zip(ds.iter().zip(dv)).zip(out) {
                let g = 0.0 + d * p.surrogate(ch);
                let g = if ch < p.th { g + v } else { g };
                *x = g * p.k;
                *vp = g * p.decay;
            }
        }
        (Some(ds), None) => {
            assert_eq!(ds.len(), n);
            for ((&ch, &d), (x, vp)) in charged.iter().zip(ds).zip(out) {
                let g = 0.0 + d * p.surrogate(ch);
                *x = g * p.k;
                *vp = g * p.decay;
            }
        }
        (None, Some(dv)) => {
            assert_eq!(dv.len(), n);
            for ((&ch, &v), (x, vp)) in charged.iter().zip(dv).zip(out) {
                let g = if ch < p.th { 0.0 + v } else { 0.0 };
                *x = g * p.k;
                *vp = g * p.decay;
            }
        }
        (None, None) => {
            dx.fill(0.0);
            dv_prev.fill(0.0);
        }
    }
}

/// Calls `$f::<C>(args)` with the const `C` equal to the runtime `$c` for the usual channel
/// counts, else `$dynf(args)`.
macro_rules! with_width {
    ($c:expr, $f:ident, $dynf:ident($($arg:expr),* $(,)?)) => {
        match $c {
            4 => $f::<4>($($arg),*),
            8 => $f::<8>($($arg),*),
            16 => $f::<16>($($arg),*),
            24 => $f::<24>($($arg),*),
            32 => $f::<32>($($arg),*),
            48 => $f::<48>($($arg),*),
            64 => $f::<64>($($arg),*),
            _ => $dynf($($arg),*),
        }
    };
}
pub(super) use with_width;

/// Shape of a same-padded, stride-1 convolution over channels-last maps of one sample, whose
/// input rows hold `cin` values and output rows `cout`.
#[derive(Clone, Copy, Debug)]
pub struct Geom {
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Values per input pixel.
    pub cin: usize,
    /// Values per output pixel.
    pub cout: usize,
    /// Kernel size (odd), padding `k / 2`.
    pub k: usize,
}

simd_kernel! {
    /// A dense same-padded convolution of one sample: `out[p] = sum over the window rows of
    /// sum_j seg[j] * rows[r0 + j]`, where `seg` is the input window row (`(kx, ci)` order,
    /// clipped to the map) and `rows` is `[k][k][cin][cout]`.
    ///
    /// Serves the stem's forward pass (`rows` = the kernel taps) and every input gradient
    /// (`input` = the output gradient, `rows` = the flipped, transposed kernel, see
    /// [`flip_taps`]).
    pub fn conv_dense(input: &[f32], g: &Geom, rows: &[f32], out: &mut [f32]) => conv_dense_impl
}

#[inline(always)]
fn conv_dense_impl(input: &[f32], g: &Geom, rows: &[f32], out: &mut [f32]) {
    assert_eq!(input.len(), g.h * g.w * g.cin);
    assert_eq!(rows.len(), g.k * g.k * g.cin * g.cout);
    assert_eq!(out.len(), g.h * g.w * g.cout);
    with_width!(g.cout, dense_fixed, dense_dyn(input, g, rows, out))
}

/// The window rows of output pixel `(y, x)`: `(input range, first kernel row)` for each row
/// in the map.
#[inline(always)]
fn window(g: &Geom, y: usize, x: usize, mut f: impl FnMut(std::ops::Range<usize>, usize)) {
    let pad = g.k / 2;
    let x0 = x.saturating_sub(pad);
    let x1 = (x + pad).min(g.w - 1);
    for ky in 0..g.k {
        let Some(yy) = (y + ky).checked_sub(pad).filter(|&v| v < g.h) else {
            continue;
        };
        let kx0 = x0 + pad - x;
        let r0 = (ky * g.k + kx0) * g.cin;
        f((yy * g.w + x0) * g.cin..(yy * g.w + x1 + 1) * g.cin, r0);
    }
}

/// Output pixels [`conv_dense`] computes together inside a map row.
const RUN: usize = 4;

#[inline(always)]
fn dense_fixed<const C: usize>(input: &[f32], g: &Geom, rows: &[f32], out: &mut [f32]) {
    let pad = g.k / 2;
    for y in 0..g.h {
        let mut x = 0;
        while x < g.w {
            // Runs of pixels whose windows lie inside the row share each kernel row load.
            if x >= pad && x + RUN - 1 + pad < g.w {
                dense_run::<C>(input, g, rows, (y, x), out);
                x += RUN;
            } else {
                dense_pixel::<C>(input, g, rows, (y, x), out);
                x += 1;
            }
        }
    }
}

/// [`RUN`] output pixels from `(y, x)` on, all windows inside the row: each kernel row is
/// loaded once and multiplied by the input value under it for each pixel.
#[inline(always)]
fn dense_run<const C: usize>(
    input: &[f32],
    g: &Geom,
    rows: &[f32],
    (y, x): (usize, usize),
    out: &mut [f32],
) {
    let pad = g.k / 2;
    let span = g.k * g.cin;
    let mut acc = [[0f32; C]; RUN];
    for ky in 0..g.k {
        let Some(yy) = (y + ky).checked_sub(pad).filter(|&v| v < g.h) else {
            continue;
        };
        let base = (yy * g.w + x - pad) * g.cin;
        let seg = |p: usize| &input[base + p * g.cin..base + p * g.cin + span];
        let w = &rows[ky * span * C..(ky + 1) * span * C];
        let [a0, a1, a2, a3] = &mut acc;
        for ((((wr, &s0), &s1), &s2), &s3) in w
            .chunks_exact(C)
            .zip(seg(0))
            .zip(seg(1))
            .zip(seg(2))
            .zip(seg(3))
        {
            let wr: &[f32; C] = wr.try_into().expect("row");
            for i in 0..C {
                a0[i] += s0 * wr[i];
                a1[i] += s1 * wr[i];
                a2[i] += s2 * wr[i];
                a3[i] += s3 * wr[i];
            }
        }
    }
    let o = &mut out[(y * g.w + x) * C..(y * g.w + x + RUN) * C];
    for (o, a) in o.chunks_exact_mut(C).zip(&acc) {
        o.copy_from_slice(a);
    }
}

/// One output pixel `(y, x)`, its window clipped to the map.
#[inline(always)]
fn dense_pixel<const C: usize>(
    input: &[f32],
    g: &Geom,
    rows: &[f32],
    (y, x): (usize, usize),
    out: &mut [f32],
) {
    let pad = g.k / 2;
    let mut acc = [0f32; C];
    let x0 = x.saturating_sub(pad);
    let x1 = (x + pad).min(g.w - 1);
    for ky in 0..g.k {
        let Some(yy) = (y + ky).checked_sub(pad).filter(|&v| v < g.h) else {
            continue;
        };
        let r0 = (ky * g.k + x0 + pad - x) * g.cin;
        let seg = &input[(yy * g.w + x0) * g.cin..(yy * g.w + x1 + 1) * g.cin];
        let w = &rows[r0 * C..(r0 + seg.len()) * C];
        for (&s, wr) in seg.iter().zip(w.chunks_exact(C)) {
            let wr: &[f32; C] = wr.try_into().expect("row");
            for i in 0..C {
                acc[i] += s * wr[i];
            }
        }
    }
    out[(y * g.w + x) * C..(y * g.w + x + 1) * C].copy_from_slice(&acc);
}

fn dense_dyn(input: &[f32], g: &Geom, rows: &[f32], out: &mut [f32]) {
    let c = g.cout;
    for y in 0..g.h {
        for x in 0..g.w {
            let o = &mut out[(y * g.w + x) * c..(y * g.w + x + 1) * c];
            o.fill(0.0);
            window(g, y, x, |range, r0| {
                for (j, &s) in input[range].iter().enumerate() {
                    let wr = &rows[(r0 + j) * c..(r0 + j + 1) * c];
                    for (a, &wv) in o.iter_mut().zip(wr) {
                        *a += s * wv;
                    }
                }
            });
        }
    }
}

/// The kernel `w` (`[cout][cin][k][k]`, Candle's layout) as rows for [`conv_dense`]'s forward
/// use: `[ky][kx][ci][co]`, output rows `stride >= cout` long (the extra values 0).
pub fn taps(w: &[f32], cout: usize, cin: usize, k: usize, stride: usize) -> Vec<f32> {
    let mut t = vec![0f32; k * k * cin * stride];
    for co in 0..cout {
        for ci in 0..cin {
            for tap in 0..k * k {
                t[(tap * cin + ci) * stride + co] = w[(co * cin + ci) * k * k + tap];
            }
        }
    }
    t
}

/// The kernel `w` (`[cout][cin][k][k]`) as rows for the input gradient through
/// [`conv_dense`]: `[ky'][kx'][co][ci]` with `ky' = k - 1 - ky`, `kx' = k - 1 - kx` (the
/// window of the input gradient at `q` reads the output gradient at `q + (pad - ky, pad -
/// kx)`), for output gradients whose rows hold `stride >= cout` values (the extra rows 0).
pub fn flip_taps(w: &[f32], cout: usize, cin: usize, k: usize, stride: usize) -> Vec<f32> {
    let mut t = vec![0f32; k * k * stride * cin];
    for co in 0..cout {
        for ci in 0..cin {
            for ky in 0..k {
                for kx in 0..k {
                    let tap = (k - 1 - ky) * k + (k - 1 - kx);
                    t[(tap * stride + co) * cin + ci] = w[((co * cin + ci) * k + ky) * k + kx];
                }
            }
        }
    }
    t
}

/// Adds a gradient in the layout of [`taps`] (`[ky][kx][ci][co]`, rows `stride` long, output
/// channels `c0..c0 + cout`) to `dw` in Candle's layout (`[cout][cin][k][k]`).
pub fn add_taps_grad(
    dtaps: &[f32],
    c0: usize,
    cout: usize,
    cin: usize,
    k: usize,
    stride: usize,
    dw: &mut [f32],
) {
    for co in 0..cout {
        for ci in 0..cin {
            for tap in 0..k * k {
                dw[(co * cin + ci) * k * k + tap] += dtaps[(tap * cin + ci) * stride + c0 + co];
            }
        }
    }
}

simd_kernel! {
    /// Event-driven kernel gradient of one sample: for every active input (pixel `q`,
    /// channel `ci`) of `act` and every tap `(ky, kx)` whose output pixel `p = q - (ky - pad,
    /// kx - pad)` is in the map, `dtaps[ky][kx][ci][..] += dy[p][..]` (rows of `g.cout`).
    pub fn conv_dw_events(act: &Active, g: &Geom, dy: &[f32], dtaps: &mut [f32]) => dw_events_impl
}

#[inline(always)]
fn dw_events_impl(act: &Active, g: &Geom, dy: &[f32], dtaps: &mut [f32]) {
    assert_eq!(dy.len(), g.h * g.w * g.cout);
    assert_eq!(dtaps.len(), g.k * g.k * g.cin * g.cout);
    with_width!(g.cout, dw_fixed, dw_dyn(act, g, dy, dtaps))
}

#[inline(always)]
fn dw_fixed<const C: usize>(act: &Active, g: &Geom, dy: &[f32], dtaps: &mut [f32]) {
    let pad = g.k / 2;
    for y in 0..g.h {
        for x in 0..g.w {
            let entries = act.pixel(y * g.w + x);
            if entries.is_empty() {
                continue;
            }
            for ky in 0..g.k {
                let Some(py) = (y + pad).checked_sub(ky).filter(|&v| v < g.h) else {
                    continue;
                };
                for kx in 0..g.k {
                    let Some(px) = (x + pad).checked_sub(kx).filter(|&v| v < g.w) else {
                        continue;
                    };
                    let d: &[f32; C] = dy[(py * g.w + px) * C..(py * g.w + px + 1) * C]
                        .try_into()
                        .expect("row");
                    let base = (ky * g.k + kx) * g.cin;
                    for &e in entries {
                        let ci = e as usize - x * g.cin;
                        let r = (base + ci) * C;
                        let t: &mut [f32; C] = (&mut dtaps[r..r + C]).try_into().expect("row");
                        for i in 0..C {
                            t[i] += d[i];
                        }
                    }
                }
            }
        }
    }
}

fn dw_dyn(act: &Active, g: &Geom, dy: &[f32], dtaps: &mut [f32]) {
    let (pad, c) = (g.k / 2, g.cout);
    for y in 0..g.h {
        for x in 0..g.w {
            for &e in act.pixel(y * g.w + x) {
                let ci = e as usize - x * g.cin;
                for ky in 0..g.k {
                    let Some(py) = (y + pad).checked_sub(ky).filter(|&v| v < g.h) else {
                        continue;
                    };
                    for kx in 0..g.k {
                        let Some(px) = (x + pad).checked_sub(kx).filter(|&v| v < g.w) else {
                            continue;
                        };
                        let d = &dy[(py * g.w + px) * c..(py * g.w + px + 1) * c];
                        let r = ((ky * g.k + kx) * g.cin + ci) * c;
                        for (t, &v) in dtaps[r..r + c].iter_mut().zip(d) {
                            *t += v;
                        }
                    }
                }
            }
        }
    }
}

/// Dense kernel gradient of one sample (the stem, whose input is real-valued):
/// `dtaps[ky][kx][ci][..] += x[q][ci] * dy[p][..]` over every input `q` and in-map output
/// `p = q - (ky - pad, kx - pad)`.
pub fn conv_dw_dense(x: &[f32], g: &Geom, dy: &[f32], dtaps: &mut [f32]) {
    let (pad, c) = (g.k / 2, g.cout);
    for y in 0..g.h {
        for xx in 0..g.w {
            for ci in 0..g.cin {
                let v = x[(y * g.w + xx) * g.cin + ci];
                for ky in 0..g.k {
                    let Some(py) = (y + pad).checked_sub(ky).filter(|&v| v < g.h) else {
                        continue;
                    };
                    for kx in 0..g.k {
                        let Some(px) = (xx + pad).checked_sub(kx).filter(|&v| v < g.w) else {
                            continue;
                        };
                        let d = &dy[(py * g.w + px) * c..(py * g.w + px + 1) * c];
                        let r = ((ky * g.k + kx) * g.cin + ci) * c;
                        for (t, &dv) in dtaps[r..r + c].iter_mut().zip(d) {
                            *t += v * dv;
                        }
                    }
                }
            }
        }
    }
}

/// Shape of a max pool of one sample `[h][w][c]`: windows `k x k` at `(y * stride - pad, x *
/// stride - pad)`, clipped to the map; output `(h + 2 pad - k) / stride + 1` rows (floor).
#[derive(Clone, Copy, Debug)]
pub struct Pool {
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Channels.
    pub c: usize,
    /// Window size.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Padding (never wins).
    pub pad: usize,
}

impl Pool {
    /// `k x k` windows with stride `k`, no padding (the down block's and the classifier's).
    pub fn strided(h: usize, w: usize, c: usize, k: usize) -> Pool {
        Pool {
            h,
            w,
            c,
            k,
            stride: k,
            pad: 0,
        }
    }

    /// 3x3 windows, stride 1, padding 1 (the `maxpool` op).
    pub fn same3(h: usize, w: usize, c: usize) -> Pool {
        Pool {
            h,
            w,
            c,
            k: 3,
            stride: 1,
            pad: 1,
        }
    }

    /// Output height and width.
    pub fn out_hw(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.pad - self.k) / self.stride + 1,
            (self.w + 2 * self.pad - self.k) / self.stride + 1,
        )
    }

    /// Values per output sample.
    pub fn out_len(&self) -> usize {
        let (oh, ow) = self.out_hw();
        oh * ow * self.c
    }

    /// The in-map window rows and columns of output pixel `(oy, ox)`.
    #[inline(always)]
    fn window(&self, oy: usize, ox: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let y0 = (oy * self.stride).saturating_sub(self.pad);
        let x0 = (ox * self.stride).saturating_sub(self.pad);
        (
            y0..(oy * self.stride + self.k - self.pad).min(self.h),
            x0..(ox * self.stride + self.k - self.pad).min(self.w),
        )
    }
}

/// The max pool `p` of one sample (Candle's and PyTorch's value: the first maximum).
pub fn max_pool_forward(x: &[f32], p: &Pool, out: &mut [f32]) {
    crate::search::cpu::ops::max_pool(x, p.h, p.w, p.c, p.k, p.stride, p.pad, out)
}

simd_kernel! {
    /// The gradient of [`max_pool_forward`] as PyTorch's `MaxPool2d` routes it: each window's
    /// output gradient `g` goes to one element, the window's first maximum in row-major order
    /// (the element the forward pass picked). Adds to `dx`.
    pub fn max_pool_backward(x: &[f32], p: &Pool, g: &[f32], dx: &mut [f32]) => max_pool_backward_impl
}

#[inline(always)]
fn max_pool_backward_impl(x: &[f32], p: &Pool, g: &[f32], dx: &mut [f32]) {
    let (oh, ow) = p.out_hw();
    assert!(x.len() == p.h * p.w * p.c && dx.len() == x.len() && g.len() == oh * ow * p.c);
    with_width!(p.c, pool_back_fixed, pool_back_dyn(x, p, g, dx))
}

#[inline(always)]
fn pool_back_fixed<const C: usize>(x: &[f32], p: &Pool, g: &[f32], dx: &mut [f32]) {
    let (oh, ow) = p.out_hw();
    for oy in 0..oh {
        for ox in 0..ow {
            let (ys, xs) = p.window(oy, ox);
            // The window's maximum, then its first element at the maximum per channel.
            let mut m = [f32::NEG_INFINITY; C];
            for yy in ys.clone() {
                for xx in xs.clone() {
                    let r: &[f32; C] = x[(yy * p.w + xx) * C..(yy * p.w + xx + 1) * C]
                        .try_into()
                        .expect("row");
                    for i in 0..C {
                        m[i] = if m[i] < r[i] { r[i] } else { m[i] };
                    }
                }
            }
            let go: &[f32; C] = g[(oy * ow + ox) * C..(oy * ow + ox + 1) * C]
                .try_into()
                .expect("row");
            let mut done = [false; C];
            for yy in ys {
                for xx in xs.clone() {
                    let q = (yy * p.w + xx) * C;
                    let r: &[f32; C] = x[q..q + C].try_into().expect("row");
                    let d: &mut [f32; C] = (&mut dx[q..q + C]).try_into().expect("row");
                    for i in 0..C {
                        let hit = !done[i] && r[i] == m[i];
                        d[i] += if hit { go[i] } else { 0.0 };
                        done[i] |= hit;
                    }
                }
            }
        }
    }
}

fn pool_back_dyn(x: &[f32], p: &Pool, g: &[f32], dx: &mut [f32]) {
    let (oh, ow) = p.out_hw();
    let c = p.c;
    let mut best = vec![0usize; c];
    for oy in 0..oh {
        for ox in 0..ow {
            let (ys, xs) = p.window(oy, ox);
            let first = (ys.start * p.w + xs.start) * c;
            for (ch, b) in best.iter_mut().enumerate() {
                *b = first + ch;
            }
            for yy in ys {
                for xx in xs.clone() {
                    let q = (yy * p.w + xx) * c;
                    for (ch, b) in best.iter_mut().enumerate() {
                        if x[*b] < x[q + ch] {
                            *b = q + ch;
                        }
                    }
                }
            }
            let go = &g[(oy * ow + ox) * c..(oy * ow + ox + 1) * c];
            for (&b, &v) in best.iter().zip(go) {
                dx[b] += v;
            }
        }
    }
}

/// 3x3 average pool (stride 1, zero padding 1, divisor 9) of one sample; also its own adjoint,
/// so it computes the gradient too.
pub fn avg_pool3(x: &[f32], h: usize, w: usize, c: usize, out: &mut [f32]) {
    crate::search::cpu::ops::avg_pool3(x, h, w, c, out)
}
