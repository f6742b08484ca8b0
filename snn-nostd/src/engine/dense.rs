//! The dense baseline of the event convolutions, for comparison on the same device: every
//! input neuron, spike or not, is multiplied by its weights, CMSIS-NN style. Direct
//! convolution without im2col: the spike maps are unpacked row by row into `i16` (0 / 1, a
//! rolling window of `k` padded rows, HWC), the weights are transposed once per layer call into
//! `[co][ky][kx][ci]` `i16` pairs, and each output is a chain of `SMLAD`s (two 16-bit
//! multiply-accumulates per instruction, [`crate::simd::smlad`]) over contiguous input channels.
//!
//! Same fixed-point semantics: the `i32` sums (bias included) go through the same read-out as
//! the event path ([`super::conv::emit`]); they equal the event path's saturating sums wherever
//! [`dense_exact`] holds (no sum can reach `2^31`), else the engine keeps the event path.

use super::conv::{emit, ring_len, Out, Sat, RING_ROWS};
use super::{Geom, Wt};
use crate::bits::{count_ones_range, for_each_set_bit};
use crate::model::{Dims, LayerParts};
use crate::simd;

/// `i32` words of dense scratch for any conv of a network of shape `d` (`k <= 3`).
pub(super) const fn scratch_len(d: &Dims) -> usize {
    let (_, w1) = d.cell1_hw();
    let (_, w2) = d.cell2_hw();
    let (c1, c2) = (d.c1 as usize, d.c2 as usize);
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

/// Whether the wrapping `i32` dense sums of `layer` equal the event path's saturating ones:
/// `|bias| + sum |w| < 2^31` for every output channel.
pub(super) fn dense_exact<W: Wt>(layer: &LayerParts<'_>, c_out: usize) -> bool {
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
/// engines report the same statistics.
#[allow(clippy::too_many_arguments)]
pub(super) fn conv_dense<W: Wt>(
    spk: &[u64],
    g: Geom,
    k: usize,
    layer: &LayerParts<'_>,
    c_out: usize,
    mut out: Out<'_>,
    scratch: &mut [i32],
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
    for oy in 0..g.h {
        unpack(rows, oy + 2 * pad);
        let o = (oy % RING_ROWS) * rw + pad * c_out;
        for ox in 0..g.w {
            for co in 0..c_out {
                let mut acc = layer.bias_at(co);
                for ky in 0..k {
                    let r = &rows[((oy + ky) % k) * wp * cw..][..wp * cw];
                    let px = &r[ox * cw..(ox + k) * cw];
                    let w = &wt[(co * k + ky) * k * cw..][..k * cw];
                    for (&a, &b) in px.iter().zip(w) {
                        acc = simd::smlad(a as u32, b as u32, acc);
                    }
                }
                ring[o + ox * c_out + co] = acc;
            }
        }
        emit::<Sat<W>>(ring, rw, oy, g, pad, layer, c_out, &mut out);
    }
    event_taps(spk, g, k) * c_out as u64
}
