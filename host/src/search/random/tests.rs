//! SNASNet's random search: each candidate is exactly an independent scoring with its own
//! seeds, the search is deterministic, and it differs from the shared-weights variant.

use super::*;
use crate::config::{DatasetKind, NetConfig, Overrides};
use crate::search::run::run_search;
use crate::search::score::argmax_first;
use crate::search::setup::Method;
use snn_nostd::genotype::{CellType, OpSet};

fn setup(method: Method) -> Result<SearchSetup> {
    let o = Overrides {
        width: Some(6.0 / 256.0),
        timesteps: Some(2),
        hidden: Some(24),
        votes: Some(2),
    };
    let mut net = NetConfig::for_dataset(DatasetKind::Cifar10, &o)?;
    net.cell = CellType::Backward;
    net.ops = OpSet::snasnet();
    Ok(SearchSetup {
        net,
        batch: 8,
        repeats: 2,
        seed: 5,
        method,
        score: Default::default(),
        thresholds: Default::default(),
        random_samples: 5,
        kernel_path: KernelPath::CpuEvent,
        candidates_per_pass: 0,
        data_label: "builtin".into(),
        fit: None,
    })
}

#[test]
fn every_candidate_is_an_independent_scoring() -> Result<()> {
    let data = crate::data::sample::cifar10_sample(crate::data::Split::Train)?;
    let s = setup(Method::Random)?;
    let pb = crate::progress::NoProgress;
    let r = run_search(&s, &data, &Device::Cpu, &pb)?;
    assert_eq!(r.config.method, "random");
    assert_eq!(r.config.random_samples, Some(5));
    let scores = &r.rounds[0].scores;
    assert_eq!(scores.len(), 5);
    for (i, c) in scores.iter().enumerate() {
        let g: Genotype = c.candidate.parse().expect("a genotype");
        let mixing = Mixing::single_path(&g);
        let seed = candidate_seed(s.seed, i);
        let net = Network::new(&s.net, &mixing.alive(), seed, &Device::Cpu)?;
        let batches = draw_batches(&data, 8, 2, round_batch_seed(seed, 1), &Device::Cpu)?;
        let want =
            Scorer::new(&net, KernelPath::CpuEvent)?.sahd_score(&mixing, &batches, s.mode())?;
        assert_eq!(c.score.to_bits(), want.to_bits(), "candidate {i} ({g})");
    }
    let best = argmax_first(&scores.iter().map(|c| c.score).collect::<Vec<_>>()).unwrap();
    assert_eq!(r.genotype, scores[best].candidate);
    assert_eq!(r.best_score, Some(scores[best].score));
    let again = run_search(&s, &data, &Device::Cpu, &pb)?;
    assert_eq!(r.without_timing(), again.without_timing(), "deterministic");
    Ok(())
}

#[test]
fn fresh_weights_change_the_score_of_a_genotype() -> Result<()> {
    // The same genotype at two candidate indices gets two different networks and batches, so
    // two different scores (the shared variant would give it one).
    let data = crate::data::sample::cifar10_sample(crate::data::Split::Train)?;
    let s = setup(Method::Random)?;
    let g: Genotype = "zero,zero,zero,conv3,zero,zero,skip,zero,zero,conv1,skip,conv3".parse()?;
    let mixing = Mixing::single_path(&g);
    let score_at = |i: usize| -> Result<f64> {
        let seed = candidate_seed(s.seed, i);
        let net = Network::new(&s.net, &mixing.alive(), seed, &Device::Cpu)?;
        let batches = draw_batches(&data, 8, 2, round_batch_seed(seed, 1), &Device::Cpu)?;
        Scorer::new(&net, KernelPath::CpuEvent)?.sahd_score(&mixing, &batches, s.mode())
    };
    assert_ne!(score_at(0)?, score_at(1)?);
    assert_ne!(candidate_seed(0, 0), candidate_seed(0, 1));
    assert_ne!(candidate_seed(0, 1), candidate_seed(1, 0));
    Ok(())
}

#[test]
fn shared_variant_keeps_its_own_sampler() -> Result<()> {
    let data = crate::data::sample::cifar10_sample(crate::data::Split::Train)?;
    let s = setup(Method::RandomShared)?;
    let pb = crate::progress::NoProgress;
    let a = run_search(&s, &data, &Device::Cpu, &pb)?;
    assert_eq!(a.config.method, "random-shared");
    // Its genotypes are uniform per edge: over 5 samples of 12 edges, some pair has both
    // directions non-zero, which SNASNet's sampler never produces.
    let both = a.rounds[0].scores.iter().any(|c| {
        let g: Genotype = c.candidate.parse().unwrap();
        let found = g.edges().any(|(e, op)| {
            let back = snn_nostd::genotype::Edge {
                to: e.from,
                from: e.to,
            };
            op != snn_nostd::genotype::Op::Zero
                && g.op_on(back) != Some(snn_nostd::genotype::Op::Zero)
        });
        found
    });
    assert!(
        both,
        "no pair with both directions in {:?}",
        a.rounds[0].scores
    );
    Ok(())
}
