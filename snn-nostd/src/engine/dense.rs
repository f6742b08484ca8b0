//! The dense baseline of the event convolutions, for comparison on the same device: every
//! input neuron, spike or not, is multiplied by its weights, CMSIS-NN style. Direct
//! convolution without im2col: the spike maps are unpacked row by row into `i16` (0 / 1, a
//! rolling window of `k` padded rows, HWC), the weights are transposed once per layer call into
//! `[co][ky][kx][ci]` `i16` pairs, and each output is a chain of `SMLAD`s (two 16-bit
//! multiply-accumulates per instruction, [`crate::simd::smlad`]) over contiguous input channels.
//!
//! Compiled in with feature `dense` (the firmware's `dense` feature turns it on), so that a
//! production firmware carries no baseline code; the scratch size is always available.
//!
//! Same fixed-point semantics: the `i32` sums (bias included) go through the same read-out as
//! the event path ([`super::conv::emit`]); they equal the event path's saturating sums wherever
//! [`dense_exact`] holds (no sum can reach `2^31`), else the engine keeps the event path.

use super::conv::ring_len;
use crate::model::Shape;
#[cfg(any(feature = "dense", test))]
pub(super) use kernel::*;

/// `i32` words of dense scratch for any conv of a network of shape `d` (`k <= 3`).
pub(super) const fn scratch_len(d: &Shape) -> usize {
    let (_, w1) = d.cell1_hw();
    let (_, w2) = d.cell2_hw();
    let (c1, c2) = (d.c1, d.c2);
    let a = one_len(w1, if c1 > c2 { c1 } else { c2 }, c1);
    let b = one_len(w2, c2, c2);
    if a > b {
        a
    } else {
        b
    }
}

/// Scratch of one 3x3 conv over rows of `w` pixels, `c_in -> c_out`: the `i32` output ring,
/// `3` unpacked input rows and the transposed weights (`i16` pairs).
const fn one_len(w: usize, c_out: usize, c_in: usize) -> usize {
    let cw = c_in.div_ceil(2);
    ring_len(w, c_out)
        .saturating_add(
            3usize
                .saturating_mul(w.saturating_add(2))
                .saturating_mul(cw),
        )
        .saturating_add(c_out.saturating_mul(9).saturating_mul(cw))
}

/// The baseline's kernels (feature `dense`).
#[cfg(any(feature = "dense", test))]
mod kernel {
    use super::super::conv::{emit, emit_lanes, LaneRequant, Out, Sat, L32, RING_ROWS};
    use super::super::geom::Geom;
    use super::super::weights::Wt;
    use crate::bits::{count_ones_range, for_each_set_bit};
    use crate::model::LayerParts;
    use crate::simd;

    /// Whether the wrapping `i32` dense sums of `layer` equal the event path's saturating ones:
    /// `|bias| + sum |w| < 2^31` for every output channel (and at most [`MAX_BIAS`] outputs; wider
    /// layers keep the event path).
    pub(in crate::engine) fn dense_exact<W: Wt>(layer: &LayerParts<'_>, c_out: usize) -> bool {
        if c_out > MAX_BIAS {
            return false;
        }
        let taps = layer.weights.len() / W::BYTES / c_out.max(1);
        (0..c_out).all(|co| {
            let l1: i64 = (0..taps)
                .map(|t| (W::at(layer.weights, t * c_out + co) as i64).abs())
                .sum();
            (layer.bias_at(co) as i64).abs() + l1 < 1 << 31
        })
    }

    /// The synaptic operations the event path counts for this conv (weight adds inside the map).
    fn event_taps(spk: &[u64], g: Geom, k: usize) -> u64 {
        let pad = k / 2;
        let row_bits = g.w * g.c;
        let mut taps = 0u64;
        for y in 0..g.h {
            let ky = ((k - 1).min(y + pad) + 1 - (y + pad + 1).saturating_sub(g.h)) as u64;
            let start = y * row_bits;
            let end = start + row_bits;
            let spikes = count_ones_range(spk, start, end) as u64;
            let border = if pad == 0 {
                0
            } else {
                (count_ones_range(spk, start, start + g.c) + count_ones_range(spk, end - g.c, end))
                    as u64
            };
            taps += (k as u64 * spikes - border) * ky;
        }
        taps
    }

    /// The dense `k x k` conv (`g.c -> c_out`) of `spk` into `out`; `scratch` holds at least
    /// [`scratch_len`] words. Returns the event path's synaptic-operation count, so that both
    /// engines report the same statistics. With 4, 8 or 16 outputs the sums are read out like the
    /// event path's `i32` words (bias added at read-out, per-channel multiply-add-shift); otherwise
    /// they start at the bias and go through the general read-out.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::engine) fn conv_dense<W: Wt>(
        spk: &[u64],
        g: Geom,
        k: usize,
        layer: &LayerParts<'_>,
        c_out: usize,
        out: Out<'_>,
        scratch: &mut [i32],
    ) -> u64 {
        let pad = k / 2;
        let rw = (g.w + 2 * pad) * c_out;
        macro_rules! words {
            ($c:literal) => {{
                let rq = LaneRequant::<$c>::new::<L32<W>>(layer);
                let mut readout = |ring: &mut [i32], oy: usize, out: &mut Out<'_>| {
                    emit_lanes::<L32<W>, $c>(ring, rw, oy, g, pad, &rq, out)
                };
                dense_body::<W>(spk, g, k, layer, c_out, false, out, scratch, &mut readout)
            }};
        }
        match c_out {
            4 => words!(4),
            8 => words!(8),
            16 => words!(16),
            _ => {
                let mut readout = |ring: &mut [i32], oy: usize, out: &mut Out<'_>| {
                    emit::<Sat<W>>(ring, rw, oy, g, pad, layer, c_out, out)
                };
                dense_body::<W>(spk, g, k, layer, c_out, true, out, scratch, &mut readout)
            }
        }
    }

    /// A read-out of output row `oy` of the ring into the destination.
    type Readout<'r> = dyn FnMut(&mut [i32], usize, &mut Out<'_>) + 'r;

    /// [`conv_dense`] with the read-out chosen: sums start at the bias where `with_bias`, else at 0.
    #[allow(clippy::too_many_arguments)]
    fn dense_body<W: Wt>(
        spk: &[u64],
        g: Geom,
        k: usize,
        layer: &LayerParts<'_>,
        c_out: usize,
        with_bias: bool,
        mut out: Out<'_>,
        scratch: &mut [i32],
        readout: &mut Readout<'_>,
    ) -> u64 {
        let pad = k / 2;
        let wp = g.w + 2 * pad;
        let cp = g.c.div_ceil(2) * 2;
        let cw = cp / 2;
        let rw = wp * c_out;
        let (ring, rest) = scratch.split_at_mut(RING_ROWS * rw);
        let (rows, rest) = rest.split_at_mut(k * wp * cw);
        let wt = &mut rest[..c_out * k * k * cw];
        // Weights `[ci][ky][kx][co]` -> `[co][ky][kx][ci]`, two input channels per word.
        for co in 0..c_out {
            for t in 0..k * k {
                for pair in 0..cw {
                    let at = |ci: usize| {
                        if ci < g.c {
                            W::at(layer.weights, (ci * k * k + t) * c_out + co) as i16
                        } else {
                            0
                        }
                    };
                    wt[(co * k * k + t) * cw + pair] =
                        simd::pack(at(2 * pair), at(2 * pair + 1)) as i32;
                }
            }
        }
        // The initial sums: the bias, or 0 where the read-out adds it (up to 16 outputs).
        let mut bias = [0i32; MAX_BIAS];
        if with_bias {
            for (co, b) in bias.iter_mut().enumerate().take(c_out) {
                *b = layer.bias_at(co);
            }
        }
        // Input row `iy` (`j = iy + pad`) unpacked into slot `j % k`, zero outside the map.
        let unpack = |rows: &mut [i32], j: usize| {
            let r = &mut rows[(j % k) * wp * cw..(j % k + 1) * wp * cw];
            r.fill(0);
            if j < pad || j - pad >= g.h {
                return;
            }
            let start = (j - pad) * g.w * g.c;
            for_each_set_bit(spk, start, start + g.w * g.c, |idx| {
                let rel = idx - start;
                let x = rel / g.c;
                let ci = rel - x * g.c;
                let lane = (x + pad) * cp + ci;
                r[lane / 2] |= 1 << (16 * (lane % 2));
            });
        };
        for j in 0..2 * pad {
            unpack(rows, j);
        }
        // One output row: per output, per kernel row, the multiply-accumulate chain of `k * cw`
        // contiguous input words against as many weight words, unrolled for up to 8 input
        // channels (each unrolled size costs flash on the device).
        let row_fn: RowFn = match (k, cw) {
            (3, 2) => out_row::<3, 6>,
            (3, 4) => out_row::<3, 12>,
            (1, 2) => out_row::<1, 2>,
            (1, 4) => out_row::<1, 4>,
            _ => out_row_any,
        };
        for oy in 0..g.h {
            unpack(rows, oy + 2 * pad);
            let o = (oy % RING_ROWS) * rw + pad * c_out;
            let kr: [&[i32]; 3] = core::array::from_fn(|ky| {
                if ky < k {
                    &rows[((oy + ky) % k) * wp * cw..][..wp * cw]
                } else {
                    &[]
                }
            });
            let dst = &mut ring[o..o + g.w * c_out];
            row_fn(&kr[..k], cw, wt, &bias[..c_out.min(MAX_BIAS)], dst);
            readout(ring, oy, &mut out);
        }
        event_taps(spk, g, k) * c_out as u64
    }

    /// Outputs whose initial sums [`dense_body`] keeps on the stack; more need the bias read-out
    /// path of the general kernel, which [`conv_dense`] takes for any other count.
    const MAX_BIAS: usize = 64;

    /// One output row of [`dense_body`]: kernel rows `kr`, `cw` input words per pixel, transposed
    /// weights `wt`, initial sums `init` (one per output channel), sums into `dst`.
    type RowFn = fn(&[&[i32]], usize, &[i32], &[i32], &mut [i32]);

    /// [`RowFn`] for `K` kernel rows of `N = K * cw` words, known at compile time: every chain
    /// unrolled, the `K` input windows of a pixel loaded once for all its outputs.
    fn out_row<const K: usize, const N: usize>(
        kr: &[&[i32]],
        cw: usize,
        wt: &[i32],
        init: &[i32],
        dst: &mut [i32],
    ) {
        let c_out = init.len();
        // `[co][ky]`: one chain's weights each.
        let (wrows, _) = wt.as_chunks::<N>();
        for (ox, px_out) in dst.chunks_exact_mut(c_out).enumerate() {
            let mut a = [&[0i32; N]; K];
            for (win, r) in a.iter_mut().zip(kr) {
                match r.get(ox * cw..ox * cw + N).map(<&[i32; N]>::try_from) {
                    Some(Ok(w)) => *win = w,
                    _ => return,
                }
            }
            for ((acc_out, &b), w) in px_out.iter_mut().zip(init).zip(wrows.chunks_exact(K)) {
                let mut acc = b;
                for (x, w) in a.iter().zip(w) {
                    for i in 0..N {
                        acc = simd::smlad(x[i] as u32, w[i] as u32, acc);
                    }
                }
                *acc_out = acc;
            }
        }
    }

    /// [`RowFn`] for any kernel and channel count.
    fn out_row_any(kr: &[&[i32]], cw: usize, wt: &[i32], init: &[i32], dst: &mut [i32]) {
        let k = kr.len();
        let n = k * cw;
        let c_out = init.len();
        for (ox, px_out) in dst.chunks_exact_mut(c_out).enumerate() {
            for (co, (acc_out, &b)) in px_out.iter_mut().zip(init).enumerate() {
                let mut acc = b;
                for (ky, r) in kr.iter().enumerate() {
                    let w = &wt[(co * k + ky) * n..][..n];
                    acc = r[ox * cw..][..n]
                        .iter()
                        .zip(w)
                        .fold(acc, |acc, (&x, &y)| simd::smlad(x as u32, y as u32, acc));
                }
                *acc_out = acc;
            }
        }
    }
}
