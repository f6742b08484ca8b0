//! The search batches: which samples each round (or candidate) scores on, drawn from a seed so
//! that every search is reproducible.

use crate::data::Dataset;
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Seed of the batch draw of round `round` (1-based).
pub fn round_batch_seed(seed: u64, round: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(round as u64)
}

/// Draws `repeats` batches of `n` distinct samples, seeded, as device tensors `[N, F, C, H, W]`.
pub fn draw_batches(
    data: &Dataset,
    n: usize,
    repeats: usize,
    seed: u64,
    device: &Device,
) -> Result<Vec<Tensor>> {
    if data.len() < n {
        bail!(
            "the dataset has {} samples; a search batch needs {n}",
            data.len()
        );
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let [c, h, w] = data.frame_shape();
    let f = data.frames();
    let mut out = Vec::with_capacity(repeats);
    let mut buf = Vec::new();
    for _ in 0..repeats {
        let idx = rand::seq::index::sample(&mut rng, data.len(), n).into_vec();
        data.fill_batch(&idx, None, &mut buf);
        out.push(Tensor::from_slice(&buf, (n, f, c, h, w), device)?);
    }
    Ok(out)
}
