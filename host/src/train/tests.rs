//! Training tests: exact resume and determinism on the real samples the repository ships
//! (`data/`), gradients, bad input and, with the feature `real-data`, accuracy above chance on
//! the larger real data of `$LIGHTSNN_DATA` (module `real_data`).

use super::checkpoint::{load_checkpoint, save_checkpoint, CheckpointMeta};
use super::eval::{stem_macs, SpikeCounter};
use super::*;
use crate::config::{DatasetKind, NetConfig, Overrides};
use crate::data::{Dataset, Split};
use crate::model::lif::{atan_surrogate_grad_scalar, LifState};
use crate::model::{LayerId, SpikeSink};
use candle_core::{DType, Var};
use lightsnn_tests::shipped_data;
use snn_nostd::genotype::LifClass;

/// x1 = conv3(x0), x2 = x0, x3 = x1 + conv3(x2): two conv3 edges per cell (cheap on the CPU).
const GENOTYPE: &str = "zero,zero,zero,conv3,zero,zero,skip,zero,zero,zero,skip,conv3";

fn config(dataset: DatasetKind, width: f64, t: usize, epochs: usize, batch: usize) -> TrainConfig {
    let o = Overrides {
        width: Some(width),
        timesteps: Some(t),
        hidden: Some(64),
        votes: None,
    };
    TrainConfig {
        genotype: GENOTYPE.into(),
        net: NetConfig::for_dataset(dataset, &o).unwrap(),
        epochs,
        batch,
        optim: SgdConfig::paper(0.1),
        loss: LossKind::Ce,
        seed: 0,
        val_fraction: 0.1,
        data: None,
        linear_init: LinearInit::Kaiming,
    }
}

fn quiet() -> RunControl {
    RunControl {
        quiet: true,
        ..Default::default()
    }
}

/// Every tensor of a safetensors file, as raw bits, by name.
fn tensor_bits(path: &Path) -> Result<Vec<(String, Vec<u32>)>> {
    let (t, _) = checkpoint::read_tensors(path, &Device::Cpu)?;
    let mut v: Vec<(String, Vec<u32>)> = t
        .into_iter()
        .map(|(k, t)| {
            let bits = t
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .into_iter()
                .map(f32::to_bits)
                .collect();
            (k, bits)
        })
        .collect();
    v.sort();
    Ok(v)
}

fn history_without_time(dir: &Path) -> Result<Vec<EpochMetrics>> {
    let mut h = TrainState::read(dir)?.history;
    for m in &mut h {
        m.epoch_s = 0.0;
    }
    Ok(h)
}

/// Two uninterrupted runs and one run stopped after each epoch and resumed end with
/// bit-identical weights, BatchNorm statistics, momentum buffers and metrics.
fn check_resume(cfg: &TrainConfig, data: &Dataset) -> Result<()> {
    let root = tempfile::tempdir()?;
    let (a, b, c) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("c"),
    );
    let dev = Device::Cpu;
    train(&a, cfg, data, &dev, &quiet(), &NoProgress)?;
    train(&b, cfg, data, &dev, &quiet(), &NoProgress)?;
    let step = |resume: bool| RunControl {
        resume,
        stop_after: Some(1),
        quiet: true,
        ..Default::default()
    };
    let first = train(&c, cfg, data, &dev, &step(false), &NoProgress)?;
    assert_eq!((first.epochs_done, first.complete), (1, false));
    // A fresh run into a run folder is refused.
    let err = train(&c, cfg, data, &dev, &quiet(), &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--resume"), "{err}");
    // So is resuming with another configuration.
    let mut other = cfg.clone();
    other.optim.lr *= 2.0;
    let err = train(&c, &other, data, &dev, &step(true), &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains("state.json"), "{err}");
    let mut done = first.epochs_done;
    while done < cfg.epochs {
        let o = train(&c, cfg, data, &dev, &step(true), &NoProgress)?;
        assert_eq!(o.epochs_done, done + 1);
        done = o.epochs_done;
    }
    for f in [files::LAST, files::OPTIM, files::BEST] {
        let ta = tensor_bits(&a.join(f))?;
        assert!(!ta.is_empty());
        assert!(ta == tensor_bits(&b.join(f))?, "{f}: two runs differ");
        assert!(ta == tensor_bits(&c.join(f))?, "{f}: resumed run differs");
    }
    // A kill after the pending files of epoch 2 were written but before state.json committed
    // it: the resume discards them. A kill after the commit but before the renames: the
    // resume renames them into place. Both end bit-identical to the uninterrupted run.
    for committed in [false, true] {
        let d = root.path().join(format!("kill-{committed}"));
        train(&d, cfg, data, &dev, &step(false), &NoProgress)?;
        let two = root.path().join(format!("two-{committed}"));
        train(
            &two,
            cfg,
            data,
            &dev,
            &RunControl {
                stop_after: Some(2),
                ..quiet()
            },
            &NoProgress,
        )?;
        for f in [files::LAST, files::OPTIM, files::BEST] {
            std::fs::copy(two.join(f), d.join(format!("{f}.pending")))?;
        }
        if committed {
            std::fs::copy(two.join(files::STATE), d.join(files::STATE))?;
        }
        let o = train(&d, cfg, data, &dev, &step(true), &NoProgress)?;
        assert_eq!(
            o.epochs_done,
            (if committed { 3 } else { 2 }).min(cfg.epochs)
        );
        train(
            &d,
            cfg,
            data,
            &dev,
            &RunControl {
                resume: true,
                ..quiet()
            },
            &NoProgress,
        )?;
        assert!(
            tensor_bits(&a.join(files::LAST))? == tensor_bits(&d.join(files::LAST))?,
            "killed run (committed: {committed}) differs"
        );
        assert!(!d.join(format!("{}.pending", files::LAST)).exists());
    }
    let h = history_without_time(&a)?;
    assert_eq!(h.len(), cfg.epochs);
    assert_eq!(h, history_without_time(&b)?);
    assert_eq!(h, history_without_time(&c)?);
    // The weights moved.
    let init = Network::new(
        &cfg.net,
        &Mixing::single_path(&cfg.genotype()?).alive(),
        cfg.seed,
        &dev,
    )?;
    let fc1 = init.fc1.as_tensor().flatten_all()?.to_vec1::<f32>()?;
    let trained = tensor_bits(&a.join(files::LAST))?;
    let (_, fc1_trained) = trained.iter().find(|(k, _)| k == "fc1.weight").unwrap();
    assert_ne!(
        fc1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        *fc1_trained
    );
    Ok(())
}

/// Test code only: Candle's element-wise ops on the calling thread, as the binary runs training
/// (`cli::wants_serial_elementwise`); speed only, the results do not depend on it.
pub(super) fn serial_elementwise_for_tests() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

/// The first 100 training images of the shipped CIFAR-10 sample.
fn cifar_sample_100() -> Result<Dataset> {
    let all = Dataset::load(
        DatasetKind::Cifar10,
        &shipped_data("cifar10-sample"),
        Split::Train,
        1,
    )?;
    Ok(all.subset(&(0..100).collect::<Vec<_>>()))
}

#[test]
fn train_resume_is_bit_identical_and_runs_are_deterministic() -> Result<()> {
    serial_elementwise_for_tests();
    // CIFAR-10: augmentation, dropout, cross-entropy.
    let data = cifar_sample_100()?;
    let mut cfg = config(DatasetKind::Cifar10, 1.0 / 64.0, 2, 3, 32);
    cfg.net.shape.hidden = 16;
    check_resume(&cfg, &data)?;
    // N-MNIST: event frames and the MSE loss.
    let mut cfg = config(DatasetKind::Nmnist, 1.0 / 16.0, 2, 2, 32);
    cfg.net.shape.hidden = 16;
    cfg.loss = LossKind::Mse;
    let all = Dataset::load(
        DatasetKind::Nmnist,
        &shipped_data("nmnist-sample"),
        Split::Train,
        2,
    )?;
    check_resume(&cfg, &all)
}

/// The same on the SpikeNAS-Bench network (thresholded convs, average pools, 100 outputs voted
/// to 10, dropout) at width 1/64, which the CPU path trains.
#[test]
fn train_resume_is_bit_identical_on_the_spikenas_bench_preset() -> Result<()> {
    serial_elementwise_for_tests();
    let data = cifar_sample_100()?;
    let o = Overrides {
        width: Some(1.0 / 64.0),
        timesteps: Some(2),
        hidden: Some(16),
        votes: None,
    };
    let mut cfg = config(DatasetKind::Cifar10, 1.0, 2, 3, 32);
    cfg.net = NetConfig::for_preset(crate::config::Preset::SpikenasBench, &o)?;
    cfg.genotype = "conv3@0.5,conv3,conv3@1.5,conv3@1.5,skip,conv3@0.5".into();
    let (fast, _) = select_path(
        fast::TrainPath::Auto,
        &cfg.net,
        &cfg.genotype()?,
        1,
        &Device::Cpu,
    )?;
    assert!(fast.is_some(), "the CPU path covers the preset");
    check_resume(&cfg, &data)
}

#[test]
fn train_surrogate_gradient_through_lif_steps() -> Result<()> {
    // Two LIF steps on the same input x: S1 = H(k x - 1), V1' = k x (1 - S1),
    // S2 = H((1 - k) V1' + k x - 1) with k = 1/tau. The reset is detached, so
    // d(S1 + S2)/dx = k g(k x - 1) + g(V2 - 1) ((1 - k) k (1 - S1) + k), g = ATan derivative.
    let p = crate::config::LifParams::default();
    let k = 1.0 / p.tau;
    let xs = [-0.5f32, 0.3, 1.0, 1.2, 1.4, 2.5];
    let x = Var::new(&xs, &Device::Cpu)?;
    let mut lif = LifState::new();
    let s1 = lif.step(x.as_tensor(), &p, true)?;
    let s2 = lif.step(x.as_tensor(), &p, true)?;
    let grads = (&s1 + &s2)?.sum_all()?.backward()?;
    let g: Vec<f32> = grads.get(x.as_tensor()).unwrap().to_vec1()?;
    let s1v: Vec<f32> = s1.to_vec1()?;
    for (i, &xi) in xs.iter().enumerate() {
        let xi = xi as f64;
        let v1 = k * xi;
        let sp1 = s1v[i] as f64;
        assert_eq!(sp1, (v1 >= p.v_threshold) as u8 as f64);
        let v2 = (1.0 - k) * v1 * (1.0 - sp1) + k * xi;
        let want = k * atan_surrogate_grad_scalar(v1 - p.v_threshold, p.alpha)
            + atan_surrogate_grad_scalar(v2 - p.v_threshold, p.alpha)
                * ((1.0 - k) * k * (1.0 - sp1) + k);
        assert!(
            (g[i] as f64 - want).abs() < 1e-5,
            "x = {xi}: gradient {} vs analytic {want}",
            g[i]
        );
    }
    Ok(())
}

#[test]
fn train_synop_counting_matches_brute_force() -> Result<()> {
    let cfg = config(DatasetKind::Cifar10, 1.0 / 64.0, 2, 1, 8).net;
    let g = cfg_genotype();
    let mut counter = SpikeCounter::with_synops(&cfg, &g, &Device::Cpu)?;
    // Cell 1, node 0 feeds one conv3 edge (1<-0) in GENOTYPE; C1 = 4 outputs.
    let (n, c, h, w) = (2, 4, 5, 6);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(9);
    let v: Vec<f32> = (0..n * c * h * w)
        .map(|_| rand::Rng::gen_bool(&mut rng, 0.3) as u8 as f32)
        .collect();
    let spikes = Tensor::from_vec(v.clone(), (n, c, h, w), &Device::Cpu)?;
    counter.record(
        LayerId::CellNode {
            cell: 0,
            node: 0,
            class: LifClass::Th10,
        },
        0,
        &spikes,
        1,
    )?;
    let mut brute = 0.0;
    for (i, &s) in v.iter().enumerate() {
        if s == 0.0 {
            continue;
        }
        let (y, x) = ((i / w) % h, i % w);
        let ys = (y.saturating_sub(1)..=(y + 1).min(h - 1)).count();
        let xs = (x.saturating_sub(1)..=(x + 1).min(w - 1)).count();
        brute += (ys * xs * cfg.shape.c1) as f64;
    }
    let l = &counter.layers[&LayerId::CellNode {
        cell: 0,
        node: 0,
        class: LifClass::Th10,
    }];
    assert_eq!(l.ac, brute);
    assert_eq!(l.spikes, v.iter().map(|&s| s as f64).sum::<f64>());
    assert_eq!(counter.sar(), l.spikes / (n * c * h * w) as f64);
    // Hidden spikes feed classes x V outputs each.
    let hs = Tensor::from_vec(vec![1f32, 0.0, 1.0, 1.0], (2, 2), &Device::Cpu)?;
    counter.record(LayerId::Hidden, 0, &hs, 1)?;
    assert_eq!(
        counter.layers[&LayerId::Hidden].ac,
        3.0 * (cfg.shape.classes * cfg.shape.votes) as f64
    );
    // The stem: 3x3, padding 1 on 32x32: (3*32 - 2)^2 in-bounds taps per input channel.
    assert_eq!(stem_macs(&cfg, false), (cfg.shape.c1 * 3 * 94 * 94) as f64);
    assert_eq!(
        stem_macs(&cfg, true),
        (cfg.shape.c1 * 3 * 94 * 94 * cfg.shape.timesteps) as f64
    );
    Ok(())
}

fn cfg_genotype() -> snn_nostd::genotype::Genotype {
    GENOTYPE.parse().unwrap()
}

#[test]
fn train_checkpoint_errors_name_the_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = config(DatasetKind::Cifar10, 1.0 / 64.0, 2, 1, 8);
    let g = cfg.genotype()?;
    let net = Network::new(&cfg.net, &Mixing::single_path(&g).alive(), 0, &Device::Cpu)?;
    // A round trip restores every tensor.
    let good = dir.path().join("good.safetensors");
    save_checkpoint(&good, &net, &CheckpointMeta::new(&cfg.net, &g, 3, "test"))?;
    let (back, meta) = load_checkpoint(&good, &Device::Cpu)?;
    assert_eq!((meta.epoch, meta.net.clone()), (3, cfg.net.clone()));
    for (k, v) in net.params.all_tensors() {
        let w = &back.params.all_tensors()[&k];
        assert_eq!(
            v.flatten_all()?.to_vec1::<f32>()?,
            w.flatten_all()?.to_vec1::<f32>()?
        );
    }
    // Metadata describing a wider network than the tensors.
    let mut wide = cfg.net.clone();
    wide.shape.c1 *= 2;
    let bad = dir.path().join("shapes.safetensors");
    save_checkpoint(&bad, &net, &CheckpointMeta::new(&wide, &g, 1, "test"))?;
    let err = format!("{:#}", load_checkpoint(&bad, &Device::Cpu).unwrap_err());
    assert!(
        err.contains("shapes.safetensors") && err.contains("shape"),
        "{err}"
    );
    // Not a safetensors file.
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint")?;
    let err = format!("{:#}", load_checkpoint(&junk, &Device::Cpu).unwrap_err());
    assert!(err.contains("junk.safetensors"), "{err}");
    // A safetensors file without lightsnn metadata.
    let plain = dir.path().join("plain.safetensors");
    std::fs::write(
        &plain,
        checkpoint::tensors_to_bytes(&net.params.all_tensors(), HashMap::new())?,
    )?;
    let err = format!("{:#}", load_checkpoint(&plain, &Device::Cpu).unwrap_err());
    assert!(
        err.contains("plain.safetensors") && err.contains("not a lightsnn checkpoint"),
        "{err}"
    );
    // A genotype op outside the op set.
    let mut m = CheckpointMeta::new(&cfg.net, &g, 1, "test");
    m.genotype = GENOTYPE.replace("skip", "conv1");
    let conv1 = dir.path().join("conv1.safetensors");
    save_checkpoint(&conv1, &net, &m)?;
    let err = format!("{:#}", load_checkpoint(&conv1, &Device::Cpu).unwrap_err());
    assert!(
        err.contains("conv1.safetensors") && err.contains("conv1, which is not in the op set"),
        "{err}"
    );
    // A missing file.
    let err = format!(
        "{:#}",
        load_checkpoint(&dir.path().join("none.safetensors"), &Device::Cpu).unwrap_err()
    );
    assert!(err.contains("none.safetensors"), "{err}");
    // Training configuration with a genotype op outside the op set.
    let mut c = cfg.clone();
    c.genotype = GENOTYPE.replace("skip", "avgpool");
    let err = format!("{:#}", c.validate().unwrap_err());
    assert!(err.contains("avgpool"), "{err}");
    let _ = DType::F32;
    Ok(())
}

/// Accuracy above chance on the larger real data of `$LIGHTSNN_DATA` (extended suite).
#[cfg(feature = "real-data")]
mod real_data {
    use super::super::eval::evaluate;
    use super::*;
    use lightsnn_tests::real_data;
    use std::time::Instant;

    /// Trains `cfg` on the first `n_train` training samples, evaluates the best checkpoint on the
    /// test split and returns its top-1.
    fn train_and_test(cfg: &TrainConfig, dir: &Path, n_train: usize) -> Result<f64> {
        super::serial_elementwise_for_tests();
        let data_dir = real_data(match cfg.net.dataset {
            DatasetKind::Nmnist => "nmnist-small",
            _ => "cifar10-lossless-subset",
        });
        let t = cfg.net.shape.timesteps;
        let all = Dataset::load(cfg.net.dataset, &data_dir, Split::Train, t)?;
        let idx: Vec<usize> = (0..n_train.min(all.len())).collect();
        let data = all.subset(&idx);
        let start = Instant::now();
        let out = train(dir, cfg, &data, &Device::Cpu, &quiet(), &NoProgress)?;
        assert!(out.complete);
        let (net, meta) = load_checkpoint(&dir.join(files::BEST), &Device::Cpu)?;
        assert_eq!(meta.epoch, out.best.as_ref().unwrap().epoch);
        let test = Dataset::load(cfg.net.dataset, &data_dir, Split::Test, t)?;
        let r = evaluate(
            &net,
            &meta.genotype()?,
            &test,
            100,
            LossKind::Ce,
            true,
            &NoProgress,
        )?;
        eprintln!(
            "{}: {} train samples, {} epochs: val top-1 {:?}, test top-1 {:.2}% (SAR {:.4}, {:.3e} AC/sample) in {:.1} s",
            cfg.net.dataset,
            data.len(),
            cfg.epochs,
            out.history.iter().map(|m| m.val_top1).collect::<Vec<_>>(),
            100.0 * r.top1,
            r.sar,
            r.synops.as_ref().unwrap().ac_per_sample,
            start.elapsed().as_secs_f64()
        );
        // The run folder has every file.
        for f in [
            files::METRICS,
            files::CURVES,
            files::LAST,
            files::BEST,
            files::OPTIM,
            files::STATE,
        ] {
            assert!(dir.join(f).is_file(), "{f} missing");
        }
        let csv = std::fs::read_to_string(dir.join(files::METRICS))?;
        assert_eq!(csv.lines().count(), cfg.epochs + 1);
        assert!(std::fs::read_to_string(dir.join(files::CURVES))?.contains("<svg"));
        Ok(r.top1)
    }

    #[test]
    fn train_cifar10_subset_beats_chance() -> Result<()> {
        let dir = tempfile::tempdir()?;
        // C1/C2 8/16, H 64, T 2, 1,600 training images (1,440 train / 160 validation), 2 epochs,
        // batch 16: 27.6% on the 1,000 test images (chance: 10%).
        let cfg = config(DatasetKind::Cifar10, 1.0 / 32.0, 2, 2, 16);
        let top1 = train_and_test(&cfg, dir.path(), 1600)?;
        assert!(
            top1 > 0.20,
            "CIFAR-10 test top-1 {top1} is not clearly above chance (0.10)"
        );
        Ok(())
    }

    #[test]
    fn train_nmnist_small_beats_chance() -> Result<()> {
        let dir = tempfile::tempdir()?;
        // C1/C2 8/16, H 64, T 2 frames, 1,000 training samples (900 / 100), 2 epochs, batch 16:
        // 74% on the 100 test samples on the CPU path (chance: 10%; 60% on the Candle path
        // before the max-pool gradient fix).
        let cfg = config(DatasetKind::Nmnist, 1.0 / 8.0, 2, 2, 16);
        let top1 = train_and_test(&cfg, dir.path(), 1000)?;
        assert!(
            top1 > 0.40,
            "N-MNIST test top-1 {top1} is not clearly above chance (0.10)"
        );
        Ok(())
    }
}

/// The Candle path's training steps read the device twice per epoch (the loss and
/// correct-prediction sums), however many steps the epoch has: 6 steps or 1 step per epoch
/// give the same count. The CPU path keeps its values on the host: no reads.
#[test]
fn train_host_reads_do_not_grow_with_steps() -> Result<()> {
    let data =
        crate::data::sample::cifar10_sample(Split::Train)?.subset(&(0..40).collect::<Vec<_>>());
    for (path, want) in [
        (fast::TrainPath::Candle, [4, 4]),
        (fast::TrainPath::Cpu, [0, 0]),
    ] {
        let mut counts = Vec::new();
        for batch in [5, 30] {
            let mut cfg = config(DatasetKind::Cifar10, 1.0 / 64.0, 1, 2, batch);
            cfg.net.shape.hidden = 16;
            cfg.val_fraction = 0.25;
            let dir = tempfile::tempdir()?;
            let ctl = RunControl { path, ..quiet() };
            let out = train(dir.path(), &cfg, &data, &Device::Cpu, &ctl, &NoProgress)?;
            let st = TrainState::read(dir.path())?;
            assert_eq!(st.optimizer.steps, 2 * 30usize.div_ceil(batch) as u64);
            counts.push(out.host_reads);
        }
        assert_eq!(
            counts, want,
            "{path:?}: device-to-host reads of 2 epochs at 6 and 1 steps each"
        );
    }
    Ok(())
}
