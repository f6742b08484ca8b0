//! Event-driven convolution and linear layer on 0/1 spikes.
//!
//! Candle's 3x3 convolution (tiled im2col + gemm) accumulates each output over its patch in
//! `(ky, kx, ci)` order starting from 0; with 0/1 inputs every step is `acc + w` or `acc`.
//! [`conv_gather`] adds the weight rows of the active inputs in that order, so outputs are
//! bit-identical while the patch has at most 512 values (gemm's depth block: C <= 56 channels
//! for 3x3). Wider convolutions are summed by gemm in cache-dependent blocks and may differ in
//! the last bit, as may the hidden layer, whose gemm can vectorise along the sum.

use super::maps::for_each_set_bit;
use super::simd::simd_kernel;

/// Output channels are stored (and kernels laid out) in multiples of this many lanes, so that
/// every accumulator block fills whole vectors; the extra channels have zero weights.
pub const LANES: usize = 8;

/// Most output channels accumulated in registers at once.
const MAX_BLOCK: usize = 64;

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

/// The active channels of every pixel of one sample's code, as a CSR list: built once per
/// (layer, sample) and read by every convolution of that layer.
#[derive(Clone, Debug, Default)]
pub struct ActiveLists {
    start: Vec<u32>,
    chans: Vec<u32>,
}

impl ActiveLists {
    /// From one sample's channels-last code of `pixels * c` bits.
    pub fn new(code: &[u64], pixels: usize, c: usize) -> ActiveLists {
        let mut start = Vec::with_capacity(pixels + 1);
        let mut chans = Vec::new();
        for q in 0..pixels {
            start.push(chans.len() as u32);
            for_each_set_bit(code, q * c, c, |ci| chans.push(ci as u32));
        }
        start.push(chans.len() as u32);
        ActiveLists { start, chans }
    }

    /// The active channels of pixel `q`, increasing.
    #[inline(always)]
    pub fn of(&self, q: usize) -> &[u32] {
        &self.chans[self.start[q] as usize..self.start[q + 1] as usize]
    }

    /// Number of pixels.
    pub fn pixels(&self) -> usize {
        self.start.len() - 1
    }
}

simd_kernel! {
    /// The convolution of one sample's spikes (`act`, over `h * w` pixels of `cin` channels)
    /// with kernel `taps` laid out `[ky][kx][ci][co]` (`co < g.cout`), written to `out`
    /// (`[h][w][g.cout]`).
    ///
    /// Each output pixel sums the weight rows of the active inputs in its window, in
    /// `(ky, kx, ci)` order from 0, in blocks of up to 64 output channels held in registers.
    /// The sum of one output is a chain of dependent additions, so neighbouring output pixels
    /// are summed together (their chains interleaved) to keep the adder busy. AVX-512 or AVX2
    /// are used when the CPU has them: the same additions in the same order, so the same bits.
    pub fn conv_gather(act: &ActiveLists, g: &ConvGeom, taps: &[f32], out: &mut [f32])
        => conv_gather_impl
}

/// Output pixels summed together (at most).
const GROUP: usize = 4;

/// Row lists of up to [`GROUP`] output pixels: the offsets in `taps` of the weight rows each
/// one adds, in order.
struct RowLists {
    /// Capacity of one list (`k * k * cin`).
    cap: usize,
    offs: Vec<u32>,
    lens: [usize; GROUP],
}

#[inline(always)]
fn conv_gather_impl(act: &ActiveLists, g: &ConvGeom, taps: &[f32], out: &mut [f32]) {
    let ConvGeom { h, w, cin, k, cout } = *g;
    assert_eq!(cout % LANES, 0);
    assert_eq!(act.pixels(), h * w);
    assert_eq!(taps.len(), k * k * cin * cout);
    assert_eq!(out.len(), h * w * cout);
    let pad = k / 2;
    let cap = k * k * cin;
    let mut rl = RowLists {
        cap,
        offs: vec![0; GROUP * cap],
        lens: [0; GROUP],
    };
    for y in 0..h {
        let mut x = 0;
        while x < w {
            let group = (w - x).min(GROUP);
            for gi in 0..group {
                let list = &mut rl.offs[gi * cap..(gi + 1) * cap];
                let mut len = 0;
                for ky in 0..k {
                    let Some(yy) = (y + ky).checked_sub(pad).filter(|&v| v < h) else {
                        continue;
                    };
                    for kx in 0..k {
                        let Some(xx) = (x + gi + kx).checked_sub(pad).filter(|&v| v < w) else {
                            continue;
                        };
                        let tap = (ky * k + kx) * cin;
                        for &ci in act.of(yy * w + xx) {
                            list[len] = ((tap + ci as usize) * cout) as u32;
                            len += 1;
                        }
                    }
                }
                rl.lens[gi] = len;
            }
            let p0 = y * w + x;
            let dst = &mut out[p0 * cout..(p0 + group) * cout];
            let mut co = 0;
            while co < cout {
                let b = (cout - co).min(MAX_BLOCK);
                match (b, group) {
                    (8, GROUP) => gather_group::<8, 4>(&rl, taps, co, cout, dst),
                    (16, GROUP) => gather_group::<16, 4>(&rl, taps, co, cout, dst),
                    (24, GROUP) => gather_group::<24, 4>(&rl, taps, co, cout, dst),
                    (32, GROUP) => gather_group::<32, 4>(&rl, taps, co, cout, dst),
                    (40, GROUP) => gather_group::<40, 2>(&rl, taps, co, cout, dst),
                    (48, GROUP) => gather_group::<48, 2>(&rl, taps, co, cout, dst),
                    (56, GROUP) => gather_group::<56, 2>(&rl, taps, co, cout, dst),
                    (64, GROUP) => gather_group::<64, 2>(&rl, taps, co, cout, dst),
                    (8, _) => gather_group::<8, 1>(&rl, taps, co, cout, dst),
                    (16, _) => gather_group::<16, 1>(&rl, taps, co, cout, dst),
                    (24, _) => gather_group::<24, 1>(&rl, taps, co, cout, dst),
                    (32, _) => gather_group::<32, 1>(&rl, taps, co, cout, dst),
                    (40, _) => gather_group::<40, 1>(&rl, taps, co, cout, dst),
                    (48, _) => gather_group::<48, 1>(&rl, taps, co, cout, dst),
                    (56, _) => gather_group::<56, 1>(&rl, taps, co, cout, dst),
                    _ => gather_group::<64, 1>(&rl, taps, co, cout, dst),
                }
                co += b;
            }
            x += group;
        }
    }
}

/// Output channels `co..co + B` of the `dst.len() / cout` pixels of `rl` (a multiple of `G`),
/// `G` pixels at a time with their `B` accumulators in registers (each pixel's rows still in
/// order).
#[inline(always)]
fn gather_group<const B: usize, const G: usize>(
    rl: &RowLists,
    taps: &[f32],
    co: usize,
    cout: usize,
    dst: &mut [f32],
) {
    let pixels = dst.len() / cout;
    assert_eq!(pixels % G, 0, "whole groups");
    let mut p0 = 0;
    while p0 < pixels {
        let mut acc = [[0f32; B]; G];
        let lists: [&[u32]; G] = std::array::from_fn(|i| {
            &rl.offs[(p0 + i) * rl.cap..(p0 + i) * rl.cap + rl.lens[p0 + i]]
        });
        let common = lists.iter().map(|l| l.len()).min().unwrap_or(0);
        for i in 0..common {
            for (a, l) in acc.iter_mut().zip(&lists) {
                let o = l[i] as usize + co;
                let row: &[f32; B] = taps[o..o + B].try_into().expect("block in range");
                for j in 0..B {
                    a[j] += row[j];
                }
            }
        }
        for (a, l) in acc.iter_mut().zip(&lists) {
            for &r in &l[common..] {
                let o = r as usize + co;
                let row: &[f32; B] = taps[o..o + B].try_into().expect("block in range");
                for j in 0..B {
                    a[j] += row[j];
                }
            }
        }
        for (i, a) in acc.iter().enumerate() {
            let p = p0 + i;
            dst[p * cout + co..p * cout + co + B].copy_from_slice(a);
        }
        p0 += G;
    }
}

simd_kernel! {
    /// `out[h] = sum over active inputs f (increasing) of weights[f * out.len() + h]`, from 0:
    /// a linear layer on 0/1 inputs given as the sorted list of active indices, `weights` laid
    /// out `[in][out]`.
    pub fn linear_gather(active: &[u32], weights: &[f32], out: &mut [f32]) => linear_gather_impl
}

#[inline(always)]
fn linear_gather_impl(active: &[u32], weights: &[f32], out: &mut [f32]) {
    let m = out.len();
    for (b0, chunk) in (0..m).step_by(MAX_BLOCK).zip(out.chunks_mut(MAX_BLOCK)) {
        if chunk.len() == MAX_BLOCK {
            let mut acc = [0f32; MAX_BLOCK];
            for &f in active {
                let o = f as usize * m + b0;
                let row: &[f32; MAX_BLOCK] =
                    weights[o..o + MAX_BLOCK].try_into().expect("in range");
                for i in 0..MAX_BLOCK {
                    acc[i] += row[i];
                }
            }
            chunk.copy_from_slice(&acc);
        } else {
            chunk.fill(0.0);
            let len = chunk.len();
            for &f in active {
                let o = f as usize * m + b0;
                for (a, &r) in chunk.iter_mut().zip(&weights[o..o + len]) {
                    *a += r;
                }
            }
        }
    }
}
