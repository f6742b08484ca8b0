//! Random test models, quantised straight into the blob format (feature `testutil`).
//!
//! The engine's unit tests and the firmware's end-to-end tests (`lightsnn-tools`) build random
//! models here: random weights with per-output power-of-two scales, random folded-BN post
//! stages and, for static input, the CIFAR-10 input normalisation. A [`Recipe`] gives the
//! fixed-point formats and the magnitudes of each layer, chosen by the caller so that every LIF
//! layer fires at a moderate rate for its shapes. The values do not matter for bit-exact
//! comparisons; they only need to exercise the engine (non-trivial spikes in every layer,
//! varied predictions).
//!
//! Models are deterministic functions of their spec, recipe and generator: the firmware's tests
//! compare blobs byte for byte, so the order of the random draws is part of the contract.

use crate::dataset::DatasetKind;
use crate::genotype::{Genotype, Op};
use crate::model::owned::{OwnedCell, OwnedLayer, OwnedModel, OwnedPost};
use crate::model::{Bits, InputKind, InputNorm, InputParts, Shape};
use crate::rng::SplitMix64;
use alloc::vec::Vec;

/// The test models' generator: a [`SplitMix64`] with the draws the models need.
pub struct Rng(SplitMix64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng::from_state(seed ^ 0x2545_F491_4F6C_DD1D)
    }

    /// A generator whose SplitMix64 state is `state` (no seed mixing).
    pub fn from_state(state: u64) -> Rng {
        Rng(SplitMix64::new(state))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        self.0.next_f64()
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }

    /// Uniform integer in `[lo, hi]`.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }
}

/// How one random layer is drawn: real weights of magnitude about `gain / sqrt(fan_in)` and
/// real biases uniform in `bias`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerInit {
    /// Weight magnitude times `sqrt(fan_in)`.
    pub gain: f64,
    /// Range of the real biases.
    pub bias: (f64, f64),
}

impl LayerInit {
    /// A layer of weight gain `gain` and real biases uniform in `bias`.
    pub const fn new(gain: f64, bias: (f64, f64)) -> LayerInit {
        LayerInit { gain, bias }
    }
}

/// How a random model is drawn: the fixed-point formats (exponents: a value `v` is stored as
/// `v * 2^exp`) and the magnitudes of each layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Recipe {
    /// Format of the quantised input.
    pub input_exp: i32,
    /// Format of both cells.
    pub cell_exp: i32,
    /// Format of both post stages.
    pub post_exp: i32,
    /// Format of the hidden layer.
    pub hidden_exp: i32,
    /// Format of the outputs.
    pub out_exp: i32,
    /// The stem convolution.
    pub stem: LayerInit,
    /// Every 3x3 convolution of a cell.
    pub conv3: LayerInit,
    /// Every 1x1 convolution of a cell.
    pub conv1: LayerInit,
    /// The down-sampling convolution between the cells.
    pub down: LayerInit,
    /// The hidden layer.
    pub fc1: LayerInit,
    /// The output layer.
    pub fc2: LayerInit,
    /// Range of the real per-channel gains of the post stages.
    pub post_gain: (f64, f64),
    /// Range of the real per-channel offsets of the post stages.
    pub post_offset: (f64, f64),
}

/// A random layer: `n_weights` weights, `n_out` outputs, real weights of magnitude about
/// `init.gain / sqrt(fan_in)` with per-output power-of-two scales, biases uniform in
/// `init.bias` (real), accumulator exponent offset `acc_off` (the stem's input exponent, 0 for
/// spike-fed layers) and output format `a_out`.
#[allow(clippy::too_many_arguments)]
fn layer(
    rng: &mut Rng,
    bits: Bits,
    n_weights: usize,
    n_out: usize,
    fan_in: usize,
    init: LayerInit,
    acc_off: i32,
    a_out: i32,
) -> OwnedLayer {
    let qmax = bits.qmax() as f64;
    let r = init.gain / (fan_in as f64).sqrt();
    let e: Vec<i32> = (0..n_out)
        .map(|_| (qmax / (r * rng.range(0.6, 1.0))).log2().floor() as i32)
        .collect();
    let w: Vec<i32> = (0..n_weights)
        .map(|_| rng.int(-(qmax as i64), qmax as i64) as i32)
        .collect();
    let (lo, hi) = init.bias;
    let b: Vec<i32> = e
        .iter()
        .map(|&eo| (rng.range(lo, hi) * 2f64.powi(eo + acc_off)).round() as i32)
        .collect();
    let s: Vec<i8> = e.iter().map(|&eo| (eo + acc_off - a_out) as i8).collect();
    OwnedLayer::new(bits, &w, &b, &s)
}

/// CIFAR-10 normalisation (docs/design.md, "Training") of the first `channels` (at most 3)
/// channels, as an integer affine with shift 16 onto the input format `input_exp`.
fn cifar_norm(channels: usize, input_exp: i32) -> InputNorm {
    let (mean, std) = ([0.4913, 0.4821, 0.4465], [0.2470, 0.2434, 0.2615]);
    let s = 16;
    let sc = 2f64.powi(input_exp + s);
    let mut norm = InputNorm {
        mul: heapless::Vec::new(),
        add: heapless::Vec::new(),
        shift: s as u8,
    };
    for c in 0..channels.min(3) {
        let _ = norm.mul.push((sc / (255.0 * std[c])).round() as i32);
        let _ = norm.add.push((-mean[c] / std[c] * sc).round() as i32);
    }
    norm
}

/// Builds a random model of shapes `shape`, cell `genotype` and weight precision `bits`, drawn
/// from `rng` as `recipe` says. Static input gets the CIFAR-10 normalisation, event input none.
pub fn random_model(
    shape: Shape,
    genotype: &Genotype,
    bits: Bits,
    recipe: &Recipe,
    rng: &mut Rng,
) -> OwnedModel {
    let r = recipe;
    let (c_in, c1, c2) = (shape.in_c, shape.c1, shape.c2);
    let stem = layer(
        rng,
        bits,
        c1 * c_in * 9,
        c1,
        c_in * 9,
        r.stem,
        r.input_exp,
        r.cell_exp,
    );
    let cell = |rng: &mut Rng, c: usize| OwnedCell {
        exp: r.cell_exp as u8,
        convs: genotype
            .ops()
            .iter()
            .map(|op| {
                let (k, init) = match op {
                    Op::Conv3 => (3, r.conv3),
                    Op::Conv1 => (1, r.conv1),
                    _ => return None,
                };
                Some(layer(
                    rng,
                    bits,
                    c * c * k * k,
                    c,
                    c * k * k,
                    init,
                    0,
                    r.cell_exp,
                ))
            })
            .collect(),
    };
    let post = |rng: &mut Rng, c: usize| {
        let s = 16;
        let mul: Vec<i32> = (0..c)
            .map(|_| {
                let g = rng.range(r.post_gain.0, r.post_gain.1);
                (g * 2f64.powi(r.post_exp - r.cell_exp + s)).round() as i32
            })
            .collect();
        let add: Vec<i32> = (0..c)
            .map(|_| {
                let o = rng.range(r.post_offset.0, r.post_offset.1);
                (o * 2f64.powi(r.post_exp + s)).round() as i32
            })
            .collect();
        OwnedPost::new(r.post_exp as u8, &mul, &add, s as u8)
    };
    let cell1 = cell(rng, c1);
    let post1 = post(rng, c1);
    let down = layer(rng, bits, c2 * c1 * 9, c2, c1 * 9, r.down, 0, r.cell_exp);
    let cell2 = cell(rng, c2);
    let post2 = post(rng, c2);
    let h = shape.hidden;
    let fc1 = layer(
        rng,
        bits,
        shape.fc1_in() * h,
        h,
        shape.fc1_in(),
        r.fc1,
        0,
        r.hidden_exp,
    );
    let o = shape.outputs();
    let fc2 = layer(rng, bits, h * o, o, h, r.fc2, 0, r.out_exp);
    let norm = match shape.input {
        InputKind::Static => Some(cifar_norm(c_in, r.input_exp)),
        InputKind::Events => None,
    };
    // The dataset whose input kind and class count the shapes have (the shapes themselves are
    // the tests' own).
    let dataset = match (shape.input, shape.classes) {
        (InputKind::Static, 100) => DatasetKind::Cifar100,
        (InputKind::Static, _) => DatasetKind::Cifar10,
        (InputKind::Events, 11) => DatasetKind::Dvs128,
        (InputKind::Events, _) => DatasetKind::Nmnist,
    };
    OwnedModel {
        dataset,
        shape,
        genotype: genotype.clone(),
        bits,
        input: InputParts {
            exp: r.input_exp as u8,
            norm,
        },
        stem,
        cell1,
        post1,
        down,
        cell2,
        post2,
        fc1,
        hidden_exp: r.hidden_exp as u8,
        fc2,
        out_exp: r.out_exp as u8,
    }
}
