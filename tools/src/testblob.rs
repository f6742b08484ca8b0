//! Random test models, quantised straight into the blob format.
//!
//! Until a trained network is exported (`lightsnn::export`), the firmware is tested with random
//! models built here from [`snn_nostd::model::owned::OwnedModel`]: random weights with
//! per-channel power-of-two scales, random folded-BN post stages and the CIFAR-10 input
//! normalisation, with gains chosen so that every LIF layer fires at a moderate rate. The values
//! do not matter for the bit-exact comparison of device and host; they only need to exercise the
//! engine (non-trivial spikes in every layer, varied predictions).

use anyhow::{anyhow, Result};
use snn_nostd::genotype::{Genotype, Op};
use snn_nostd::model::owned::{OwnedCell, OwnedLayer, OwnedModel, OwnedPost};
use snn_nostd::model::{Bits, Dims, InputKind, InputNorm, InputParts};

/// SplitMix64: a tiny deterministic generator.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x2545_F491_4F6C_DD1D)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `[-m, m]`.
    pub fn sym(&mut self, m: i64) -> i64 {
        (self.next_u64() % (2 * m as u64 + 1)) as i64 - m
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct TestModelSpec {
    /// Shapes (static 3x32x32 input for the CIFAR firmware).
    pub dims: Dims,
    /// Genotype of both cells.
    pub genotype: Genotype,
    /// Weight precision.
    pub bits: Bits,
    /// Seed of the weights.
    pub seed: u64,
}

/// LightSNN-space genotype {zero, conv3, skip} with forward and backward edges (canonical
/// order `0<-1 0<-2 0<-3 1<-0 1<-2 1<-3 2<-0 2<-1 2<-3 3<-0 3<-1 3<-2`).
pub const LIGHTSNN_GENOTYPE: &str =
    "skip zero conv3 conv3 zero skip conv3 conv3 zero skip conv3 conv3";
/// A genotype using every op the engine implements.
pub const ALL_OPS_GENOTYPE: &str =
    "zero conv1 avgpool conv3 skip zero conv3 avgpool conv1 skip conv3 maxpool";

impl TestModelSpec {
    /// A small CIFAR-10 network: 3x32x32, T = `t`, C1 = `c1`, C2 = 2 C1, p = 2, H = `hidden`,
    /// 10 classes x 10 votes.
    pub fn cifar(
        c1: u16,
        hidden: u16,
        t: u16,
        genotype: &str,
        bits: Bits,
        seed: u64,
    ) -> Result<Self> {
        Ok(TestModelSpec {
            dims: Dims {
                input: InputKind::Static,
                in_c: 3,
                in_h: 32,
                in_w: 32,
                stem_pool: false,
                t,
                c1,
                c2: 2 * c1,
                p: 2,
                hidden,
                classes: 10,
                votes: 10,
            },
            genotype: genotype
                .parse()
                .map_err(|e| anyhow!("genotype {genotype:?}: {e}"))?,
            bits,
            seed,
        })
    }
}

/// A random layer: `n_weights` weights, `n_out` outputs, real weights of magnitude about
/// `gain / sqrt(fan_in)` with per-output power-of-two scales, biases uniform in `bias` (real),
/// accumulator exponent offset `acc_off` (the stem's input exponent, 0 for spike-fed layers) and
/// output format `a_out`.
#[allow(clippy::too_many_arguments)]
fn layer(
    rng: &mut Rng,
    bits: Bits,
    n_weights: usize,
    n_out: usize,
    fan_in: usize,
    gain: f64,
    bias: (f64, f64),
    acc_off: i32,
    a_out: i32,
) -> OwnedLayer {
    let qmax = bits.qmax() as f64;
    let r = gain / (fan_in as f64).sqrt();
    let e: Vec<i32> = (0..n_out)
        .map(|_| (qmax / (r * rng.range(0.6, 1.0))).log2().floor() as i32)
        .collect();
    let w: Vec<i32> = (0..n_weights)
        .map(|_| rng.sym(qmax as i64) as i32)
        .collect();
    let b: Vec<i32> = e
        .iter()
        .map(|&eo| (rng.range(bias.0, bias.1) * 2f64.powi(eo + acc_off)).round() as i32)
        .collect();
    let s: Vec<i8> = e.iter().map(|&eo| (eo + acc_off - a_out) as i8).collect();
    OwnedLayer::new(bits, &w, &b, &s)
}

/// Builds the random model of `spec` (formats: input 2^12, cells 2^10, post 2^12, hidden 2^11,
/// logits 2^16).
pub fn random_model(spec: &TestModelSpec) -> OwnedModel {
    let mut rng = Rng::new(spec.seed);
    let d = spec.dims;
    let bits = spec.bits;
    let (a_in, a_cell, a_post, a_hid, a_out) = (12, 10, 12, 11, 16);
    let (c_in, c1, c2) = (d.in_c as usize, d.c1 as usize, d.c2 as usize);
    let stem = layer(
        &mut rng,
        bits,
        c1 * c_in * 9,
        c1,
        c_in * 9,
        2.5,
        (-0.3, 0.6),
        a_in,
        a_cell,
    );
    let cell = |rng: &mut Rng, c: usize| OwnedCell {
        exp: a_cell as u8,
        convs: spec
            .genotype
            .ops()
            .iter()
            .map(|op| {
                let k = match op {
                    Op::Conv3 => 3,
                    Op::Conv1 => 1,
                    _ => return None,
                };
                let gain = if k == 3 { 5.0 } else { 2.0 };
                Some(layer(
                    rng,
                    bits,
                    c * c * k * k,
                    c,
                    c * k * k,
                    gain,
                    (-0.1, 0.3),
                    0,
                    a_cell,
                ))
            })
            .collect(),
    };
    let post = |rng: &mut Rng, c: usize| {
        let s = 16;
        let mul: Vec<i32> = (0..c)
            .map(|_| (rng.range(0.4, 1.6) * 2f64.powi(a_post - a_cell + s)).round() as i32)
            .collect();
        let add: Vec<i32> = (0..c)
            .map(|_| (rng.range(-0.2, 0.6) * 2f64.powi(a_post + s)).round() as i32)
            .collect();
        OwnedPost::new(a_post as u8, &mul, &add, s as u8)
    };
    let cell1 = cell(&mut rng, c1);
    let post1 = post(&mut rng, c1);
    let down = layer(
        &mut rng,
        bits,
        c2 * c1 * 9,
        c2,
        c1 * 9,
        5.0,
        (-0.1, 0.4),
        0,
        a_cell,
    );
    let cell2 = cell(&mut rng, c2);
    let post2 = post(&mut rng, c2);
    let h = d.hidden as usize;
    let fc1 = layer(
        &mut rng,
        bits,
        d.fc1_in() * h,
        h,
        d.fc1_in(),
        6.0,
        (0.0, 0.0),
        0,
        a_hid,
    );
    let o = d.outputs();
    let fc2 = layer(&mut rng, bits, h * o, o, h, 3.0, (-0.2, 0.2), 0, a_out);

    // CIFAR-10 normalisation (SPEC §7) as an integer affine with shift 16.
    let (mean, std) = ([0.4913, 0.4821, 0.4465], [0.2470, 0.2434, 0.2615]);
    let s = 16;
    let sc = 2f64.powi(a_in + s);
    let mut norm = InputNorm {
        mul: heapless::Vec::new(),
        add: heapless::Vec::new(),
        shift: s as u8,
    };
    for c in 0..c_in.min(3) {
        norm.mul
            .push((sc / (255.0 * std[c])).round() as i32)
            .unwrap();
        norm.add
            .push((-mean[c] / std[c] * sc).round() as i32)
            .unwrap();
    }
    OwnedModel {
        dims: d,
        genotype: spec.genotype.clone(),
        bits,
        input: InputParts {
            exp: a_in as u8,
            norm: Some(norm),
        },
        stem,
        cell1,
        post1,
        down,
        cell2,
        post2,
        fc1,
        hidden_exp: a_hid as u8,
        fc2,
        out_exp: a_out as u8,
    }
}

/// The blob of the random model of `spec`.
pub fn random_blob(spec: &TestModelSpec) -> Result<Vec<u8>> {
    random_model(spec)
        .encode()
        .map_err(|e| anyhow!("encoding the test model: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recipe of the shipped `firmware/assets/model.bin` (`lightsnn-tools gen-blob` defaults).
    fn default_spec() -> TestModelSpec {
        TestModelSpec::cifar(8, 64, 5, LIGHTSNN_GENOTYPE, Bits::B8, 1).unwrap()
    }

    #[test]
    fn random_blob_decodes_and_is_deterministic() {
        let spec = TestModelSpec::cifar(4, 16, 2, ALL_OPS_GENOTYPE, Bits::B16, 9).unwrap();
        let a = random_blob(&spec).unwrap();
        assert_eq!(a, random_blob(&spec).unwrap());
        snn_nostd::model::decode(&a).unwrap();
    }

    /// The shipped blob is what `gen-blob` writes today: a blob-format change must come with
    /// `cargo run -p lightsnn-tools -- gen-blob` (else the firmware would fail to decode it).
    #[test]
    fn shipped_blob_is_current() {
        let path = crate::firmware::workspace_root().join("firmware/assets/model.bin");
        let shipped = std::fs::read(&path).unwrap();
        assert!(
            shipped == random_blob(&default_spec()).unwrap(),
            "{} is stale: regenerate it with `cargo run -p lightsnn-tools -- gen-blob`",
            path.display()
        );
    }

    #[test]
    fn shipped_images_are_cifar_records() {
        let path = crate::firmware::workspace_root().join("firmware/assets/images.bin");
        let images = std::fs::read(path).unwrap();
        assert!(!images.is_empty() && images.len().is_multiple_of(crate::CIFAR_RECORD));
        assert!(images.chunks(crate::CIFAR_RECORD).all(|r| r[0] < 10));
    }
}
