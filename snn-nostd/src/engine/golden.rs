//! Regression fingerprints of the engine's results: every prediction, class score and spike
//! code (per layer and timestep) of random models over many genotypes, weight widths, input
//! kinds and magnitudes (recipes whose node sums saturate), hashed per case.
//!
//! The hashes were recorded with the engine as it was before its buffers were reorganised
//! (back states recomputed from the previous timestep's spikes, cell-major stages, a
//! recomputed stem): any change of a single bit of those results fails here. Synaptic operation
//! counts are not part of the fingerprint (the engine no longer computes the back states of the
//! last timestep, which no result reads).

use super::tests::{random_input, test_rng, Arenas, Recorder, Spec};
use super::*;
use crate::crc32;
use crate::genotype::Genotype;
use crate::model::{decode, InputKind, Shape};
use crate::testutil::{self, LayerInit, Recipe};
use alloc::vec::Vec;

/// Genotypes of the fingerprints: every op on forward and backward edges, the LightSNN-space
/// test genotype, the demo (all-conv3 but two) and all-conv worst cases, pools and skips on
/// backward edges, and a forward cell.
const GENOTYPES: [&str; 7] = [
    "conv3 avgpool conv1 conv3 zero skip conv1 maxpool conv3 skip avgpool conv3",
    "skip zero conv3 conv3 zero skip conv3 conv3 zero skip conv3 conv3",
    "conv3 conv3 conv3 conv3 conv3 zero conv3 conv3 conv3 zero conv3 conv3",
    "conv3 conv3 conv3 conv3 conv3 conv3 conv3 conv3 conv3 conv3 conv3 conv3",
    "zero conv1 avgpool conv3 skip zero conv3 avgpool conv1 skip conv3 maxpool",
    "maxpool conv3 skip conv1 conv3 avgpool skip conv3 conv1 conv3 conv3 zero",
    "conv3 conv1 avgpool skip conv3 maxpool",
];

/// The tests' recipe (`heat` 0), or one whose convolutions are stronger (1: some node sums
/// saturate; 2: many do, hundreds to thousands of saturated adds per case), so that the order
/// of the saturating adds is exercised.
fn recipe(input: InputKind, heat: u8) -> Recipe {
    let mut r = super::tests::small_recipe(input);
    if heat == 0 {
        return r;
    }
    let k = if heat == 1 { 0.4 } else { 1.0 };
    r.cell_exp = 12;
    r.conv3 = LayerInit::new(20.0 * k, (-2.0 * k, 1.0 * k));
    r.conv1 = LayerInit::new(12.0 * k, (-2.0 * k, 1.0 * k));
    r.down = LayerInit::new(20.0 * k, (-k, k));
    r.stem = LayerInit::new(16.0 * k, (-2.0 * k, 3.0 * k));
    r
}

/// The fingerprint of one case: three random inputs through a random model, with the stem's
/// output kept or recomputed at every timestep (static input; `None`: the engine's choice).
fn fingerprint(
    shape: Shape,
    geno: &str,
    bits: Bits,
    heat: u8,
    seed: u64,
    keep: Option<bool>,
) -> u32 {
    let genotype: Genotype = geno.parse().unwrap();
    let spec = Spec {
        shape,
        genotype,
        bits,
    };
    let recipe = recipe(shape.input, heat);
    let owned = testutil::random_model(shape, &spec.genotype, bits, &recipe, &mut test_rng(seed));
    let blob = owned.encode().unwrap();
    let model = decode(&blob).unwrap();
    let mut ar = Arenas::for_model(&model);
    // Room for either choice.
    ar.act.resize(2 * ar.act.len() + shape.input_len(), 0);
    let (act, acc, bits_arena) = (&mut ar.act, &mut ar.acc, &mut ar.bits);
    let mut eng = Engine::with_stem(&model, act, acc, bits_arena, keep).unwrap();
    if let Some(k) = keep {
        assert_eq!(eng.keeps_stem(), k && shape.input == InputKind::Static);
    }
    let mut rng = test_rng(seed + 77);
    let mut crc = 0u32;
    for _ in 0..3 {
        let q = random_input(&mut rng, &shape, &model);
        let mut rec = Recorder::default();
        let pred = eng.infer(&q, &mut rec).unwrap();
        crc = crc32::update(crc, &(pred as u32).to_le_bytes());
        for s in eng.scores() {
            crc = crc32::update(crc, &s.to_le_bytes());
        }
        // Layer by layer, timestep by timestep: independent of the order of the reports.
        let mut codes: Vec<_> = rec.0.iter().collect();
        codes.sort_by_key(|(t, l, _)| (*l, *t));
        for (t, l, s) in codes {
            let tag = alloc::format!("{l}@{t}:");
            crc = crc32::update(crc, tag.as_bytes());
            let bytes: Vec<u8> = s.iter().map(|&b| b as u8).collect();
            crc = crc32::update(crc, &bytes);
        }
    }
    for s in eng.stats() {
        crc = crc32::update(crc, &s.spikes.to_le_bytes());
        crc = crc32::update(crc, &s.steps.to_le_bytes());
    }
    crc
}

/// Every case, in a fixed order: genotype x (static i8, static i16, events i8) x heat 0, 1, 2
/// x seeds 0 and 1.
fn all_fingerprints() -> Vec<u32> {
    let mut out = Vec::new();
    for geno in GENOTYPES {
        for (input, bits) in [
            (InputKind::Static, Bits::B8),
            (InputKind::Static, Bits::B16),
            (InputKind::Events, Bits::B8),
        ] {
            for heat in 0..3 {
                for seed in 0..2 {
                    let shape = super::tests::small_dims(input);
                    let a = fingerprint(shape, geno, bits, heat, seed, Some(false));
                    let b = fingerprint(shape, geno, bits, heat, seed, Some(true));
                    assert_eq!(a, b, "{geno} {input:?} {bits:?} heat {heat} seed {seed}");
                    out.push(a);
                }
            }
        }
    }
    out
}

/// Recorded with the engine before the buffer reorganisation (see the module docs).
const EXPECTED: [u32; 126] = [
    0xfa5fbdee, 0x6e910548, 0x0f66ad74, 0x362f39f6, 0x38f6068d, 0x819ee17c, 0x70a5b8bd, 0x2c5c7c8a,
    0xcb4e470a, 0x92b82e27, 0xc9ac1646, 0x1047bc75, 0x7aa27131, 0x6f5ac39e, 0xa9db43c7, 0x4e612218,
    0x7ae4e527, 0x22f04076, 0x4bef165b, 0x390dc7ef, 0x8c18a766, 0x94092a96, 0xb76624e4, 0xe8c9c9fc,
    0xcebc9eee, 0xd03365cb, 0x9eaa0976, 0x6e0ea703, 0x3a04e93a, 0x653cf441, 0xa8d2f937, 0x78430b21,
    0xc71ca02c, 0x21cd3353, 0xe5d0a9ef, 0x6178b1a0, 0xe2d78f25, 0xbb499117, 0x8ebf9c55, 0xf54ec388,
    0xa265d906, 0x21bcecb4, 0xb233b597, 0xbf3a548f, 0xa038ff7e, 0x400d7ea3, 0xef21b05a, 0x234acc1e,
    0x4d3580a6, 0x64698ad5, 0xd567b893, 0x904b1192, 0xc3764060, 0x5d5aec79, 0x0fa8ee9f, 0x6bd75a29,
    0x658da203, 0xf1f9cfd9, 0x41e85a9d, 0x073be040, 0x6365dae7, 0x795c776c, 0x1e510a35, 0x966fd921,
    0x12c9f2a7, 0xa73c8fa1, 0xb7214c0f, 0x22878139, 0x41b00e8c, 0xa72f526c, 0x767f21de, 0x1411e0cd,
    0x26c735a9, 0x44e13709, 0x0695ea10, 0x805c8696, 0xbfa9da53, 0xe10c1ac6, 0x5266639b, 0xdc0c00a7,
    0x0fea3902, 0xf686b60f, 0x9aab7190, 0x5b4138bb, 0x76f7e3cd, 0xd8919e8a, 0x492e0fa3, 0xd9d766f7,
    0x2f34d31f, 0x6c274b79, 0x84d4812f, 0x450b6f94, 0x6527b208, 0x8a6443ed, 0xb668334f, 0x1f3b7fb3,
    0xcce1de5c, 0x217d772e, 0xe275c487, 0xbac67349, 0x1e12c0de, 0x200022ef, 0xaeb461f2, 0x52b4475c,
    0x12fd2f96, 0xd4ea3c0b, 0x8689bb72, 0xb24e5704, 0xf4a83e66, 0x1240be3a, 0x9522f220, 0xce9d797f,
    0x3255b249, 0xf4d1cdd2, 0x8c7f59c4, 0xa2c86b8e, 0xcd541c76, 0x8f0ccbe7, 0xeae3bfa2, 0xb1f48f44,
    0x2f419d27, 0x9b61b494, 0xaef80b15, 0xaeca83fb, 0x647f4545, 0xbf73cd16,
];

#[test]
fn results_equal_the_recorded_fingerprints() {
    let got = all_fingerprints();
    if std::env::var_os("LIGHTSNN_PRINT_GOLDEN").is_some() {
        std::println!("{got:#010x?}");
    }
    let bad: Vec<usize> = (0..got.len()).filter(|&i| got[i] != EXPECTED[i]).collect();
    assert!(bad.is_empty(), "cases {bad:?} changed");
}
