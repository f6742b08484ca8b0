//! An independent check of the SAHD pipeline: the kernel computed a second way, densely in f64
//! from unpacked 0/1 spike matrices, straight from the formula of docs/design.md, "The SAHD score".

use super::score::{kernel_matrix, sahd_one, KernelPath, Scorer};
use super::setup::ScoreKind;
use crate::config::{DatasetKind, NetConfig, Overrides};
use crate::model::{Forward, LayerId, Mixing, Mode, Network, SpikeSink};
use anyhow::Result;
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};

/// Keeps every recorded code as 0/1 f64 rows.
struct DenseSink {
    layers: Vec<(Vec<Vec<f64>>, u32)>,
}

impl SpikeSink for DenseSink {
    fn record(&mut self, _: LayerId, _: usize, spikes: &Tensor, m: u32) -> Result<()> {
        let n = spikes.dim(0)?;
        let rows: Vec<Vec<f32>> = spikes.flatten_from(1)?.to_vec2()?;
        assert_eq!(rows.len(), n);
        self.layers.push((
            rows.into_iter()
                .map(|r| r.into_iter().map(f64::from).collect())
                .collect(),
            m,
        ));
        Ok(())
    }
}

/// The kernel by its formula; `hamming`: NASWOT's `n - H` instead of SAHD's rescaled distance.
fn dense_kernel(layers: &[(Vec<Vec<f64>>, u32)], hamming: bool) -> Vec<f64> {
    let n = layers[0].0.len();
    let mut k = vec![0f64; n * n];
    let mut pairs = 0.0;
    for (codes, m) in layers {
        let nb = codes[0].len() as f64;
        let s: Vec<f64> = codes.iter().map(|c| c.iter().sum::<f64>() / nb).collect();
        for i in 0..n {
            for j in 0..n {
                let e = nb * (s[i] * (1.0 - s[j]) + s[j] * (1.0 - s[i]));
                let h: f64 = codes[i]
                    .iter()
                    .zip(&codes[j])
                    .map(|(a, b)| (a - b).abs())
                    .sum();
                let d = if hamming { h } else { 0.5 * h / (e + 1e-3) };
                k[i * n + j] += *m as f64 * (nb - d);
            }
        }
        pairs += *m as f64;
    }
    k.iter().map(|v| v / pairs).collect()
}

#[test]
fn kernel_matches_dense_formula() -> Result<()> {
    let o = Overrides {
        width: Some(6.0 / 256.0),
        timesteps: Some(3),
        hidden: Some(24),
        votes: Some(2),
    };
    let cfg = NetConfig::for_dataset(DatasetKind::Cifar10, &o)?;
    let dev = Device::Cpu;
    let mix = Mixing::supernet(cfg.cell, &cfg.ops);
    let net = Network::new(&cfg, &mix.alive(), 11, &dev)?;
    let n = 6;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let data: Vec<f32> = (0..n * 3 * 32 * 32)
        .map(|_| rng.gen_range(-2.0..2.0))
        .collect();
    let x = Tensor::from_vec(data, (n, 1, 3, 32, 32), &dev)?;
    let mut sink = DenseSink { layers: Vec::new() };
    net.forward(
        &x,
        Forward {
            mixing: &mix,
            mode: Mode::ScoreBatchStats,
            sink: &mut sink,
            dropout_rng: None,
        },
    )?;
    assert!(
        sink.layers.iter().any(|(_, m)| *m > 1),
        "node LIFs carry multiplicity"
    );
    let want = dense_kernel(&sink.layers, false);
    for path in [KernelPath::BitPacked, KernelPath::DeviceGram] {
        let got = kernel_matrix(&net, &mix, &x, Mode::ScoreBatchStats, path)?;
        for (g, w) in got.iter().zip(&want) {
            assert!(((g - w) / w).abs() < 1e-9, "{path:?}: {g} vs {w}");
        }
    }
    // `--score naswot`: the plain Hamming kernel, on every path (the CPU engine included).
    let want = dense_kernel(&sink.layers, true);
    assert_ne!(want, dense_kernel(&sink.layers, false));
    for path in [
        KernelPath::BitPacked,
        KernelPath::DeviceGram,
        KernelPath::CpuEvent,
    ] {
        let scorer = Scorer::new(&net, path)?.with_score(ScoreKind::Naswot);
        let got = scorer.kernel_matrix(&mix, &x, Mode::ScoreBatchStats)?;
        for (g, w) in got.iter().zip(&want) {
            assert!(((g - w) / w).abs() < 1e-9, "naswot, {path:?}: {g} vs {w}");
        }
    }
    let a = sahd_one(&net, &mix, &x, Mode::ScoreBatchStats, KernelPath::BitPacked)?;
    let b = sahd_one(
        &net,
        &mix,
        &x,
        Mode::ScoreBatchStats,
        KernelPath::DeviceGram,
    )?;
    assert!(a.is_finite());
    assert!((a - b).abs() < 1e-9 * a.abs().max(1.0), "{a} vs {b}");
    Ok(())
}

/// `lightsnn score --dump-codes`: the dump read back recomputes the kernel by the dense formula
/// and the score through a fresh kernel, on the CPU engine and the Candle path.
#[test]
fn code_dump_recomputes_the_score() -> Result<()> {
    use super::dump::{dump_score, mean_score, read_dump, write_dump};
    use super::score::Scorer;
    use snn_nostd::sahd::SahdKernel;
    let o = Overrides {
        width: Some(6.0 / 256.0),
        timesteps: Some(3),
        hidden: Some(24),
        votes: Some(2),
    };
    let cfg = NetConfig::for_dataset(DatasetKind::Cifar10, &o)?;
    let g: snn_nostd::genotype::Genotype =
        "zero,conv3,skip,conv3,zero,zero,skip,conv3,zero,conv3,skip,conv3".parse()?;
    let mix = Mixing::single_path(&g);
    let dev = Device::Cpu;
    let net = Network::new(&cfg, &mix.alive(), 4, &dev)?;
    let n = 7;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let batches = (0..2)
        .map(|_| {
            let v: Vec<f32> = (0..n * 3 * 32 * 32)
                .map(|_| rng.gen_range(-2.0..2.0))
                .collect();
            Tensor::from_vec(v, (n, 1, 3, 32, 32), &dev)
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    let tmp = tempfile::tempdir()?;
    let mut kernels = Vec::new();
    for path in [KernelPath::CpuEvent, KernelPath::BitPacked] {
        let scorer = Scorer::new(&net, path)?;
        let dump = dump_score(&scorer, &mix, &batches, Mode::ScoreBatchStats)?;
        let want = scorer.sahd_score(&mix, &batches, Mode::ScoreBatchStats)?;
        assert_eq!(mean_score(&dump).to_bits(), want.to_bits(), "{path:?}");
        let dir = tmp.path().join(path.name());
        write_dump(&dir, &g.to_string(), &dump)?;
        // Writing again replaces an earlier dump.
        write_dump(&dir, &g.to_string(), &dump)?;
        let back = read_dump(&dir)?;
        assert_eq!(back.manifest.score.to_bits(), want.to_bits());
        for (r, kernel) in back.kernels.iter().enumerate() {
            let recs: Vec<_> = back
                .manifest
                .records
                .iter()
                .zip(&back.codes)
                .filter(|(e, _)| e.repeat == r)
                .collect();
            assert!(
                recs.iter().any(|(e, _)| e.multiplicity > 1),
                "multiplicities"
            );
            // The dense formula (docs/design.md, "The SAHD score") on the unpacked codes.
            let layers: Vec<(Vec<Vec<f64>>, u32)> = recs
                .iter()
                .map(|(e, words)| {
                    let rows = words
                        .chunks(e.words_per_code)
                        .map(|w| {
                            (0..e.n_bits)
                                .map(|k| ((w[k / 64] >> (k % 64)) & 1) as f64)
                                .collect()
                        })
                        .collect();
                    (rows, e.multiplicity)
                })
                .collect();
            for (got, want) in kernel.iter().zip(dense_kernel(&layers, false)) {
                assert!(
                    ((got - want) / want).abs() < 1e-9,
                    "{path:?}: {got} vs {want}"
                );
            }
            // The score from the dumped codes through a fresh kernel.
            let mut buf = vec![0f64; n * n];
            let mut k = SahdKernel::new(n, &mut buf).unwrap();
            for (e, words) in &recs {
                k.accumulate(words, e.words_per_code, e.n_bits, e.multiplicity)
                    .unwrap();
            }
            let mut scratch = vec![0f64; n * n + n];
            let s = k.score(&mut scratch).unwrap();
            assert_eq!(s.to_bits(), back.manifest.repeat_scores[r].to_bits());
        }
        kernels.push((back.manifest.records.clone(), back.kernels));
    }
    // Both engines record the same code sets and (nearly) the same kernels.
    let (cpu, candle) = (&kernels[0], &kernels[1]);
    let tags = |r: &[super::dump::RecordEntry]| -> Vec<(String, usize, u32)> {
        r.iter()
            .map(|e| (e.layer.clone(), e.t, e.multiplicity))
            .collect()
    };
    assert_eq!(tags(&cpu.0), tags(&candle.0));
    for (a, b) in cpu.1.iter().flatten().zip(candle.1.iter().flatten()) {
        assert!(((a - b) / b).abs() < 1e-9, "{a} vs {b}");
    }
    // Bad input: a truncated codes file is named; a folder that is not a dump is not replaced.
    let dir = tmp.path().join(KernelPath::CpuEvent.name());
    let victim = dir.join("r1/002.codes.npy");
    let bytes = std::fs::read(&victim)?;
    std::fs::write(&victim, &bytes[..bytes.len() - 3])?;
    let e = format!("{:#}", read_dump(&dir).unwrap_err());
    assert!(
        e.contains("r1/002.codes.npy") && e.contains("data bytes"),
        "{e}"
    );
    let other = tmp.path().join("other");
    std::fs::create_dir(&other)?;
    let scorer = Scorer::new(&net, KernelPath::CpuEvent)?;
    let dump = dump_score(&scorer, &mix, &batches[..1], Mode::ScoreBatchStats)?;
    let e = format!("{:#}", write_dump(&other, "x", &dump).unwrap_err());
    assert!(e.contains("not a lightsnn code dump"), "{e}");
    Ok(())
}
