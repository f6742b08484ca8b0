//! The classifier of the CPU training path (see docs/design.md, 'Macro skeleton'): cell 2's
//! output spikes pooled (max or average, the network's downsampling kind) and flattened, times the dropout mask, then fc1, the hidden LIF,
//! fc2 and the votes, averaged over T. Nothing in it feeds back into the cells, so it runs
//! all timesteps as one matrix product (`[T*n, features]`) after the cells' forward pass.

use super::buf::Buf;
use super::cell::{lif_back, lif_step};
use super::kernels::LifK;
use super::matmul::{matmul, Mat};
use super::params::{Grads, Params};
use crate::config::{NetConfig, PoolKind};
use rayon::prelude::*;

/// The classifier of one step over `n` samples.
pub struct Classifier<'a> {
    /// The network.
    pub cfg: &'a NetConfig,
    /// LIF constants.
    pub lif: &'a LifK,
    /// Samples.
    pub n: usize,
    /// The dropout mask (`[n][features]`, 0 or 2), if any.
    pub mask: Option<&'a [f32]>,
}

/// What the classifier's forward pass leaves for its backward pass.
pub struct ClassTape {
    /// `[T*n][features]`.
    feat: Buf,
    /// The hidden LIF's membrane before firing, `[T*n][H]`.
    charged: Buf,
    /// Its spikes.
    spikes: Buf,
}

impl Classifier<'_> {
    /// The window of feature `(c, y, x)` in cell 2's map: its pixels in row-major order.
    fn window(&self, y: usize, x: usize) -> impl Iterator<Item = usize> {
        let p = self.cfg.shape.pool;
        let w2 = self.cfg.shape.cell2_hw().1;
        (0..p * p).map(move |j| (y * p + j / p) * w2 + x * p + j % p)
    }

    /// `f32(1 / p^2)`: the average pool's factor (Candle's `avg_pool2d`: the window's sum
    /// times it; for spikes, an exact count).
    fn avg_scale(&self) -> f32 {
        let p = self.cfg.shape.pool;
        (1.0 / (p * p) as f64) as f32
    }

    /// The features of one timestep (`out`: `[n][features]`) from cell 2's output membranes
    /// `charged` (`[n][h][w][c2]`): the pool of the spikes (max: the OR of the window;
    /// average: the window's spike count times `f32(1 / p^2)`), flattened in Candle's
    /// `[C, H, W]` order, times the mask.
    pub fn features(&self, charged: &[f32], out: &mut [f32]) {
        let c2 = self.cfg.shape.c2;
        let (fh, fw) = self.cfg.shape.pooled_hw();
        let feats = self.cfg.shape.fc1_in();
        let per2 = charged.len() / self.n;
        let th = self.lif.th;
        let scale = self.avg_scale();
        out.par_chunks_mut(feats).enumerate().for_each(|(i, f)| {
            let ch = &charged[i * per2..(i + 1) * per2];
            for c in 0..c2 {
                for y in 0..fh {
                    for x in 0..fw {
                        let k = (c * fh + y) * fw + x;
                        let mut win = self.window(y, x);
                        let m = self.mask.map_or(1.0, |m| m[i * feats + k]);
                        f[k] = match self.cfg.downsample {
                            PoolKind::Max if win.any(|q| ch[q * c2 + c] >= th) => m,
                            PoolKind::Max => 0.0,
                            PoolKind::Avg => {
                                let count = win.filter(|&q| ch[q * c2 + c] >= th).count();
                                count as f32 * scale * m
                            }
                        };
                    }
                }
            }
        });
    }

    /// The backward of [`Classifier::features`]: the spikes' gradient `[n][h][w][c2]` from the
    /// features' `dfeat` (`[n][features]`). The max pool routes each feature's gradient to its
    /// window's first spike, or to its first element where none fired (PyTorch's `MaxPool2d`);
    /// the average pool gives every element of the window the gradient times `f32(1 / p^2)`.
    pub fn features_back(&self, charged: &[f32], dfeat: &[f32]) -> Buf {
        let c2 = self.cfg.shape.c2;
        let (fh, fw) = self.cfg.shape.pooled_hw();
        let feats = self.cfg.shape.fc1_in();
        let per2 = charged.len() / self.n;
        let th = self.lif.th;
        let scale = self.avg_scale();
        let mut ds = Buf::zeros(charged.len());
        ds.par_chunks_mut(per2).enumerate().for_each(|(i, d)| {
            let ch = &charged[i * per2..(i + 1) * per2];
            let df = &dfeat[i * feats..(i + 1) * feats];
            for c in 0..c2 {
                for y in 0..fh {
                    for x in 0..fw {
                        let k = (c * fh + y) * fw + x;
                        let g = df[k] * self.mask.map_or(1.0, |m| m[i * feats + k]);
                        let mut win = self.window(y, x);
                        if self.cfg.downsample == PoolKind::Avg {
                            win.for_each(|q| d[q * c2 + c] += g * scale);
                            continue;
                        }
                        let first = win.next().expect("a window has pixels");
                        let q = std::iter::once(first)
                            .chain(win)
                            .find(|&q| ch[q * c2 + c] >= th)
                            .unwrap_or(first);
                        d[q * c2 + c] += g;
                    }
                }
            }
        });
        ds
    }

    /// fc1, the hidden LIF, fc2 and the votes on the features of every timestep (`feat`:
    /// `[T*n][features]`): the logits `[n][classes]` (the mean over T of the voted outputs).
    pub fn forward(&self, feat: Buf, p: &Params) -> (Vec<f32>, ClassTape) {
        let cfg = self.cfg;
        let (n, tt, hid, feats) = (
            self.n,
            cfg.shape.timesteps,
            cfg.shape.hidden,
            cfg.shape.fc1_in(),
        );
        let rows = tt * n;
        let outs = cfg.shape.classes * cfg.shape.votes;
        let mut hdn = Buf::scratch(rows * hid);
        let fc1 = Mat::new(p.get("fc1.weight"), hid, feats);
        matmul(Mat::new(&feat, rows, feats), fc1.t(), &mut hdn, false);
        let mut v = Buf::default();
        let mut charged = Buf::scratch(rows * hid);
        for t in 0..tt {
            let r = t * n * hid..(t + 1) * n * hid;
            let rec = lif_step(&hdn[r.clone()], &mut v, n, self.lif, None);
            charged[r].copy_from_slice(&rec.charged);
        }
        let th = self.lif.th;
        let mut spikes = Buf::scratch(rows * hid);
        spikes
            .par_iter_mut()
            .zip(charged.par_iter())
            .for_each(|(s, &c)| *s = if c >= th { 1.0 } else { 0.0 });
        let mut o = vec![0f32; rows * outs];
        let fc2 = Mat::new(p.get("fc2.weight"), outs, hid);
        matmul(Mat::new(&spikes, rows, hid), fc2.t(), &mut o, false);
        let bias = p.get("fc2.bias");
        for row in o.chunks_exact_mut(outs) {
            for (v, &b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
        let (classes, votes) = (cfg.shape.classes, cfg.shape.votes);
        let mut logits = vec![0f32; n * classes];
        for t in 0..tt {
            for i in 0..n {
                for c in 0..classes {
                    let r = (t * n + i) * outs + c * votes;
                    logits[i * classes + c] += o[r..r + votes].iter().sum::<f32>() / votes as f32;
                }
            }
        }
        for l in logits.iter_mut() {
            *l /= tt as f32;
        }
        (
            logits,
            ClassTape {
                feat,
                charged,
                spikes,
            },
        )
    }

    /// The backward pass from the logits' gradient: adds the fc1, fc2 and bias gradients to
    /// `grads` and returns the features' gradient `[T*n][features]` (before the mask).
    pub fn backward(
        &self,
        tape: &ClassTape,
        dlogits: &[f32],
        p: &Params,
        grads: &mut Grads,
    ) -> Buf {
        let cfg = self.cfg;
        let (n, tt, hid, feats) = (
            self.n,
            cfg.shape.timesteps,
            cfg.shape.hidden,
            cfg.shape.fc1_in(),
        );
        let (classes, votes) = (cfg.shape.classes, cfg.shape.votes);
        let outs = classes * votes;
        let rows = tt * n;
        let scale = 1.0 / (votes * tt) as f32;
        let mut d_o = vec![0f32; rows * outs];
        for t in 0..tt {
            for i in 0..n {
                for c in 0..classes {
                    let r = (t * n + i) * outs + c * votes;
                    d_o[r..r + votes].fill(dlogits[i * classes + c] * scale);
                }
            }
        }
        let d_om = Mat::new(&d_o, rows, outs);
        let fc2 = Mat::new(p.get("fc2.weight"), outs, hid);
        let spikes = Mat::new(&tape.spikes, rows, hid);
        matmul(
            d_om.t(),
            spikes,
            grads.entry("fc2.weight", outs * hid),
            true,
        );
        let db = grads.entry("fc2.bias", outs);
        for row in d_o.chunks_exact(outs) {
            for (a, &v) in db.iter_mut().zip(row) {
                *a += v;
            }
        }
        let mut dspikes = Buf::scratch(rows * hid);
        matmul(d_om, fc2, &mut dspikes, false);
        let mut dhdn = Buf::scratch(rows * hid);
        let mut dv: Option<Buf> = None;
        for t in (0..tt).rev() {
            let r = t * n * hid..(t + 1) * n * hid;
            let (dx, dvp) = lif_back(
                &tape.charged[r.clone()],
                Some(&dspikes[r.clone()]),
                dv.as_deref(),
                n,
                self.lif,
            )
            .expect("the spikes have a gradient");
            dhdn[r].copy_from_slice(&dx);
            dv = Some(dvp);
        }
        let dh = Mat::new(&dhdn, rows, hid);
        let feat = Mat::new(&tape.feat, rows, feats);
        matmul(dh.t(), feat, grads.entry("fc1.weight", hid * feats), true);
        let mut dfeat = Buf::scratch(rows * feats);
        matmul(
            dh,
            Mat::new(p.get("fc1.weight"), hid, feats),
            &mut dfeat,
            false,
        );
        dfeat
    }
}
