//! Random test networks: weights scaled so that every layer spikes, as plain-Rust
//! [`FloatNetwork`]s and as the Candle [`Network`] holding the same weights (the float
//! reference the export's tests compare the integer engine with).

use super::{from_network, Bn, CellWeights, ConvBn, FloatNetwork, Normalization};
use crate::config::NetConfig;
use crate::data::DatasetKind;
use crate::model::Network;
use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snn_nostd::genotype::{Genotype, Op};
use snn_nostd::shape::{InputKind, Shape};

/// Network shape for [`random_weights`] and [`random_network`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomSpec {
    /// The network's shape (its input kind picks the dataset: CIFAR-10 or N-MNIST).
    pub shape: Shape,
    /// Genotype.
    pub genotype: Genotype,
}

impl RandomSpec {
    /// The tests' tiny network with cell `g`: static 3x8x8 input (C1/C2 4/8, p 2, H 16, 5
    /// classes x 2 votes) or events, 2x12x12 with the stem's pool (p 1, 4 classes x 3 votes);
    /// T 4.
    pub fn tiny(input: InputKind, g: Genotype) -> RandomSpec {
        match input {
            InputKind::Static => RandomSpec {
                shape: Shape {
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
                genotype: g,
            },
            InputKind::Events => RandomSpec {
                shape: Shape {
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
                genotype: g,
            },
        }
    }
}

/// The weights of a random network (BN with random statistics), scaled so that its layers
/// spike.
pub fn random_weights(spec: &RandomSpec, seed: u64) -> FloatNetwork {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let sh = spec.shape;
    let in_c = sh.in_c;
    let conv = |rng: &mut ChaCha8Rng, c_in: usize, c_out: usize, k: usize, gain: f32| {
        let r = gain / ((c_in * k * k) as f32).sqrt();
        ConvBn {
            weight: (0..c_out * c_in * k * k)
                .map(|_| rng.gen_range(-r..r))
                .collect(),
            bn: random_bn(rng, c_out),
        }
    };
    let stem_gain = match sh.input {
        InputKind::Static => 3.0,
        InputKind::Events => 1.5,
    };
    let stem = conv(&mut rng, in_c, sh.c1, 3, stem_gain);
    let cell = |rng: &mut ChaCha8Rng, c: usize| CellWeights {
        convs: spec
            .genotype
            .ops()
            .iter()
            .map(|op| match op.kernel() {
                Some(3) => Some(conv(rng, c, c, 3, 5.0)),
                Some(k) => Some(conv(rng, c, c, k, 2.5)),
                None => None,
            })
            .collect(),
    };
    let cell1 = cell(&mut rng, sh.c1);
    let bn_cell1 = random_bn(&mut rng, sh.c1);
    let down = conv(&mut rng, sh.c1, sh.c2, 3, 6.0);
    let cell2 = cell(&mut rng, sh.c2);
    let bn_cell2 = random_bn(&mut rng, sh.c2);
    let mut net = FloatNetwork {
        dataset: dataset(spec),
        shape: sh,
        downsample: crate::config::PoolKind::Max,
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
    let n_in = net.shape.fc1_in();
    let r1 = 8.0 / (n_in as f32).sqrt();
    net.fc1 = (0..sh.hidden * n_in)
        .map(|_| rng.gen_range(-r1..r1))
        .collect();
    let r2 = 3.0 / (sh.hidden as f32).sqrt();
    let no = sh.classes * sh.votes;
    net.fc2_weight = (0..no * sh.hidden)
        .map(|_| rng.gen_range(-r2..r2))
        .collect();
    net.fc2_bias = (0..no).map(|_| rng.gen_range(-0.1..0.1)).collect();
    // The normalisation the Candle network's dataset kind stands for (static input).
    net.normalization = (sh.input == InputKind::Static).then(|| {
        let (mean, std) = dataset(spec).mean_std();
        Normalization {
            mean: mean[..in_c].to_vec(),
            std: std[..in_c].to_vec(),
        }
    });
    net
}

fn random_bn(rng: &mut ChaCha8Rng, c: usize) -> Bn {
    Bn {
        gamma: (0..c).map(|_| rng.gen_range(0.6..1.4)).collect(),
        beta: (0..c).map(|_| rng.gen_range(-0.4..0.2)).collect(),
        mean: (0..c).map(|_| rng.gen_range(-0.1..0.1)).collect(),
        var: (0..c).map(|_| rng.gen_range(0.6..1.5)).collect(),
    }
}

/// The dataset kind a spec stands for: CIFAR-10 (3-channel static input, normalised) or
/// N-MNIST (events).
fn dataset(spec: &RandomSpec) -> DatasetKind {
    match spec.shape.input {
        InputKind::Static => DatasetKind::Cifar10,
        InputKind::Events => DatasetKind::Nmnist,
    }
}

/// Sets `var` (of any shape) to `values` in row-major order.
fn set(var: &Var, values: &[f32]) {
    let t = Tensor::from_slice(values, var.shape(), var.device()).unwrap();
    var.set(&t).unwrap();
}

fn set_conv_bn(c: &crate::model::layers::ConvBn, w: &ConvBn) {
    set(&c.weight, &w.weight);
    set_bn(&c.bn, &w.bn);
}

fn set_bn(c: &crate::model::params::BnParams, b: &Bn) {
    set(&c.weight, &b.gamma);
    set(&c.bias, &b.beta);
    set(&c.running_mean, &b.mean);
    set(&c.running_var, &b.var);
}

/// The Candle network of `spec` holding the weights of [`random_weights`]`(spec, seed)`,
/// with those weights as [`from_network`] reads them back.
pub fn random_network(spec: &RandomSpec, seed: u64) -> (Network, FloatNetwork) {
    let w = random_weights(spec, seed);
    let mut cfg = NetConfig::for_dataset(dataset(spec), &Default::default()).unwrap();
    cfg.shape = spec.shape;
    cfg.cell = spec.genotype.cell();
    cfg.downsample = w.downsample;
    let alive: Vec<Vec<Op>> = spec.genotype.ops().iter().map(|&op| vec![op]).collect();
    let net = Network::new(&cfg, &alive, seed, &Device::Cpu).unwrap();
    set_conv_bn(&net.stem, &w.stem);
    for (cell, cw) in net.cells.iter().zip([&w.cell1, &w.cell2]) {
        for ((edge, conv), &op) in cell.edges.iter().zip(&cw.convs).zip(spec.genotype.ops()) {
            if let Some(conv) = conv {
                set_conv_bn(&edge[&op], conv);
            }
        }
    }
    set_bn(&net.cell_bn[0], &w.bn_cell1);
    set_bn(&net.cell_bn[1], &w.bn_cell2);
    set_conv_bn(&net.down, &w.down);
    set(&net.fc1, &w.fc1);
    set(&net.fc2, &w.fc2_weight);
    set(&net.fc2_bias, &w.fc2_bias);
    let back = from_network(&net, &spec.genotype).unwrap();
    (net, back)
}
