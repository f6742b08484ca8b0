//! One searched cell of the CPU training path: its plan (which ops read each node, merged into
//! one convolution per node, LIF class and kernel size), one timestep forward (recording what the
//! backward pass needs) and one timestep backward (BPTT through the back states and the node
//! LIFs). See docs/design.md, 'The cell'.

use super::bn::{self, BnStats, Cols};
use super::buf::Buf;
use super::kernels::{self, Geom, LifK};
use super::params::{Grads, Params};
use crate::search::cpu::conv::{conv_gather, padded, Active, ConvGeom};
use crate::search::cpu::ops::add_assign;
use rayon::prelude::*;
use snn_nostd::bits::words_for;
use snn_nostd::genotype::{Genotype, LifClass, Op, LIF_CLASSES, NUM_NODES};

/// What an edge computes from its source node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeOp {
    /// The node value.
    Skip,
    /// 3x3 average pool of the node value.
    AvgPool,
    /// 3x3 max pool of the node value.
    MaxPool,
    /// Slot `slot` (one op's output channels) of the node's conv group `group`.
    Conv {
        /// Index into [`CellPlan::groups`].
        group: usize,
        /// Position in the group.
        slot: usize,
    },
}

/// A non-zero edge.
#[derive(Clone, Debug)]
pub struct EdgePlan {
    /// Source node.
    pub from: usize,
    /// Destination node (or back state).
    pub to: usize,
    /// Whether it feeds the next timestep's back state.
    pub backward: bool,
    /// The op.
    pub op: EdgeOp,
}

/// The conv ops of one kernel size and threshold class reading one node (so reading one LIF
/// layer's spikes), run as one convolution.
#[derive(Clone, Debug)]
pub struct GroupPlan {
    /// Source node.
    pub node: usize,
    /// The LIF layer it reads.
    pub class: LifClass,
    /// Kernel size.
    pub k: usize,
    /// Parameter prefix of each op (`cell1.e3.conv3`), in slot order.
    pub names: Vec<String>,
}

/// The plan of one cell (both cells run the same genotype with their own channels).
#[derive(Clone, Debug)]
pub struct CellPlan {
    /// Channels.
    pub c: usize,
    /// Map height and width.
    pub hw: (usize, usize),
    /// Non-zero edges in canonical order.
    pub edges: Vec<EdgePlan>,
    /// Conv groups.
    pub groups: Vec<GroupPlan>,
    /// Whether node `j` carries a LIF layer of class `class` (some conv of that class reads
    /// it): `has_lif[j][class.index()]`, one layer per node and class as in the Candle network.
    pub has_lif: [[bool; LIF_CLASSES]; NUM_NODES],
}

impl CellPlan {
    /// The plan of cell `name` with `c` channels on `hw` maps, or which op of `g` the CPU
    /// path does not cover.
    pub fn new(g: &Genotype, name: &str, c: usize, hw: (usize, usize)) -> Result<CellPlan, String> {
        let mut groups: Vec<GroupPlan> = Vec::new();
        let mut edges = Vec::new();
        let mut has_lif = [[false; LIF_CLASSES]; NUM_NODES];
        for (ei, (e, &op)) in g.cell().edges().iter().zip(g.ops()).enumerate() {
            let (from, to) = (e.from as usize, e.to as usize);
            let op = match op {
                Op::Zero => continue,
                Op::Skip => EdgeOp::Skip,
                Op::AvgPool => EdgeOp::AvgPool,
                Op::MaxPool => EdgeOp::MaxPool,
                Op::Conv1 | Op::Conv3 | Op::Conv3Th05 | Op::Conv3Th15 => {
                    let (Some(k), Some(class)) = (op.kernel(), op.lif_class()) else {
                        return Err(format!("the op {op} (a conv without a kernel or LIF)"));
                    };
                    has_lif[from][class.index()] = true;
                    let same = |gp: &GroupPlan| gp.node == from && gp.class == class && gp.k == k;
                    let gi = match groups.iter().position(same) {
                        Some(i) => i,
                        None => {
                            groups.push(GroupPlan {
                                node: from,
                                class,
                                k,
                                names: Vec::new(),
                            });
                            groups.len() - 1
                        }
                    };
                    groups[gi].names.push(format!("{name}.e{ei}.{op}"));
                    EdgeOp::Conv {
                        group: gi,
                        slot: groups[gi].names.len() - 1,
                    }
                }
            };
            edges.push(EdgePlan {
                from,
                to,
                backward: e.is_backward(),
                op,
            });
        }
        Ok(CellPlan {
            c,
            hw,
            edges,
            groups,
            has_lif,
        })
    }

    /// Values per sample of a map.
    pub fn per(&self) -> usize {
        self.hw.0 * self.hw.1 * self.c
    }

    /// Output channels of group `gi` as stored (a multiple of the conv kernels' lanes).
    pub fn stride(&self, gi: usize) -> usize {
        padded(self.groups[gi].names.len() * self.c)
    }
}

/// A group's kernels for one step: forward taps and the flipped rows of the input gradient.
pub struct GroupWeights {
    taps: Vec<f32>,
    flip: Vec<f32>,
}

/// Builds every group's kernels of `plan` from the current weights.
pub fn group_weights(plan: &CellPlan, p: &Params) -> Vec<GroupWeights> {
    let c = plan.c;
    plan.groups
        .iter()
        .enumerate()
        .map(|(gi, g)| {
            let stride = plan.stride(gi);
            let k = g.k;
            let mut taps = vec![0f32; k * k * c * stride];
            let mut flip = vec![0f32; k * k * stride * c];
            for (slot, name) in g.names.iter().enumerate() {
                let w = p.get(&format!("{name}.conv.weight"));
                let t = kernels::taps(w, c, c, k, c);
                let f = kernels::flip_taps(w, c, c, k, c);
                for row in 0..k * k * c {
                    taps[row * stride + slot * c..row * stride + (slot + 1) * c]
                        .copy_from_slice(&t[row * c..(row + 1) * c]);
                }
                for tap in 0..k * k {
                    for co in 0..c {
                        let dst = (tap * stride + slot * c + co) * c;
                        let src = (tap * c + co) * c;
                        flip[dst..dst + c].copy_from_slice(&f[src..src + c]);
                    }
                }
            }
            GroupWeights { taps, flip }
        })
        .collect()
}

/// A LIF layer's record of one timestep: the membrane before firing (spikes are where it
/// reaches the threshold) and, where a convolution reads the spikes, their active-input lists.
pub struct LifRec {
    /// `[n][per]`.
    pub charged: Buf,
    /// Per sample (empty when not asked for).
    pub act: Vec<Active>,
}

/// Runs a LIF step over a batch (`x`, `n` samples), updating the membranes `v` (empty = 0);
/// lists the spikes' active inputs when `events` gives the map's shape (`(h, w)`, channels:
/// for a convolution).
pub fn lif_step(
    x: &[f32],
    v: &mut Buf,
    n: usize,
    lif: &LifK,
    events: Option<((usize, usize), usize)>,
) -> LifRec {
    let first = v.is_empty();
    if first {
        *v = Buf::scratch(x.len());
    }
    let per = x.len() / n;
    let mut charged = Buf::scratch(x.len());
    let run = |((x, v), ch): ((&[f32], &mut [f32]), &mut [f32])| {
        let mut code = vec![0u64; words_for(per)];
        kernels::lif_forward(x, v, first, lif, ch, &mut code);
        events.map(|((h, w), c)| Active::new(&code, h, w, c))
    };
    let act: Vec<Active> = x
        .par_chunks(per)
        .zip(v.par_chunks_mut(per))
        .zip(charged.par_chunks_mut(per))
        .filter_map(run)
        .collect();
    LifRec { charged, act }
}

/// The backward of [`lif_step`]: the input gradient (`None` when nothing flows) and the
/// previous membrane's gradient, from the spikes' gradient `ds` and this membrane's `dv`.
pub fn lif_back(
    charged: &[f32],
    ds: Option<&[f32]>,
    dv: Option<&[f32]>,
    n: usize,
    lif: &LifK,
) -> Option<(Buf, Buf)> {
    if ds.is_none() && dv.is_none() {
        return None;
    }
    let len = charged.len();
    let per = len / n;
    let (mut dx, mut dvp) = (Buf::scratch(len), Buf::scratch(len));
    dx.par_chunks_mut(per)
        .zip(dvp.par_chunks_mut(per))
        .enumerate()
        .for_each(|(i, (dx, dvp))| {
            let r = i * per..(i + 1) * per;
            kernels::lif_backward(
                &charged[r.clone()],
                ds.map(|d| &d[r.clone()]),
                dv.map(|d| &d[r.clone()]),
                lif,
                dx,
                dvp,
            );
        });
    Some((dx, dvp))
}

/// The convolution of a batch of spikes (`act`) with `taps`: `[n][h][w][stride]`.
pub fn conv_events(
    act: &[Active],
    hw: (usize, usize),
    cin: usize,
    k: usize,
    stride: usize,
    taps: &[f32],
) -> Buf {
    let geom = ConvGeom {
        h: hw.0,
        w: hw.1,
        cin,
        k,
        cout: stride,
    };
    let per = hw.0 * hw.1 * stride;
    let mut out = Buf::scratch(act.len() * per);
    out.par_chunks_mut(per)
        .zip(act.par_iter())
        .for_each(|(o, a)| conv_gather(a, &geom, taps, o));
    out
}

/// The backward of [`conv_events`] for output gradient `draw` (`[n][h][w][stride]`): the kernel
/// gradient in the taps layout (event-driven, per-sample partials added in order) and the
/// spikes' gradient `[n][h][w][cin]` (dense, through `flip`).
pub fn conv_events_back(
    act: &[Active],
    hw: (usize, usize),
    cin: usize,
    k: usize,
    stride: usize,
    flip: &[f32],
    draw: &[f32],
) -> (Vec<f32>, Buf) {
    let n = act.len();
    let per = hw.0 * hw.1 * stride;
    let g_w = Geom {
        h: hw.0,
        w: hw.1,
        cin,
        cout: stride,
        k,
    };
    let parts: Vec<Vec<f32>> = act
        .par_iter()
        .zip(draw.par_chunks(per))
        .map(|(a, d)| {
            let mut t = vec![0f32; k * k * cin * stride];
            kernels::conv_dw_events(a, &g_w, d, &mut t);
            t
        })
        .collect();
    let mut dtaps = vec![0f32; k * k * cin * stride];
    for p in parts {
        add_assign(&mut dtaps, &p);
    }
    let g_x = Geom {
        h: hw.0,
        w: hw.1,
        cin: stride,
        cout: cin,
        k,
    };
    let per_s = hw.0 * hw.1 * cin;
    let mut ds = Buf::scratch(n * per_s);
    ds.par_chunks_mut(per_s)
        .zip(draw.par_chunks(per))
        .for_each(|(o, d)| kernels::conv_dense(d, &g_x, flip, o));
    (dtaps, ds)
}

/// Values per task of the element-wise passes.
const CHUNK: usize = 1 << 14;

/// `a += b` element-wise on both cores.
pub fn add_par(a: &mut [f32], b: &[f32]) {
    a.par_chunks_mut(CHUNK)
        .zip(b.par_chunks(CHUNK))
        .for_each(|(x, y)| add_assign(x, y));
}

/// `a += b`, or `a = b` when `a` is empty.
pub fn add_into(a: &mut Option<Buf>, b: &[f32]) {
    match a {
        Some(a) => add_par(a, b),
        None => *a = Some(Buf::copy_of(b)),
    }
}

/// `a += b`, or `a = b` (moved) when `a` is empty.
pub fn accumulate(a: &mut Option<Buf>, b: Buf) {
    match a {
        Some(a) => add_par(a, &b),
        None => *a = Some(b),
    }
}

/// `a + b` element-wise into a new buffer.
fn sum_of(a: &[f32], b: &[f32]) -> Buf {
    let mut out = Buf::scratch(a.len());
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
        .for_each(|(o, (x, y))| {
            o.copy_from_slice(x);
            add_assign(o, y);
        });
    out
}

/// A conv group's record of one timestep: its raw output and each slot's BN statistics.
pub struct GroupRec {
    raw: Buf,
    stats: Vec<BnStats>,
}

/// Everything one timestep of a cell leaves for its backward pass.
pub struct CellTape {
    /// Per node and LIF class.
    lif: [[Option<LifRec>; LIF_CLASSES]; NUM_NODES],
    /// The values of nodes that a max pool reads.
    u: [Option<Buf>; NUM_NODES],
    groups: Vec<Option<GroupRec>>,
}

/// A cell's state across timesteps: back states and node membranes (per node and LIF class).
#[derive(Default)]
pub struct CellState {
    back: [Option<Buf>; 3],
    v: [[Buf; LIF_CLASSES]; NUM_NODES],
}

/// The backward state carried from timestep `t + 1` to `t`: gradients of the back states that
/// `t` produced and of the node membranes after `t` (per node and LIF class).
#[derive(Default)]
pub struct CellGrad {
    back: [Option<Buf>; 3],
    v: [[Option<Buf>; LIF_CLASSES]; NUM_NODES],
}

/// One cell run over a batch of `n` samples.
pub struct CellRun<'a> {
    /// The plan.
    pub plan: &'a CellPlan,
    /// This step's group kernels.
    pub gw: &'a [GroupWeights],
    /// Samples.
    pub n: usize,
    /// LIF constants per class ([`LifClass::index`]).
    pub lifs: &'a [LifK; LIF_CLASSES],
}

impl CellRun<'_> {
    /// One forward timestep from input `x0`; returns `x3` and the tape.
    pub fn forward(&self, x0: &[f32], st: &mut CellState, p: &mut Params) -> (Buf, CellTape) {
        let plan = self.plan;
        let len = self.n * plan.per();
        let mut tape = CellTape {
            lif: Default::default(),
            u: Default::default(),
            groups: (0..plan.groups.len()).map(|_| None).collect(),
        };
        let mut u: [Option<Buf>; NUM_NODES] = Default::default();
        u[0] = Some(match &st.back[0] {
            Some(b) => sum_of(x0, b),
            None => Buf::copy_of(x0),
        });
        self.run_node(0, &u, st, &mut tape, p);
        for i in 1..NUM_NODES {
            let mut x: Option<Buf> = None;
            for e in plan.edges.iter().filter(|e| e.to == i && !e.backward) {
                self.add_edge(e, &u, &tape, p, &mut x);
            }
            if i < 3 {
                if let Some(b) = &st.back[i] {
                    add_into(&mut x, b);
                }
            }
            u[i] = Some(x.unwrap_or_else(|| Buf::zeros(len)));
            self.run_node(i, &u, st, &mut tape, p);
        }
        let mut back: [Option<Buf>; 3] = Default::default();
        for (i, b) in back.iter_mut().enumerate() {
            for e in plan.edges.iter().filter(|e| e.to == i && e.backward) {
                self.add_edge(e, &u, &tape, p, b);
            }
        }
        st.back = back;
        let x3 = u[3].take().expect("x3");
        for e in plan.edges.iter().filter(|e| e.op == EdgeOp::MaxPool) {
            if tape.u[e.from].is_none() {
                tape.u[e.from] = Some(match u[e.from].take() {
                    Some(v) => v,
                    None => x3.clone(),
                });
            }
        }
        (x3, tape)
    }

    /// The LIF layers and conv groups of node `j` (once its value is complete), class by
    /// class.
    fn run_node(
        &self,
        j: usize,
        u: &[Option<Buf>; NUM_NODES],
        st: &mut CellState,
        tape: &mut CellTape,
        p: &mut Params,
    ) {
        for class in LifClass::ALL {
            self.run_lif(j, class, u, st, tape, p);
        }
    }

    /// Node `j`'s LIF layer of class `class` (if it has one) and the conv groups reading it.
    fn run_lif(
        &self,
        j: usize,
        class: LifClass,
        u: &[Option<Buf>; NUM_NODES],
        st: &mut CellState,
        tape: &mut CellTape,
        p: &mut Params,
    ) {
        let plan = self.plan;
        let ci = class.index();
        if !plan.has_lif[j][ci] {
            return;
        }
        let uj = u[j].as_ref().expect("node computed");
        let shape = Some((plan.hw, plan.c));
        let rec = lif_step(uj, &mut st.v[j][ci], self.n, &self.lifs[ci], shape);
        let reads = |g: &&GroupPlan| g.node == j && g.class == class;
        for (gi, g) in plan.groups.iter().enumerate().filter(|(_, g)| reads(g)) {
            let stride = plan.stride(gi);
            let raw = conv_events(&rec.act, plan.hw, plan.c, g.k, stride, &self.gw[gi].taps);
            let stats = g
                .names
                .iter()
                .enumerate()
                .map(|(slot, name)| {
                    let cols = Cols {
                        stride,
                        c0: slot * plan.c,
                        width: plan.c,
                    };
                    let (rm, rv) = p.running_mut(&format!("{name}.bn"));
                    bn::forward_stats(&raw, self.n, cols, rm, rv)
                })
                .collect();
            tape.groups[gi] = Some(GroupRec { raw, stats });
        }
        tape.lif[j][ci] = Some(rec);
    }

    /// Adds edge `e`'s output to `dst`, or writes it there when `dst` is empty.
    fn add_edge(
        &self,
        e: &EdgePlan,
        u: &[Option<Buf>; NUM_NODES],
        tape: &CellTape,
        p: &Params,
        dst: &mut Option<Buf>,
    ) {
        let plan = self.plan;
        let src = u[e.from].as_ref().expect("node computed");
        let per = plan.per();
        let (h, w) = plan.hw;
        let add = dst.is_some();
        let d = dst.get_or_insert_with(|| Buf::scratch(src.len()));
        // A pool into `d` (`pool(s, out)` writes `out`): directly, or through a buffer.
        let pool_into = |d: &mut [f32], pool: &(dyn Fn(&[f32], &mut [f32]) + Sync)| {
            d.par_chunks_mut(per)
                .zip(src.par_chunks(per))
                .for_each(|(d, s)| {
                    if add {
                        let mut tmp = vec![0f32; per];
                        pool(s, &mut tmp);
                        add_assign(d, &tmp);
                    } else {
                        pool(s, d);
                    }
                })
        };
        match e.op {
            EdgeOp::Skip if add => add_par(d, src),
            EdgeOp::Skip => d.copy_from_slice(src),
            EdgeOp::AvgPool => pool_into(d, &|s, o| kernels::avg_pool3(s, h, w, plan.c, o)),
            EdgeOp::MaxPool => {
                let pool = kernels::Pool::same3(h, w, plan.c);
                pool_into(d, &|s, o| kernels::max_pool_forward(s, &pool, o))
            }
            EdgeOp::Conv { group, slot } => {
                let rec = tape.groups[group].as_ref().expect("group computed");
                let name = &plan.groups[group].names[slot];
                let cols = Cols {
                    stride: plan.stride(group),
                    c0: slot * plan.c,
                    width: plan.c,
                };
                bn::apply(
                    &rec.raw,
                    self.n,
                    cols,
                    &rec.stats[slot],
                    p.get(&format!("{name}.bn.weight")),
                    p.get(&format!("{name}.bn.bias")),
                    add,
                    d,
                );
            }
        }
    }

    /// One backward timestep: from the gradient of `x3` (`None`: no path to the loss) and the
    /// state of `t + 1`, accumulates the parameter gradients and returns the gradient of the
    /// cell input `x0`. `first` is timestep 0 (no back state before it).
    pub fn backward(
        &self,
        dx3: Option<Buf>,
        tape: &CellTape,
        gs: &mut CellGrad,
        first: bool,
        p: &Params,
        grads: &mut Grads,
    ) -> Option<Buf> {
        let plan = self.plan;
        let (n, c, hw) = (self.n, plan.c, plan.hw);
        let per = plan.per();
        let mut du: [Option<Buf>; NUM_NODES] = Default::default();
        du[3] = dx3;
        for j in (0..NUM_NODES).rev() {
            let mut draw: Vec<Option<Buf>> = plan.groups.iter().map(|_| None).collect();
            let mut acc = du[j].take();
            // The gradient of edge `e`'s output, if any reaches it.
            let grad_of = |e: &EdgePlan| {
                if e.backward {
                    gs.back[e.to].as_deref()
                } else {
                    du[e.to].as_deref()
                }
            };
            // Groups whose every slot receives a gradient (each slot writes its channels).
            let full: Vec<bool> = (0..plan.groups.len())
                .map(|gi| {
                    plan.stride(gi) == plan.groups[gi].names.len() * c
                        && plan.edges.iter().all(|e| match e.op {
                            EdgeOp::Conv { group, .. } if group == gi => grad_of(e).is_some(),
                            _ => true,
                        })
                })
                .collect();
            for e in plan.edges.iter().filter(|e| e.from == j) {
                let Some(g) = grad_of(e) else { continue };
                match e.op {
                    EdgeOp::Skip => add_into(&mut acc, g),
                    EdgeOp::AvgPool => {
                        let (h, w) = hw;
                        let mut pooled = Buf::scratch(g.len());
                        pooled
                            .par_chunks_mut(per)
                            .zip(g.par_chunks(per))
                            .for_each(|(o, s)| kernels::avg_pool3(s, h, w, c, o));
                        accumulate(&mut acc, pooled);
                    }
                    EdgeOp::MaxPool => {
                        let pool = kernels::Pool::same3(hw.0, hw.1, c);
                        let src = tape.u[j].as_ref().expect("max-pooled node recorded");
                        let mut routed = Buf::zeros(g.len());
                        routed
                            .par_chunks_mut(per)
                            .zip(src.par_chunks(per))
                            .zip(g.par_chunks(per))
                            .for_each(|((o, s), gr)| kernels::max_pool_backward(s, &pool, gr, o));
                        accumulate(&mut acc, routed);
                    }
                    EdgeOp::Conv { group, slot } => {
                        let rec = tape.groups[group].as_ref().expect("group recorded");
                        let stride = plan.stride(group);
                        let name = &plan.groups[group].names[slot];
                        let d = draw[group].get_or_insert_with(|| {
                            let len = n * hw.0 * hw.1 * stride;
                            if full[group] {
                                Buf::scratch(len)
                            } else {
                                Buf::zeros(len)
                            }
                        });
                        let cols = Cols {
                            stride,
                            c0: slot * c,
                            width: c,
                        };
                        let (dgamma, dbeta) = grads.bn_pair(&format!("{name}.bn"), c);
                        bn::backward(
                            &rec.raw,
                            n,
                            cols,
                            &rec.stats[slot],
                            p.get(&format!("{name}.bn.weight")),
                            g,
                            dgamma,
                            dbeta,
                            d,
                        );
                    }
                }
            }
            // The spikes' gradient of each of node `j`'s LIF layers.
            let mut ds: [Option<Buf>; LIF_CLASSES] = Default::default();
            for (gi, d) in draw.iter().enumerate() {
                let Some(d) = d else { continue };
                let gp = &plan.groups[gi];
                let ci = gp.class.index();
                let stride = plan.stride(gi);
                let rec = tape.lif[j][ci].as_ref().expect("node spikes recorded");
                let (dtaps, dsg) =
                    conv_events_back(&rec.act, hw, c, gp.k, stride, &self.gw[gi].flip, d);
                for (slot, name) in gp.names.iter().enumerate() {
                    let dw = grads.entry(&format!("{name}.conv.weight"), c * c * gp.k * gp.k);
                    kernels::add_taps_grad(&dtaps, slot * c, c, c, gp.k, stride, dw);
                }
                accumulate(&mut ds[ci], dsg);
            }
            for ci in (0..LIF_CLASSES).filter(|&ci| plan.has_lif[j][ci]) {
                let rec = tape.lif[j][ci].as_ref().expect("node spikes recorded");
                let dv = gs.v[j][ci].take();
                let lif = &self.lifs[ci];
                if let Some((dx, dvp)) =
                    lif_back(&rec.charged, ds[ci].as_deref(), dv.as_deref(), n, lif)
                {
                    accumulate(&mut acc, dx);
                    gs.v[j][ci] = Some(dvp);
                }
            }
            du[j] = acc;
        }
        let dx0 = du[0].clone();
        for (i, b) in gs.back.iter_mut().enumerate() {
            // Back state B_i exists at this timestep if a backward edge enters node i and an
            // earlier timestep produced it.
            let exists = !first && plan.edges.iter().any(|e| e.backward && e.to == i);
            *b = if exists { du[i].take() } else { None };
        }
        dx0
    }
}
