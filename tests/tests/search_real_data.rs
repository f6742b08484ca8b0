//! Real searches on CIFAR-10 and N-MNIST at a small width: the result is a complete
//! architecture, the JSON is complete, and two runs with one seed are identical. The default
//! suite searches the real samples the repository ships (`data/`); with the feature `real-data`
//! the same checks run on the larger real data of `$LIGHTSNN_DATA` (module `real_data`).

use lightsnn::config::{DatasetKind, NetConfig, Overrides};
use lightsnn::data::{Dataset, Split};
use lightsnn::search::{run_search, KernelPath, Method, SearchReport, SearchSetup};
use lightsnn_tests::shipped_data;
use snn_nostd::genotype::Genotype;
use std::path::Path;

fn setup(kind: DatasetKind, t: usize, method: Method) -> SearchSetup {
    let o = Overrides {
        width: Some(if kind == DatasetKind::Cifar10 {
            4.0 / 256.0
        } else {
            4.0 / 64.0
        }),
        timesteps: Some(t),
        hidden: Some(32),
        votes: Some(2),
    };
    SearchSetup {
        net: NetConfig::for_dataset(kind, &o).unwrap(),
        batch: 8,
        repeats: 1,
        seed: 3,
        method,
        score: Default::default(),
        thresholds: Default::default(),
        random_samples: 6,
        kernel_path: KernelPath::for_device(&candle_core::Device::Cpu),
        candidates_per_pass: 0,
        data_label: "test".into(),
        fit: None,
    }
}

fn search(s: &SearchSetup, data: &Dataset) -> SearchReport {
    run_search(
        s,
        data,
        &candle_core::Device::Cpu,
        &lightsnn::progress::NoProgress,
    )
    .unwrap()
}

fn check_structure(r: &SearchReport, s: &SearchSetup) {
    let g: Genotype = r.genotype.parse().expect("genotype parses");
    assert_eq!(g.ops().len(), 12, "one op per edge");
    g.check_op_set(&s.net.ops).unwrap();
    assert_eq!(r.edges.len(), 12);
    assert_eq!(r.rounds.len(), 2, "3 ops -> 2 rounds");
    assert_eq!(r.rounds[0].scores.len(), 36);
    assert_eq!(r.rounds[1].scores.len(), 24);
    for round in &r.rounds {
        assert_eq!(round.pruned.len(), 12);
        assert!(
            round.scores.iter().all(|c| c.score.is_finite()),
            "finite scores"
        );
    }
    assert!(r.rounds[1].alive_after.iter().all(|a| a.len() == 1));
    // the JSON round-trips and carries config, seed and device
    let json = serde_json::to_string(r).unwrap();
    let back: SearchReport = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, r);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    for key in [
        "genotype", "cell", "ops", "rounds", "seed", "config", "device", "wall_s",
    ] {
        assert!(v.get(key).is_some(), "JSON lacks {key}");
    }
    assert!(v["rounds"][0].get("wall_s").is_some() && v["rounds"][0].get("device").is_some());
}

/// A pruning search on the CIFAR-10 training split of `dir`: complete, deterministic, and
/// another seed gives other scores.
fn cifar10_search_is_complete_and_deterministic(dir: &Path) {
    let data = Dataset::load(DatasetKind::Cifar10, dir, Split::Train, 1).unwrap();
    let s = setup(DatasetKind::Cifar10, 2, Method::Prune);
    let a = search(&s, &data);
    check_structure(&a, &s);
    let b = search(&s, &data);
    assert_eq!(
        a.without_timing(),
        b.without_timing(),
        "same seed, same result, bit for bit"
    );
    // another seed draws other batches and weights: scores differ
    let mut s2 = s.clone();
    s2.seed = 4;
    let c = search(&s2, &data);
    assert_ne!(a.rounds[0].scores, c.rounds[0].scores);
}

/// A pruning search on the N-MNIST training split of `dir` (T = 3): complete and deterministic.
fn nmnist_search_is_complete_and_deterministic(dir: &Path) {
    let s = setup(DatasetKind::Nmnist, 3, Method::Prune);
    let data = Dataset::load(
        DatasetKind::Nmnist,
        dir,
        Split::Train,
        s.net.shape.timesteps,
    )
    .unwrap();
    let a = search(&s, &data);
    check_structure(&a, &s);
    let b = search(&s, &data);
    assert_eq!(a.without_timing(), b.without_timing());
}

#[test]
fn cifar10_sample_search_is_complete_and_deterministic() {
    cifar10_search_is_complete_and_deterministic(&shipped_data("cifar10-sample"));
}

#[test]
fn nmnist_sample_search_is_complete_and_deterministic() {
    nmnist_search_is_complete_and_deterministic(&shipped_data("nmnist-sample"));
}

#[test]
fn random_search_keeps_the_best_sample() {
    let dir = shipped_data("cifar10-sample");
    let data = Dataset::load(DatasetKind::Cifar10, &dir, Split::Train, 1).unwrap();
    let s = setup(DatasetKind::Cifar10, 2, Method::Random);
    let r = search(&s, &data);
    let scores = &r.rounds[0].scores;
    assert_eq!(scores.len(), 6);
    let best = scores
        .iter()
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .unwrap();
    assert_eq!(best.candidate, r.genotype);
    assert_eq!(r.best_score, Some(best.score));
}

/// The same searches on the larger real data of `$LIGHTSNN_DATA` (extended suite).
#[cfg(feature = "real-data")]
mod real_data {
    use lightsnn_tests::real_data;

    #[test]
    fn cifar10_search_is_complete_and_deterministic() {
        super::cifar10_search_is_complete_and_deterministic(&real_data("cifar10-lossless-subset"));
    }

    #[test]
    fn nmnist_search_is_complete_and_deterministic() {
        super::nmnist_search_is_complete_and_deterministic(&real_data("nmnist-small"));
    }
}
