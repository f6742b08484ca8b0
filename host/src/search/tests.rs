//! An independent check of the SAHD pipeline: the kernel computed a second way, densely in f64
//! from unpacked 0/1 spike matrices, straight from the SPEC §5 formula.

use super::score::{kernel_matrix, sahd_one, KernelPath};
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

fn dense_kernel(layers: &[(Vec<Vec<f64>>, u32)]) -> Vec<f64> {
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
                k[i * n + j] += *m as f64 * (nb - 0.5 * h / (e + 1e-3));
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
    let want = dense_kernel(&sink.layers);
    for path in [KernelPath::BitPacked, KernelPath::DeviceGram] {
        let got = kernel_matrix(&net, &mix, &x, Mode::ScoreBatchStats, path)?;
        for (g, w) in got.iter().zip(&want) {
            assert!(((g - w) / w).abs() < 1e-9, "{path:?}: {g} vs {w}");
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
