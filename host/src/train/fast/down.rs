//! The down block's pool of the CPU training path: the `2 x 2` stride-2 pool after the down
//! conv, of the network's downsampling kind (max: the LightSNN network; average: the
//! SpikeNAS-Bench network), forward and backward over a batch of channels-last maps.

use super::buf::Buf;
use super::kernels::{self, Pool};
use crate::config::PoolKind;
use rayon::prelude::*;

/// A `k x k` stride-`k` pool of the network's downsampling kind.
#[derive(Clone, Copy, Debug)]
pub struct Down {
    kind: PoolKind,
    pool: Pool,
}

impl Down {
    /// The `k x k` pool of kind `kind` over `[h][w][c]` maps.
    pub fn new(kind: PoolKind, (h, w): (usize, usize), c: usize, k: usize) -> Down {
        Down {
            kind,
            pool: Pool::strided(h, w, c, k),
        }
    }

    /// The pool of every sample of `x` (`[n][h][w][c]`).
    pub fn forward(&self, x: &[f32], n: usize) -> Buf {
        let (per_in, per_out) = (x.len() / n, self.pool.out_len());
        let p = &self.pool;
        let mut out = Buf::scratch(n * per_out);
        let chunks = out.par_chunks_mut(per_out).zip(x.par_chunks(per_in));
        match self.kind {
            PoolKind::Max => chunks.for_each(|(o, s)| kernels::max_pool_forward(s, p, o)),
            PoolKind::Avg => chunks
                .for_each(|(o, s)| crate::search::cpu::ops::avg_pool(s, p.h, p.w, p.c, p.k, o)),
        }
        out
    }

    /// The gradient w.r.t. the input `x` of [`Down::forward`] for the output gradient `g`:
    /// max, to each window's first maximum (PyTorch's `MaxPool2d`); average, the window's
    /// gradient times `f32(1 / k^2)` to each of its elements (Candle's `avg_pool2d` backward).
    /// Rows and columns that fill no window get 0.
    pub fn backward(&self, x: &[f32], g: &[f32], n: usize) -> Buf {
        let (per_in, per_out) = (x.len() / n, self.pool.out_len());
        let p = &self.pool;
        let mut dx = Buf::zeros(x.len());
        let chunks = dx
            .par_chunks_mut(per_in)
            .zip(x.par_chunks(per_in))
            .zip(g.par_chunks(per_out));
        match self.kind {
            PoolKind::Max => {
                chunks.for_each(|((d, s), gr)| kernels::max_pool_backward(s, p, gr, d))
            }
            PoolKind::Avg => chunks.for_each(|((d, _), gr)| avg_pool_backward(p, gr, d)),
        }
        dx
    }
}

/// The gradient of the stride-`k` average pool `p` of one sample: adds each window's output
/// gradient times `f32(1 / k^2)` to the window's elements.
fn avg_pool_backward(p: &Pool, g: &[f32], dx: &mut [f32]) {
    let (oh, ow) = p.out_hw();
    let (c, k) = (p.c, p.k);
    let scale = (1.0 / (k * k) as f64) as f32;
    for oy in 0..oh {
        for ox in 0..ow {
            let go = &g[(oy * ow + ox) * c..(oy * ow + ox + 1) * c];
            for yy in oy * k..oy * k + k {
                for xx in ox * k..ox * k + k {
                    let d = &mut dx[(yy * p.w + xx) * c..(yy * p.w + xx + 1) * c];
                    for (a, &v) in d.iter_mut().zip(go) {
                        *a += v * scale;
                    }
                }
            }
        }
    }
}
