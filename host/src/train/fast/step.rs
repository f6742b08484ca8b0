//! One training step of the CPU path: the forward pass over T timesteps recording what the
//! backward pass needs, the loss, BPTT by hand, and the gradients by tensor name.
//!
//! Layout: channels-last maps (`[n][h][w][c]`); the classifier runs all timesteps as one
//! matrix product (`[T*n, features]`), since nothing in it feeds back into the cells.

use super::bn::{self, BnStats, Cols};
use super::cell::{
    self, add_into, conv_events, conv_events_back, lif_back, lif_step, CellGrad, CellRun,
    CellState, CellTape, LifRec,
};
use super::kernels;
use super::params::Grads;
use super::stem::Stem;
use super::FastNet;
use super::Params;
use crate::search::cpu::conv::padded;
use crate::train::metrics::LossKind;
use anyhow::Result;
use candle_core::{Device, Tensor};
use rayon::prelude::*;

/// What a step reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOut {
    /// Mean loss over the batch.
    pub loss: f64,
    /// Correct predictions (first maximum of the logits).
    pub correct: usize,
}

/// `a @ b` of row-major matrices (`ta` / `tb`: use the transpose), through Candle's CPU gemm.
fn mm(
    a: &[f32],
    ash: (usize, usize),
    ta: bool,
    b: &[f32],
    bsh: (usize, usize),
    tb: bool,
) -> Result<Vec<f32>> {
    let dev = Device::Cpu;
    let mut x = Tensor::from_slice(a, ash, &dev)?;
    if ta {
        x = x.t()?;
    }
    let mut y = Tensor::from_slice(b, bsh, &dev)?;
    if tb {
        y = y.t()?;
    }
    Ok(x.matmul(&y)?.flatten_all()?.to_vec1()?)
}

/// `[n][h][w][c]` maps to `[n][h][w][c]` rows written by BatchNorm from scratch.
pub(super) fn bn_fresh(
    raw: &[f32],
    n: usize,
    cols: Cols,
    p: &mut Params,
    prefix: &str,
) -> (Vec<f32>, BnStats) {
    let (rm, rv) = p.running_mut(prefix);
    let st = bn::forward_stats(raw, n, cols, rm, rv);
    let mut out = vec![0f32; raw.len() / cols.stride * cols.width];
    bn::apply_add(
        raw,
        n,
        cols,
        &st,
        p.get(&format!("{prefix}.weight")),
        p.get(&format!("{prefix}.bias")),
        &mut out,
    );
    (out, st)
}

/// The backward of [`bn_fresh`]: the input gradient (rows of `cols.stride`).
#[allow(clippy::too_many_arguments)]
pub(super) fn bn_back(
    raw: &[f32],
    n: usize,
    cols: Cols,
    st: &BnStats,
    p: &Params,
    prefix: &str,
    dy: &[f32],
    grads: &mut Grads,
) -> Vec<f32> {
    let mut dx = vec![0f32; raw.len()];
    let (dg, db) = grads.bn_pair(prefix, cols.width);
    bn::backward(
        raw,
        n,
        cols,
        st,
        p.get(&format!("{prefix}.weight")),
        dy,
        dg,
        db,
        &mut dx,
    );
    dx
}

/// All `c` channels of rows of `c`.
pub(super) fn cols(c: usize) -> Cols {
    Cols {
        stride: c,
        c0: 0,
        width: c,
    }
}

/// What one timestep leaves outside the cells.
struct Tape {
    cells: [CellTape; 2],
    y1: Vec<f32>,
    bn1: BnStats,
    out1: LifRec,
    down_raw: Vec<f32>,
    down_bn: BnStats,
    down_out: Vec<f32>,
    y2: Vec<f32>,
    bn2: BnStats,
    out2: LifRec,
}

/// Runs one training step on `x` (`[n][F][C][H][W]`: one static frame or one per timestep)
/// with `labels`; returns
/// the loss and the gradients. `mask` is the dropout mask (`[n][features]`, 0 or 2).
pub fn step(
    net: &FastNet,
    p: &mut Params,
    x: &[f32],
    labels: &[u32],
    mask: Option<&[f32]>,
    loss: LossKind,
) -> Result<(StepOut, Grads)> {
    let cfg = &net.cfg;
    let n = labels.len();
    let tt = cfg.timesteps;
    let frames = net.frames;
    let (c1, c2) = (cfg.c1, cfg.c2);
    let hw1 = cfg.cell1_hw();
    let hw2 = cfg.cell2_hw();
    let lif = &net.lif;
    // Stem: once for static input, per timestep for event frames.
    let stem = Stem::new(cfg, p);
    let static_stem = (frames == 1).then(|| stem.forward(x, n, 1, 0, p));
    // Per-step kernels.
    let gw = [
        cell::group_weights(&net.cells[0], p),
        cell::group_weights(&net.cells[1], p),
    ];
    let down_stride = padded(c2);
    let down_taps = kernels::taps(p.get("down.conv.weight"), c2, c1, 3, down_stride);
    let down_flip = kernels::flip_taps(p.get("down.conv.weight"), c2, c1, 3, down_stride);
    let runs = [0, 1].map(|ci| CellRun {
        plan: &net.cells[ci],
        gw: &gw[ci],
        n,
        lif,
    });
    let (p_pool, (fh, fw)) = (cfg.pool, cfg.feature_hw());
    let feats = cfg.features();
    let mut states = [CellState::default(), CellState::default()];
    let (mut v1, mut v2) = (Vec::new(), Vec::new());
    let mut tapes = Vec::with_capacity(tt);
    let mut feat = vec![0f32; tt * n * feats];
    let per2 = hw2.0 * hw2.1 * c2;
    let down_pool = kernels::Pool::strided(hw1.0, hw1.1, c2, 2);
    let per_d = hw1.0 * hw1.1 * c2;
    let mut stem_tapes = Vec::new();
    for t in 0..tt {
        let x0 = match &static_stem {
            Some((x0, _)) => x0,
            None => {
                stem_tapes.push(stem.forward(x, n, frames, t, p));
                &stem_tapes[t].0
            }
        };
        let (y1, ct1) = runs[0].forward(x0, &mut states[0], p);
        let (z1, bn1) = bn_fresh(&y1, n, cols(c1), p, "cell1_bn");
        let out1 = lif_step(&z1, &mut v1, n, hw1, c1, lif);
        let down_raw = conv_events(&out1.act, hw1, c1, 3, down_stride, &down_taps);
        let dcols = Cols {
            stride: down_stride,
            c0: 0,
            width: c2,
        };
        let (down_out, down_bn) = bn_fresh(&down_raw, n, dcols, p, "down.bn");
        let mut x2 = vec![0f32; n * per2];
        x2.par_chunks_mut(per2)
            .zip(down_out.par_chunks(per_d))
            .for_each(|(o, s)| kernels::max_pool_forward(s, &down_pool, o));
        let (y2, ct2) = runs[1].forward(&x2, &mut states[1], p);
        let (z2, bn2) = bn_fresh(&y2, n, cols(c2), p, "cell2_bn");
        let out2 = lif_step(&z2, &mut v2, n, hw2, c2, lif);
        // Max pool of the spikes, flattened in Candle's [C, H, W] order, times the mask.
        let th = lif.th;
        feat[t * n * feats..(t + 1) * n * feats]
            .par_chunks_mut(feats)
            .enumerate()
            .for_each(|(i, f)| {
                let ch = &out2.charged[i * per2..(i + 1) * per2];
                for c in 0..c2 {
                    for y in 0..fh {
                        for xx in 0..fw {
                            let mut any = false;
                            for dy in 0..p_pool {
                                for dx in 0..p_pool {
                                    let q = (y * p_pool + dy) * hw2.1 + xx * p_pool + dx;
                                    any |= ch[q * c2 + c] >= th;
                                }
                            }
                            let k = (c * fh + y) * fw + xx;
                            let m = mask.map_or(1.0, |m| m[i * feats + k]);
                            f[k] = if any { m } else { 0.0 };
                        }
                    }
                }
            });
        tapes.push(Tape {
            cells: [ct1, ct2],
            y1,
            bn1,
            out1,
            down_raw,
            down_bn,
            down_out,
            y2,
            bn2,
            out2,
        });
    }
    // Classifier over all timesteps at once.
    let hid = cfg.hidden;
    let outs = cfg.classes * cfg.votes;
    let rows = tt * n;
    let hdn = mm(
        &feat,
        (rows, feats),
        false,
        p.get("fc1.weight"),
        (hid, feats),
        true,
    )?;
    let mut vh = vec![0f32; n * hid];
    let mut hcharged = vec![0f32; rows * hid];
    let mut sh = vec![0f32; rows * hid];
    for t in 0..tt {
        let r = t * n * hid..(t + 1) * n * hid;
        let mut code = vec![0u64; (n * hid).div_ceil(64)];
        kernels::lif_forward(
            &hdn[r.clone()],
            &mut vh,
            t == 0,
            lif,
            &mut hcharged[r.clone()],
            &mut code,
        );
        for (s, &c) in sh[r.clone()].iter_mut().zip(&hcharged[r]) {
            *s = if c >= lif.th { 1.0 } else { 0.0 };
        }
    }
    let mut o = mm(
        &sh,
        (rows, hid),
        false,
        p.get("fc2.weight"),
        (outs, hid),
        true,
    )?;
    let bias = p.get("fc2.bias");
    for row in o.chunks_exact_mut(outs) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
    let (classes, votes) = (cfg.classes, cfg.votes);
    let mut logits = vec![0f32; n * classes];
    for t in 0..tt {
        for i in 0..n {
            for c in 0..classes {
                let r = &o[(t * n + i) * outs + c * votes..(t * n + i) * outs + (c + 1) * votes];
                logits[i * classes + c] += r.iter().sum::<f32>() / votes as f32;
            }
        }
    }
    for l in logits.iter_mut() {
        *l /= tt as f32;
    }
    let (out, dlogits) = loss_and_grad(&logits, labels, classes, loss);
    // Backward: classifier.
    let mut grads = Grads::default();
    let scale = 1.0 / (votes * tt) as f32;
    let mut d_o = vec![0f32; rows * outs];
    for t in 0..tt {
        for i in 0..n {
            for c in 0..classes {
                let g = dlogits[i * classes + c] * scale;
                let r = (t * n + i) * outs + c * votes;
                d_o[r..r + votes].fill(g);
            }
        }
    }
    let dfc2 = mm(&d_o, (rows, outs), true, &sh, (rows, hid), false)?;
    grads.entry("fc2.weight", outs * hid).copy_from_slice(&dfc2);
    let db = grads.entry("fc2.bias", outs);
    for row in d_o.chunks_exact(outs) {
        for (a, &v) in db.iter_mut().zip(row) {
            *a += v;
        }
    }
    let dsh = mm(
        &d_o,
        (rows, outs),
        false,
        p.get("fc2.weight"),
        (outs, hid),
        false,
    )?;
    let mut dhdn = vec![0f32; rows * hid];
    let mut dvh: Option<Vec<f32>> = None;
    for t in (0..tt).rev() {
        let r = t * n * hid..(t + 1) * n * hid;
        let (dx, dvp) = lif_back(
            &hcharged[r.clone()],
            Some(&dsh[r.clone()]),
            dvh.as_deref(),
            n,
            lif,
        )
        .expect("the spikes have a gradient");
        dhdn[r].copy_from_slice(&dx);
        dvh = Some(dvp);
    }
    let dfc1 = mm(&dhdn, (rows, hid), true, &feat, (rows, feats), false)?;
    grads
        .entry("fc1.weight", hid * feats)
        .copy_from_slice(&dfc1);
    let dfeat = mm(
        &dhdn,
        (rows, hid),
        false,
        p.get("fc1.weight"),
        (hid, feats),
        false,
    )?;
    // Backward through time: cells and the blocks between them.
    let mut cg = [CellGrad::default(), CellGrad::default()];
    let (mut dv1, mut dv2): (Option<Vec<f32>>, Option<Vec<f32>>) = (None, None);
    let mut dx0: Option<Vec<f32>> = None;
    let th = lif.th;
    for t in (0..tt).rev() {
        let tp = &tapes[t];
        // The max pool's gradient on the binary spikes (to the window's first spike, or its
        // first element where none fired), times the dropout mask.
        let mut ds2 = vec![0f32; n * per2];
        ds2.par_chunks_mut(per2).enumerate().for_each(|(i, d)| {
            let ch = &tp.out2.charged[i * per2..(i + 1) * per2];
            let df = &dfeat[(t * n + i) * feats..(t * n + i + 1) * feats];
            for c in 0..c2 {
                for y in 0..fh {
                    for xx in 0..fw {
                        let k = (c * fh + y) * fw + xx;
                        let g = df[k] * mask.map_or(1.0, |m| m[i * feats + k]);
                        let at = |dy: usize, dx: usize| {
                            ((y * p_pool + dy) * hw2.1 + xx * p_pool + dx) * c2 + c
                        };
                        let first = (0..p_pool * p_pool)
                            .map(|j| at(j / p_pool, j % p_pool))
                            .find(|&q| ch[q] >= th)
                            .unwrap_or(at(0, 0));
                        d[first] += g;
                    }
                }
            }
        });
        let (dz2, dvp) = lif_back(&tp.out2.charged, Some(&ds2), dv2.as_deref(), n, lif)
            .expect("the spikes have a gradient");
        dv2 = Some(dvp);
        let dy2 = bn_back(
            &tp.y2,
            n,
            cols(c2),
            &tp.bn2,
            p,
            "cell2_bn",
            &dz2,
            &mut grads,
        );
        let dx2 = runs[1].backward(Some(dy2), &tp.cells[1], &mut cg[1], t == 0, p, &mut grads);
        let ds1 = match dx2 {
            Some(dx2) => {
                let mut ddown = vec![0f32; n * per_d];
                ddown
                    .par_chunks_mut(per_d)
                    .zip(tp.down_out.par_chunks(per_d))
                    .zip(dx2.par_chunks(per2))
                    .for_each(|((d, s), g)| kernels::max_pool_backward(s, &down_pool, g, d));
                let dcols = Cols {
                    stride: down_stride,
                    c0: 0,
                    width: c2,
                };
                let draw = bn_back(
                    &tp.down_raw,
                    n,
                    dcols,
                    &tp.down_bn,
                    p,
                    "down.bn",
                    &ddown,
                    &mut grads,
                );
                let (dtaps, ds1) =
                    conv_events_back(&tp.out1.act, hw1, c1, 3, down_stride, &down_flip, &draw);
                let dw = grads.entry("down.conv.weight", c2 * c1 * 9);
                kernels::add_taps_grad(&dtaps, 0, c2, c1, 3, down_stride, dw);
                Some(ds1)
            }
            None => None,
        };
        let dy1 = match lif_back(&tp.out1.charged, ds1.as_deref(), dv1.as_deref(), n, lif) {
            Some((dz1, dvp)) => {
                dv1 = Some(dvp);
                Some(bn_back(
                    &tp.y1,
                    n,
                    cols(c1),
                    &tp.bn1,
                    p,
                    "cell1_bn",
                    &dz1,
                    &mut grads,
                ))
            }
            None => None,
        };
        if let Some(d) = runs[0].backward(dy1, &tp.cells[0], &mut cg[0], t == 0, p, &mut grads) {
            match stem_tapes.get(t) {
                Some((_, st)) => stem.backward(st, &d, n, p, &mut grads),
                None => add_into(&mut dx0, &d),
            }
        }
    }
    // The static stem, once for the gradient summed over timesteps.
    if let (Some(dx0), Some((_, st))) = (dx0, &static_stem) {
        stem.backward(st, &dx0, n, p, &mut grads);
    }
    Ok((out, grads))
}

/// The mean loss, the correct predictions and the gradient of the loss w.r.t. the logits.
fn loss_and_grad(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
    kind: LossKind,
) -> (StepOut, Vec<f32>) {
    let n = labels.len();
    let mut d = vec![0f32; logits.len()];
    let mut total = 0f64;
    let mut correct = 0;
    for (i, &lab) in labels.iter().enumerate() {
        let row = &logits[i * classes..(i + 1) * classes];
        let lab = lab as usize;
        let mut best = 0;
        for (c, &v) in row.iter().enumerate() {
            if v > row[best] {
                best = c;
            }
        }
        correct += (best == lab) as usize;
        let dr = &mut d[i * classes..(i + 1) * classes];
        match kind {
            LossKind::Ce => {
                let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let se: f32 = row.iter().map(|&v| (v - m).exp()).sum();
                total += (se.ln() + m - row[lab]) as f64;
                for (c, g) in dr.iter_mut().enumerate() {
                    let sm = (row[c] - m).exp() / se;
                    *g = (sm - (c == lab) as u8 as f32) / n as f32;
                }
            }
            LossKind::Mse => {
                for (c, g) in dr.iter_mut().enumerate() {
                    let diff = row[c] - (c == lab) as u8 as f32;
                    total += (diff * diff) as f64 / classes as f64;
                    *g = 2.0 * diff / (n * classes) as f32;
                }
            }
        }
    }
    (
        StepOut {
            loss: total / n as f64,
            correct,
        },
        d,
    )
}
