//! The layer kernels a timestep is made of: event convolutions (dispatch), 3x3 pools, saturating
//! adds, LIF layers and event-driven linear layers.

use super::conv;
#[cfg(any(feature = "dense", test))]
use super::dense;
use super::fixed::lif_update;
use super::geom::Geom;
use super::weights::Wt;
use crate::bits::for_each_set_bit;
use crate::model::LayerParts;
use crate::simd;

/// The event-driven `k x k` conv of `spk` by `l` (`g.c -> c_out`) into `out`, on the accumulator
/// `kernel` ([`conv::Kernel::choose`]); or, given `dense` scratch, the dense baseline (where
/// exact, see [`dense::dense_exact`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn conv_edge<W: Wt>(
    spk: &[u64],
    g: Geom,
    k: usize,
    l: &LayerParts<'_>,
    kernel: conv::Kernel,
    c_out: usize,
    out: conv::Out<'_>,
    ring: &mut [i32],
    dense: Option<&mut [i32]>,
) -> u64 {
    #[cfg(any(feature = "dense", test))]
    if let Some(scratch) = dense {
        if dense::dense_exact::<W>(l, c_out) {
            return dense::conv_dense::<W>(spk, g, k, l, c_out, out, scratch);
        }
    }
    #[cfg(not(any(feature = "dense", test)))]
    let _ = dense;
    match kernel {
        conv::Kernel::Lanes16(f) | conv::Kernel::Lanes32(f) => f(spk, g, l, out, ring),
        conv::Kernel::Sat => conv::conv::<conv::Sat<W>>(spk, g, k, l, W::BYTES, c_out, out, ring),
    }
}

/// `dst += pool3x3(src)` (stride 1, pad 1), HWC, saturating. `avg`: AvgPool (divide by 9, round
/// half up, zero padding counted); else MaxPool (padding ignored). Separable: for each output
/// row, the vertical sums (maxima) of the rows it covers go into `col` (scratch of at least
/// `g.w * g.c` words), then three neighbouring columns of `col` give each output, the same
/// values as summing (maximising) the 3x3 window directly.
pub(super) fn pool3_add(src: &[i16], g: Geom, avg: bool, dst: &mut [i16], col: &mut [i32]) {
    if avg && g.c.is_multiple_of(2) && g.w >= 3 {
        avgpool3_pairs(src, g, dst, col);
    } else if avg {
        pool3::<true>(src, g, dst, col);
    } else if g.c.is_multiple_of(2) && g.w >= 2 {
        maxpool3_pairs(src, g, dst, col);
    } else {
        pool3::<false>(src, g, dst, col);
    }
}

/// Two `i16` values of `s` at `i`, `i + 1` as lanes (`i + 1 < s.len()`).
#[inline(always)]
fn pair_at(s: &[i16], i: usize) -> u32 {
    let p = &s[i..i + 2];
    simd::pack(p[0], p[1])
}

/// The MaxPool of [`pool3`] for an even channel count (`w >= 2`) on pairs of `i16` lanes: the
/// maxima ([`simd::max16`]) and the saturating add into `dst` ([`simd::qadd16`]) are those of
/// the definition, lane by lane (a maximum of `i16`s is an `i16`).
fn maxpool3_pairs(src: &[i16], g: Geom, dst: &mut [i16], col: &mut [i32]) {
    let (c, w) = (g.c, g.w);
    let rl = w * c;
    let (c2, rl2) = (c / 2, rl / 2);
    let col = &mut col[..rl2];
    for y in 0..g.h {
        let (y0, y1) = (y.saturating_sub(1), (y + 1).min(g.h - 1));
        let row = |r: usize| &src[r * rl..(r + 1) * rl];
        let (a, b, t) = (row(y0), row(y), row(y1));
        // Vertical: rows y0, y, y1 (repeating a row leaves the maximum unchanged).
        for (k, v) in col.iter_mut().enumerate() {
            let m = simd::max16(
                simd::max16(pair_at(a, 2 * k), pair_at(b, 2 * k)),
                pair_at(t, 2 * k),
            );
            *v = m as i32;
        }
        let d = &mut dst[y * rl..(y + 1) * rl];
        let put = |d: &mut [i16], k: usize, m: u32| {
            let p = &mut d[2 * k..2 * k + 2];
            let v = simd::qadd16(simd::pack(p[0], p[1]), m);
            (p[0], p[1]) = simd::lanes(v);
        };
        let at = |k: usize| col[k] as u32;
        // First and last column: two neighbours; interior columns: three.
        for k in 0..c2 {
            put(d, k, simd::max16(at(k), at(k + c2)));
            let l = rl2 - c2 + k;
            put(d, l, simd::max16(at(l - c2), at(l)));
        }
        for k in c2..rl2 - c2 {
            put(
                d,
                k,
                simd::max16(simd::max16(at(k - c2), at(k)), at(k + c2)),
            );
        }
    }
}

/// `floor((2 v + 9) / 18)` for `|2 v + 9| < 18 * 2^15` (the AvgPool3 output of a window sum
/// `v`), plus `2^15`: an unsigned multiply-by-reciprocal on a positive offset, in `0..2^16`.
#[inline(always)]
fn avg9_biased(v: i32) -> u32 {
    const OFF: i32 = 18 << 15;
    (2 * v + 9 + OFF) as u32 / 18
}

/// The AvgPool of [`pool3`] for an even channel count and `w >= 3`: the same vertical sums, then
/// the interior outputs two channels at a time ([`avg3_interior`]).
fn avgpool3_pairs(src: &[i16], g: Geom, dst: &mut [i16], col: &mut [i32]) {
    let (c, w) = (g.c, g.w);
    let rl = w * c;
    let col = &mut col[..rl];
    let put = |d: &mut i16, v: i32| {
        *d = (*d as i32 + avg9_biased(v) as i32 - (1 << 15)).clamp(-32768, 32767) as i16
    };
    for y in 0..g.h {
        vertical::<true>(src, rl, y, g.h, col);
        let d = &mut dst[y * rl..(y + 1) * rl];
        // First and last column: two neighbours.
        for ch in 0..c {
            put(&mut d[ch], col[ch] + col[c + ch]);
            let l = rl - c + ch;
            put(&mut d[l], col[l - c] + col[l]);
        }
        // Interior columns: three.
        avg3_interior(col, c, &mut d[c..rl - c]);
    }
}

/// The vertical pass of a 3x3 pool at output row `y` of `h`: rows `y - 1..=y + 1` of `src` (rows
/// of `rl` elements; two at the borders, one where `h = 1`) combined into `col`, summed for an
/// AvgPool (`AVG`, three rows through [`sum3_rows`]), their maximum for a MaxPool.
#[inline(always)]
fn vertical<const AVG: bool>(src: &[i16], rl: usize, y: usize, h: usize, col: &mut [i32]) {
    let comb = |a: i32, b: i32| if AVG { a + b } else { a.max(b) };
    let (y0, y1) = (y.saturating_sub(1), (y + 1).min(h - 1));
    let row = |r: usize| &src[r * rl..(r + 1) * rl];
    match y1 - y0 {
        0 => {
            for (a, &v) in col.iter_mut().zip(row(y0)) {
                *a = v as i32;
            }
        }
        1 => {
            for (a, (&u, &v)) in col.iter_mut().zip(row(y0).iter().zip(row(y1))) {
                *a = comb(u as i32, v as i32);
            }
        }
        _ if AVG => sum3_rows(row(y0), row(y0 + 1), row(y1), col),
        _ => {
            let rows = row(y0).iter().zip(row(y0 + 1)).zip(row(y1));
            for (a, ((&u, &v), &t)) in col.iter_mut().zip(rows) {
                *a = comb(comb(u as i32, v as i32), t as i32);
            }
        }
    }
}

/// `col[i] = a[i] + b[i] + t[i]` (the vertical sums of three rows), out of line so that its few
/// pointers stay in registers.
#[inline(never)]
fn sum3_rows(a: &[i16], b: &[i16], t: &[i16], col: &mut [i32]) {
    for (v, ((&a, &b), &t)) in col.iter_mut().zip(a.iter().zip(b).zip(t)) {
        *v = a as i32 + b as i32 + t as i32;
    }
}

/// The interior AvgPool3 outputs of one row, two channels at a time: `d[j] += avg(col[j] +
/// col[j + c] + col[j + 2c])` (`d` = the row's pixels `1..w - 1`, `col` its vertical sums, `c`
/// and `d.len()` even: pairs never straddle), the averages ([`avg9_biased`], the lanes' `2^15`
/// bias removed by one `EOR`) packed into two `i16` lanes and added with [`simd::qadd16`] (each
/// average is an `i16`, so the lane saturation is the definition's clamp).
#[inline(never)]
fn avg3_interior(col: &[i32], c: usize, d: &mut [i16]) {
    let n = d.len();
    let (l, m, r) = (&col[..n], &col[c..c + n], &col[2 * c..2 * c + n]);
    let cols = l
        .chunks_exact(2)
        .zip(m.chunks_exact(2))
        .zip(r.chunks_exact(2));
    for (dp, ((l, m), r)) in d.chunks_exact_mut(2).zip(cols) {
        let (s0, s1) = (l[0] + m[0] + r[0], l[1] + m[1] + r[1]);
        let q = (avg9_biased(s0) | avg9_biased(s1) << 16) ^ 0x8000_8000;
        (dp[0], dp[1]) = simd::lanes(simd::qadd16(simd::pack(dp[0], dp[1]), q));
    }
}

/// [`pool3_add`] for one pool kind (`AVG`), so that the inner loops do not branch on it.
pub(super) fn pool3<const AVG: bool>(src: &[i16], g: Geom, dst: &mut [i16], col: &mut [i32]) {
    let avg = AVG;
    let (c, w) = (g.c, g.w);
    let rl = w * c;
    if rl == 0 {
        return;
    }
    let col = &mut col[..rl];
    let out = |v: i32| -> i32 {
        if avg {
            // floor((2 v + 9) / 18) for |2 v + 9| < 18 * 2^15, on a positive offset (a
            // multiply-by-reciprocal instead of a signed division).
            const OFF: i32 = 18 << 15;
            ((2 * v + 9 + OFF) as u32 / 18) as i32 - (1 << 15)
        } else {
            v
        }
    };
    let comb = |a: i32, b: i32| if avg { a + b } else { a.max(b) };
    let put = |d: &mut i16, v: i32| *d = (*d as i32 + out(v)).clamp(-32768, 32767) as i16;
    for y in 0..g.h {
        vertical::<AVG>(src, rl, y, g.h, col);
        let d = &mut dst[y * rl..(y + 1) * rl];
        if w == 1 {
            for (dv, &a) in d.iter_mut().zip(col.iter()) {
                put(dv, a);
            }
            continue;
        }
        // First and last column: two neighbours.
        for ch in 0..c {
            put(&mut d[ch], comb(col[ch], col[c + ch]));
            let l = rl - c + ch;
            put(&mut d[l], comb(col[l - c], col[l]));
        }
        // Interior columns: three.
        let (left, mid, right) = (&col[..rl - 2 * c], &col[c..rl - c], &col[2 * c..]);
        for (dv, ((&l, &m), &r)) in d[c..rl - c].iter_mut().zip(left.iter().zip(mid).zip(right)) {
            put(dv, comb(comb(l, m), r));
        }
    }
}

/// `dst += src`, saturating: two lanes at a time ([`simd::qadd16`]).
pub(super) fn add_sat(dst: &mut [i16], src: &[i16]) {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    let mut d4 = dst.chunks_exact_mut(4);
    let mut s4 = src.chunks_exact(4);
    for (d, s) in (&mut d4).zip(&mut s4) {
        let v0 = simd::qadd16(simd::pack(d[0], d[1]), simd::pack(s[0], s[1]));
        let v1 = simd::qadd16(simd::pack(d[2], d[3]), simd::pack(s[2], s[3]));
        (d[0], d[1]) = simd::lanes(v0);
        (d[2], d[3]) = simd::lanes(v1);
    }
    for (d, &s) in d4.into_remainder().iter_mut().zip(s4.remainder()) {
        *d = d.saturating_add(s);
    }
}

/// A LIF layer over `mem.len()` neurons whose input `i` is `input(i)` (called once per neuron,
/// in increasing `i`); writes the packed spikes into `bits` and returns the spike count.
#[inline]
pub(super) fn lif_layer(
    mem: &mut [i16],
    th: i16,
    bits: &mut [u64],
    mut input: impl FnMut(usize) -> i16,
) -> u64 {
    let mut count = 0u64;
    for (wi, (chunk, out)) in mem.chunks_mut(64).zip(bits.iter_mut()).enumerate() {
        let mut word = 0u64;
        for (b, v) in chunk.iter_mut().enumerate() {
            if lif_update(v, input(wi * 64 + b), th) {
                word |= 1u64 << b;
            }
        }
        *out = word;
        count += word.count_ones() as u64;
    }
    count
}

/// [`lif_layer`] with the inputs in a slice (`src[i]` for neuron `i`).
#[inline]
pub(super) fn lif_slice(mem: &mut [i16], th: i16, bits: &mut [u64], src: &[i16]) -> u64 {
    let src = &src[..mem.len()];
    lif_pairs(
        mem,
        th,
        bits,
        |i| {
            // `lif_pairs` asks for pairs inside whole 64-neuron words: `i + 1 < mem.len()`.
            debug_assert!(i + 1 < src.len());
            #[cfg(target_endian = "little")]
            // SAFETY: `i + 1 < src.len()` (above): two `i16`, four readable bytes (an unaligned
            // `LDR`); on a little-endian target their word is `pack(src[i], src[i + 1])`.
            let w = unsafe { src.as_ptr().add(i).cast::<u32>().read_unaligned() };
            #[cfg(not(target_endian = "little"))]
            let w = simd::pack(src[i], src[i + 1]);
            w
        },
        |i| src[i],
    )
}

/// [`lif_layer`] two neurons at a time ([`simd::lif2`]) for the whole 64-neuron words:
/// `pair(i)` (`i` even, in increasing order, `i + 1 < 64 * (mem.len() / 64)`) gives the inputs
/// of neurons `i` (low lane) and `i + 1` (high lane); the neurons past the last whole word take
/// `one(i)`, one at a time.
#[inline(always)]
pub(super) fn lif_pairs(
    mem: &mut [i16],
    th: i16,
    bits: &mut [u64],
    mut pair: impl FnMut(usize) -> u32,
    mut one: impl FnMut(usize) -> i16,
) -> u64 {
    let n = mem.len();
    let th2 = simd::pack(th, th);
    // Opaque to the optimiser: kept in registers instead of rebuilt for every pair.
    let (k, z) = core::hint::black_box((0x8000_8000u32, 0u32));
    let full = n / 64;
    let mut count = 0u64;
    let (body, tail) = mem.split_at_mut(full * 64);
    for (wi, (chunk, out)) in body.chunks_exact_mut(64).zip(bits.iter_mut()).enumerate() {
        let mut word = 0u64;
        for (h, half) in chunk.chunks_exact_mut(32).enumerate() {
            let base = wi * 64 + h * 32;
            // Lane bits 15 and 31 of each pair's mask shifted down: the low lanes end in bits
            // 0..16, the high lanes in 16..32.
            let mut acc = 0u32;
            for (p, v) in half.chunks_exact_mut(2).enumerate() {
                let nv;
                (nv, acc) = simd::lif2(simd::pack(v[0], v[1]), pair(base + 2 * p), th2, acc, k, z);
                (v[0], v[1]) = simd::lanes(nv);
            }
            word |= (simd::interleave_halves(acc) as u64) << (32 * h);
        }
        *out = word;
        count += word.count_ones() as u64;
    }
    if !tail.is_empty() {
        let base = full * 64;
        let mut word = 0u64;
        for (b, v) in tail.iter_mut().enumerate() {
            if lif_update(v, one(base + b), th) {
                word |= 1u64 << b;
            }
        }
        bits[full] = word;
        count += word.count_ones() as u64;
    }
    count
}

/// Event-driven linear layer: `acc = bias + sum of the weight rows of the set bits of
/// spk[..n_in]` (weights `[in][out]`). Returns the number of weight adds.
pub(super) fn fc_event<W: Wt>(
    spk: &[u64],
    n_in: usize,
    layer: &LayerParts<'_>,
    acc: &mut [i32],
) -> u64 {
    let n_out = acc.len();
    for (o, a) in acc.iter_mut().enumerate() {
        *a = layer.bias_at(o);
    }
    let col = n_out * W::BYTES;
    let mut ops = 0;
    for_each_set_bit(spk, 0, n_in, |j| {
        W::add_col(acc, &layer.weights[j * col..(j + 1) * col]);
        ops += n_out as u64;
    });
    ops
}
