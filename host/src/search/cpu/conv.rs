//! Event-driven convolution and linear layer on 0/1 spikes.
//!
//! Candle's 3x3 convolution (tiled im2col + gemm) accumulates each output over its patch in
//! `(ky, kx, ci)` order starting from 0; with 0/1 inputs every step is `acc + w` or `acc`.
//! [`conv_gather`] adds the weight rows of the active inputs in that order, so outputs are
//! bit-identical while the patch has at most 512 values (gemm's depth block: C <= 56 channels
//! for 3x3). Wider convolutions are summed by gemm in cache-dependent blocks and may differ in
//! the last bit, as may the hidden layer, whose gemm can vectorise along the sum.

use super::simd::simd_kernel;

/// Output channels are stored (and kernels laid out) in multiples of this many lanes, so that
/// every accumulator block fills whole vectors; the extra channels have zero weights.
pub const LANES: usize = 8;

/// Output channels accumulated in registers at once: up to 64, or a multiple of 16 up to 128
/// (a whole row of a wider group in one pass).
const MAX_BLOCK: usize = 64;
/// See [`MAX_BLOCK`].
const WIDE_BLOCK: usize = 128;

/// `c` rounded up to a multiple of [`LANES`].
pub fn padded(c: usize) -> usize {
    c.div_ceil(LANES) * LANES
}

/// Shape of a same-padded, stride-1 convolution over channels-last maps.
#[derive(Clone, Copy, Debug)]
pub struct ConvGeom {
    /// Height (input and output).
    pub h: usize,
    /// Width (input and output).
    pub w: usize,
    /// Input channels.
    pub cin: usize,
    /// Kernel size (odd); padding `k / 2`.
    pub k: usize,
    /// Output channels as stored: a multiple of [`LANES`] (the real ones first).
    pub cout: usize,
}

/// The active inputs of one sample's code (an `h x w` map with `c` channels): for every pixel
/// `(y, x)`, in increasing order, the positions `x * c + ci` (bit positions within image row
/// `y`) of its active channels `ci`, stored pixel after pixel.
///
/// Built once per (layer, sample) and read by every convolution of that layer. Because the
/// lists of neighbouring pixels are adjacent, the inputs of a `k`-wide window row are one
/// contiguous slice, already in `(kx, ci)` order: the convolution reads it without any copy.
#[derive(Clone, Debug, Default)]
pub struct Active {
    h: usize,
    w: usize,
    c: usize,
    start: Vec<u32>,
    entries: Vec<u32>,
}

impl Active {
    /// From one sample's channels-last code of an `h x w` map with `c` channels.
    pub fn new(code: &[u64], h: usize, w: usize, c: usize) -> Active {
        build_active(code, h, w, c)
    }

    /// The active inputs of window row `y`, columns `x0..=x1`, as row bit positions.
    #[inline(always)]
    fn span(&self, y: usize, x0: usize, x1: usize) -> &[u32] {
        let q = y * self.w;
        &self.entries[self.start[q + x0] as usize..self.start[q + x1 + 1] as usize]
    }

    /// Number of pixels.
    pub fn pixels(&self) -> usize {
        self.h * self.w
    }

    /// The active inputs of pixel `q` (`y * w + x`), as row bit positions `x * c + ci`.
    #[inline(always)]
    pub fn pixel(&self, q: usize) -> &[u32] {
        &self.entries[self.start[q] as usize..self.start[q + 1] as usize]
    }

    /// Number of active inputs.
    pub fn count(&self) -> usize {
        self.entries.len()
    }
}

simd_kernel! {
    /// [`Active::new`].
    fn build_active(code: &[u64], h: usize, w: usize, c: usize) -> Active => build_active_impl
}

#[inline(always)]
fn build_active_impl(code: &[u64], h: usize, w: usize, c: usize) -> Active {
    let pixels = h * w;
    let active: usize = code.iter().map(|v| v.count_ones() as usize).sum();
    // The writer stores whole groups of values and advances by the count: hence the slack.
    let mut entries = vec![0u32; active + SLACK];
    let mut start = vec![0u32; pixels + 1];
    let mut n = 0;
    for (q, st) in start[..pixels].iter_mut().enumerate() {
        *st = n as u32;
        let base = q % w * c;
        let mut c0 = 0;
        while c0 < c {
            let len = (c - c0).min(64);
            let bits = bits_at(code, q * c + c0, len);
            n = push_bits(&mut entries, n, bits, len, (base + c0) as u32);
            c0 += len;
        }
    }
    start[pixels] = n as u32;
    entries.truncate(n);
    Active {
        h,
        w,
        c,
        start,
        entries,
    }
}

/// Values [`push_bits`] may write past its end.
const SLACK: usize = 8;

/// The positions of the set bits of each byte value, in increasing order (then zeros).
static BYTE_BITS: [[u32; 8]; 256] = {
    let mut t = [[0u32; 8]; 256];
    let mut v = 0;
    while v < 256 {
        let (mut i, mut n) = (0, 0);
        while i < 8 {
            if v >> i & 1 == 1 {
                t[v][n] = i as u32;
                n += 1;
            }
            i += 1;
        }
        v += 1;
    }
    t
};

/// Writes `base + i` for every set bit `i < len` of `bits`, in increasing order, at
/// `out[n..]`; returns the new `n`. Branch-free (whole bytes at a time through
/// [`BYTE_BITS`]; the random bit counts of spikes would defeat branch prediction), so it
/// writes up to 8 values past the returned end.
#[inline(always)]
fn push_bits(out: &mut [u32], mut n: usize, bits: u64, len: usize, base: u32) -> usize {
    for j in 0..len.div_ceil(8) {
        let byte = (bits >> (8 * j)) as u8;
        let pos = &BYTE_BITS[byte as usize];
        let b = base + (8 * j) as u32;
        let dst: &mut [u32; 8] = (&mut out[n..n + 8]).try_into().expect("slack");
        for t in 0..8 {
            dst[t] = b + pos[t];
        }
        n += byte.count_ones() as usize;
    }
    n
}

/// Bits `start..start + len` of a code (`len <= 64`), as the low bits of a word.
#[inline(always)]
fn bits_at(code: &[u64], start: usize, len: usize) -> u64 {
    let (wi, off) = (start / 64, start % 64);
    let mut v = code[wi] >> off;
    if off + len > 64 {
        v |= code[wi + 1] << (64 - off);
    }
    if len < 64 {
        v &= (1u64 << len) - 1;
    }
    v
}

simd_kernel! {
    /// The convolution of one sample's spikes (`act`, over `h * w` pixels of `cin` channels)
    /// with kernel `taps` laid out `[ky][kx][ci][co]` (`co < g.cout`), written to `out`
    /// (`[h][w][g.cout]`).
    ///
    /// Each output pixel sums the weight rows of the active inputs in its window, in
    /// `(ky, kx, ci)` order from 0 (see the module doc): one slice of [`Active`] per window
    /// row, in blocks of up to 128 output channels held in registers, two neighbouring output
    /// pixels at a time (their dependent chains of additions interleaved). AVX-512 or AVX2 are
    /// used when the CPU has them: the same additions in the same order, so the same bits.
    pub fn conv_gather(act: &Active, g: &ConvGeom, taps: &[f32], out: &mut [f32])
        => conv_gather_impl
}

/// Calls `$f::<B>(args)` with the block size `B` (a const generic) equal to the runtime `$b`,
/// one of the sizes [`conv_gather`] picks (any other value takes 128).
macro_rules! with_block {
    ($b:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $b {
            8 => $f::<8>($($arg),*),
            16 => $f::<16>($($arg),*),
            24 => $f::<24>($($arg),*),
            32 => $f::<32>($($arg),*),
            40 => $f::<40>($($arg),*),
            48 => $f::<48>($($arg),*),
            56 => $f::<56>($($arg),*),
            64 => $f::<64>($($arg),*),
            80 => $f::<80>($($arg),*),
            96 => $f::<96>($($arg),*),
            112 => $f::<112>($($arg),*),
            _ => $f::<128>($($arg),*),
        }
    };
}

#[inline(always)]
fn conv_gather_impl(act: &Active, g: &ConvGeom, taps: &[f32], out: &mut [f32]) {
    let ConvGeom { h, w, cin, k, cout } = *g;
    assert_eq!(cout % LANES, 0);
    assert_eq!((act.h, act.w, act.c), (h, w, cin));
    assert_eq!(taps.len(), k * k * cin * cout);
    assert_eq!(out.len(), h * w * cout);
    let mut p = 0;
    while p < h * w {
        // Two horizontally adjacent pixels together where the row allows.
        let pair = p % w + 1 < w;
        let at = (p / w, p % w);
        let mut co = 0;
        while co < cout {
            let rest = cout - co;
            let b = if rest <= MAX_BLOCK || (rest <= WIDE_BLOCK && rest % 16 == 0) {
                rest.min(WIDE_BLOCK)
            } else {
                MAX_BLOCK
            };
            if pair {
                let dst = &mut out[p * cout..(p + 2) * cout];
                with_block!(b, gather_pair(act, g, taps, at, co, dst));
            } else {
                let dst = &mut out[p * cout + co..p * cout + co + b];
                with_block!(b, gather_block(act, g, taps, at, co, dst));
            }
            co += b;
        }
        p += if pair { 2 } else { 1 };
    }
}

/// Adds the weight rows `e + add - shift` of `entries` in `tap` to `acc`, in order.
#[inline(always)]
fn add_rows<const B: usize>(
    acc: &mut [f32; B],
    tap: &[f32],
    entries: &[u32],
    (add, shift): (usize, usize),
    cout: usize,
) {
    for &e in entries {
        let o = (e as usize + add - shift) * cout;
        let row: &[f32; B] = tap[o..o + B].try_into().expect("block in range");
        for i in 0..B {
            acc[i] += row[i];
        }
    }
}

/// Output channels `co..co + B` of the output pixel `(y, x)`, `B` accumulators in registers.
#[inline(always)]
fn gather_block<const B: usize>(
    act: &Active,
    g: &ConvGeom,
    taps: &[f32],
    (y, x): (usize, usize),
    co: usize,
    out: &mut [f32],
) {
    let ConvGeom { h, w, cin, k, cout } = *g;
    let pad = k / 2;
    let (x0, x1) = (x.saturating_sub(pad), (x + pad).min(w - 1));
    // Row bit position e of input (x + kx - pad, ci) is (x + kx - pad) * cin + ci, so its
    // weight row within the taps of ky is kx * cin + ci = e + pad * cin - x * cin.
    let shift = x * cin;
    let mut acc = [0f32; B];
    for ky in 0..k {
        let Some(yy) = (y + ky).checked_sub(pad).filter(|&v| v < h) else {
            continue;
        };
        let tap = &taps[ky * k * cin * cout + co..];
        add_rows(
            &mut acc,
            tap,
            act.span(yy, x0, x1),
            (pad * cin, shift),
            cout,
        );
    }
    out.copy_from_slice(&acc);
}

/// [`gather_block`] for the output pixels `(y, x)` and `(y, x + 1)` (`out` holds both pixels'
/// full rows): their two chains of additions interleaved, each still in its own order.
#[inline(always)]
fn gather_pair<const B: usize>(
    act: &Active,
    g: &ConvGeom,
    taps: &[f32],
    (y, x): (usize, usize),
    co: usize,
    out: &mut [f32],
) {
    let ConvGeom { h, w, cin, k, cout } = *g;
    let pad = k / 2;
    let (s0, s1, pc) = (x * cin, (x + 1) * cin, pad * cin);
    let (a, b) = (x.saturating_sub(pad), (x + pad).min(w - 1));
    let (c, d) = ((x + 1).saturating_sub(pad), (x + 1 + pad).min(w - 1));
    let mut a0 = [0f32; B];
    let mut a1 = [0f32; B];
    for ky in 0..k {
        let Some(yy) = (y + ky).checked_sub(pad).filter(|&v| v < h) else {
            continue;
        };
        let tap = &taps[ky * k * cin * cout + co..];
        let (r0, r1) = (act.span(yy, a, b), act.span(yy, c, d));
        let common = r0.len().min(r1.len());
        for (&e0, &e1) in r0[..common].iter().zip(&r1[..common]) {
            let o0 = (e0 as usize + pc - s0) * cout;
            let o1 = (e1 as usize + pc - s1) * cout;
            let w0: &[f32; B] = tap[o0..o0 + B].try_into().expect("block in range");
            let w1: &[f32; B] = tap[o1..o1 + B].try_into().expect("block in range");
            for i in 0..B {
                a0[i] += w0[i];
                a1[i] += w1[i];
            }
        }
        add_rows(&mut a0, tap, &r0[common..], (pc, s0), cout);
        add_rows(&mut a1, tap, &r1[common..], (pc, s1), cout);
    }
    out[co..co + B].copy_from_slice(&a0);
    out[cout + co..cout + co + B].copy_from_slice(&a1);
}

simd_kernel! {
    /// A block of `width` columns of a linear layer on 0/1 inputs for a whole batch:
    /// `out[s * width + j] = sum over active inputs f (increasing) of weights[f * width + j]`,
    /// from 0, where input `f` of sample `s` is active when `masks[s * feats + f]` is all ones
    /// (0 when inactive), `weights` is the block `[feats][width]` and `out.len() = n * width`.
    ///
    /// Runs over every input for blocks of 4 samples and 64 columns held in registers: each
    /// weight row is read once per block and added to each sample masked (an inactive input
    /// adds +0, which changes no sum that starts at +0), so the per-sample sums are exactly
    /// the sparse ones, without data-dependent branches. The (contiguous) weight block stays in
    /// cache across the sample blocks.
    pub fn linear_masked(
        masks: &[u32],
        n: usize,
        feats: usize,
        weights: &[f32],
        out: &mut [f32],
    ) => linear_masked_impl
}

/// Samples per register block of [`linear_masked`].
const LIN_SAMPLES: usize = 4;

#[inline(always)]
fn linear_masked_impl(masks: &[u32], n: usize, feats: usize, weights: &[f32], out: &mut [f32]) {
    assert_eq!(masks.len(), n * feats);
    let width = out.len() / n;
    assert_eq!(weights.len(), feats * width);
    let mut s0 = 0;
    while s0 < n {
        let group = if n - s0 >= LIN_SAMPLES {
            LIN_SAMPLES
        } else {
            1
        };
        let dst = &mut out[s0 * width..(s0 + group) * width];
        let masks = &masks[s0 * feats..(s0 + group) * feats];
        match (width, group) {
            (MAX_BLOCK, LIN_SAMPLES) => {
                linear_block::<MAX_BLOCK, LIN_SAMPLES>(masks, feats, weights, dst)
            }
            (MAX_BLOCK, _) => linear_block::<MAX_BLOCK, 1>(masks, feats, weights, dst),
            _ => {
                // A narrow last block: one sample at a time, over its active inputs.
                for (d, mk) in dst.chunks_exact_mut(width).zip(masks.chunks_exact(feats)) {
                    d.fill(0.0);
                    for (f, &mk) in mk.iter().enumerate() {
                        if mk != 0 {
                            let row = &weights[f * width..(f + 1) * width];
                            for (a, &r) in d.iter_mut().zip(row) {
                                *a += r;
                            }
                        }
                    }
                }
            }
        }
        s0 += group;
    }
}

/// [`linear_masked`] for `S` samples and `B` columns.
#[inline(always)]
fn linear_block<const B: usize, const S: usize>(
    masks: &[u32],
    feats: usize,
    weights: &[f32],
    out: &mut [f32],
) {
    let mut acc = [[0f32; B]; S];
    for (f, row) in weights.chunks_exact(B).enumerate() {
        let row: &[f32; B] = row.try_into().expect("block");
        for (s, a) in acc.iter_mut().enumerate() {
            let mk = masks[s * feats + f];
            for i in 0..B {
                a[i] += f32::from_bits(row[i].to_bits() & mk);
            }
        }
    }
    for (s, a) in acc.iter().enumerate() {
        out[s * B..(s + 1) * B].copy_from_slice(a);
    }
}
