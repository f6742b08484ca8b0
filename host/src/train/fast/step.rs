//! One training step of the CPU path: the forward pass over T timesteps recording what the
//! backward pass needs, the loss, BPTT by hand, and the gradients by tensor name.
//!
//! Layout: channels-last maps (`[n][h][w][c]`); the classifier ([`Classifier`]) runs after the
//! cells' forward pass, all timesteps at once.

use super::bn::{normalise, normalise_back, BnStats, Cols};
use super::buf::Buf;
use super::cell::{
    self, accumulate, conv_events, conv_events_back, lif_back, lif_step, CellGrad, CellRun,
    CellState, CellTape, LifRec,
};
use super::classifier::Classifier;
use super::down::Down;
use super::kernels;
use super::net::FastNet;
use super::params::{Grads, Params};
use super::stem::{Stem, StemTape};
use crate::search::cpu::conv::padded;
use crate::train::metrics::LossKind;
use anyhow::Result;

/// What a step reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOut {
    /// Mean loss over the batch.
    pub loss: f64,
    /// Correct predictions (first maximum of the logits).
    pub correct: usize,
}

/// What one timestep leaves outside the cells.
struct Tape {
    stem: Option<StemTape>,
    cells: [CellTape; 2],
    y1: Buf,
    bn1: BnStats,
    out1: LifRec,
    down_raw: Buf,
    down_bn: BnStats,
    down_out: Buf,
    y2: Buf,
    bn2: BnStats,
    out2: LifRec,
}

/// Runs one training step on `x` (`[n][F][C][H][W]`: one static frame or one per timestep)
/// with `labels`; returns the loss and the gradients. `mask` is the dropout mask
/// (`[n][features]`, 0 or 2).
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
    let tt = cfg.shape.timesteps;
    let frames = net.frames;
    let (c1, c2) = (cfg.shape.c1, cfg.shape.c2);
    let hw1 = cfg.shape.cell1_hw();
    let lif = net.lif();
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
    let dcols = Cols {
        stride: down_stride,
        c0: 0,
        width: c2,
    };
    let runs = [0, 1].map(|ci| CellRun {
        plan: &net.cells[ci],
        gw: &gw[ci],
        n,
        lifs: &net.lifs,
    });
    let head = Classifier { cfg, lif, n, mask };
    let feats = cfg.shape.fc1_in();
    let mut states = [CellState::default(), CellState::default()];
    let (mut v1, mut v2) = (Buf::default(), Buf::default());
    let mut tapes = Vec::with_capacity(tt);
    let mut feat = Buf::scratch(tt * n * feats);
    let down_pool = Down::new(cfg.downsample, hw1, c2, 2);
    for t in 0..tt {
        let fresh = match &static_stem {
            Some(_) => None,
            None => Some(stem.forward(x, n, frames, t, p)),
        };
        let x0 = match (&static_stem, &fresh) {
            (Some((x0, _)), _) | (None, Some((x0, _))) => x0,
            (None, None) => unreachable!("a stem output for every timestep"),
        };
        let (y1, ct1) = runs[0].forward(x0, &mut states[0], p);
        let (z1, bn1) = normalise(&y1, n, Cols::all(c1), p, "cell1_bn");
        let out1 = lif_step(&z1, &mut v1, n, lif, Some((hw1, c1)));
        let down_raw = conv_events(&out1.act, hw1, c1, 3, down_stride, &down_taps);
        let (down_out, down_bn) = normalise(&down_raw, n, dcols, p, "down.bn");
        let x2 = down_pool.forward(&down_out, n);
        let (y2, ct2) = runs[1].forward(&x2, &mut states[1], p);
        let (z2, bn2) = normalise(&y2, n, Cols::all(c2), p, "cell2_bn");
        let out2 = lif_step(&z2, &mut v2, n, lif, None);
        head.features(&out2.charged, &mut feat[t * n * feats..(t + 1) * n * feats]);
        tapes.push(Tape {
            stem: fresh.map(|(_, st)| st),
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
    let (logits, head_tape) = head.forward(feat, p);
    let (out, dlogits) = loss_and_grad(&logits, labels, cfg.shape.classes, loss);
    let mut grads = Grads::default();
    let dfeat = head.backward(&head_tape, &dlogits, p, &mut grads);
    drop(head_tape);
    // Backward through time: cells and the blocks between them.
    let mut cg = [CellGrad::default(), CellGrad::default()];
    let (mut dv1, mut dv2): (Option<Buf>, Option<Buf>) = (None, None);
    let mut dx0: Option<Buf> = None;
    for t in (0..tt).rev() {
        let tp = tapes.pop().expect("a tape per timestep");
        let ds2 = head.features_back(&tp.out2.charged, &dfeat[t * n * feats..(t + 1) * n * feats]);
        let (dz2, dvp) = lif_back(&tp.out2.charged, Some(&ds2), dv2.as_deref(), n, lif)
            .expect("the spikes have a gradient");
        dv2 = Some(dvp);
        let dy2 = normalise_back(
            &tp.y2,
            n,
            Cols::all(c2),
            &tp.bn2,
            p,
            "cell2_bn",
            &dz2,
            &mut grads,
        );
        let dx2 = runs[1].backward(Some(dy2), &tp.cells[1], &mut cg[1], t == 0, p, &mut grads);
        let ds1 = match dx2 {
            Some(dx2) => {
                let ddown = down_pool.backward(&tp.down_out, &dx2, n);
                let draw = normalise_back(
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
                Some(normalise_back(
                    &tp.y1,
                    n,
                    Cols::all(c1),
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
            match &tp.stem {
                Some(st) => stem.backward(st, &d, n, p, &mut grads),
                None => accumulate(&mut dx0, d),
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
