//! A stable-Rust fuzz run of the checkpoint-metadata and `state.json` readers (the libFuzzer
//! target `fuzz/fuzz_targets/readers.rs` runs the same readers under coverage guidance; see
//! fuzz/README.md). Valid seeds (a small checkpoint and a run's state) are mutated: bytes
//! flipped, replaced, inserted or cut, and JSON values replaced by hostile ones (huge, negative,
//! fractional, of another type). Every reader must return an error or a value that passes its
//! own checks; none may panic. `PROPTEST_CASES` sets the number of cases (CI runs more, see
//! `.ci/run`).

mod common;

use common::readers::{check_checkpoint as read_checkpoint, check_state as read_state};
use common::GENOTYPE;
use lightsnn::config::{DatasetKind, NetConfig, Overrides};
use lightsnn::model::{Mixing, Network};
use lightsnn::train::checkpoint::{
    checkpoint_meta_from_bytes, tensors_to_bytes, CheckpointMeta, METADATA_KEY,
};
use lightsnn::train::{
    Best, LinearInit, LossKind, OptimState, RngState, SgdConfig, TrainConfig, TrainState,
    STATE_FORMAT,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use snn_nostd::genotype::Genotype;
use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

/// A tiny N-MNIST network's configuration.
fn net() -> NetConfig {
    let o = Overrides {
        width: Some(1.0 / 64.0),
        timesteps: Some(2),
        hidden: Some(8),
        votes: Some(1),
    };
    NetConfig::for_dataset(DatasetKind::Nmnist, &o).unwrap()
}

/// A valid checkpoint's bytes.
fn checkpoint_seed() -> &'static [u8] {
    static SEED: OnceLock<Vec<u8>> = OnceLock::new();
    SEED.get_or_init(|| {
        let g: Genotype = GENOTYPE.parse().unwrap();
        let net = Network::new(
            &net(),
            &Mixing::single_path(&g).alive(),
            0,
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let meta = CheckpointMeta::new(&net.cfg, &g, 1, "fuzz");
        let md = HashMap::from([(
            METADATA_KEY.to_string(),
            serde_json::to_string(&meta).unwrap(),
        )]);
        tensors_to_bytes(&net.params.all_tensors(), md).unwrap()
    })
}

/// A valid `state.json`.
fn state_seed() -> &'static str {
    static SEED: OnceLock<String> = OnceLock::new();
    SEED.get_or_init(|| {
        let config = TrainConfig {
            genotype: GENOTYPE.into(),
            net: net(),
            epochs: 3,
            batch: 8,
            optim: SgdConfig::paper(0.1),
            loss: LossKind::Ce,
            seed: 0,
            val_fraction: 0.1,
            data: Some("data".into()),
            linear_init: LinearInit::Kaiming,
        };
        let st = TrainState {
            format: STATE_FORMAT.into(),
            epoch: 1,
            optimizer: OptimState {
                kind: "sgd".into(),
                config: config.optim.clone(),
                schedule: String::new(),
                steps: 5,
                buffers: "last.optim.safetensors".into(),
            },
            rng: RngState {
                generator: "ChaCha8Rng".into(),
                seed: 0,
                derivation: String::new(),
                next_epoch: 1,
            },
            best: Some(Best {
                epoch: 1,
                val_top1: 0.5,
            }),
            history: Vec::new(),
            version: "fuzz".into(),
            config,
        };
        serde_json::to_string_pretty(&st).unwrap()
    })
}

/// A byte-level edit.
#[derive(Clone, Debug)]
enum Edit {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Cut(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, m)| Edit::Flip(i, m)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Edit::Set(i, v)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<usize>(), 1..64usize).prop_map(|(i, n)| Edit::Cut(i, n)),
    ]
}

fn apply(bytes: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for e in edits {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
        match e {
            Edit::Flip(i, m) if !b.is_empty() => {
                let k = at(*i, b.len());
                b[k] ^= m;
            }
            Edit::Set(i, v) if !b.is_empty() => {
                let k = at(*i, b.len());
                b[k] = *v;
            }
            Edit::Insert(i, s) => {
                let k = at(*i, b.len() + 1);
                b.splice(k..k, s.iter().copied());
            }
            Edit::Cut(i, n) if !b.is_empty() => {
                let k = at(*i, b.len());
                b.drain(k..(k + n).min(b.len()));
            }
            _ => {}
        }
    }
    b
}

/// Hostile JSON values.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(u64::MAX)),
        Just(json!(1u64 << 24)),
        Just(json!(1_000_000_000u64)),
        Just(json!(1e308)),
        Just(json!(-0.5)),
        Just(json!(2.0)),
        Just(json!(null)),
        Just(json!("")),
        Just(json!("conv3")),
        Just(json!([])),
        Just(json!({})),
        any::<i64>().prop_map(|v| json!(v)),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| json!(v)),
    ]
}

/// Every pointer to a leaf of `v`.
fn leaves(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, x)| leaves(x, format!("{at}/{k}"), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| leaves(x, format!("{at}/{i}"), out)),
        _ => out.push(at),
    }
}

/// `v` with the leaves picked by `picks` replaced.
fn replace_leaves(v: &Value, picks: &[(usize, Value)]) -> Value {
    let mut all = Vec::new();
    leaves(v, String::new(), &mut all);
    let mut m = v.clone();
    for (i, x) in picks {
        if let Some(slot) = m.pointer_mut(&all[i % all.len()]) {
            *slot = x.clone();
        }
    }
    m
}

/// The checkpoint seed with `meta` (any text) as its lightsnn metadata.
fn with_metadata(meta: &str) -> Vec<u8> {
    common::with_meta(checkpoint_seed(), meta)
}

#[test]
fn the_seeds_are_read() {
    checkpoint_meta_from_bytes(checkpoint_seed(), "seed").unwrap();
    TrainState::parse(state_seed(), Path::new("state.json")).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(512),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn checkpoint_bytes(edits in prop::collection::vec(edit(), 1..6)) {
        read_checkpoint(&apply(checkpoint_seed(), &edits));
    }

    #[test]
    fn checkpoint_metadata_values(picks in prop::collection::vec((any::<usize>(), value()), 1..4)) {
        let meta = common::checkpoint_meta(checkpoint_seed());
        read_checkpoint(&with_metadata(&replace_leaves(&meta, &picks).to_string()));
    }

    #[test]
    fn checkpoint_metadata_text(edits in prop::collection::vec(edit(), 1..6)) {
        let meta = common::checkpoint_meta(checkpoint_seed()).to_string();
        let text = String::from_utf8_lossy(&apply(meta.as_bytes(), &edits)).into_owned();
        read_checkpoint(&with_metadata(&text));
    }

    #[test]
    fn state_values(picks in prop::collection::vec((any::<usize>(), value()), 1..4)) {
        let v: Value = serde_json::from_str(state_seed()).unwrap();
        read_state(&replace_leaves(&v, &picks).to_string());
    }

    #[test]
    fn state_text(edits in prop::collection::vec(edit(), 1..6)) {
        read_state(&String::from_utf8_lossy(&apply(state_seed().as_bytes(), &edits)));
    }
}
