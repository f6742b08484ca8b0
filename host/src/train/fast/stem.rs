//! The stem of the CPU training path: a dense 3x3 convolution of one input frame per sample,
//! BatchNorm, and for DVS128 the MaxPool2 (see docs/design.md, 'Macro skeleton'); forward with
//! a record for the backward pass, and the backward pass (the kernel gradient; the input needs
//! none).

use super::bn::{normalise, normalise_back, BnStats, Cols};
use super::buf::Buf;
use super::kernels::{self, Geom, Pool};
use super::params::{Grads, Params};
use crate::config::NetConfig;
use rayon::prelude::*;

/// The stem's shape and this step's kernel.
pub struct Stem {
    geom: Geom,
    taps: Vec<f32>,
    pool: Option<Pool>,
}

/// What one stem pass leaves for its backward pass.
pub struct StemTape {
    /// The frames, channels-last.
    xin: Buf,
    /// The convolution's output.
    raw: Buf,
    st: BnStats,
    /// The BatchNorm output, when the max pool follows it.
    normed: Option<Buf>,
}

impl Stem {
    /// The stem of `cfg` with the current weights of `p`.
    pub fn new(cfg: &NetConfig, p: &Params) -> Stem {
        let [c0, h0, w0] = cfg.shape.in_chw();
        let c1 = cfg.shape.c1;
        Stem {
            geom: Geom {
                h: h0,
                w: w0,
                cin: c0,
                cout: c1,
                k: 3,
            },
            taps: kernels::taps(p.get("stem.conv.weight"), c1, c0, 3, c1),
            pool: cfg.shape.stem_pool.then(|| Pool::strided(h0, w0, c1, 2)),
        }
    }

    /// The stem on frame `f` of every sample of `x` (`[n][frames][C][H][W]`): the cell-1 input
    /// `[n][h][w][c1]` and the tape. Updates the BatchNorm running statistics.
    pub fn forward(
        &self,
        x: &[f32],
        n: usize,
        frames: usize,
        f: usize,
        p: &mut Params,
    ) -> (Buf, StemTape) {
        let g = &self.geom;
        let per_in = g.cin * g.h * g.w;
        let hw = g.h * g.w;
        let mut xin = Buf::scratch(n * per_in);
        xin.par_chunks_mut(per_in).enumerate().for_each(|(i, d)| {
            let s = &x[(i * frames + f) * per_in..(i * frames + f + 1) * per_in];
            for ch in 0..g.cin {
                for q in 0..hw {
                    d[q * g.cin + ch] = s[ch * hw + q];
                }
            }
        });
        let per_raw = hw * g.cout;
        let mut raw = Buf::scratch(n * per_raw);
        raw.par_chunks_mut(per_raw)
            .zip(xin.par_chunks(per_in))
            .for_each(|(o, s)| kernels::conv_dense(s, g, &self.taps, o));
        let (normed, st) = normalise(&raw, n, Cols::all(g.cout), p, "stem.bn");
        let (x0, normed) = match &self.pool {
            Some(pool) => {
                let per = pool.out_len();
                let mut x0 = Buf::scratch(n * per);
                x0.par_chunks_mut(per)
                    .zip(normed.par_chunks(per_raw))
                    .for_each(|(o, s)| kernels::max_pool_forward(s, pool, o));
                (x0, Some(normed))
            }
            None => (normed, None),
        };
        (
            x0,
            StemTape {
                xin,
                raw,
                st,
                normed,
            },
        )
    }

    /// The backward pass of [`Stem::forward`] for the gradient `dx0` of its output: adds the
    /// kernel and BatchNorm gradients to `grads`.
    pub fn backward(&self, tape: &StemTape, dx0: &[f32], n: usize, p: &Params, grads: &mut Grads) {
        let g = &self.geom;
        let per_raw = g.h * g.w * g.cout;
        let pooled;
        let dnorm = match (&self.pool, &tape.normed) {
            (Some(pool), Some(normed)) => {
                let mut d = Buf::zeros(n * per_raw);
                d.par_chunks_mut(per_raw)
                    .zip(normed.par_chunks(per_raw))
                    .zip(dx0.par_chunks(pool.out_len()))
                    .for_each(|((d, s), gr)| kernels::max_pool_backward(s, pool, gr, d));
                pooled = d;
                &pooled[..]
            }
            _ => dx0,
        };
        let draw = normalise_back(
            &tape.raw,
            n,
            Cols::all(g.cout),
            &tape.st,
            p,
            "stem.bn",
            dnorm,
            grads,
        );
        let per_in = g.cin * g.h * g.w;
        let parts: Vec<Vec<f32>> = tape
            .xin
            .par_chunks(per_in)
            .zip(draw.par_chunks(per_raw))
            .map(|(s, d)| {
                let mut t = vec![0f32; 9 * g.cin * g.cout];
                kernels::conv_dw_dense(s, g, d, &mut t);
                t
            })
            .collect();
        let mut dtaps = vec![0f32; 9 * g.cin * g.cout];
        for part in parts {
            for (a, b) in dtaps.iter_mut().zip(part) {
                *a += b;
            }
        }
        let dw = grads.entry("stem.conv.weight", g.cout * g.cin * 9);
        kernels::add_taps_grad(&dtaps, 0, g.cout, g.cin, 3, g.cout, dw);
    }
}
