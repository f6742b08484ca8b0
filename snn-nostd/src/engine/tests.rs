//! Engine tests: kernels against naive versions, the whole engine against a straightforward f32
//! reference forward of the dequantised model, and the blob format.

use super::*;
use crate::genotype::{CellType, Genotype, LifClass, Op};
use crate::model::owned::{OwnedLayer, OwnedModel};
use crate::model::{
    decode, encode, Bits, CellPlan, DecodeError, InputKind, LayerParts, ModelParts, Shape,
    FORMAT_VERSION, HEADER_LEN,
};
use crate::testutil::{self, LayerInit, Recipe, Rng};
use alloc::vec;
use alloc::vec::Vec;
use proptest::prelude::*;

/// The tests' generator for `seed` (their data and thresholds were chosen with this seeding).
pub(crate) fn test_rng(seed: u64) -> Rng {
    Rng::from_state(seed ^ 0x9E37_79B9_7F4A_7C15)
}

/// The genotype of the tests: every op, forward and backward edges.
/// Edges: 0<-1 0<-2 0<-3 1<-0 1<-2 1<-3 2<-0 2<-1 2<-3 3<-0 3<-1 3<-2
pub(crate) const ALL_OPS: &str =
    "conv3 avgpool conv1 conv3 zero skip conv1 maxpool conv3 skip avgpool conv3";

pub(crate) struct Spec {
    pub shape: Shape,
    pub genotype: Genotype,
    pub bits: Bits,
}

pub(crate) fn small_dims(input: InputKind) -> Shape {
    match input {
        InputKind::Static => Shape {
            input,
            in_c: 3,
            in_h: 8,
            in_w: 8,
            stem_pool: false,
            timesteps: 4,
            c1: 4,
            c2: 8,
            pool: 2,
            hidden: 16,
            classes: 5,
            votes: 2,
        },
        InputKind::Events => Shape {
            input,
            in_c: 2,
            in_h: 12,
            in_w: 12,
            stem_pool: true,
            timesteps: 4,
            c1: 4,
            c2: 8,
            pool: 1,
            hidden: 16,
            classes: 4,
            votes: 3,
        },
    }
}

/// The recipe of the tests' models for `input`: cell formats 2^10, post 2^12, hidden 2^11,
/// input 2^12 (static) or 2^6.
pub(crate) fn small_recipe(input: InputKind) -> Recipe {
    let stat = input == InputKind::Static;
    Recipe {
        input_exp: if stat { 12 } else { 6 },
        cell_exp: 10,
        post_exp: 12,
        hidden_exp: 11,
        out_exp: 16,
        stem: LayerInit::new(if stat { 2.0 } else { 0.5 }, (-0.3, 0.6)),
        conv3: LayerInit::new(3.0, (-0.4, 0.1)),
        conv1: LayerInit::new(1.5, (-0.4, 0.1)),
        down: LayerInit::new(4.0, (-0.3, 0.2)),
        fc1: LayerInit::new(6.0, (0.0, 0.0)),
        fc2: LayerInit::new(3.0, (-0.2, 0.2)),
        post_gain: (0.4, 1.6),
        post_offset: (-0.5, 0.2),
    }
}

/// A random model of `spec` from `seed`.
pub(crate) fn random_model(spec: &Spec, seed: u64) -> OwnedModel {
    testutil::random_model(
        spec.shape,
        &spec.genotype,
        spec.bits,
        &small_recipe(spec.shape.input),
        &mut test_rng(seed),
    )
}

// ---------------------------------------------------------------------------------------------
// f32 reference forward of the dequantised model (CHW layout, independent of the engine).

fn p2(e: i32) -> f32 {
    2f32.powi(-e)
}

/// Dequantised weight of a spike-fed layer: weight index `i`, output `o`, output format `a`.
fn wq(l: &LayerParts<'_>, bits: Bits, i: usize, o: usize, a: i32) -> f32 {
    l.weight_at(bits, i) as f32 * p2(l.shift_at(o) as i32 + a)
}

fn bq(l: &LayerParts<'_>, o: usize, a: i32) -> f32 {
    l.bias_at(o) as f32 * p2(l.shift_at(o) as i32 + a)
}

/// Reference spike record: per (t, layer) the spikes in HWC order.
pub(crate) type Record = Vec<(usize, LayerId, Vec<bool>)>;

struct RefLif {
    v: Vec<f32>,
}

impl RefLif {
    fn new(n: usize) -> RefLif {
        RefLif { v: vec![0.0; n] }
    }
    fn step(&mut self, x: &[f32]) -> Vec<f32> {
        self.v
            .iter_mut()
            .zip(x)
            .map(|(v, &x)| {
                *v = 0.25 * *v + 0.75 * x;
                if *v >= 1.0 {
                    *v = 0.0;
                    1.0
                } else {
                    0.0
                }
            })
            .collect()
    }
}

/// CHW -> HWC spikes.
fn to_hwc(s: &[f32], c: usize, h: usize, w: usize) -> Vec<bool> {
    let mut out = vec![false; c * h * w];
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                out[(y * w + x) * c + ch] = s[(ch * h + y) * w + x] > 0.5;
            }
        }
    }
    out
}

/// Conv (stride 1, pad k/2) of CHW `x` with weights `[ci][ky][kx][co]`.
#[allow(clippy::too_many_arguments)]
fn ref_conv(
    x: &[f32],
    c_in: usize,
    h: usize,
    w: usize,
    k: usize,
    l: &LayerParts<'_>,
    bits: Bits,
    c_out: usize,
    a: i32,
) -> Vec<f32> {
    let pad = k as isize / 2;
    let mut out = vec![0f32; c_out * h * w];
    for co in 0..c_out {
        for y in 0..h {
            for xx in 0..w {
                let mut s = bq(l, co, a);
                for ci in 0..c_in {
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = y as isize + ky as isize - pad;
                            let ix = xx as isize + kx as isize - pad;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let v = x[(ci * h + iy as usize) * w + ix as usize];
                            s += v * wq(l, bits, ((ci * k + ky) * k + kx) * c_out + co, co, a);
                        }
                    }
                }
                out[(co * h + y) * w + xx] = s;
            }
        }
    }
    out
}

fn ref_pool3(x: &[f32], c: usize, h: usize, w: usize, avg: bool) -> Vec<f32> {
    let mut out = vec![0f32; c * h * w];
    for ch in 0..c {
        for y in 0..h {
            for xx in 0..w {
                let mut s = 0f32;
                let mut m = f32::NEG_INFINITY;
                for dy in -1isize..=1 {
                    for dx in -1isize..=1 {
                        let (iy, ix) = (y as isize + dy, xx as isize + dx);
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue;
                        }
                        let v = x[(ch * h + iy as usize) * w + ix as usize];
                        s += v;
                        m = m.max(v);
                    }
                }
                out[(ch * h + y) * w + xx] = if avg { s / 9.0 } else { m };
            }
        }
    }
    out
}

fn maxpool2(x: &[f32], c: usize, h: usize, w: usize) -> Vec<f32> {
    let (h2, w2) = (h / 2, w / 2);
    let mut out = vec![0f32; c * h2 * w2];
    for ch in 0..c {
        for y in 0..h2 {
            for xx in 0..w2 {
                let at = |yy: usize, xq: usize| x[(ch * h + yy) * w + xq];
                out[(ch * h2 + y) * w2 + xx] = at(2 * y, 2 * xx)
                    .max(at(2 * y, 2 * xx + 1))
                    .max(at(2 * y + 1, 2 * xx))
                    .max(at(2 * y + 1, 2 * xx + 1));
            }
        }
    }
    out
}

struct RefCell {
    back: [Vec<f32>; 3],
    lif: [RefLif; 4],
}

impl RefCell {
    fn new(n: usize) -> RefCell {
        RefCell {
            back: [vec![0.0; n], vec![0.0; n], vec![0.0; n]],
            lif: [
                RefLif::new(n),
                RefLif::new(n),
                RefLif::new(n),
                RefLif::new(n),
            ],
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn ref_cell(
    st: &mut RefCell,
    x0: &[f32],
    cp: &crate::model::CellParts<'_>,
    g: &Genotype,
    bits: Bits,
    c: usize,
    h: usize,
    w: usize,
    t: usize,
    cell_no: u8,
    rec: &mut Record,
) -> Vec<f32> {
    let n = c * h * w;
    let a = cp.exp as i32;
    let add = |a: &mut Vec<f32>, b: &[f32]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
    let mut u: Vec<Vec<f32>> = Vec::new();
    let mut spk: Vec<Option<Vec<f32>>> = Vec::new();
    let edge_op = |from: usize, to: usize| -> Option<(usize, Op)> {
        g.cell()
            .edges()
            .iter()
            .position(|e| e.from as usize == from && e.to as usize == to)
            .map(|k| (k, g.ops()[k]))
    };
    let apply = |op: Op, k: usize, src: &[f32], s: &Option<Vec<f32>>| -> Vec<f32> {
        match op {
            Op::Zero => vec![0.0; n],
            Op::Skip => src.to_vec(),
            Op::AvgPool => ref_pool3(src, c, h, w, true),
            Op::MaxPool => ref_pool3(src, c, h, w, false),
            Op::Conv3 | Op::Conv1 => {
                let kk = if op == Op::Conv3 { 3 } else { 1 };
                ref_conv(
                    s.as_ref().unwrap(),
                    c,
                    h,
                    w,
                    kk,
                    cp.convs[k].as_ref().unwrap(),
                    bits,
                    c,
                    a,
                )
            }
            Op::Conv3Th05 | Op::Conv3Th15 => unreachable!("refused by Model::new"),
        }
    };
    let uses_lif = |j: usize| {
        g.cell()
            .edges()
            .iter()
            .zip(g.ops())
            .any(|(e, op)| e.from as usize == j && op.has_lif())
    };
    for i in 0..4 {
        let mut xi = if i == 0 { x0.to_vec() } else { vec![0.0; n] };
        for j in 0..i {
            if let Some((k, op)) = edge_op(j, i) {
                let o = apply(op, k, &u[j], &spk[j]);
                add(&mut xi, &o);
            }
        }
        if i < 3 {
            add(&mut xi, &st.back[i]);
        }
        let s = if uses_lif(i) {
            let s = st.lif[i].step(&xi);
            rec.push((
                t,
                LayerId::CellNode {
                    cell: cell_no - 1,
                    node: i as u8,
                    class: LifClass::Th10,
                },
                to_hwc(&s, c, h, w),
            ));
            Some(s)
        } else {
            None
        };
        u.push(xi);
        spk.push(s);
    }
    for i in 0..3 {
        let mut b = vec![0f32; n];
        for j in i + 1..4 {
            if let Some((k, op)) = edge_op(j, i) {
                let o = apply(op, k, &u[j], &spk[j]);
                add(&mut b, &o);
            }
        }
        st.back[i] = b;
    }
    u.pop().unwrap()
}

fn ref_post(
    x: &[f32],
    c: usize,
    hw: usize,
    post: &crate::model::PostParts<'_>,
    a_cell: i32,
) -> Vec<f32> {
    let (ap, s) = (post.exp as i32, post.shift as i32);
    let mut y = vec![0f32; x.len()];
    for ch in 0..c {
        let g = crate::model::read_i32(post.mul, ch) as f32 * p2(ap - a_cell + s);
        let b = crate::model::read_i32(post.add, ch) as f32 * p2(ap + s);
        for i in 0..hw {
            y[ch * hw + i] = g * x[ch * hw + i] + b;
        }
    }
    y
}

/// Runs the f32 reference on a quantised input (whole sample). Returns the class scores (mean
/// over timesteps of the voted outputs) and the spike record.
pub(crate) fn reference(p: &ModelParts<'_>, input: &[i16]) -> (Vec<f32>, Record) {
    let d = p.shape;
    let bits = p.bits;
    let g = &p.genotype;
    let (c_in, ih, iw) = (d.in_c, d.in_h, d.in_w);
    let (h1, w1) = d.cell1_hw();
    let (h2, w2) = d.cell2_hw();
    let (ph, pw) = d.pooled_hw();
    let (c1, c2) = (d.c1, d.c2);
    let (n1, n2) = (c1 * h1 * w1, c2 * h2 * w2);
    let a_in = p.input.exp as i32;
    let a1 = p.cell1.exp as i32;
    let mut rec = Record::new();
    let mut cell1 = RefCell::new(n1);
    let mut cell2 = RefCell::new(n2);
    let mut post1 = RefLif::new(n1);
    let mut post2 = RefLif::new(n2);
    let hidden = d.hidden;
    let mut hid = RefLif::new(hidden);
    let mut scores = vec![0f32; d.classes];
    let frame = d.frame_len();
    for t in 0..d.timesteps {
        let f = match d.input {
            InputKind::Static => &input[..frame],
            InputKind::Events => &input[t * frame..(t + 1) * frame],
        };
        let x: Vec<f32> = f.iter().map(|&q| q as f32 * p2(a_in)).collect();
        // Stem: dense conv, weights [co][ci][ky][kx], weight = q * 2^(a_in - E).
        let mut s = vec![0f32; c1 * ih * iw];
        for co in 0..c1 {
            let e = p.stem.shift_at(co) as i32 + a1;
            for y in 0..ih {
                for xx in 0..iw {
                    let mut acc = p.stem.bias_at(co) as f32 * p2(e);
                    for ci in 0..c_in {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let iy = y as isize + ky as isize - 1;
                                let ix = xx as isize + kx as isize - 1;
                                if iy < 0 || ix < 0 || iy >= ih as isize || ix >= iw as isize {
                                    continue;
                                }
                                let wv =
                                    p.stem.weight_at(bits, ((co * c_in + ci) * 3 + ky) * 3 + kx)
                                        as f32
                                        * p2(e - a_in);
                                acc += x[(ci * ih + iy as usize) * iw + ix as usize] * wv;
                            }
                        }
                    }
                    s[(co * ih + y) * iw + xx] = acc;
                }
            }
        }
        let x0 = if d.stem_pool {
            maxpool2(&s, c1, ih, iw)
        } else {
            s
        };
        let y1 = ref_cell(
            &mut cell1, &x0, &p.cell1, g, bits, c1, h1, w1, t, 1, &mut rec,
        );
        let z1 = ref_post(&y1, c1, h1 * w1, &p.post1, a1);
        let s1 = post1.step(&z1);
        rec.push((t, LayerId::CellOut { cell: 0 }, to_hwc(&s1, c1, h1, w1)));
        let a2 = p.cell2.exp as i32;
        let dconv = ref_conv(&s1, c1, h1, w1, 3, &p.down, bits, c2, a2);
        let x0b = maxpool2(&dconv, c2, h1, w1);
        let y2 = ref_cell(
            &mut cell2, &x0b, &p.cell2, g, bits, c2, h2, w2, t, 2, &mut rec,
        );
        let z2 = ref_post(&y2, c2, h2 * w2, &p.post2, a2);
        let s2 = post2.step(&z2);
        rec.push((t, LayerId::CellOut { cell: 1 }, to_hwc(&s2, c2, h2, w2)));
        // MaxPool(p) on spikes, flattened in the blob's HWC order.
        let pp = d.pool;
        let mut pooled = vec![0f32; c2 * ph * pw];
        for ch in 0..c2 {
            for py in 0..ph {
                for px in 0..pw {
                    let mut m = 0f32;
                    for dy in 0..pp {
                        for dx in 0..pp {
                            m = m.max(s2[(ch * h2 + py * pp + dy) * w2 + px * pp + dx]);
                        }
                    }
                    pooled[(py * pw + px) * c2 + ch] = m;
                }
            }
        }
        let ah = p.hidden_exp as i32;
        let hin: Vec<f32> = (0..hidden)
            .map(|hh| {
                let mut acc = bq(&p.fc1, hh, ah);
                for (j, &v) in pooled.iter().enumerate() {
                    if v > 0.0 {
                        acc += wq(&p.fc1, bits, j * hidden + hh, hh, ah);
                    }
                }
                acc
            })
            .collect();
        let hs = hid.step(&hin);
        rec.push((t, LayerId::Hidden, hs.iter().map(|&v| v > 0.5).collect()));
        let ao = p.out_exp as i32;
        let no = d.outputs();
        let v = d.votes;
        for (c, sc) in scores.iter_mut().enumerate() {
            let mut sum = 0f32;
            for k in 0..v {
                let o = c * v + k;
                let mut acc = bq(&p.fc2, o, ao);
                for (hh, &sv) in hs.iter().enumerate() {
                    if sv > 0.0 {
                        acc += wq(&p.fc2, bits, hh * no + o, o, ao);
                    }
                }
                sum += acc;
            }
            *sc += sum / v as f32 / d.timesteps as f32;
        }
    }
    (scores, rec)
}

fn argmax(v: &[f32]) -> usize {
    let mut b = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[b] {
            b = i;
        }
    }
    b
}

/// Records every code the engine emits, and each report's multiplicity.
#[derive(Default)]
pub(crate) struct Recorder(pub Record, pub Vec<u32>);

impl SpikeObserver for Recorder {
    fn on_spikes(&mut self, t: usize, layer: LayerId, codes: &SpikeCodes<'_>) {
        let (code, neurons) = (codes.words, codes.n_bits);
        assert_eq!(codes.rows(), 1, "{layer}: one code per timestep");
        assert!(codes.multiplicity >= 1, "{layer}: multiplicity 0");
        let bits = (0..neurons)
            .map(|i| code[i / 64] >> (i % 64) & 1 == 1)
            .collect();
        // Padding bits are zero.
        if !neurons.is_multiple_of(64) {
            assert_eq!(
                code[neurons / 64] >> (neurons % 64),
                0,
                "{layer}: padding bits set"
            );
        }
        self.0.push((t, layer, bits));
        self.1.push(codes.multiplicity);
    }
}

/// Owned engine arenas.
pub(crate) struct Arenas {
    pub act: Vec<i16>,
    pub acc: Vec<i32>,
    pub bits: Vec<u64>,
}

impl Arenas {
    pub(crate) fn for_model(m: &Model<'_>) -> Arenas {
        let s = buffer_sizes(m);
        Arenas {
            act: vec![0; s.act],
            acc: vec![0; s.acc],
            bits: vec![0; s.bits],
        }
    }
    pub(crate) fn engine<'m, 'b>(&'b mut self, m: &'m Model<'m>) -> Engine<'m, 'b> {
        Engine::new(m, &mut self.act, &mut self.acc, &mut self.bits).unwrap()
    }
}

pub(crate) fn random_input(rng: &mut Rng, d: &Shape, m: &Model<'_>) -> Vec<i16> {
    let mut q = vec![0i16; d.input_len()];
    match d.input {
        InputKind::Static => {
            let raw: Vec<u8> = (0..d.input_len()).map(|_| rng.next_u64() as u8).collect();
            quantize_input_u8(m, &raw, &mut q).unwrap();
        }
        InputKind::Events => {
            let raw: Vec<u8> = (0..d.input_len())
                .map(|_| {
                    if rng.next_f64() < 0.3 {
                        rng.int(1, 4) as u8
                    } else {
                        0
                    }
                })
                .collect();
            quantize_input_u8(m, &raw, &mut q).unwrap();
        }
    }
    q
}

/// Runs engine and reference on `samples` random inputs; returns (spike agreement, prediction
/// agreement, mean SAR of the engine, per-layer SAR).
fn compare(spec: &Spec, seed: u64, samples: usize) -> (f64, f64, Vec<(LayerId, f32)>) {
    let owned = random_model(spec, seed);
    let blob = owned.encode().unwrap();
    let model = decode(&blob).unwrap();
    let mut ar = Arenas::for_model(&model);
    let mut eng = ar.engine(&model);
    let mut rng = test_rng(seed + 1000);
    let (mut same, mut total, mut pred_same) = (0usize, 0usize, 0usize);
    for _ in 0..samples {
        let q = random_input(&mut rng, &spec.shape, &model);
        let mut rec = Recorder::default();
        let pred = eng.infer(&q, &mut rec).unwrap();
        let (ref_scores, ref_rec) = reference(model.parts(), &q);
        assert_eq!(rec.0.len(), ref_rec.len());
        // A node's LIF stands for every conv op reading the node; the others for one LIF.
        let g = &model.parts().genotype;
        for ((_, l, _), &m) in rec.0.iter().zip(&rec.1) {
            let want = match l {
                LayerId::CellNode { node, .. } => g
                    .edges()
                    .filter(|(e, op)| e.from == *node && op.has_lif())
                    .count() as u32,
                _ => 1,
            };
            assert_eq!(m, want, "{l}: multiplicity");
        }
        // The engine reports stage by stage (cell 1 at every timestep, then the rest), the
        // reference timestep by timestep: the same codes in another order.
        let stage = |l: &LayerId| match l {
            LayerId::CellNode { cell: 0, .. } | LayerId::CellOut { cell: 0 } => 0,
            _ => 1,
        };
        let mut ref_rec = ref_rec;
        ref_rec.sort_by_key(|(t, l, _)| (stage(l), *t));
        for ((t, l, s), (rt, rl, rs)) in rec.0.iter().zip(&ref_rec) {
            assert_eq!((t, l), (rt, rl));
            assert_eq!(s.len(), rs.len());
            same += s.iter().zip(rs).filter(|(a, b)| a == b).count();
            total += s.len();
        }
        // Integer scores ~ reference scores.
        let scale = (spec.shape.votes as f32)
            * spec.shape.timesteps as f32
            * 2f32.powi(model.parts().out_exp as i32);
        let _ = eng.scores().iter().map(|&s| s as f32 / scale);
        if pred == argmax(&ref_scores) {
            pred_same += 1;
        }
    }
    let sar = eng.stats().iter().map(|s| (s.layer, s.sar())).collect();
    (
        same as f64 / total as f64,
        pred_same as f64 / samples as f64,
        sar,
    )
}

fn check_engine_vs_reference(
    input: InputKind,
    bits: Bits,
    geno: &str,
    min_spk: f64,
    min_pred: f64,
) {
    let spec = Spec {
        shape: small_dims(input),
        genotype: geno.parse().unwrap(),
        bits,
    };
    let (mut spk, mut pred) = (0.0, 0.0);
    let seeds = 4;
    for seed in 0..seeds {
        let (s, p, sar) = compare(&spec, seed, 8);
        std::println!("{input:?} {bits:?} seed {seed}: spike agreement {s:.4}, prediction {p:.2}");
        for (l, r) in &sar {
            std::println!("    {l}: SAR {r:.3}");
            assert!(*r < 0.95, "{l} saturated");
        }
        assert!(
            sar.iter().any(|(l, r)| *l == LayerId::Hidden && *r > 0.0),
            "hidden layer silent"
        );
        spk += s;
        pred += p;
    }
    spk /= seeds as f64;
    pred /= seeds as f64;
    assert!(spk >= min_spk, "spike agreement {spk}");
    assert!(pred >= min_pred, "prediction agreement {pred}");
}

#[test]
fn engine_matches_reference_static_i16() {
    check_engine_vs_reference(InputKind::Static, Bits::B16, ALL_OPS, 0.98, 0.8);
}

#[test]
fn engine_matches_reference_static_i8() {
    check_engine_vs_reference(InputKind::Static, Bits::B8, ALL_OPS, 0.98, 0.8);
}

#[test]
fn engine_matches_reference_events_i8() {
    check_engine_vs_reference(InputKind::Events, Bits::B8, ALL_OPS, 0.98, 0.8);
}

#[test]
fn engine_matches_reference_forward_cell() {
    check_engine_vs_reference(
        InputKind::Static,
        Bits::B16,
        "conv3 conv1 avgpool skip conv3 maxpool",
        0.98,
        0.8,
    );
}

#[test]
fn engine_matches_reference_lightsnn_space() {
    check_engine_vs_reference(
        InputKind::Static,
        Bits::B8,
        "zero conv3 skip conv3 zero zero skip conv3 zero conv3 skip conv3",
        0.98,
        0.8,
    );
}

// ---------------------------------------------------------------------------------------------
// Kernels.

#[test]
fn lif_charge_is_exact() {
    let check = |v: i16, x: i16| {
        let exact = (v as i64 + 3 * x as i64 + 2).div_euclid(4);
        assert_eq!(lif_charge(v, x) as i64, exact, "v={v} x={x}");
        // Within half an LSB of the real (v + 3x) / 4, ties rounded up.
        let real = (v as f64 + 3.0 * x as f64) / 4.0;
        let d = lif_charge(v, x) as f64 - real;
        assert!(d > -0.5 - 1e-9 && d <= 0.5, "v={v} x={x}");
    };
    for v in (i16::MIN..=i16::MAX).step_by(97) {
        for x in (i16::MIN..=i16::MAX).step_by(89) {
            check(v, x);
        }
    }
    for v in [i16::MIN, -1, 0, 1, i16::MAX] {
        for x in [i16::MIN, -1, 0, 1, i16::MAX] {
            check(v, x);
        }
    }
    // Rounding: (0 + 3*1)/4 = 0.75 -> 1; (1 + 0)/4 = 0.25 -> 0; (2 + 0)/4 = 0.5 -> 1;
    // (-2)/4 = -0.5 -> 0 (half up).
    assert_eq!(lif_charge(0, 1), 1);
    assert_eq!(lif_charge(1, 0), 0);
    assert_eq!(lif_charge(2, 0), 1);
    assert_eq!(lif_charge(-2, 0), 0);
    assert_eq!(lif_charge(i16::MAX, i16::MAX), i16::MAX);
    assert_eq!(lif_charge(i16::MIN, i16::MIN), i16::MIN);
}

proptest! {
    #[test]
    fn lif_charge_exact_prop(v in any::<i16>(), x in any::<i16>()) {
        let exact = (v as i64 + 3 * x as i64 + 2).div_euclid(4);
        prop_assert_eq!(lif_charge(v, x) as i64, exact);
    }

    #[test]
    fn round_shift_matches_float(x in -(1i64 << 40)..(1i64 << 40), s in -20i32..40) {
        let r = round_shift(x, s);
        if s >= 0 {
            let exact = ((x as f64) / 2f64.powi(s) + 0.5).floor();
            prop_assert_eq!(r as f64, exact);
        } else {
            prop_assert_eq!(r, x << (-s));
        }
    }
}

#[test]
fn lif_update_fires_and_resets() {
    let th = 1 << 10;
    let mut v = 0i16;
    // Constant input 2.0: V = 1.5 -> fire.
    assert!(lif_update(&mut v, 2 * th, th));
    assert_eq!(v, 0);
    // Input 1.0 never reaches 1.0 exactly from 0 in one step: 0.75.
    assert!(!lif_update(&mut v, th, th));
    assert_eq!(v, 768);
    // 0.25*0.75 + 0.75 = 0.9375
    assert!(!lif_update(&mut v, th, th));
    assert_eq!(v, 960);
    assert!(!lif_update(&mut v, th, th)); // 0.984375 = 1008
    assert_eq!(v, 1008);
    // Exactly at threshold fires: V = (V + 3X)/4 = th with X = (4 th - V) / 3.
    let mut v = 1024 - 3 * 100; // 724
    assert!(lif_update(&mut v, 1124, th));
}

#[test]
fn round_shift_cases() {
    assert_eq!(round_shift(5, 1), 3); // 2.5 -> 3
    assert_eq!(round_shift(-5, 1), -2); // -2.5 -> -2 (half up)
    assert_eq!(round_shift(-6, 1), -3);
    assert_eq!(round_shift(7, 0), 7);
    assert_eq!(round_shift(3, -2), 12);
    assert_eq!(round_shift(i64::MAX / 2, -4), i64::MAX);
    assert_eq!(round_shift(i64::MIN / 2, -4), i64::MIN);
    assert_eq!(round_shift(i64::MAX, 62), 2);
    assert_eq!(round_shift(i64::MIN, 62), -2);
    assert_eq!(round_shift(-1, 62), 0);
}

#[test]
fn set_bits_in_range() {
    let mut rng = test_rng(3);
    let words: Vec<u64> = (0..5).map(|_| rng.next_u64() & rng.next_u64()).collect();
    for start in 0..320 {
        for end in [start, start + 1, start + 63, start + 64, start + 65, 320] {
            let end = end.min(320);
            let mut got = Vec::new();
            for_each_set_bit(&words, start, end, |i| got.push(i));
            let want: Vec<usize> = (start..end)
                .filter(|&i| words[i / 64] >> (i % 64) & 1 == 1)
                .collect();
            assert_eq!(count_ones_range(&words, start, end) as usize, want.len());
            assert_eq!(got, want, "{start}..{end}");
        }
    }
}

fn rand_spikes(rng: &mut Rng, n: usize, p: f64) -> (Vec<u64>, Vec<bool>) {
    let b: Vec<bool> = (0..n).map(|_| rng.next_f64() < p).collect();
    let mut w = vec![0u64; words_for(n)];
    for (i, &x) in b.iter().enumerate() {
        if x {
            set_bit(&mut w, i);
        }
    }
    (w, b)
}

/// Dense reference of a stride-1 `k x k` conv (pad `k / 2`) of the spikes `b` (HWC): the sums
/// (bias included) per output `(oy, ox, co)` and the number of weight adds.
#[allow(clippy::too_many_arguments)]
fn dense_conv_sums(
    b: &[bool],
    g: Geom,
    k: usize,
    wi: &[i32],
    bias: &[i32],
    c_out: usize,
) -> (Vec<i64>, u64) {
    let (h, w, c_in) = (g.h, g.w, g.c);
    let mut sums = vec![0i64; h * w * c_out];
    let mut ops = 0u64;
    for oy in 0..h {
        for ox in 0..w {
            for co in 0..c_out {
                let mut s = bias[co] as i64;
                for ci in 0..c_in {
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = oy as isize + ky as isize - (k / 2) as isize;
                            let ix = ox as isize + kx as isize - (k / 2) as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            if b[(iy as usize * w + ix as usize) * c_in + ci] {
                                s += wi[((ci * k + ky) * k + kx) * c_out + co] as i64;
                                ops += 1;
                            }
                        }
                    }
                }
                sums[(oy * w + ox) * c_out + co] = s;
            }
        }
    }
    (sums, ops)
}

/// Runs the event conv on accumulator `A` and checks both outputs (add, MaxPool2) and the
/// synaptic-operation count against the dense sums.
#[allow(clippy::too_many_arguments)]
fn check_event_conv(
    run: impl Fn(conv::Out<'_>, &mut [i32]) -> u64,
    g: Geom,
    k: usize,
    l: &LayerParts<'_>,
    c_out: usize,
    sums: &[i64],
    dense_ops: u64,
) {
    let (h, w) = (g.h, g.w);
    let mut ring = vec![0i32; conv::ring_len(w, c_out)];
    let mut dst = vec![100i16; h * w * c_out];
    let ops = run(conv::Out::Add(&mut dst), &mut ring);
    assert_eq!(ops, dense_ops, "cost = active inputs x kernel taps x c_out");
    for (i, (&d, &s)) in dst.iter().zip(sums).enumerate() {
        let sh = l.shift_at(i % c_out) as i32;
        assert_eq!(d, sat_i16(100 + round_shift(s, sh)), "output {i}");
    }
    // As a finished sum: saturated before the add.
    let mut dst = vec![-100i16; h * w * c_out];
    let ops = run(conv::Out::AddSum(&mut dst), &mut ring);
    assert_eq!(ops, dense_ops);
    for (i, (&d, &s)) in dst.iter().zip(sums).enumerate() {
        let v = sat_i16(round_shift(s, l.shift_at(i % c_out) as i32));
        assert_eq!(d, sat_i16(-100 + v as i64), "output {i}");
    }
    if k != 3 {
        return;
    }
    let (h2, w2) = (h / 2, w / 2);
    let mut pooled = vec![-7i16; h2 * w2 * c_out];
    let ops = run(conv::Out::MaxPool2(&mut pooled), &mut ring);
    assert_eq!(ops, dense_ops);
    for y in 0..h2 {
        for x in 0..w2 {
            for co in 0..c_out {
                let at = |yy: usize, xx: usize| sums[(yy * w + xx) * c_out + co];
                let m = at(2 * y, 2 * x)
                    .max(at(2 * y, 2 * x + 1))
                    .max(at(2 * y + 1, 2 * x))
                    .max(at(2 * y + 1, 2 * x + 1));
                let want = sat_i16(-7 + sat_i16(round_shift(m, l.shift_at(co) as i32)) as i64);
                assert_eq!(
                    pooled[(y * w2 + x) * c_out + co],
                    want,
                    "pool ({y},{x},{co})"
                );
            }
        }
    }
}

fn event_conv_equals_dense<W: Wt>(bits: Bits) {
    let mut rng = test_rng(11);
    let mut lanes_checked = 0;
    let mut words_checked = 0;
    for (case, &(c_in, c_out, h, w, k)) in [
        (3, 5, 6, 7, 3),
        (4, 4, 5, 5, 1),
        (1, 2, 1, 1, 3),
        (8, 3, 9, 4, 3),
        (3, 8, 6, 7, 3),
        (8, 4, 9, 4, 3),
        (4, 12, 2, 3, 3),
        (16, 16, 4, 4, 1),
    ]
    .iter()
    .enumerate()
    {
        let g = Geom { c: c_in, h, w };
        let (spk, b) = rand_spikes(&mut rng, g.len(), 0.3);
        let nw = c_in * k * k * c_out;
        let wi: Vec<i32> = (0..nw)
            .map(|_| rng.int(-(bits.qmax() as i64), bits.qmax() as i64) as i32)
            .collect();
        let bias: Vec<i32> = (0..c_out).map(|_| rng.int(-1000, 1000) as i32).collect();
        // Right shifts, none, left shifts and a shift past the word (every requant branch);
        // right shifts only, and left shifts or none only (the lanes' two multiply-add-shift
        // read-outs).
        let shifts: Vec<i8> = (0..c_out)
            .map(|co| match case % 3 {
                0 => [3, 0, -2, 7, 1, 40][co % 6],
                1 => [3, 5, 1, 9][co % 4],
                _ => [0, -2, -1, -3][co % 4],
            })
            .collect();
        let layer = OwnedLayer::new(bits, &wi, &bias, &shifts);
        let l = layer.view();
        let (sums, dense_ops) = dense_conv_sums(&b, g, k, &wi, &bias, c_out);
        let sat = |out: conv::Out<'_>, ring: &mut [i32]| {
            conv::conv::<conv::Sat<W>>(&spk, g, k, &l, W::BYTES, c_out, out, ring)
        };
        check_event_conv(sat, g, k, &l, c_out, &sums, dense_ops);
        if let (true, Some(f)) = (
            conv::lanes16_exact(&l, bits, c_out),
            conv::lanes16_conv(k, c_out),
        ) {
            let lanes = |out: conv::Out<'_>, ring: &mut [i32]| f(&spk, g, &l, out, ring);
            check_event_conv(lanes, g, k, &l, c_out, &sums, dense_ops);
            lanes_checked += 1;
        }
        if let (true, Some(f)) = (
            conv::lanes32_exact::<W>(&l, c_out),
            conv::lanes32_conv::<W>(k, c_out),
        ) {
            let words = |out: conv::Out<'_>, ring: &mut [i32]| f(&spk, g, &l, out, ring);
            check_event_conv(words, g, k, &l, c_out, &sums, dense_ops);
            words_checked += 1;
        }
    }
    if bits == Bits::B16 {
        // Every case with 4, 8 or 16 outputs fits the `i32` words.
        assert_eq!(words_checked, 4);
    } else {
        assert_eq!(
            words_checked, 0,
            "8-bit weights take the i16 lanes or the general kernel"
        );
    }
    if bits == Bits::B8 {
        // Every case with 4, 8 or 16 outputs has small enough weight sums.
        assert_eq!(lanes_checked, 4);
    } else {
        assert_eq!(lanes_checked, 0, "16-bit weights never take the i16 lanes");
    }
}

/// The `i16` lanes are refused where a channel's weight sum could leave the `i16` range.
#[test]
fn lanes16_refuses_sums_that_could_wrap() {
    let c_out = 4;
    let taps = 32 * 9;
    let big = OwnedLayer::new(Bits::B8, &vec![127; taps * c_out], &[0; 4], &[0; 4]);
    assert!(!conv::lanes16_exact(&big.view(), Bits::B8, c_out));
    let neg = OwnedLayer::new(Bits::B8, &vec![-128; 257 * c_out], &[0; 4], &[0; 4]);
    assert!(!conv::lanes16_exact(&neg.view(), Bits::B8, c_out));
    let ok = OwnedLayer::new(Bits::B8, &vec![-128; 256 * c_out], &[0; 4], &[0; 4]);
    assert!(conv::lanes16_exact(&ok.view(), Bits::B8, c_out));
    let bias = OwnedLayer::new(Bits::B8, &vec![1; 9 * c_out], &[i32::MAX - 3; 4], &[0; 4]);
    assert!(!conv::lanes16_exact(&bias.view(), Bits::B8, c_out));
    let odd = OwnedLayer::new(Bits::B8, &vec![1; 9 * 6], &[0; 6], &[0; 6]);
    assert!(!conv::lanes16_exact(&odd.view(), Bits::B8, 6));
}

/// The `i32` words are refused where a channel's weight sum, or bias plus it, could leave the
/// `i32` range; 16-bit weights of a real layer fit.
#[test]
fn lanes32_refuses_sums_that_could_wrap() {
    let c_out = 4;
    let taps = 16 * 9;
    let ok = OwnedLayer::new(Bits::B16, &vec![32767; taps * c_out], &[-5; 4], &[0; 4]);
    assert!(conv::lanes32_exact::<W16>(&ok.view(), c_out));
    let bias = OwnedLayer::new(
        Bits::B16,
        &vec![32767; taps * c_out],
        &[i32::MAX - 1000; 4],
        &[0; 4],
    );
    assert!(!conv::lanes32_exact::<W16>(&bias.view(), c_out));
    let neg = OwnedLayer::new(
        Bits::B16,
        &vec![-32768; taps * c_out],
        &[i32::MIN + 1000; 4],
        &[0; 4],
    );
    assert!(!conv::lanes32_exact::<W16>(&neg.view(), c_out));
    let odd = OwnedLayer::new(Bits::B16, &[1; 9 * 5], &[0; 5], &[0; 5]);
    assert!(!conv::lanes32_exact::<W16>(&odd.view(), 5));
}

proptest! {
    /// `requant` gives the same `sat_i16(d + v)` and `sat_i16(v)` as the `i64` `round_shift`.
    #[test]
    fn requant_matches_round_shift(a: i32, s in -70i32..70, d: i16) {
        let s = s.clamp(-62, 62);
        let want = round_shift(a as i64, s);
        let got = requant(a, s) as i64;
        prop_assert_eq!(sat_i16(d as i64 + got), sat_i16((d as i64).saturating_add(want)));
        prop_assert_eq!(sat_i16(got), sat_i16(want));
    }
}

#[test]
fn event_conv_equals_dense_conv_i8() {
    event_conv_equals_dense::<W8>(Bits::B8);
}

#[test]
fn event_conv_equals_dense_conv_i16() {
    event_conv_equals_dense::<W16>(Bits::B16);
}

#[test]
fn fc_event_equals_dense() {
    let mut rng = test_rng(5);
    let (n_in, n_out) = (130, 7);
    let (spk, b) = rand_spikes(&mut rng, n_in, 0.2);
    let wi: Vec<i32> = (0..n_in * n_out)
        .map(|_| rng.int(-32767, 32767) as i32)
        .collect();
    let bias: Vec<i32> = (0..n_out).map(|_| rng.int(-5, 5) as i32).collect();
    let layer = OwnedLayer::new(Bits::B16, &wi, &bias, &vec![0; n_out]);
    let mut acc = vec![0i32; n_out];
    fc_event::<W16>(&spk, n_in, &layer.view(), &mut acc);
    for o in 0..n_out {
        let want: i32 = bias[o]
            + (0..n_in)
                .filter(|&j| b[j])
                .map(|j| wi[j * n_out + o])
                .sum::<i32>();
        assert_eq!(acc[o], want);
    }
}

/// The 3x3 pools by definition (every window summed directly): the reference of `pool3_add`.
fn pool3_ref(src: &[i16], g: Geom, avg: bool, dst: &mut [i16]) {
    let c = g.c;
    for y in 0..g.h {
        let (y0, y1) = (y.saturating_sub(1), (y + 1).min(g.h - 1));
        for x in 0..g.w {
            let (x0, x1) = (x.saturating_sub(1), (x + 1).min(g.w - 1));
            let o = (y * g.w + x) * c;
            for ch in 0..c {
                let mut sum = 0i32;
                let mut max = i16::MIN;
                for yy in y0..=y1 {
                    for xx in x0..=x1 {
                        let v = src[(yy * g.w + xx) * c + ch];
                        sum += v as i32;
                        max = max.max(v);
                    }
                }
                let v = if avg {
                    (2 * sum + 9).div_euclid(18)
                } else {
                    max as i32
                };
                dst[o + ch] = sat_i16(dst[o + ch] as i64 + v as i64);
            }
        }
    }
}

/// `pool3_add` with enough scratch.
fn pool3(src: &[i16], g: Geom, avg: bool, dst: &mut [i16]) {
    let mut col = vec![0i32; g.w * g.c];
    pool3_add(src, g, avg, dst, &mut col);
}

proptest! {
    /// The separable pools equal the 3x3 windows summed (maximised) directly, saturation and
    /// rounding included, on every small geometry.
    #[test]
    fn separable_pools_match_the_definition(
        c in 1usize..5, h in 1usize..6, w in 1usize..6, avg: bool, seed: u64, big: bool,
    ) {
        let g = Geom { c, h, w };
        let mut rng = test_rng(seed);
        let r = if big { 32767 } else { 300 };
        let src: Vec<i16> = (0..g.len()).map(|_| rng.int(-r - 1, r) as i16).collect();
        let init: Vec<i16> = (0..g.len()).map(|_| rng.int(-r - 1, r) as i16).collect();
        let (mut want, mut got) = (init.clone(), init);
        pool3_ref(&src, g, avg, &mut want);
        pool3(&src, g, avg, &mut got);
        prop_assert_eq!(got, want);
    }
}

#[test]
fn pools_round_and_ignore_padding() {
    let g = Geom { c: 1, h: 2, w: 2 };
    // Corner: sum of 4 valid values / 9, rounded half up.
    let src = [9i16, 9, 9, 0];
    let mut dst = [0i16; 4];
    pool3(&src, g, true, &mut dst);
    assert_eq!(dst, [3, 3, 3, 3]); // 27 / 9
    let src = [-5i16, -5, -5, -5];
    let mut dst = [0i16; 4];
    pool3(&src, g, false, &mut dst);
    assert_eq!(dst, [-5; 4]); // padding is not 0 for max
    let src = [1i16, 1, 1, 1]; // 4/9 = 0.44 -> 0;
    let mut dst = [0i16; 4];
    pool3(&src, g, true, &mut dst);
    assert_eq!(dst, [0; 4]);
    let src = [2i16, 1, 1, 0]; // 4.5/9 = 0.5 -> 1 (half up), -0.5 -> 0
    let mut dst = [0i16; 4];
    pool3(&src, g, true, &mut dst);
    assert_eq!(dst, [0; 4]); // 4/9 < 0.5
    let src = [-2i16, -2, -1, 0]; // -5/9 -> -1
    let mut dst = [0i16; 4];
    pool3(&src, g, true, &mut dst);
    assert_eq!(dst, [-1; 4]);
}

#[test]
fn stem_kept_or_recomputed_and_state_resets() {
    let spec = Spec {
        shape: small_dims(InputKind::Static),
        genotype: ALL_OPS.parse().unwrap(),
        bits: Bits::B8,
    };
    let owned = random_model(&spec, 9);
    let blob = owned.encode().unwrap();
    let model = decode(&blob).unwrap();
    let mut ar = Arenas::for_model(&model);
    let mut eng = ar.engine(&model);
    let mut rng = test_rng(1);
    let q = random_input(&mut rng, &spec.shape, &model);
    eng.infer(&q, &mut ()).unwrap();
    let s1: Vec<i32> = eng.scores().to_vec();
    let stats1: Vec<LayerStats> = eng.stats().to_vec();
    // Same sample again gives the same scores (state reset), stats accumulate.
    eng.infer(&q, &mut ()).unwrap();
    assert_eq!(eng.scores(), &s1[..]);
    for (a, b) in eng.stats().iter().zip(&stats1) {
        assert_eq!(a.spikes, 2 * b.spikes);
        assert_eq!(a.steps, 2 * b.steps);
    }
    // Small C1: the engine keeps the stem's output; recomputing it at every timestep gives
    // the same results.
    let need = buffer_sizes(&model);
    assert_eq!(need.stem_cache, 0);
    assert!(eng.keeps_stem());
    let mut act = vec![0i16; need.act + q.len()];
    let (mut acc, mut bits) = (vec![0i32; need.acc], vec![0u64; need.bits]);
    let mut recomputed =
        Engine::with_stem(&model, &mut act, &mut acc, &mut bits, Some(false)).unwrap();
    assert!(!recomputed.keeps_stem());
    let mut rk = Recorder::default();
    recomputed.infer(&q, &mut rk).unwrap();
    assert_eq!(recomputed.scores(), &s1[..]);
    assert_eq!(recomputed.stats(), &stats1[..]);
    let mut rr = Recorder::default();
    eng.infer(&q, &mut rr).unwrap();
    assert_eq!(rk.0, rr.0);
    recomputed.staged_input().unwrap().copy_from_slice(&q);
    recomputed.infer_staged(&mut ()).unwrap();
    assert_eq!(recomputed.scores(), &s1[..]);
    assert!(eng.synops() > 0);
    // The staged input gives the same result and needs no caller buffer.
    assert!(buffer_sizes(&model).input_staged);
    eng.staged_input().unwrap().copy_from_slice(&q);
    eng.infer_staged(&mut ()).unwrap();
    assert_eq!(eng.scores(), &s1[..]);
}

/// Wider networks recompute the stem by default and keep it given [`BufferSizes::stem_cache`]
/// more `act` elements: the same results either way.
#[test]
fn wide_networks_keep_the_stem_given_room() {
    let shape = Shape {
        c1: 8,
        c2: 16,
        ..small_dims(InputKind::Static)
    };
    let spec = Spec {
        shape,
        genotype: ALL_OPS.parse().unwrap(),
        bits: Bits::B8,
    };
    let blob = random_model(&spec, 3).encode().unwrap();
    let model = decode(&blob).unwrap();
    let need = buffer_sizes(&model);
    assert!(need.stem_cache > 0);
    let q = random_input(&mut test_rng(5), &shape, &model);
    let run = |extra: usize| {
        let mut act = vec![0i16; need.act + extra];
        let (mut acc, mut bits) = (vec![0i32; need.acc], vec![0u64; need.bits]);
        let mut eng = Engine::new(&model, &mut act, &mut acc, &mut bits).unwrap();
        let mut rec = Recorder::default();
        eng.infer(&q, &mut rec).unwrap();
        (eng.keeps_stem(), eng.scores().to_vec(), rec.0)
    };
    let (k0, s0, r0) = run(0);
    let (k1, s1, r1) = run(need.stem_cache);
    assert!(!k0 && k1);
    assert_eq!((s0, r0), (s1, r1));
}

/// Event input cannot be staged.
#[test]
fn event_input_is_never_staged() {
    let spec = Spec {
        shape: small_dims(InputKind::Events),
        genotype: ALL_OPS.parse().unwrap(),
        bits: Bits::B8,
    };
    let owned = random_model(&spec, 4);
    let blob = owned.encode().unwrap();
    let model = decode(&blob).unwrap();
    assert!(!buffer_sizes(&model).input_staged);
    let mut ar = Arenas::for_model(&model);
    let mut eng = ar.engine(&model);
    assert!(eng.staged_input().is_none());
    assert_eq!(eng.infer_staged(&mut ()), Err(EngineError::NoStagedInput));
}

#[test]
fn engine_checks_buffers_and_inputs() {
    let spec = Spec {
        shape: small_dims(InputKind::Events),
        genotype: ALL_OPS.parse().unwrap(),
        bits: Bits::B16,
    };
    let owned = random_model(&spec, 2);
    let blob = owned.encode().unwrap();
    let model = decode(&blob).unwrap();
    let s = buffer_sizes(&model);
    let c = buffer_sizes_for(
        &spec.shape,
        CellType::Backward,
        ALL_OPS.parse::<Genotype>().unwrap().ops(),
    );
    assert_eq!(s, c);
    let mut act = vec![0i16; s.act - 1];
    let mut acc = vec![0i32; s.acc];
    let mut bits = vec![0u64; s.bits];
    assert!(matches!(
        Engine::new(&model, &mut act, &mut acc, &mut bits),
        Err(EngineError::BufferTooSmall { buffer: "act", .. })
    ));
    let mut act = vec![0i16; s.act];
    let mut eng = Engine::new(&model, &mut act, &mut acc, &mut bits).unwrap();
    assert!(matches!(
        eng.infer(&[0; 5], &mut ()),
        Err(EngineError::InputLength { .. })
    ));
    let mut out = vec![0i16; 5];
    assert!(quantize_input_u8(&model, &[0; 5], &mut out).is_err());
}

#[test]
fn input_quantisation() {
    let spec = Spec {
        shape: small_dims(InputKind::Static),
        genotype: ALL_OPS.parse().unwrap(),
        bits: Bits::B8,
    };
    let owned = random_model(&spec, 1);
    let blob = owned.encode().unwrap();
    let model = decode(&blob).unwrap();
    let d = spec.shape;
    let plane = 64;
    let raw: Vec<u8> = (0..d.frame_len()).map(|i| (i * 37 % 256) as u8).collect();
    let mut q = vec![0i16; raw.len()];
    quantize_input_u8(&model, &raw, &mut q).unwrap();
    let mean = [0.4913f64, 0.4821, 0.4465];
    let std = [0.2470f64, 0.2434, 0.2615];
    for (i, (&r, &qq)) in raw.iter().zip(&q).enumerate() {
        let c = i / plane;
        let x = (r as f64 / 255.0 - mean[c]) / std[c] * 4096.0;
        assert!((qq as f64 - x).abs() <= 1.0, "{i}: {qq} vs {x}");
    }
    let xf: Vec<f32> = (0..d.frame_len()).map(|i| i as f32 * 0.01 - 1.0).collect();
    quantize_input_f32(&model, &xf, &mut q).unwrap();
    assert_eq!(q[0], -4096);
    assert_eq!(q[100], 0);
    quantize_input_f32(&model, &[f32::NAN; 192], &mut q).unwrap();
    assert_eq!(q[0], 0);
    quantize_input_f32(&model, &[1e9; 192], &mut q).unwrap();
    assert_eq!(q[0], i16::MAX);
}

// ---------------------------------------------------------------------------------------------
// Blob format.

fn test_blob() -> Vec<u8> {
    let spec = Spec {
        shape: small_dims(InputKind::Static),
        genotype: ALL_OPS.parse().unwrap(),
        bits: Bits::B8,
    };
    random_model(&spec, 4).encode().unwrap()
}

#[test]
fn blob_round_trip() {
    for input in [InputKind::Static, InputKind::Events] {
        for bits in [Bits::B8, Bits::B16] {
            let spec = Spec {
                shape: small_dims(input),
                genotype: ALL_OPS.parse().unwrap(),
                bits,
            };
            let owned = random_model(&spec, 7);
            let parts = owned.parts();
            let blob = encode(&parts).unwrap();
            let model = decode(&blob).unwrap();
            assert_eq!(model.parts(), &parts);
            // Zero-copy: weights point into the blob.
            let w = model.parts().stem.weights;
            let r = blob.as_ptr_range();
            assert!(r.contains(&w.as_ptr()));
            assert_eq!(encode(model.parts()).unwrap(), blob);
            assert!(model.weight_bytes() > 0 && model.weight_bytes() < blob.len());
        }
    }
}

/// The blob records the dataset (format 2); a dataset whose input kind contradicts the shapes is
/// never written, and a format-1 blob (no dataset) is refused by its version.
#[test]
fn blob_records_the_dataset() {
    let spec = Spec {
        shape: small_dims(InputKind::Static),
        genotype: ALL_OPS.parse().unwrap(),
        bits: Bits::B8,
    };
    let mut m = random_model(&spec, 5);
    assert_eq!(m.dataset, crate::dataset::DatasetKind::Cifar10);
    let blob = m.encode().unwrap();
    assert_eq!(
        decode(&blob).unwrap().dataset(),
        crate::dataset::DatasetKind::Cifar10
    );
    m.dataset = crate::dataset::DatasetKind::Nmnist;
    assert!(m.encode().is_err(), "event dataset on static shape");
    let mut old = blob.clone();
    old[4..6].copy_from_slice(&1u16.to_le_bytes());
    assert_eq!(decode(&old), Err(DecodeError::UnsupportedVersion(1)));
}

#[test]
fn blob_errors_are_distinct() {
    let blob = test_blob();
    assert!(decode(&blob).is_ok());
    let mut b = blob.clone();
    b[0] = b'X';
    assert_eq!(decode(&b), Err(DecodeError::BadMagic));
    let mut b = blob.clone();
    b[4..6].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert_eq!(
        decode(&b),
        Err(DecodeError::UnsupportedVersion(FORMAT_VERSION + 1))
    );
    let mut b = blob.clone();
    let last = b.len() - 1;
    b[last] ^= 0x40;
    assert!(matches!(
        decode(&b),
        Err(DecodeError::ChecksumMismatch { .. })
    ));
    assert_eq!(decode(&blob[..blob.len() - 1]), Err(DecodeError::Truncated));
    assert_eq!(decode(&blob[..5]), Err(DecodeError::Truncated));
    assert_eq!(decode(&[]), Err(DecodeError::Truncated));
    let mut b = blob.clone();
    b.push(0);
    assert_eq!(decode(&b), Err(DecodeError::TrailingBytes));
    // A payload with a valid checksum but garbage content.
    let mut b = blob[..HEADER_LEN].to_vec();
    b.extend_from_slice(&[0xFF; 8]);
    fix_header(&mut b);
    assert_eq!(decode(&b), Err(DecodeError::Malformed));
}

#[test]
fn inconsistent_parts_are_rejected() {
    let spec = Spec {
        shape: small_dims(InputKind::Static),
        genotype: ALL_OPS.parse().unwrap(),
        bits: Bits::B8,
    };
    let owned = random_model(&spec, 4);
    let mut bad = owned.clone();
    bad.fc1.weights.pop();
    assert!(matches!(
        bad.encode(),
        Err(crate::model::EncodeError::Invalid(_))
    ));
    let mut bad = owned.clone();
    bad.cell1.convs[0] = None;
    assert!(bad.encode().is_err());
    let mut bad = owned.clone();
    bad.cell2.convs[1] = bad.cell2.convs[0].clone();
    assert!(bad.encode().is_err());
    let mut bad = owned.clone();
    bad.shape.c1 = 60000;
    assert!(bad.encode().is_err());
    let mut bad = owned.clone();
    bad.shape.pool = 9;
    assert!(bad.encode().is_err());
    let mut bad = owned.clone();
    bad.cell1.exp = 15;
    assert!(bad.encode().is_err());
    let mut bad = owned.clone();
    bad.stem.shift[0] = 100;
    assert!(bad.encode().is_err());
    // Bypass encode's validation: the decoder must still reject it.
    let mut bad = owned.clone();
    bad.shape.hidden = 17;
    let parts = bad.parts();
    let mut b = vec![0u8; HEADER_LEN];
    b.extend_from_slice(&postcard_bytes(&parts));
    fix_header(&mut b);
    assert!(matches!(decode(&b), Err(DecodeError::Invalid(_))));
}

/// A blob whose genotype holds the thresholded convs (ids 6 and 7: SpikeNAS-Bench's
/// `conv3@0.5`, `conv3@1.5`) decodes to an error naming them, with or without conv weights on
/// their edges: the integer engine runs one LIF per node.
#[test]
fn thresholded_convs_are_refused_by_the_blob() {
    let spec = Spec {
        shape: small_dims(InputKind::Static),
        genotype: "conv3 skip zero conv3 conv3 skip".parse().unwrap(),
        bits: Bits::B8,
    };
    let owned = random_model(&spec, 4);
    let mut ops: Vec<Op> = spec.genotype.ops().to_vec();
    for (edge, op, keep_weights) in [
        (0, Op::Conv3Th05, true),
        (3, Op::Conv3Th15, true),
        (2, Op::Conv3Th05, false),
    ] {
        ops.copy_from_slice(spec.genotype.ops());
        ops[edge] = op;
        let mut bad = owned.clone();
        bad.genotype = Genotype::new(CellType::Forward, &ops).unwrap();
        if !keep_weights {
            // An op without weights in its edge's slot.
            bad.cell1.convs[edge] = None;
            bad.cell2.convs[edge] = None;
        }
        let mut b = vec![0u8; HEADER_LEN];
        b.extend_from_slice(&postcard_bytes(&bad.parts()));
        fix_header(&mut b);
        match decode(&b) {
            Err(DecodeError::Invalid(i)) => {
                assert!(i.0.contains("thresholded conv"), "{op}: {}", i.0)
            }
            other => panic!("{op} on edge {edge}: {other:?}"),
        }
        assert!(bad.encode().is_err(), "{op}: encode refuses it too");
    }
}

fn postcard_bytes(p: &ModelParts<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 20];
    let n = postcard::to_slice(p, &mut buf).unwrap().len();
    buf.truncate(n);
    buf
}

/// Rewrites the header (magic, version, length, CRC) for the payload after it.
fn fix_header(b: &mut [u8]) {
    let n = (b.len() - HEADER_LEN) as u32;
    let crc = crate::crc32::crc32(&b[HEADER_LEN..]);
    b[..4].copy_from_slice(b"LSNN");
    b[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[6..10].copy_from_slice(&n.to_le_bytes());
    b[10..14].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes `b`; if it is a model whose buffers are modest, runs one inference on zeros.
fn decode_and_run(b: &[u8]) {
    if let Ok(m) = decode(b) {
        let s = buffer_sizes(&m);
        if s.bytes() < (64 << 20) && s.input < (16 << 20) {
            let mut ar = Arenas::for_model(&m);
            let mut e = ar.engine(&m);
            let input = vec![0i16; s.input];
            e.infer(&input, &mut ()).unwrap();
            for l in e.stats() {
                assert!(l.sar() <= 1.0);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        decode_and_run(&bytes);
        // With a valid header too, so the payload parser and validator see it.
        let mut b = vec![0u8; HEADER_LEN];
        b.extend_from_slice(&bytes);
        fix_header(&mut b);
        decode_and_run(&b);
    }

    #[test]
    fn decode_never_panics_on_mutations(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        refix in any::<bool>(),
    ) {
        let blob = test_blob();
        let mut b = blob.clone();
        for (i, v) in &flips {
            let i = HEADER_LEN + i.index(b.len() - HEADER_LEN);
            b[i] = *v;
        }
        if truncate {
            b.truncate(cut.index(b.len()));
        }
        if refix && b.len() >= HEADER_LEN {
            fix_header(&mut b);
        }
        decode_and_run(&b);
    }
}

/// Writes fuzz seeds (`fuzz/fuzz_targets/decode.rs` format) into `$LSNN_FUZZ_SEEDS`:
/// `cargo test -p snn-nostd --lib write_fuzz_seeds -- --ignored`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let Ok(dir) = std::env::var("LSNN_FUZZ_SEEDS") else {
        return;
    };
    std::fs::create_dir_all(&dir).unwrap();
    let mut k = 0;
    for input in [InputKind::Static, InputKind::Events] {
        for bits in [Bits::B8, Bits::B16] {
            for geno in [ALL_OPS, "conv3 conv1 avgpool skip conv3 maxpool"] {
                let mut shape = small_dims(input);
                shape.in_h = 6;
                shape.in_w = 6;
                shape.timesteps = 2;
                shape.pool = 1;
                let spec = Spec {
                    shape,
                    genotype: geno.parse().unwrap(),
                    bits,
                };
                let blob = random_model(&spec, k).encode().unwrap();
                for (mode, body) in [(0u8, &blob[..]), (1u8, &blob[HEADER_LEN..])] {
                    let mut seed = vec![mode];
                    seed.extend_from_slice(body);
                    std::fs::write(std::format!("{dir}/seed{k}_{mode}"), seed).unwrap();
                }
                k += 1;
            }
        }
    }
}

/// The stem's `i32` row path (`i8` weights, with scratch) and its `i64` chunk path (no scratch,
/// or `i16` weights) equal the per-pixel definition, with and without MaxPool2, on odd and even
/// sizes, rows wider than a chunk, and negative, zero and positive shifts.
#[test]
fn stem_paths_equal_the_definition() {
    let mut rng = test_rng(21);
    for bits in [Bits::B8, Bits::B16] {
        for &(c, h, w, pool, c_out) in &[
            (3, 6, 7, false, 4),
            (3, 5, 4, false, 16),
            (1, 4, 5, false, 3),
            (2, 6, 6, false, 8),
            (3, 6, 7, true, 4),
            (2, 5, 5, true, 3),
            (1, 1, 1, false, 2),
            (3, 3, 2, false, 8),
            (2, 3, 71, false, 2),
            (2, 4, 70, true, 3),
        ] {
            let s = stem::StemInput { c, h, w, pool };
            let input: Vec<i16> = (0..c * h * w)
                .map(|_| rng.int(-32768, 32767) as i16)
                .collect();
            let q = bits.qmax() as i64;
            let wi: Vec<i32> = (0..c_out * c * 9).map(|_| rng.int(-q, q) as i32).collect();
            let bias: Vec<i32> = (0..c_out)
                .map(|_| rng.int(-100_000, 100_000) as i32)
                .collect();
            let shifts: Vec<i8> = (0..c_out).map(|co| [9, 0, -1, 14][co % 4]).collect();
            let layer = OwnedLayer::new(bits, &wi, &bias, &shifts);
            let l = layer.view();
            let (oh, ow) = if pool { (h / 2, w / 2) } else { (h, w) };
            let run = |out: &mut [i16], scratch: &mut [i32]| match bits {
                Bits::B8 => stem::stem::<W8>(&input, s, &l, c_out, out, scratch),
                Bits::B16 => stem::stem::<W16>(&input, s, &l, c_out, out, scratch),
            };
            // The definition, on a zero-padded copy of the input.
            let (ph, pw) = (h + 2, w + 2);
            let mut padded = vec![0i64; c * ph * pw];
            for ci in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        padded[(ci * ph + y + 1) * pw + x + 1] = input[(ci * h + y) * w + x] as i64;
                    }
                }
            }
            let sum = |y: usize, x: usize, co: usize| -> i64 {
                let mut a = l.bias_at(co) as i64;
                for ci in 0..c {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let wv = l.weight_at(bits, ((co * c + ci) * 3 + ky) * 3 + kx) as i64;
                            a += wv * padded[(ci * ph + y + ky) * pw + x + kx];
                        }
                    }
                }
                a
            };
            let want: Vec<i16> = (0..oh * ow * c_out)
                .map(|i| {
                    let (px, co) = (i / c_out, i % c_out);
                    let (y, x) = (px / ow, px % ow);
                    let v = if pool {
                        let (y, x) = (2 * y, 2 * x);
                        sum(y, x, co)
                            .max(sum(y, x + 1, co))
                            .max(sum(y + 1, x, co))
                            .max(sum(y + 1, x + 1, co))
                    } else {
                        sum(y, x, co)
                    };
                    sat_i16(round_shift(v, l.shift_at(co) as i32))
                })
                .collect();
            assert!(want.iter().any(|&v| v != 0));
            let what = std::format!("{bits:?} {c}x{h}x{w} pool {pool}");
            // The patch path (2 or 3 channels, with its scratch) and the general one (no
            // scratch), written into zeros and added into a sum as a finished sum.
            let shape = Shape {
                in_c: c,
                in_w: w,
                c1: c_out,
                ..small_dims(InputKind::Static)
            };
            let base: Vec<i16> = (0..want.len()).map(|i| [-30000, 20000, 5][i % 3]).collect();
            let added: Vec<i16> = base
                .iter()
                .zip(&want)
                .map(|(&b, &v)| sat_i16(b as i64 + v as i64))
                .collect();
            for scratch in [stem::scratch_len(&shape), 0] {
                let mut out = vec![0i16; want.len()];
                run(&mut out, &mut vec![0i32; scratch]);
                assert_eq!(out, want, "{what}, scratch {scratch}");
                let mut sum = base.clone();
                run(&mut sum, &mut vec![0i32; scratch]);
                assert_eq!(sum, added, "{what}, added, scratch {scratch}");
            }
        }
    }
}

proptest! {
    /// Node buffers are shared only where that is safe: a node's buffer never holds a tensor
    /// that a later skip or pool edge still reads, node 0 is in buffer 0, and the slots are
    /// numbered `0..slots`.
    #[test]
    fn node_buffer_slots_never_clobber_a_read_tensor(
        ops in proptest::array::uniform12(0usize..6),
        forward: bool,
    ) {
        let cell = if forward { CellType::Forward } else { CellType::Backward };
        let ops: Vec<Op> = ops.iter().map(|&k| Op::ALL[k]).collect();
        let plan = CellPlan::new(cell, &ops);
        prop_assert_eq!(plan.slot[0], 0);
        prop_assert!(plan.slot.iter().all(|&s| s < plan.slots));
        for i in 0..NUM_NODES {
            for j in 0..i {
                if plan.schedule.reads_tensor[j] {
                    prop_assert_ne!(plan.slot[j], plan.slot[i], "kept x{} vs x{}", j, i);
                }
            }
        }
        // The forward edge j -> i reading the tensor of j writes into another buffer.
        for (edge, &op) in cell.edges().iter().zip(&ops) {
            if op != Op::Zero && !op.has_lif() && !edge.is_backward() {
                prop_assert_ne!(plan.slot[edge.from as usize], plan.slot[edge.to as usize]);
            }
        }
        // The all-conv genotype needs one buffer.
        let all_conv = CellPlan::new(cell, &[Op::Conv3; 12]);
        prop_assert_eq!(all_conv.slots, 1);
    }
}

/// The dense baseline gives the event engine's results bit for bit (scores, per-layer spikes,
/// synaptic-operation counts), on static and event input, 8- and 16-bit weights, every op.
#[test]
fn dense_baseline_equals_event_engine() {
    let all_conv = "conv3 conv3 conv3 conv3 conv3 zero conv3 conv3 conv3 zero conv3 conv3";
    for (input, bits, genotype) in [
        (InputKind::Static, Bits::B8, ALL_OPS),
        (InputKind::Static, Bits::B16, ALL_OPS),
        (InputKind::Events, Bits::B8, ALL_OPS),
        (InputKind::Static, Bits::B8, all_conv),
    ] {
        let spec = Spec {
            shape: small_dims(input),
            genotype: genotype.parse().unwrap(),
            bits,
        };
        let owned = random_model(&spec, 17);
        let blob = owned.encode().unwrap();
        let model = decode(&blob).unwrap();
        let mut ar = Arenas::for_model(&model);
        let mut dense = vec![0i32; dense_scratch_len(&model)];
        let mut scratch: Option<&mut [i32]> = Some(&mut dense);
        let mut short = vec![0i32; dense_scratch_len(&model) - 1];
        let mut eng = ar.engine(&model);
        let mut rng = test_rng(8);
        for _ in 0..3 {
            let q = random_input(&mut rng, &spec.shape, &model);
            eng.reset_stats();
            eng.infer(&q, &mut ()).unwrap();
            let (scores, stats, synops) =
                (eng.scores().to_vec(), eng.stats().to_vec(), eng.synops());
            assert!(synops > 0);
            eng.reset_stats();
            eng.use_dense(scratch.take().unwrap()).unwrap();
            eng.infer(&q, &mut ()).unwrap();
            assert_eq!(eng.scores(), &scores[..], "{genotype} {bits:?} {input:?}");
            assert_eq!(eng.stats(), &stats[..]);
            assert_eq!(eng.synops(), synops);
            scratch = eng.use_events();
            assert!(scratch.is_some());
        }
        assert!(matches!(
            eng.use_dense(&mut short),
            Err(EngineError::BufferTooSmall {
                buffer: "dense",
                ..
            })
        ));
    }
}

/// `post_lif` (32-bit halves for shifts >= 16, pairs of neurons, the odd tail one by one) equals
/// the affine of the definition in `i64` followed by `lif_update`, neuron by neuron, for every
/// shift, channel count and a length that is not a multiple of 64.
#[test]
fn post_lif_matches_the_definition() {
    let mut rng = test_rng(41);
    for shift in 0u8..=64 {
        for (c, n) in [(1usize, 64usize), (3, 3 * 45), (4, 4 * 33), (8, 8 * 16)] {
            let mul: Vec<u8> = (0..c)
                .flat_map(|_| (rng.int(i32::MIN as i64, i32::MAX as i64) as i32).to_le_bytes())
                .collect();
            let add: Vec<u8> = (0..c)
                .flat_map(|_| (rng.int(i32::MIN as i64, i32::MAX as i64) as i32).to_le_bytes())
                .collect();
            let post = crate::model::PostParts {
                exp: shift % 15,
                mul: &mul,
                add: &add,
                shift,
            };
            let x: Vec<i16> = (0..n).map(|_| rng.int(-32768, 32767) as i16).collect();
            let mem0: Vec<i16> = (0..n).map(|_| rng.int(-32768, 32767) as i16).collect();
            let (mut mem, mut bits) = (mem0.clone(), vec![0u64; n.div_ceil(64)]);
            let count = post_lif(&mut x.clone(), c, &post, &mut mem, &mut bits);
            let (mut want_mem, mut want_bits) = (mem0, vec![0u64; n.div_ceil(64)]);
            let s = shift.min(62) as u32;
            let th = fixed::threshold(post.exp);
            for i in 0..n {
                let (m, a) = (
                    crate::model::read_i32(&mul, i % c) as i64,
                    crate::model::read_i32(&add, i % c) as i64,
                );
                let v = sat_i16((x[i] as i64 * m + a + ((1i64 << s) >> 1)) >> s);
                if lif_update(&mut want_mem[i], v, th) {
                    want_bits[i / 64] |= 1 << (i % 64);
                }
            }
            assert_eq!(mem, want_mem, "shift {shift} c {c}");
            assert_eq!(bits, want_bits, "shift {shift} c {c}");
            let ones: u32 = want_bits.iter().map(|w| w.count_ones()).sum();
            assert_eq!(count, ones as u64);
        }
    }
}
