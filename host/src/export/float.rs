//! The float description of a trained single-path network, and its f32 forward pass (the float
//! reference of the integer engine, and the calibration pass of [`super::quantize`]).

use super::ExportError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snn_nostd::engine::LayerId;
use snn_nostd::genotype::{Genotype, Op};
use snn_nostd::model::{CellPlan, InputKind};

/// BatchNorm epsilon (SPEC §2).
pub const BN_EPS: f32 = 1e-5;

/// Inference-mode BatchNorm parameters, one entry per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Bn {
    /// Scale (weight).
    pub gamma: Vec<f32>,
    /// Shift (bias).
    pub beta: Vec<f32>,
    /// Running mean.
    pub mean: Vec<f32>,
    /// Running variance.
    pub var: Vec<f32>,
}

impl Bn {
    /// The identity BatchNorm over `c` channels (gamma 1, beta 0, mean 0, var 1 - eps).
    pub fn identity(c: usize) -> Bn {
        Bn {
            gamma: vec![1.0; c],
            beta: vec![0.0; c],
            mean: vec![0.0; c],
            var: vec![1.0 - BN_EPS; c],
        }
    }

    /// Channels.
    pub fn channels(&self) -> usize {
        self.gamma.len()
    }

    /// The per-channel affine `y = g x + b` equal to this BatchNorm.
    pub fn affine(&self) -> (Vec<f32>, Vec<f32>) {
        let g: Vec<f32> = self
            .gamma
            .iter()
            .zip(&self.var)
            .map(|(&ga, &v)| ga / (v + BN_EPS).sqrt())
            .collect();
        let b = self
            .beta
            .iter()
            .zip(&self.mean)
            .zip(&g)
            .map(|((&be, &m), &gg)| be - m * gg)
            .collect();
        (g, b)
    }

    fn check(&self, c: usize, what: &str) -> Result<(), ExportError> {
        let ok = [&self.gamma, &self.beta, &self.mean, &self.var]
            .iter()
            .all(|v| v.len() == c)
            && self.var.iter().all(|&v| v + BN_EPS > 0.0);
        if ok {
            Ok(())
        } else {
            Err(ExportError::Shape(format!(
                "{what}: BatchNorm needs {c} channels and variances > -eps"
            )))
        }
    }
}

/// A convolution without bias followed by BatchNorm.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvBn {
    /// Weights `[out][in][k][k]` (PyTorch order).
    pub weight: Vec<f32>,
    /// The BatchNorm after the conv (`out` channels).
    pub bn: Bn,
}

impl ConvBn {
    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.bn.channels()
    }

    fn check(&self, c_in: usize, c_out: usize, k: usize, what: &str) -> Result<(), ExportError> {
        self.bn.check(c_out, what)?;
        if self.weight.len() != c_out * c_in * k * k {
            return Err(ExportError::Shape(format!(
                "{what}: conv weight has {} values, expected {c_out}x{c_in}x{k}x{k}",
                self.weight.len()
            )));
        }
        Ok(())
    }

    /// BN folded into the conv: weights `w * g` (same layout) and bias `b`.
    pub fn folded(&self) -> (Vec<f32>, Vec<f32>) {
        let (g, b) = self.bn.affine();
        let per = self.weight.len() / g.len().max(1);
        let w = self
            .weight
            .iter()
            .enumerate()
            .map(|(i, &w)| w * g[i / per])
            .collect();
        (w, b)
    }
}

/// The weights of one cell: one entry per edge of the genotype's cell type, in canonical edge
/// order; `Some` exactly on conv edges (`conv3`: k = 3, `conv1`: k = 1).
#[derive(Clone, Debug, PartialEq)]
pub struct CellWeights {
    /// Per-edge conv + BN.
    pub convs: Vec<Option<ConvBn>>,
}

/// Per-channel input normalisation `x = (raw / 255 - mean) / std` of static images.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalization {
    /// Per-channel mean (of `raw / 255`).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation.
    pub std: Vec<f32>,
}

/// A trained single-path LightSNN network in plain Rust (SPEC §4), as exported from Candle.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatNetwork {
    /// Static image (repeated each timestep) or event frames.
    pub input: InputKind,
    /// Input channels.
    pub in_c: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// MaxPool2 after the stem (DVS).
    pub stem_pool: bool,
    /// Timesteps.
    pub t: usize,
    /// Channels of cell 1.
    pub c1: usize,
    /// Channels of cell 2.
    pub c2: usize,
    /// MaxPool size after cell 2.
    pub p: usize,
    /// Hidden units.
    pub h: usize,
    /// Classes.
    pub classes: usize,
    /// Voting group size.
    pub v: usize,
    /// Genotype of both cells.
    pub genotype: Genotype,
    /// Stem conv `in_c -> c1` (3x3) + BN.
    pub stem: ConvBn,
    /// Cell 1 weights.
    pub cell1: CellWeights,
    /// BN after cell 1 (before its LIF).
    pub bn_cell1: Bn,
    /// Down conv `c1 -> c2` (3x3) + BN, followed by MaxPool2.
    pub down: ConvBn,
    /// Cell 2 weights.
    pub cell2: CellWeights,
    /// BN after cell 2 (before its LIF).
    pub bn_cell2: Bn,
    /// fc1 weights `[h][c2 * ph * pw]`, input flattened channel-major (PyTorch order).
    pub fc1: Vec<f32>,
    /// fc2 weights `[classes * v][h]`.
    pub fc2_weight: Vec<f32>,
    /// fc2 bias `[classes * v]`.
    pub fc2_bias: Vec<f32>,
    /// Normalisation of raw `u8` images (static input), recorded in the blob so a device can
    /// feed raw pixels; `None` for event input or pre-normalised data.
    pub normalization: Option<Normalization>,
}

/// Network shape for [`FloatNetwork::random`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomSpec {
    /// Input kind.
    pub input: InputKind,
    /// Input channels, height, width.
    pub in_chw: (usize, usize, usize),
    /// MaxPool2 after the stem.
    pub stem_pool: bool,
    /// Timesteps.
    pub t: usize,
    /// Cell channels.
    pub c1: usize,
    /// Cell-2 channels.
    pub c2: usize,
    /// Pool after cell 2.
    pub p: usize,
    /// Hidden units.
    pub h: usize,
    /// Classes.
    pub classes: usize,
    /// Votes per class.
    pub v: usize,
    /// Genotype.
    pub genotype: Genotype,
}

impl FloatNetwork {
    /// Spatial size of cell 1, cell 2 and the pooled map.
    pub fn sizes(&self) -> [(usize, usize); 3] {
        let (h1, w1) = if self.stem_pool {
            (self.in_h / 2, self.in_w / 2)
        } else {
            (self.in_h, self.in_w)
        };
        let (h2, w2) = (h1 / 2, w1 / 2);
        let p = self.p.max(1);
        [(h1, w1), (h2, w2), (h2 / p, w2 / p)]
    }

    /// Inputs of fc1 (`c2 * ph * pw`).
    pub fn fc1_in(&self) -> usize {
        let [_, _, (ph, pw)] = self.sizes();
        self.c2 * ph * pw
    }

    /// Elements of one input frame (CHW).
    pub fn frame_len(&self) -> usize {
        self.in_c * self.in_h * self.in_w
    }

    /// Elements of one sample: a frame (static) or `t` frames (events).
    pub fn input_len(&self) -> usize {
        match self.input {
            InputKind::Static => self.frame_len(),
            InputKind::Events => self.frame_len() * self.t,
        }
    }

    /// Checks every shape against the dimensions.
    pub fn validate(&self) -> Result<(), ExportError> {
        let shape = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(ExportError::Shape(what.to_string()))
            }
        };
        shape(
            self.in_c > 0 && self.t > 0 && self.c1 > 0 && self.c2 > 0 && self.p > 0,
            "zero dimension",
        )?;
        shape(
            self.h > 0 && self.classes > 0 && self.v > 0,
            "zero dimension",
        )?;
        let [(h1, w1), (h2, w2), (ph, pw)] = self.sizes();
        shape(
            h1 > 0 && w1 > 0 && h2 > 0 && w2 > 0 && ph > 0 && pw > 0,
            "input too small for the pooling stages",
        )?;
        self.stem.check(self.in_c, self.c1, 3, "stem")?;
        self.down.check(self.c1, self.c2, 3, "down")?;
        self.bn_cell1.check(self.c1, "bn_cell1")?;
        self.bn_cell2.check(self.c2, "bn_cell2")?;
        for (cell, c, name) in [
            (&self.cell1, self.c1, "cell1"),
            (&self.cell2, self.c2, "cell2"),
        ] {
            shape(
                cell.convs.len() == self.genotype.ops().len(),
                &format!("{name}: one entry per edge needed"),
            )?;
            for (e, (conv, &op)) in cell.convs.iter().zip(self.genotype.ops()).enumerate() {
                match (op, conv) {
                    (Op::Conv3, Some(cb)) => cb.check(c, c, 3, &format!("{name} edge {e}"))?,
                    (Op::Conv1, Some(cb)) => cb.check(c, c, 1, &format!("{name} edge {e}"))?,
                    (Op::Conv3 | Op::Conv1, None) => {
                        return Err(ExportError::Shape(format!("{name} edge {e}: conv missing")))
                    }
                    (_, Some(_)) => {
                        return Err(ExportError::Shape(format!(
                            "{name} edge {e}: weights on a {op} edge"
                        )))
                    }
                    (_, None) => {}
                }
            }
        }
        shape(
            self.fc1.len() == self.h * self.c2 * ph * pw,
            "fc1 must be [h][c2 * ph * pw]",
        )?;
        shape(
            self.fc2_weight.len() == self.classes * self.v * self.h,
            "fc2 weight must be [classes * v][h]",
        )?;
        shape(
            self.fc2_bias.len() == self.classes * self.v,
            "fc2 bias must be [classes * v]",
        )?;
        if let Some(n) = &self.normalization {
            shape(
                n.mean.len() == self.in_c
                    && n.std.len() == self.in_c
                    && n.std.iter().all(|&s| s > 0.0),
                "normalization needs in_c means and positive stds",
            )?;
        }
        Ok(())
    }

    /// A random network (BN with random statistics), scaled so that its layers spike; for
    /// tests and demos.
    pub fn random(spec: &RandomSpec, seed: u64) -> FloatNetwork {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (in_c, in_h, in_w) = spec.in_chw;
        let conv = |rng: &mut ChaCha8Rng, c_in: usize, c_out: usize, k: usize, gain: f32| {
            let r = gain / ((c_in * k * k) as f32).sqrt();
            ConvBn {
                weight: (0..c_out * c_in * k * k)
                    .map(|_| rng.gen_range(-r..r))
                    .collect(),
                bn: random_bn(rng, c_out),
            }
        };
        let stem_gain = match spec.input {
            InputKind::Static => 3.0,
            InputKind::Events => 1.5,
        };
        let stem = conv(&mut rng, in_c, spec.c1, 3, stem_gain);
        let cell = |rng: &mut ChaCha8Rng, c: usize| CellWeights {
            convs: spec
                .genotype
                .ops()
                .iter()
                .map(|op| match op {
                    Op::Conv3 => Some(conv(rng, c, c, 3, 5.0)),
                    Op::Conv1 => Some(conv(rng, c, c, 1, 2.5)),
                    _ => None,
                })
                .collect(),
        };
        let cell1 = cell(&mut rng, spec.c1);
        let bn_cell1 = random_bn(&mut rng, spec.c1);
        let down = conv(&mut rng, spec.c1, spec.c2, 3, 6.0);
        let cell2 = cell(&mut rng, spec.c2);
        let bn_cell2 = random_bn(&mut rng, spec.c2);
        let mut net = FloatNetwork {
            input: spec.input,
            in_c,
            in_h,
            in_w,
            stem_pool: spec.stem_pool,
            t: spec.t,
            c1: spec.c1,
            c2: spec.c2,
            p: spec.p,
            h: spec.h,
            classes: spec.classes,
            v: spec.v,
            genotype: spec.genotype.clone(),
            stem,
            cell1,
            bn_cell1,
            down,
            cell2,
            bn_cell2,
            fc1: Vec::new(),
            fc2_weight: Vec::new(),
            fc2_bias: Vec::new(),
            normalization: None,
        };
        let n_in = net.fc1_in();
        let r1 = 8.0 / (n_in as f32).sqrt();
        net.fc1 = (0..spec.h * n_in).map(|_| rng.gen_range(-r1..r1)).collect();
        let r2 = 3.0 / (spec.h as f32).sqrt();
        let no = spec.classes * spec.v;
        net.fc2_weight = (0..no * spec.h).map(|_| rng.gen_range(-r2..r2)).collect();
        net.fc2_bias = (0..no).map(|_| rng.gen_range(-0.1..0.1)).collect();
        if spec.input == InputKind::Static && in_c == 3 {
            net.normalization = Some(Normalization {
                mean: vec![0.4913, 0.4821, 0.4465],
                std: vec![0.2470, 0.2434, 0.2615],
            });
        }
        net
    }
}

fn random_bn(rng: &mut ChaCha8Rng, c: usize) -> Bn {
    Bn {
        gamma: (0..c).map(|_| rng.gen_range(0.6..1.4)).collect(),
        beta: (0..c).map(|_| rng.gen_range(-0.4..0.2)).collect(),
        mean: (0..c).map(|_| rng.gen_range(-0.1..0.1)).collect(),
        var: (0..c).map(|_| rng.gen_range(0.6..1.5)).collect(),
    }
}

/// Largest magnitudes seen by the float forward: the calibration statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ranges {
    /// Network input.
    pub input: f32,
    /// Every node sum, partial sum, edge output and back state of cell 1, cell 2 (and the cell
    /// input: stem / down output).
    pub cell: [f32; 2],
    /// BN outputs feeding the post-cell LIFs.
    pub post: [f32; 2],
    /// fc1 outputs (hidden LIF input).
    pub hidden: f32,
    /// fc2 outputs.
    pub out: f32,
}

fn maxabs(m: &mut f32, v: &[f32]) {
    for &x in v {
        let a = x.abs();
        if a > *m {
            *m = a;
        }
    }
}

/// What one float forward produced.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatOutput {
    /// Per class: the voted output averaged over timesteps.
    pub scores: Vec<f32>,
    /// Argmax of `scores` (first on ties).
    pub prediction: usize,
    /// Per LIF layer (same ids and order as the engine's statistics): neurons and spikes over
    /// all timesteps.
    pub spikes: Vec<(LayerId, usize, u64)>,
}

/// A conv with BN folded in: weights `[co][ci][k][k]` and per-channel bias.
pub(crate) type FoldedConv = (Vec<f32>, Vec<f32>);

/// Folded layers of a network (BN folded into convs, BN affines of the post stages).
pub(crate) struct Folded {
    pub stem: (Vec<f32>, Vec<f32>),
    pub cells: [Vec<Option<FoldedConv>>; 2],
    pub post: [(Vec<f32>, Vec<f32>); 2],
    pub down: (Vec<f32>, Vec<f32>),
}

impl Folded {
    pub(crate) fn new(net: &FloatNetwork) -> Folded {
        let cell = |c: &CellWeights| {
            c.convs
                .iter()
                .map(|x| x.as_ref().map(ConvBn::folded))
                .collect()
        };
        Folded {
            stem: net.stem.folded(),
            cells: [cell(&net.cell1), cell(&net.cell2)],
            post: [net.bn_cell1.affine(), net.bn_cell2.affine()],
            down: net.down.folded(),
        }
    }
}

/// LIF step over a layer; returns spikes as 0/1 floats and the count.
fn lif(v: &mut [f32], x: &[f32], s: &mut [f32]) -> u64 {
    let mut n = 0;
    for ((v, &x), s) in v.iter_mut().zip(x).zip(s.iter_mut()) {
        *v = 0.25 * *v + 0.75 * x;
        if *v >= 1.0 {
            *v = 0.0;
            *s = 1.0;
            n += 1;
        } else {
            *s = 0.0;
        }
    }
    n
}

/// Event-driven conv (stride 1, pad k/2) of CHW 0/1 spikes with weights `[co][ci][k][k]`,
/// added to `out` (CHW, bias included by the caller).
#[allow(clippy::too_many_arguments)]
fn conv_spikes(
    s: &[f32],
    c_in: usize,
    h: usize,
    w: usize,
    k: usize,
    wt: &[f32],
    c_out: usize,
    out: &mut [f32],
) {
    let pad = (k / 2) as isize;
    let kk = k * k;
    for ci in 0..c_in {
        for y in 0..h {
            for x in 0..w {
                if s[(ci * h + y) * w + x] == 0.0 {
                    continue;
                }
                for ky in 0..k {
                    let oy = y as isize + pad - ky as isize;
                    if oy < 0 || oy >= h as isize {
                        continue;
                    }
                    for kx in 0..k {
                        let ox = x as isize + pad - kx as isize;
                        if ox < 0 || ox >= w as isize {
                            continue;
                        }
                        let o = oy as usize * w + ox as usize;
                        for co in 0..c_out {
                            out[co * h * w + o] += wt[(co * c_in + ci) * kk + ky * k + kx];
                        }
                    }
                }
            }
        }
    }
}

fn add_bias(out: &mut [f32], b: &[f32], hw: usize) {
    for (c, &bb) in b.iter().enumerate() {
        for v in &mut out[c * hw..(c + 1) * hw] {
            *v += bb;
        }
    }
}

fn pool3(x: &[f32], c: usize, h: usize, w: usize, avg: bool, out: &mut [f32]) {
    for ch in 0..c {
        for y in 0..h {
            for xx in 0..w {
                let (mut s, mut m) = (0f32, f32::NEG_INFINITY);
                for yy in y.saturating_sub(1)..(y + 2).min(h) {
                    for xq in xx.saturating_sub(1)..(xx + 2).min(w) {
                        let v = x[(ch * h + yy) * w + xq];
                        s += v;
                        m = m.max(v);
                    }
                }
                out[(ch * h + y) * w + xx] += if avg { s / 9.0 } else { m };
            }
        }
    }
}

fn maxpool(x: &[f32], c: usize, h: usize, w: usize, p: usize) -> Vec<f32> {
    let (oh, ow) = (h / p, w / p);
    let mut out = vec![f32::NEG_INFINITY; c * oh * ow];
    for ch in 0..c {
        for y in 0..oh * p {
            for xx in 0..ow * p {
                let o = &mut out[(ch * oh + y / p) * ow + xx / p];
                *o = o.max(x[(ch * h + y) * w + xx]);
            }
        }
    }
    out
}

/// The state of one cell and of the LIF after its BN, over the timesteps.
struct CellRun {
    back: [Vec<f32>; 3],
    mem: [Vec<f32>; 4],
    spikes: [u64; 4],
    post_mem: Vec<f32>,
    post_spikes: u64,
}

impl CellRun {
    fn new(n: usize) -> CellRun {
        CellRun {
            back: [vec![0.0; n], vec![0.0; n], vec![0.0; n]],
            mem: [vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]],
            spikes: [0; 4],
            post_mem: vec![0.0; n],
            post_spikes: 0,
        }
    }
}

/// Which nodes of a `g` cell feed a LIF (some conv edge leaves them).
fn lif_nodes(g: &Genotype) -> [bool; 4] {
    CellPlan::new(g.cell(), g.ops()).need_lif
}

/// One timestep of a cell (SPEC §3); returns x3.
#[allow(clippy::too_many_arguments)]
fn cell_step(
    st: &mut CellRun,
    x0: Vec<f32>,
    convs: &[Option<FoldedConv>],
    g: &Genotype,
    c: usize,
    h: usize,
    w: usize,
    range: &mut f32,
) -> Vec<f32> {
    let n = c * h * w;
    let edges = g.cell().edges();
    let apply = |k: usize, op: Op, src: &[f32], spk: &[f32], dst: &mut [f32]| match op {
        Op::Zero => {}
        Op::Skip => dst.iter_mut().zip(src).for_each(|(d, s)| *d += s),
        Op::AvgPool => pool3(src, c, h, w, true, dst),
        Op::MaxPool => pool3(src, c, h, w, false, dst),
        Op::Conv3 | Op::Conv1 => {
            let (wt, b) = convs[k].as_ref().expect("validated");
            let kk = if op == Op::Conv3 { 3 } else { 1 };
            add_bias(dst, b, h * w);
            conv_spikes(spk, c, h, w, kk, wt, c, dst);
        }
    };
    let mut tmp = vec![0f32; n];
    // Adds the outputs of the forward (or backward) edges into node `i` to `dst`.
    let mut add_edges = |i: usize,
                         backward: bool,
                         u: &[Vec<f32>],
                         spk: &[Vec<f32>],
                         dst: &mut [f32],
                         range: &mut f32| {
        for (k, (e, &op)) in edges.iter().zip(g.ops()).enumerate() {
            if e.to as usize == i && e.is_backward() == backward && op != Op::Zero {
                let j = e.from as usize;
                tmp.fill(0.0);
                apply(k, op, &u[j], &spk[j], &mut tmp);
                maxabs(range, &tmp);
                dst.iter_mut().zip(&tmp).for_each(|(a, b)| *a += b);
                maxabs(range, dst);
            }
        }
    };
    let mut u: Vec<Vec<f32>> = Vec::with_capacity(4);
    let mut spk: Vec<Vec<f32>> = Vec::with_capacity(4);
    maxabs(range, &x0);
    for (i, lif_i) in lif_nodes(g).into_iter().enumerate() {
        let mut xi = if i == 0 { x0.clone() } else { vec![0.0; n] };
        add_edges(i, false, &u, &spk, &mut xi, range);
        if i < 3 {
            xi.iter_mut().zip(&st.back[i]).for_each(|(a, b)| *a += b);
            maxabs(range, &xi);
        }
        let mut s = vec![0f32; n];
        if lif_i {
            st.spikes[i] += lif(&mut st.mem[i], &xi, &mut s);
        }
        u.push(xi);
        spk.push(s);
    }
    for i in 0..3 {
        let mut b = vec![0f32; n];
        add_edges(i, true, &u, &spk, &mut b, range);
        st.back[i] = b;
    }
    u.pop().expect("4 nodes")
}

/// One timestep of cell `k` (geometry `c x h x w`) on input `x0`, then its BN and LIF;
/// returns the LIF's spikes.
fn cell_stage(
    st: &mut CellRun,
    x0: Vec<f32>,
    f: &Folded,
    k: usize,
    g: &Genotype,
    (c, h, w): (usize, usize, usize),
    ranges: &mut Ranges,
) -> Vec<f32> {
    let mut z = cell_step(st, x0, &f.cells[k], g, c, h, w, &mut ranges.cell[k]);
    let (gain, b) = &f.post[k];
    for (i, v) in z.iter_mut().enumerate() {
        let ch = i / (h * w);
        *v = gain[ch] * *v + b[ch];
    }
    maxabs(&mut ranges.post[k], &z);
    let mut s = vec![0f32; z.len()];
    st.post_spikes += lif(&mut st.post_mem, &z, &mut s);
    s
}

/// The f32 forward of `net` on one sample (`input`: one normalised CHW frame for static input,
/// `t` frames for events), recording magnitudes into `ranges`.
pub fn forward(
    net: &FloatNetwork,
    input: &[f32],
    ranges: &mut Ranges,
) -> Result<FloatOutput, ExportError> {
    net.validate()?;
    forward_folded(net, &Folded::new(net), input, ranges)
}

pub(crate) fn forward_folded(
    net: &FloatNetwork,
    f: &Folded,
    input: &[f32],
    ranges: &mut Ranges,
) -> Result<FloatOutput, ExportError> {
    if input.len() != net.input_len() {
        return Err(ExportError::InputLength {
            expected: net.input_len(),
            got: input.len(),
        });
    }
    let [(h1, w1), (h2, w2), (ph, pw)] = net.sizes();
    let (c1, c2, hid) = (net.c1, net.c2, net.h);
    let (n1, n2) = (c1 * h1 * w1, c2 * h2 * w2);
    let (ih, iw) = (net.in_h, net.in_w);
    let frame = net.frame_len();
    let mut cells = [CellRun::new(n1), CellRun::new(n2)];
    let mut hid_mem = vec![0f32; hid];
    let mut hid_spk = 0u64;
    let mut scores = vec![0f32; net.classes];
    let mut stem_cache: Option<Vec<f32>> = None;
    for t in 0..net.t {
        let x = match net.input {
            InputKind::Static => &input[..frame],
            InputKind::Events => &input[t * frame..(t + 1) * frame],
        };
        // Stem (dense), once for static input.
        let x0 = match (&stem_cache, net.input) {
            (Some(s), InputKind::Static) => s.clone(),
            _ => {
                maxabs(&mut ranges.input, x);
                let (wt, b) = &f.stem;
                let mut s = vec![0f32; c1 * ih * iw];
                for co in 0..c1 {
                    for y in 0..ih {
                        for xx in 0..iw {
                            let mut acc = b[co];
                            for ci in 0..net.in_c {
                                for ky in 0..3 {
                                    let iy = y as isize + ky as isize - 1;
                                    if iy < 0 || iy >= ih as isize {
                                        continue;
                                    }
                                    for kx in 0..3 {
                                        let ix = xx as isize + kx as isize - 1;
                                        if ix < 0 || ix >= iw as isize {
                                            continue;
                                        }
                                        acc += x[(ci * ih + iy as usize) * iw + ix as usize]
                                            * wt[((co * net.in_c + ci) * 3 + ky) * 3 + kx];
                                    }
                                }
                            }
                            s[(co * ih + y) * iw + xx] = acc;
                        }
                    }
                }
                let s = if net.stem_pool {
                    maxpool(&s, c1, ih, iw, 2)
                } else {
                    s
                };
                stem_cache = Some(s.clone());
                s
            }
        };
        let s1 = cell_stage(&mut cells[0], x0, f, 0, &net.genotype, (c1, h1, w1), ranges);
        let (dw, db) = &f.down;
        let mut d = vec![0f32; c2 * h1 * w1];
        add_bias(&mut d, db, h1 * w1);
        conv_spikes(&s1, c1, h1, w1, 3, dw, c2, &mut d);
        let x0b = maxpool(&d, c2, h1, w1, 2);
        let s2 = cell_stage(
            &mut cells[1],
            x0b,
            f,
            1,
            &net.genotype,
            (c2, h2, w2),
            ranges,
        );
        // MaxPool(p) on spikes, flatten channel-major, fc1.
        let pooled = maxpool(&s2, c2, h2, w2, net.p);
        let n_in = c2 * ph * pw;
        let mut hin = vec![0f32; hid];
        for (j, &sp) in pooled.iter().enumerate() {
            if sp > 0.0 {
                for (o, hv) in hin.iter_mut().enumerate() {
                    *hv += net.fc1[o * n_in + j];
                }
            }
        }
        maxabs(&mut ranges.hidden, &hin);
        let mut hs = vec![0f32; hid];
        hid_spk += lif(&mut hid_mem, &hin, &mut hs);
        let mut out = net.fc2_bias.clone();
        for (o, ov) in out.iter_mut().enumerate() {
            for (k, &sp) in hs.iter().enumerate() {
                if sp > 0.0 {
                    *ov += net.fc2_weight[o * hid + k];
                }
            }
        }
        maxabs(&mut ranges.out, &out);
        for (c, sc) in scores.iter_mut().enumerate() {
            let m: f32 = out[c * net.v..(c + 1) * net.v].iter().sum::<f32>() / net.v as f32;
            *sc += m / net.t as f32;
        }
    }
    let mut spikes = Vec::new();
    let lifs = lif_nodes(&net.genotype);
    for (ci, (n, cell)) in [(n1, &cells[0]), (n2, &cells[1])].into_iter().enumerate() {
        for (node, &lif) in lifs.iter().enumerate() {
            if lif {
                spikes.push((
                    LayerId::Cell {
                        cell: ci as u8 + 1,
                        node: node as u8,
                    },
                    n,
                    cell.spikes[node],
                ));
            }
        }
        spikes.push((LayerId::Post { cell: ci as u8 + 1 }, n, cell.post_spikes));
    }
    spikes.push((LayerId::Hidden, hid, hid_spk));
    let mut prediction = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[prediction] {
            prediction = i;
        }
    }
    Ok(FloatOutput {
        scores,
        prediction,
        spikes,
    })
}
