//! Random test models, quantised straight into the blob format.
//!
//! Until a trained network is exported (`lightsnn::export`), the firmware is tested with random
//! models built by [`snn_nostd::testutil`]: random weights with per-channel power-of-two scales,
//! random folded-BN post stages and the CIFAR-10 input normalisation, with the gains of
//! [`RECIPE`] chosen so that every LIF layer fires at a moderate rate on 3x32x32 CIFAR input. The
//! values do not matter for the bit-exact comparison of device and host; they only need to
//! exercise the engine (non-trivial spikes in every layer, varied predictions).

use anyhow::{Context, Result};
use snn_nostd::genotype::Genotype;
use snn_nostd::model::owned::OwnedModel;
use snn_nostd::model::{Bits, InputKind, Shape};
use snn_nostd::testutil::{self, LayerInit, Recipe, Rng};

/// What to generate.
#[derive(Debug, Clone)]
pub struct TestModelSpec {
    /// Shapes (static 3x32x32 input for the CIFAR firmware).
    pub shape: Shape,
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
        c1: usize,
        hidden: usize,
        t: usize,
        genotype: &str,
        bits: Bits,
        seed: u64,
    ) -> Result<Self> {
        Ok(TestModelSpec {
            shape: Shape {
                input: InputKind::Static,
                in_c: 3,
                in_h: 32,
                in_w: 32,
                stem_pool: false,
                timesteps: t,
                c1,
                c2: 2 * c1,
                pool: 2,
                hidden,
                classes: 10,
                votes: 10,
            },
            genotype: genotype
                .parse()
                .with_context(|| format!("genotype {genotype:?}"))?,
            bits,
            seed,
        })
    }
}

impl TestModelSpec {
    /// A small N-MNIST network: event input, `t` frames of 2 x 34 x 34 counts, C1 = `c1`,
    /// C2 = 2 C1, p = 2, H = `hidden`, 10 classes x 10 votes (the blob records the dataset
    /// N-MNIST: event input with 10 classes).
    pub fn nmnist(
        c1: usize,
        hidden: usize,
        t: usize,
        genotype: &str,
        bits: Bits,
        seed: u64,
    ) -> Result<Self> {
        let mut s = TestModelSpec::cifar(c1, hidden, t, genotype, bits, seed)?;
        s.shape = Shape {
            input: InputKind::Events,
            in_c: 2,
            in_h: 34,
            in_w: 34,
            ..s.shape
        };
        Ok(s)
    }
}

/// The recipe of the firmware's test models (formats: input 2^12, cells 2^10, post 2^12,
/// hidden 2^11, logits 2^16).
pub const RECIPE: Recipe = Recipe {
    input_exp: 12,
    cell_exp: 10,
    post_exp: 12,
    hidden_exp: 11,
    out_exp: 16,
    stem: LayerInit::new(2.5, (-0.3, 0.6)),
    conv3: LayerInit::new(5.0, (-0.1, 0.3)),
    conv1: LayerInit::new(2.0, (-0.1, 0.3)),
    down: LayerInit::new(5.0, (-0.1, 0.4)),
    fc1: LayerInit::new(6.0, (0.0, 0.0)),
    fc2: LayerInit::new(3.0, (-0.2, 0.2)),
    post_gain: (0.4, 1.6),
    post_offset: (-0.2, 0.6),
};

/// Builds the random model of `spec` ([`RECIPE`], generator seeded with `spec.seed`).
pub fn random_model(spec: &TestModelSpec) -> OwnedModel {
    testutil::random_model(
        spec.shape,
        &spec.genotype,
        spec.bits,
        &RECIPE,
        &mut Rng::new(spec.seed),
    )
}

/// The blob of the random model of `spec`.
pub fn random_blob(spec: &TestModelSpec) -> Result<Vec<u8>> {
    random_model(spec)
        .encode()
        .context("encoding the test model")
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

    /// The shipped N-MNIST records are whole records of a T 4 event network.
    #[test]
    fn shipped_nmnist_images_are_event_records() {
        let path = crate::firmware::workspace_root().join("firmware/assets/nmnist-images.bin");
        let images = std::fs::read(path).unwrap();
        let spec = TestModelSpec::nmnist(4, 32, 4, LIGHTSNN_GENOTYPE, Bits::B8, 11).unwrap();
        assert_eq!(spec.shape.record_len(), 1 + 4 * 2 * 34 * 34);
        assert_eq!(spec.shape.record_count(images.len()), Some(3));
        assert!(images.chunks(spec.shape.record_len()).all(|r| r[0] < 10));
    }

    #[test]
    fn shipped_images_are_cifar_records() {
        let path = crate::firmware::workspace_root().join("firmware/assets/images.bin");
        let images = std::fs::read(path).unwrap();
        assert!(!images.is_empty() && images.len().is_multiple_of(crate::CIFAR_RECORD));
        assert!(images.chunks(crate::CIFAR_RECORD).all(|r| r[0] < 10));
    }
}
