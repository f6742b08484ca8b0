//! Stratified samples of the benchmark's cells.

use super::cell_id::{BenchCell, NUM_CELLS, NUM_EDGES};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// `k` distinct cells drawn from `pool` (ids, any order), stratified by conv count: each of the
/// seven strata (0..=6 conv ops) gets a share of `k` proportional to its size in the pool
/// (largest remainders for the rounding), drawn uniformly within the stratum from a ChaCha8
/// stream seeded with `seed`. Returns ids in increasing order; all of `pool` when `k` is not
/// smaller.
///
/// Stratifying by conv count keeps the parameter count (a strong baseline here, as the
/// parameters follow from it) represented as in the space, so a small sample does not over- or
/// under-weight the large cells by chance.
pub fn stratified(pool: &[u32], k: usize, seed: u64) -> Vec<u32> {
    let mut pool: Vec<u32> = pool.iter().copied().filter(|&i| i < NUM_CELLS).collect();
    pool.sort_unstable();
    pool.dedup();
    if k >= pool.len() {
        return pool;
    }
    let mut strata: Vec<Vec<u32>> = vec![Vec::new(); NUM_EDGES + 1];
    for &id in &pool {
        let c = BenchCell::from_id(id)
            .expect("filtered to the range")
            .conv_count();
        strata[c].push(id);
    }
    let n = pool.len() as f64;
    let quota: Vec<f64> = strata
        .iter()
        .map(|s| k as f64 * s.len() as f64 / n)
        .collect();
    let mut take: Vec<usize> = quota.iter().map(|q| q.floor() as usize).collect();
    let mut left = k - take.iter().sum::<usize>();
    let mut by_remainder: Vec<usize> = (0..strata.len()).collect();
    by_remainder.sort_by(|&a, &b| {
        let ra = quota[a] - quota[a].floor();
        let rb = quota[b] - quota[b].floor();
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for &s in &by_remainder {
        if left == 0 {
            break;
        }
        if take[s] < strata[s].len() {
            take[s] += 1;
            left -= 1;
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out: Vec<u32> = strata
        .iter_mut()
        .zip(&take)
        .flat_map(|(s, &t)| {
            s.shuffle(&mut rng);
            s[..t].to_vec()
        })
        .collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportional_distinct_and_seeded() {
        let all: Vec<u32> = (0..NUM_CELLS).collect();
        let s = stratified(&all, 1000, 3);
        assert_eq!(s.len(), 1000);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(s, stratified(&all, 1000, 3));
        assert_ne!(s, stratified(&all, 1000, 4));
        // stratum sizes: C(6, c) 3^c 2^(6 - c) of 15,625; 1000 draws -> within one of the quota
        let binom = [1, 6, 15, 20, 15, 6, 1];
        for (c, b) in binom.into_iter().enumerate() {
            let size = b * 3u32.pow(c as u32) * 2u32.pow(6 - c as u32);
            let quota = 1000.0 * size as f64 / 15625.0;
            let got = s
                .iter()
                .filter(|&&i| BenchCell::from_id(i).unwrap().conv_count() == c)
                .count() as f64;
            assert!((got - quota).abs() < 1.0, "convs {c}: {got} vs {quota}");
        }
        // a small pool is returned whole
        assert_eq!(stratified(&[5, 1, 5, 99_999], 10, 0), vec![1, 5]);
    }
}
