//! The element-wise and pooling parts of a cell on channels-last maps of one sample: edge and
//! node sums, 3x3 average and max pools, the max and average pools of the skeleton.

use super::simd::simd_kernel;

/// Elements per register block of [`edge_sums`].
const CHUNK: usize = 64;

simd_kernel! {
    /// The sum of several edges, each the weighted sum of its terms, element by element in the
    /// Candle order: within an edge `t0' + t1' + ...` (op-set order), then `e0 + e1 + ...`
    /// (canonical edge order), where `t' = t` for weight 1 and `t * w + 0` otherwise (Candle's
    /// `affine`). Sources are whole-batch buffers read at `offset..offset + out.len()`; every
    /// edge has at least one term.
    pub fn edge_sums(edges: &[Vec<(&[f32], f32)>], offset: usize, out: &mut [f32])
        => edge_sums_impl
}

#[inline(always)]
fn edge_sums_impl(edges: &[Vec<(&[f32], f32)>], offset: usize, out: &mut [f32]) {
    let whole = out.len() / CHUNK * CHUNK;
    let mut chunks = out.chunks_exact_mut(CHUNK);
    for (k, oc) in chunks.by_ref().enumerate() {
        let oc: &mut [f32; CHUNK] = oc.try_into().expect("whole chunk");
        let base = offset + k * CHUNK;
        edge_chunk::<CHUNK>(edges, base, oc);
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let base = offset + whole;
        for (i, o) in rest.iter_mut().enumerate() {
            edge_chunk::<1>(
                edges,
                base + i,
                std::slice::from_mut(o).try_into().expect("one"),
            );
        }
    }
}

/// [`edge_sums`] for `L` elements at `base`, in registers.
#[inline(always)]
fn edge_chunk<const L: usize>(edges: &[Vec<(&[f32], f32)>], base: usize, out: &mut [f32; L]) {
    let mut acc = [0f32; L];
    for (ek, terms) in edges.iter().enumerate() {
        let mut e = [0f32; L];
        for (tk, &(src, wt)) in terms.iter().enumerate() {
            let s: &[f32; L] = src[base..base + L].try_into().expect("in range");
            match (tk == 0, wt == 1.0) {
                (true, true) => e = *s,
                (true, false) => {
                    for i in 0..L {
                        e[i] = s[i] * wt + 0.0;
                    }
                }
                (false, true) => {
                    for i in 0..L {
                        e[i] += s[i];
                    }
                }
                (false, false) => {
                    for i in 0..L {
                        e[i] += s[i] * wt + 0.0;
                    }
                }
            }
        }
        if ek == 0 {
            acc = e;
        } else {
            for i in 0..L {
                acc[i] += e[i];
            }
        }
    }
    *out = acc;
}

simd_kernel! {
    /// `x += b` element-wise.
    pub fn add_assign(x: &mut [f32], b: &[f32]) => add_assign_impl
}

#[inline(always)]
fn add_assign_impl(x: &mut [f32], b: &[f32]) {
    for (a, &v) in x.iter_mut().zip(b) {
        *a += v;
    }
}

simd_kernel! {
    /// 3x3 average pool, stride 1, zero padding 1, divisor 9, on one sample `[h][w][c]`: the
    /// in-bounds window values summed in row-major order from 0, times `f32(1/9)` (Candle's
    /// `avg_pool2d` on the zero-padded map; the padded zeros change nothing).
    pub fn avg_pool3(src: &[f32], h: usize, w: usize, c: usize, dst: &mut [f32]) => avg_pool3_impl
}

#[inline(always)]
fn avg_pool3_impl(src: &[f32], h: usize, w: usize, c: usize, dst: &mut [f32]) {
    let scale = (1.0 / 9.0f64) as f32;
    for y in 0..h {
        for x in 0..w {
            let d = &mut dst[(y * w + x) * c..(y * w + x + 1) * c];
            d.fill(0.0);
            for yy in y.saturating_sub(1)..(y + 2).min(h) {
                for xx in x.saturating_sub(1)..(x + 2).min(w) {
                    let s = &src[(yy * w + xx) * c..(yy * w + xx + 1) * c];
                    for (a, &v) in d.iter_mut().zip(s) {
                        *a += v;
                    }
                }
            }
            for v in d.iter_mut() {
                *v *= scale;
            }
        }
    }
}

simd_kernel! {
    /// `k x k` average pool with stride `k` of one sample `[h][w][c]` (the last rows and
    /// columns that fill no window dropped): each window's values summed in row-major order
    /// from 0, times `f32(1 / k^2)` (Candle's `avg_pool2d`).
    pub fn avg_pool(src: &[f32], h: usize, w: usize, c: usize, k: usize, dst: &mut [f32])
        => avg_pool_impl
}

#[inline(always)]
fn avg_pool_impl(src: &[f32], h: usize, w: usize, c: usize, k: usize, dst: &mut [f32]) {
    let (oh, ow) = (h / k, w / k);
    assert_eq!(dst.len(), oh * ow * c);
    let scale = (1.0 / (k * k) as f64) as f32;
    for oy in 0..oh {
        for ox in 0..ow {
            let d = &mut dst[(oy * ow + ox) * c..(oy * ow + ox + 1) * c];
            d.fill(0.0);
            for yy in oy * k..oy * k + k {
                for xx in ox * k..ox * k + k {
                    let s = &src[(yy * w + xx) * c..(yy * w + xx + 1) * c];
                    for (a, &v) in d.iter_mut().zip(s) {
                        *a += v;
                    }
                }
            }
            for v in d.iter_mut() {
                *v *= scale;
            }
        }
    }
}

simd_kernel! {
    /// Max over the windows of one sample `[h][w][c]`: window `k x k` at
    /// `(y * stride - pad, x * stride - pad)` clipped to the map (edge-replicated or `-inf`
    /// padding both reduce to that). Same comparisons as Candle (`if largest < v`).
    pub fn max_pool(
        src: &[f32],
        h: usize,
        w: usize,
        c: usize,
        k: usize,
        stride: usize,
        pad: usize,
        dst: &mut [f32],
    ) => max_pool_impl
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn max_pool_impl(
    src: &[f32],
    h: usize,
    w: usize,
    c: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dst: &mut [f32],
) {
    let oh = (h + 2 * pad - k) / stride + 1;
    let ow = (w + 2 * pad - k) / stride + 1;
    assert_eq!(dst.len(), oh * ow * c);
    for oy in 0..oh {
        let y0 = (oy * stride).saturating_sub(pad);
        let y1 = (oy * stride + k - pad).min(h);
        for ox in 0..ow {
            let x0 = (ox * stride).saturating_sub(pad);
            let x1 = (ox * stride + k - pad).min(w);
            let d = &mut dst[(oy * ow + ox) * c..(oy * ow + ox + 1) * c];
            d.copy_from_slice(&src[(y0 * w + x0) * c..(y0 * w + x0 + 1) * c]);
            for yy in y0..y1 {
                for xx in x0..x1 {
                    let s = &src[(yy * w + xx) * c..(yy * w + xx + 1) * c];
                    for (a, &v) in d.iter_mut().zip(s) {
                        *a = if *a < v { v } else { *a };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_sums_order() {
        let a: Vec<f32> = (0..130).map(|v| v as f32 * 0.1).collect();
        let b: Vec<f32> = (0..130).map(|v| 1.0 - v as f32).collect();
        let edges = vec![
            vec![(&a[..], 0.5f32), (&b[..], 1.0)],
            vec![(&b[..], 1.0 / 3.0)],
        ];
        let mut out = vec![0f32; 65];
        edge_sums(&edges, 65, &mut out);
        for (i, &o) in out.iter().enumerate() {
            let (x, y) = (a[65 + i], b[65 + i]);
            let want = ((x * 0.5 + 0.0) + y) + (y * (1.0 / 3.0) + 0.0);
            assert_eq!(o.to_bits(), want.to_bits());
        }
    }

    #[test]
    fn pools_match_definitions() {
        // one channel, 3x3 map 0..9
        let x: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let mut a = vec![0f32; 9];
        avg_pool3(&x, 3, 3, 1, &mut a);
        assert!((a[0] - 8.0 / 9.0).abs() < 1e-6);
        assert!((a[4] - 4.0).abs() < 1e-6);
        let neg: Vec<f32> = x.iter().map(|v| -v).collect();
        let mut m = vec![0f32; 9];
        max_pool(&neg, 3, 3, 1, 3, 1, 1, &mut m);
        assert_eq!((m[0], m[8]), (0.0, -4.0));
        let mut p = vec![0f32; 1];
        max_pool(&x, 3, 3, 1, 2, 2, 0, &mut p);
        assert_eq!(p[0], 4.0);
        // 2x2 average, stride 2, of a 3x3 map: one window (0 + 1 + 3 + 4) / 4.
        avg_pool(&x, 3, 3, 1, 2, &mut p);
        assert_eq!(p[0], 2.0);
    }
}
