//! One forward pass over T timesteps on the CPU: the same computation as `Network::forward` in
//! the scoring modes (from the stem output on), feeding every (LIF layer, timestep) code set to
//! a spike observer (the SAHD kernel) in the order the Candle path records them.
//!
//! Work is split over samples with rayon wherever samples are independent; batch statistics
//! are reduced in a fixed order (per channel block, rows in order), so results never depend on
//! the number of threads.

use super::bn::{batch_stats, BnAffine};
use super::buffers::{give, take, take_copy};
use super::conv::{conv_gather, linear, Active, ConvGeom};
use super::lif::{lif_step, LifK};
use super::maps::{for_each_set_bit, Codes, Maps};
use super::ops::{add_assign, avg_pool, avg_pool3, edge_sums, max_pool};
use super::plan::{CellPlan, Src};
use super::weights::{ConvW, Weights, HIDDEN_BLOCK};
use crate::config::{NetConfig, PoolKind};
use crate::model::plain::Bn;
use crate::model::{LayerId, Mixing};
use anyhow::Result;
use rayon::prelude::*;
use snn_nostd::genotype::{LifClass, LIF_CLASSES, NUM_NODES};
use snn_nostd::observer::{SpikeCodes, SpikeObserver};

/// Which statistics the BatchNorms use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stats {
    /// Batch statistics (train-mode BN without running-stat updates).
    Batch,
    /// Running statistics.
    Running,
}

/// Per-cell recurrent state over one sequence.
#[derive(Default)]
struct CellState {
    /// Back states B0, B1, B2 (`None` = 0).
    back: [Option<Vec<f32>>; 3],
    /// Membranes of the node LIFs, per node and LIF class (empty = not started, i.e. 0).
    lif: [[Vec<f32>; LIF_CLASSES]; NUM_NODES],
}

/// A node's conv outputs (after BN), per LIF class, group (`[k3, k1]`) and slot.
#[derive(Default)]
struct NodeConvs {
    groups: [[Vec<Vec<f32>>; 2]; LIF_CLASSES],
}

/// Shape of one sample's map: (height, width, channels).
type Shape = (usize, usize, usize);

/// One forward pass.
pub struct Pass<'a> {
    w: &'a Weights,
    cfg: &'a NetConfig,
    plans: [CellPlan; 2],
    stats: Stats,
    /// The LIF constants per class ([`LifClass::index`]); the LIFs outside the cells have the
    /// network's own threshold ([`LifClass::Th10`]).
    lif: [LifK; LIF_CLASSES],
    n: usize,
    /// Sees every (LIF layer, timestep) code set.
    obs: &'a mut dyn SpikeObserver,
    /// The timestep being run.
    t: usize,
}

/// Channel block of the parallel batch statistics.
const STATS_BLOCK: usize = 32;

impl<'a> Pass<'a> {
    /// Prepares a pass of `n` samples under `mixing`.
    pub fn new(
        w: &'a Weights,
        cfg: &'a NetConfig,
        mixing: &Mixing,
        stats: Stats,
        n: usize,
        obs: &'a mut dyn SpikeObserver,
    ) -> Result<Pass<'a>> {
        Ok(Pass {
            w,
            cfg,
            plans: [
                CellPlan::new(w, 0, cfg.cell, mixing)?,
                CellPlan::new(w, 1, cfg.cell, mixing)?,
            ],
            stats,
            lif: LifClass::ALL.map(|c| LifK::new(&cfg.lif_for(c))),
            n,
            obs,
            t: 0,
        })
    }

    /// Runs all timesteps; `stems` holds the stem output of every frame (one frame for static
    /// input, repeated over the timesteps).
    pub fn run(&mut self, stems: &[Maps]) -> Result<()> {
        let cfg = self.cfg;
        let s1_shape = (cfg.shape.cell1_hw().0, cfg.shape.cell1_hw().1, cfg.shape.c1);
        let s2_shape = (cfg.shape.cell2_hw().0, cfg.shape.cell2_hw().1, cfg.shape.c2);
        let mut cells = [CellState::default(), CellState::default()];
        let mut out_v = [Vec::new(), Vec::new()];
        let mut hidden_v = Vec::new();
        for t in 0..cfg.shape.timesteps {
            self.t = t;
            let x0 = &stems[if stems.len() == 1 { 0 } else { t }];
            debug_assert_eq!(
                (x0.n, x0.h, x0.w, x0.c),
                (self.n, s1_shape.0, s1_shape.1, s1_shape.2)
            );
            let last = t + 1 == cfg.shape.timesteps;
            let y1 = self.cell_step(0, &x0.data, s1_shape, &mut cells[0], last)?;
            let z1 = self.batch_norm(&y1, cfg.shape.c1, &self.w.cell_bn[0]);
            give(y1);
            let s1 = self.lif_codes(&z1, s1_shape, &mut out_v[0], LifClass::Th10);
            give(z1);
            self.record(LayerId::CellOut { cell: 0 }, &s1, 1);
            let d = self
                .conv_group(&self.w.down, &s1, &self.active(&s1), cfg.shape.c2)
                .pop()
                .expect("one slot");
            let x2 = self.downsample(&d, (s1_shape.0, s1_shape.1, cfg.shape.c2), 2);
            give(d);
            let y2 = self.cell_step(1, &x2, s2_shape, &mut cells[1], last)?;
            give(x2);
            let z2 = self.batch_norm(&y2, cfg.shape.c2, &self.w.cell_bn[1]);
            give(y2);
            let s2 = self.lif_codes(&z2, s2_shape, &mut out_v[1], LifClass::Th10);
            give(z2);
            self.record(LayerId::CellOut { cell: 1 }, &s2, 1);
            let hdn = self.hidden(&s2);
            let sh = self.lif_codes(&hdn, (1, 1, self.w.hidden), &mut hidden_v, LifClass::Th10);
            give(hdn);
            self.record(LayerId::Hidden, &sh, 1);
        }
        for st in cells {
            st.back.into_iter().flatten().for_each(give);
            st.lif.into_iter().flatten().for_each(give);
        }
        out_v.into_iter().for_each(give);
        give(hidden_v);
        Ok(())
    }

    /// Reports one layer's codes to the observer.
    fn record(&mut self, layer: LayerId, codes: &Codes, multiplicity: u32) {
        let codes = SpikeCodes {
            words: &codes.words,
            words_per_code: codes.wpc,
            n_bits: codes.n_bits(),
            multiplicity,
        };
        self.obs.on_spikes(self.t, layer, &codes);
    }

    /// One LIF step of the whole batch (`x` of `shape` per sample) with membranes `v`, at the
    /// threshold of class `class`.
    fn lif_codes(&self, x: &[f32], (h, w, c): Shape, v: &mut Vec<f32>, class: LifClass) -> Codes {
        if v.is_empty() {
            *v = take(x.len());
            v.fill(0.0);
        }
        let mut codes = Codes::zeros(self.n, h, w, c);
        let per = h * w * c;
        let lif = self.lif[class.index()];
        codes
            .words
            .par_chunks_mut(codes.wpc)
            .zip(x.par_chunks(per))
            .zip(v.par_chunks_mut(per))
            .for_each(|((code, x), v)| lif_step(x, v, &lif, code));
        codes
    }

    /// The active inputs of every sample of `codes`.
    fn active(&self, codes: &Codes) -> Vec<Active> {
        (0..self.n)
            .into_par_iter()
            .map(|i| Active::new(codes.row(i), codes.h, codes.w, codes.c))
            .collect()
    }

    /// The BN affine form of `bn` for channels `0..c` of `x` (rows of `stride` values).
    fn bn_affine(&self, x: &[f32], stride: usize, c: usize, bn: &Bn) -> BnAffine {
        match self.stats {
            Stats::Running => BnAffine::new(bn.mean.clone(), &bn.var, &bn.gamma, &bn.beta),
            Stats::Batch => {
                let blocks: Vec<(usize, usize)> = (0..c)
                    .step_by(STATS_BLOCK)
                    .map(|c0| (c0, (c0 + STATS_BLOCK).min(c)))
                    .collect();
                let parts: Vec<(Vec<f32>, Vec<f32>)> = blocks
                    .par_iter()
                    .map(|&(c0, c1)| batch_stats(x, stride, c0, c1))
                    .collect();
                let mut mean = Vec::with_capacity(c);
                let mut var = Vec::with_capacity(c);
                for (m, v) in parts {
                    mean.extend(m);
                    var.extend(v);
                }
                BnAffine::new(mean, &var, &bn.gamma, &bn.beta)
            }
        }
    }

    /// BatchNorm of a whole batch with `c` channels.
    fn batch_norm(&self, x: &[f32], c: usize, bn: &Bn) -> Vec<f32> {
        let aff = self.bn_affine(x, c, c, bn);
        let mut out = take(x.len());
        let per = x.len() / self.n;
        out.par_chunks_mut(per)
            .zip(x.par_chunks(per))
            .for_each(|(o, x)| aff.apply(x, c, 0, o, c));
        out
    }

    /// Runs a (merged) convolution on `codes` (active inputs `act`) and its BN; returns its
    /// output split into slots of `width` channels (one per merged op), channels-last.
    fn conv_group(&self, g: &ConvW, codes: &Codes, act: &[Active], width: usize) -> Vec<Vec<f32>> {
        let (n, h, w) = (self.n, codes.h, codes.w);
        let geom = ConvGeom {
            h,
            w,
            cin: codes.c,
            k: g.k,
            cout: g.stride,
        };
        let per = h * w * g.stride;
        let mut raw = take(n * per);
        raw.par_chunks_mut(per)
            .zip(act.par_iter())
            .for_each(|(o, a)| conv_gather(a, &geom, &g.taps, o));
        let aff = self.bn_affine(&raw, g.stride, g.cout, &g.bn);
        let slots = g.cout / width;
        let mut outs: Vec<Vec<f32>> = (0..slots).map(|_| take(n * h * w * width)).collect();
        let mut per_sample: Vec<Vec<&mut [f32]>> = (0..n).map(|_| Vec::new()).collect();
        for o in outs.iter_mut() {
            for (i, chunk) in o.chunks_mut(h * w * width).enumerate() {
                per_sample[i].push(chunk);
            }
        }
        per_sample
            .into_par_iter()
            .zip(raw.par_chunks(per))
            .for_each(|(dsts, r)| {
                for (s, d) in dsts.into_iter().enumerate() {
                    aff.apply(r, g.stride, s * width, d, width);
                }
            });
        give(raw);
        outs
    }

    /// `k x k` pool with stride `k` of a whole batch of maps of `shape`, of the network's
    /// downsampling kind (the down block's pool).
    fn downsample(&self, x: &[f32], (h, w, c): Shape, k: usize) -> Vec<f32> {
        let (oh, ow) = (h / k, w / k);
        let mut out = take(self.n * oh * ow * c);
        let chunks = out.par_chunks_mut(oh * ow * c).zip(x.par_chunks(h * w * c));
        match self.cfg.downsample {
            PoolKind::Max => chunks.for_each(|(o, x)| max_pool(x, h, w, c, k, k, 0, o)),
            PoolKind::Avg => chunks.for_each(|(o, x)| avg_pool(x, h, w, c, k, o)),
        }
        out
    }

    /// The hidden layer's input currents: the pool of the cell-2 spikes (max: any spike in the
    /// window, 1; average: the window's spike count times `f32(1 / p^2)`, Candle's `sum *
    /// scale` with an exact integer sum), flattened in Candle's `[C, H, W]` order, times
    /// `fc1^T` (`[N][hidden]`).
    fn hidden(&self, s2: &Codes) -> Vec<f32> {
        let p = self.cfg.shape.pool;
        let (h, w, c) = (s2.h, s2.w, s2.c);
        let (fh, fw) = (h / p, w / p);
        let feats = c * fh * fw;
        let (n, m) = (self.n, self.w.hidden);
        let avg = self.cfg.downsample == PoolKind::Avg;
        let scale = (1.0 / (p * p) as f64) as f32;
        let mut inputs = vec![0f32; n * feats];
        inputs.par_chunks_mut(feats).enumerate().for_each(|(i, x)| {
            for_each_set_bit(s2.row(i), 0, h * w * c, |b| {
                let (pix, ch) = (b / c, b % c);
                let (y, xx) = (pix / w / p, pix % w / p);
                if y < fh && xx < fw {
                    let f = &mut x[(ch * fh + y) * fw + xx];
                    *f = if avg { *f + 1.0 } else { 1.0 };
                }
            });
            if avg {
                x.iter_mut().for_each(|v| *v *= scale);
            }
        });
        let blocks: Vec<Vec<f32>> = self
            .w
            .fc1_blocks
            .par_iter()
            .map(|wb| {
                let width = wb.len() / feats;
                let mut o = vec![0f32; n * width];
                linear(&inputs, n, feats, wb, &mut o);
                o
            })
            .collect();
        let mut out = take(n * m);
        for (b, blk) in blocks.iter().enumerate() {
            let (h0, width) = (b * HIDDEN_BLOCK, blk.len() / n);
            for i in 0..n {
                out[i * m + h0..i * m + h0 + width]
                    .copy_from_slice(&blk[i * width..(i + 1) * width]);
            }
        }
        out
    }

    /// Records node `j`'s spikes of every LIF class it has (in threshold order) and, unless
    /// `spikes_only`, runs the convs reading them; once per timestep.
    #[allow(clippy::too_many_arguments)]
    fn ensure_node(
        &mut self,
        ci: usize,
        j: usize,
        u: &[Option<Vec<f32>>; NUM_NODES],
        shape: Shape,
        st: &mut CellState,
        convs: &mut [Option<NodeConvs>; NUM_NODES],
        spikes_only: bool,
    ) -> Result<()> {
        if convs[j].is_some() || self.plans[ci].mult[j].iter().all(|&m| m == 0) {
            return Ok(());
        }
        let uj = u[j].as_ref().expect("node computed before use");
        let mut out = NodeConvs::default();
        for class in LifClass::ALL {
            let mult = self.plans[ci].mult[j][class.index()];
            if mult == 0 {
                continue;
            }
            let codes = self.lif_codes(uj, shape, &mut st.lif[j][class.index()], class);
            let layer = LayerId::CellNode {
                cell: ci as u8,
                node: j as u8,
                class,
            };
            self.record(layer, &codes, mult);
            if !spikes_only {
                let act = self.active(&codes);
                let groups = &self.plans[ci].groups[j][class.index()];
                for (g, slot) in groups.iter().zip(out.groups[class.index()].iter_mut()) {
                    if let Some(g) = g {
                        *slot = self.conv_group(g, &codes, &act, shape.2);
                    }
                }
            }
        }
        convs[j] = Some(out);
        Ok(())
    }

    /// One timestep of cell `ci` with input `x0` (`shape` per sample); returns x3.
    ///
    /// At the `last` timestep the backward edges' outputs are never used: their sources'
    /// spikes are still recorded (the Candle path records them), but the convs and pools
    /// feeding only them and the new back states are skipped.
    fn cell_step(
        &mut self,
        ci: usize,
        x0: &[f32],
        shape: Shape,
        st: &mut CellState,
        last: bool,
    ) -> Result<Vec<f32>> {
        let per = shape.0 * shape.1 * shape.2;
        let mut u: [Option<Vec<f32>>; NUM_NODES] = Default::default();
        let mut convs: [Option<NodeConvs>; NUM_NODES] = Default::default();
        let mut pooled: [[Option<Vec<f32>>; 2]; NUM_NODES] = Default::default();
        u[0] = Some(add_back(take_copy(x0), &st.back[0]));
        let n_edges = self.plans[ci].edges.len();
        for i in 1..NUM_NODES {
            let into: Vec<usize> = (0..n_edges)
                .filter(|&ei| {
                    let e = &self.plans[ci].edges[ei];
                    e.to == i && !e.backward
                })
                .collect();
            for &ei in &into {
                let j = self.plans[ci].edges[ei].from;
                self.ensure_node(ci, j, &u, shape, st, &mut convs, false)?;
                self.ensure_pools(ci, ei, &u, shape, &mut pooled);
            }
            let xi = match self.combine(ci, &into, &u, &convs, &pooled, per) {
                Some(x) => x,
                None => {
                    let mut z = take(self.n * per);
                    z.fill(0.0);
                    z
                }
            };
            u[i] = Some(if i < 3 { add_back(xi, &st.back[i]) } else { xi });
        }
        let back: Vec<usize> = (0..n_edges)
            .filter(|&ei| self.plans[ci].edges[ei].backward)
            .collect();
        for &ei in &back {
            let j = self.plans[ci].edges[ei].from;
            self.ensure_node(ci, j, &u, shape, st, &mut convs, last)?;
            if !last {
                self.ensure_pools(ci, ei, &u, shape, &mut pooled);
            }
        }
        let mut new_back: [Option<Vec<f32>>; 3] = Default::default();
        for (i, nb) in new_back.iter_mut().enumerate() {
            if last {
                break;
            }
            let into: Vec<usize> = back
                .iter()
                .copied()
                .filter(|&ei| self.plans[ci].edges[ei].to == i)
                .collect();
            *nb = self.combine(ci, &into, &u, &convs, &pooled, per);
        }
        for old in std::mem::replace(&mut st.back, new_back) {
            old.into_iter().for_each(give);
        }
        let x3 = u[3].take().expect("x3 computed");
        u.into_iter().flatten().for_each(give);
        for c in convs.into_iter().flatten() {
            c.groups.into_iter().flatten().flatten().for_each(give);
        }
        pooled.into_iter().flatten().flatten().for_each(give);
        Ok(x3)
    }

    /// Computes the pools edge `ei` needs of its source value.
    fn ensure_pools(
        &self,
        ci: usize,
        ei: usize,
        u: &[Option<Vec<f32>>; NUM_NODES],
        (h, w, c): Shape,
        pooled: &mut [[Option<Vec<f32>>; 2]; NUM_NODES],
    ) {
        let e = &self.plans[ci].edges[ei];
        let j = e.from;
        let uj = u[j].as_ref().expect("node computed before use");
        let per = h * w * c;
        for (kind, slot) in pooled[j].iter_mut().enumerate() {
            let want = if kind == 0 {
                Src::AvgPool
            } else {
                Src::MaxPool
            };
            if slot.is_some() || !e.terms.iter().any(|&(s, _)| s == want) {
                continue;
            }
            let mut out = take(uj.len());
            out.par_chunks_mut(per)
                .zip(uj.par_chunks(per))
                .for_each(|(o, x)| {
                    if kind == 0 {
                        avg_pool3(x, h, w, c, o)
                    } else {
                        max_pool(x, h, w, c, 3, 1, 1, o)
                    }
                });
            *slot = Some(out);
        }
    }

    /// The sum of edges `into` (each the weighted sum of its terms), element by element in the
    /// Candle order (see [`edge_sums`]). `None` when no edge has a non-zero op.
    fn combine(
        &self,
        ci: usize,
        into: &[usize],
        u: &[Option<Vec<f32>>; NUM_NODES],
        convs: &[Option<NodeConvs>; NUM_NODES],
        pooled: &[[Option<Vec<f32>>; 2]; NUM_NODES],
        per: usize,
    ) -> Option<Vec<f32>> {
        let mut edges: Vec<Vec<(&[f32], f32)>> = Vec::new();
        for &ei in into {
            let e = &self.plans[ci].edges[ei];
            let j = e.from;
            let terms: Vec<(&[f32], f32)> = e
                .terms
                .iter()
                .map(|&(src, wt)| {
                    let s: &[f32] = match src {
                        Src::Skip => u[j].as_deref().expect("node computed"),
                        Src::AvgPool => pooled[j][0].as_deref().expect("pool computed"),
                        Src::MaxPool => pooled[j][1].as_deref().expect("pool computed"),
                        Src::Conv { class, k1, slot } => {
                            &convs[j].as_ref().expect("convs computed").groups[class.index()]
                                [k1 as usize][slot]
                        }
                    };
                    (s, wt)
                })
                .collect();
            if !terms.is_empty() {
                edges.push(terms);
            }
        }
        if edges.is_empty() {
            return None;
        }
        let mut out = take(self.n * per);
        out.par_chunks_mut(per)
            .enumerate()
            .for_each(|(i, o)| edge_sums(&edges, i * per, o));
        Some(out)
    }
}

/// `x + b` (element-wise), or `x` when there is no back state.
fn add_back(mut x: Vec<f32>, b: &Option<Vec<f32>>) -> Vec<f32> {
    if let Some(b) = b {
        add_assign(&mut x, b);
    }
    x
}
