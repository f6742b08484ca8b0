//! The sparsity-aware Hamming distance (SAHD) kernel and its log-determinant score
//! (docs/design.md, "The SAHD score").
//!
//! For every LIF layer `l` and timestep `t` (a *pair*) with the `N` codes `c_i` of `n` bits of a
//! batch: `s_i = popcount(c_i) / n`, `E_ij = n (s_i (1 - s_j) + s_j (1 - s_i))`,
//! `H_ij = hamming(c_i, c_j)` and `K_ij += n - 0.5 H_ij / (E_ij + 1e-3)`; after all pairs `K` is
//! divided by the number of pairs and the score is `ln |det K|`, all in f64.
//!
//! `K` is close to `n J` (`J` all ones) and the part that ranks networks is O(1), so
//! [`SahdKernel`] stores it split, `K = nbar J + A`, and never forms `n - 0.5 H / E` in one
//! number: `nbar` is the mean code length over the pairs (kept as an exact integer sum) and
//! `A_ij = -(0.5 / pairs) * sum over pairs of H_ij / (E_ij + 1e-3)` (`A_ii = 0`, as `H_ii = 0`).
//! The score uses [`ln_abs_det_rank_one`](crate::logdet::ln_abs_det_rank_one)'s matrix
//! determinant lemma on that split, so no digit of `A` is lost to `nbar`.
//!
//! `E_ij` is evaluated as `(p_i + p_j) - 2 p_i p_j / n` with the popcounts `p`, which equals the
//! formula above and rounds once less.
//!
//! The same kernel with [`Distance::Hamming`] is NASWOT's (Mellor et al., 2021): `K_ij += n -
//! H_ij`, the plain Hamming distance with no sparsity rescale, stored as `A_ij = -(1 / pairs) *
//! sum over pairs of H_ij`. It is the baseline that tells what the rescale adds.

use crate::bits::words_for;
use crate::logdet::{rank_one_core, square};
use crate::observer::{SpikeCodes, SpikeObserver};
use crate::pairwise::for_each_pair;
use crate::skeleton::LayerId;

pub use crate::error::SahdError;

/// The distance between two codes that a kernel accumulates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Distance {
    /// The sparsity-aware Hamming distance `0.5 H_ij / (E_ij + 1e-3)` (LightSNN, SNASNet).
    #[default]
    SparsityAware,
    /// The plain Hamming distance `H_ij` (NASWOT's kernel).
    Hamming,
}

/// The SAHD kernel of one batch of `N` samples, accumulated over (layer, timestep) pairs in a
/// caller buffer of `N * N` f64.
///
/// The buffer holds, in its strict upper triangle, `S_ij = sum over pairs of
/// m H_ij / (E_ij + 1e-3)` (`m` the pair's multiplicity); its diagonal (popcounts) and lower
/// triangle (Hamming counts) are scratch during a call and 0 otherwise.
///
/// As a [`SpikeObserver`] it accumulates every layer a pass reports; the first code set it
/// refuses is kept ([`fault`](Self::fault)) and every later result call returns that error.
///
/// The score of four samples, one 8-bit code each (one layer at one timestep):
/// ```
/// use snn_nostd::sahd::SahdKernel;
/// let codes = [0b0000_0111u64, 0b0011_1000, 0b1100_0001, 0b0001_0110];
/// let mut buf = [0.0; 16];
/// let mut k = SahdKernel::new(4, &mut buf)?;
/// k.accumulate(&codes, 1, 8, 1)?; // one word per code, 8 bits, multiplicity 1
/// let mut kernel = [0.0; 16];
/// k.kernel(&mut kernel)?;
/// // K_ij = n - 0.5 H_ij / (E_ij + 1e-3), E_ij = (p_i + p_j) - 2 p_i p_j / n
/// let p = |i: usize| codes[i].count_ones() as f64;
/// for (i, j) in [(0, 1), (1, 2), (2, 3)] {
///     let h = (codes[i] ^ codes[j]).count_ones() as f64;
///     let e = p(i) + p(j) - 2.0 * p(i) * p(j) / 8.0;
///     assert!((kernel[i * 4 + j] - (8.0 - 0.5 * h / (e + 1e-3))).abs() < 1e-12);
/// }
/// let mut scratch = [0.0; 16 + 4];
/// let score = k.score(&mut scratch)?; // ln |det K|
/// // the same by Gaussian elimination of K
/// let (mut m, mut det) = (kernel, 1.0f64);
/// for c in 0..4 {
///     det *= m[c * 4 + c];
///     for r in c + 1..4 {
///         let f = m[r * 4 + c] / m[c * 4 + c];
///         (c..4).for_each(|x| m[r * 4 + x] -= f * m[c * 4 + x]);
///     }
/// }
/// assert!((score - det.abs().ln()).abs() < 1e-9);
/// # Ok::<(), snn_nostd::sahd::SahdError>(())
/// ```
#[derive(Debug)]
pub struct SahdKernel<'a> {
    n: usize,
    sum: &'a mut [f64],
    pairs: u64,
    bits_sum: u64,
    fault: Option<SahdError>,
    distance: Distance,
}

impl<'a> SahdKernel<'a> {
    /// An empty kernel for batches of `n` codes, using (and zeroing) `buf[..n*n]`.
    ///
    /// Errors: `n == 0` ([`SahdError::EmptyBatch`]), `buf` shorter than `n * n`.
    pub fn new(n: usize, buf: &'a mut [f64]) -> Result<Self, SahdError> {
        if n == 0 {
            return Err(SahdError::EmptyBatch);
        }
        let nn = square(n)?;
        let got = buf.len();
        let sum = buf
            .get_mut(..nn)
            .ok_or(SahdError::BufferTooSmall { needed: nn, got })?;
        sum.fill(0.0);
        Ok(SahdKernel {
            n,
            sum,
            pairs: 0,
            bits_sum: 0,
            fault: None,
            distance: Distance::SparsityAware,
        })
    }

    /// The same kernel accumulating `distance` instead of the sparsity-aware distance.
    ///
    /// ```
    /// use snn_nostd::sahd::{Distance, SahdKernel};
    /// // two samples, one 4-bit code each: 0b0011 and 0b0101 differ in 2 bits
    /// let mut buf = [0.0; 4];
    /// let mut k = SahdKernel::new(2, &mut buf)?.with_distance(Distance::Hamming);
    /// k.accumulate(&[0b0011, 0b0101], 1, 4, 1)?;
    /// let mut out = [0.0; 4];
    /// k.kernel(&mut out)?;
    /// assert_eq!(out, [4.0, 2.0, 2.0, 4.0]); // n - H
    /// # Ok::<(), snn_nostd::sahd::SahdError>(())
    /// ```
    pub fn with_distance(mut self, distance: Distance) -> Self {
        self.distance = distance;
        self
    }

    /// Batch size `N`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of (layer, timestep) pairs accumulated so far, multiplicities included.
    pub fn pairs(&self) -> u64 {
        self.pairs
    }

    /// `nbar`, the mean code length over the pairs (the diagonal of `K`); `None` before any pair.
    pub fn nbar(&self) -> Option<f64> {
        (self.pairs > 0).then(|| self.bits_sum as f64 / self.pairs as f64)
    }

    /// Forgets every pair (zeroes the buffer) and any [`fault`](Self::fault).
    pub fn reset(&mut self) {
        self.sum.fill(0.0);
        self.pairs = 0;
        self.bits_sum = 0;
        self.fault = None;
    }

    /// The error of the first code set refused while observing a pass
    /// ([`SpikeObserver::on_spikes`]); `None` if every one was accumulated.
    pub fn fault(&self) -> Option<SahdError> {
        self.fault
    }

    /// `Err` with the [`fault`](Self::fault), if a code set was refused while observing a pass.
    pub fn check(&self) -> Result<(), SahdError> {
        self.fault.map_or(Ok(()), Err)
    }

    /// The new (pairs, bits_sum) after adding a pair of `n_bits` `multiplicity` times.
    fn counts_after(&self, n_bits: usize, multiplicity: u32) -> Result<(u64, u64), SahdError> {
        let m = u64::from(multiplicity);
        let pairs = self.pairs.checked_add(m).ok_or(SahdError::Overflow)?;
        let bits = u64::try_from(n_bits)
            .ok()
            .and_then(|b| b.checked_mul(m))
            .and_then(|b| b.checked_add(self.bits_sum))
            .ok_or(SahdError::Overflow)?;
        Ok((pairs, bits))
    }

    /// Adds one pair from the popcounts on the diagonal and the Hamming distances in the lower
    /// triangle (`H_ij` at `[j * n + i]`, `i < j`), then zeroes the diagonal and lower triangle.
    fn add_pair(&mut self, n_bits: usize, multiplicity: u32) {
        let n = self.n;
        let nb = n_bits as f64;
        let m = f64::from(multiplicity);
        for i in 0..n {
            let pi = self.sum[i * n + i];
            for j in i + 1..n {
                let h = self.sum[j * n + i];
                let term = match self.distance {
                    Distance::SparsityAware => {
                        let pj = self.sum[j * n + j];
                        let e = (pi + pj) - 2.0 * (pi * pj / nb);
                        h / (e + 1e-3)
                    }
                    Distance::Hamming => h,
                };
                self.sum[i * n + j] += m * term;
            }
        }
        self.clear_scratch();
    }

    /// Zeroes the diagonal and the lower triangle (the scratch of one call).
    fn clear_scratch(&mut self) {
        let n = self.n;
        for i in 0..n {
            self.sum[i * n..i * n + i + 1].fill(0.0);
        }
    }

    /// Adds one (layer, timestep) pair: `codes` holds the `N` codes of `n_bits` bits, each in
    /// `words_per_code` words (row `i` at `codes[i * words_per_code..]`, the layout of
    /// [`pack_rows_f32`](crate::bits::pack_rows_f32)), counted `multiplicity` times.
    ///
    /// A multiplicity `m` adds `m` times the pair's terms (`m * term` per entry, and `m` to the
    /// pair count and `m * n_bits` to the length sum), which equals calling this `m` times up to
    /// the rounding of the sums (identical for `m = 1`); `m = 0` adds nothing.
    ///
    /// Errors (nothing is added): `n_bits == 0`, `words_per_code < words_for(n_bits)`,
    /// `codes.len() != N * words_per_code`, a bit set at or beyond `n_bits`
    /// ([`SahdError::NonZeroPadding`]), `n_bits >= 2^32` or the pair counts overflowing
    /// ([`SahdError::Overflow`]).
    pub fn accumulate(
        &mut self,
        codes: &[u64],
        words_per_code: usize,
        n_bits: usize,
        multiplicity: u32,
    ) -> Result<(), SahdError> {
        if n_bits == 0 {
            return Err(SahdError::ZeroBits);
        }
        if u32::try_from(n_bits).is_err() {
            return Err(SahdError::Overflow);
        }
        let w = words_for(n_bits);
        if words_per_code < w {
            return Err(SahdError::TooFewWords {
                needed: w,
                got: words_per_code,
            });
        }
        let n = self.n;
        let expected = n.checked_mul(words_per_code).ok_or(SahdError::Overflow)?;
        if codes.len() != expected {
            return Err(SahdError::LengthMismatch {
                expected,
                found: codes.len(),
            });
        }
        let (pairs, bits_sum) = self.counts_after(n_bits, multiplicity)?;
        let tail = n_bits % 64;
        let last_mask = if tail == 0 { 0 } else { !0u64 << tail };
        for (row, code) in codes.chunks_exact(words_per_code).enumerate() {
            let dirty = code[w - 1] & last_mask != 0 || code[w..].iter().any(|&x| x != 0);
            if dirty {
                self.clear_scratch();
                return Err(SahdError::NonZeroPadding { row });
            }
            self.sum[row * n + row] = crate::pairwise::popcount(&code[..w]) as f64;
        }
        if multiplicity == 0 {
            self.clear_scratch();
            return Ok(());
        }
        let sum = &mut *self.sum;
        let counted = for_each_pair(codes, n, words_per_code, w, |i, j, d| {
            sum[j * n + i] += f64::from(d);
        });
        if let Err(e) = counted {
            self.clear_scratch();
            return Err(e);
        }
        self.add_pair(n_bits, multiplicity);
        self.pairs = pairs;
        self.bits_sum = bits_sum;
        Ok(())
    }

    /// Adds one pair from counts computed elsewhere (e.g. on a GPU): `popcounts[i]` of the `N`
    /// codes of `n_bits` bits, and the Hamming distances in `hamming_upper`, an `N x N`
    /// row-major matrix of which only the strict upper triangle (`i < j`) is read.
    ///
    /// Gives the same result as [`accumulate`](Self::accumulate) on the codes. The counts are
    /// checked for consistency: `p_i <= n_bits`, and `H_ij` must satisfy
    /// `|p_i - p_j| <= H_ij <= min(p_i + p_j, 2 n_bits - p_i - p_j)` with the parity of
    /// `p_i + p_j` ([`SahdError::CountOutOfRange`] otherwise; nothing is added on error). Other
    /// errors: `n_bits == 0`, `n_bits >= 2^32`, wrong slice lengths.
    pub fn accumulate_hamming(
        &mut self,
        popcounts: &[u32],
        hamming_upper: &[u32],
        n_bits: usize,
        multiplicity: u32,
    ) -> Result<(), SahdError> {
        if n_bits == 0 {
            return Err(SahdError::ZeroBits);
        }
        let nb = u64::from(u32::try_from(n_bits).map_err(|_| SahdError::Overflow)?);
        let n = self.n;
        if popcounts.len() != n {
            return Err(SahdError::LengthMismatch {
                expected: n,
                found: popcounts.len(),
            });
        }
        let nn = square(n)?;
        if hamming_upper.len() != nn {
            return Err(SahdError::LengthMismatch {
                expected: nn,
                found: hamming_upper.len(),
            });
        }
        let (pairs, bits_sum) = self.counts_after(n_bits, multiplicity)?;
        for (i, &p) in popcounts.iter().enumerate() {
            if u64::from(p) > nb {
                return Err(SahdError::CountOutOfRange { i, j: i });
            }
        }
        for i in 0..n {
            let pi = u64::from(popcounts[i]);
            for j in i + 1..n {
                let pj = u64::from(popcounts[j]);
                let h = u64::from(hamming_upper[i * n + j]);
                let ok = h >= pi.abs_diff(pj)
                    && h <= pi + pj
                    && h <= 2 * nb - pi - pj
                    && (h + pi + pj) % 2 == 0;
                if !ok {
                    return Err(SahdError::CountOutOfRange { i, j });
                }
            }
        }
        if multiplicity == 0 {
            return Ok(());
        }
        for (i, &p) in popcounts.iter().enumerate() {
            self.sum[i * n + i] = f64::from(p);
        }
        for i in 0..n {
            for j in i + 1..n {
                self.sum[j * n + i] = f64::from(hamming_upper[i * n + j]);
            }
        }
        self.add_pair(n_bits, multiplicity);
        self.pairs = pairs;
        self.bits_sum = bits_sum;
        Ok(())
    }

    fn check_out(&self, len: usize, needed: usize) -> Result<f64, SahdError> {
        self.check()?;
        let nbar = self.nbar().ok_or(SahdError::NoPairs)?;
        if len < needed {
            return Err(SahdError::BufferTooSmall { needed, got: len });
        }
        Ok(nbar)
    }

    /// `A_ij`, computed from the sums (`A_ii = 0`).
    fn a(&self, i: usize, j: usize) -> f64 {
        let (i, j) = if i <= j { (i, j) } else { (j, i) };
        let scale = match self.distance {
            Distance::SparsityAware => -0.5,
            Distance::Hamming => -1.0,
        };
        if i == j {
            0.0
        } else {
            scale * self.sum[i * self.n + j] / self.pairs as f64
        }
    }

    /// Writes the full symmetric `A` (`N x N`, row-major) of the split `K = nbar J + A` into
    /// `a_out[..N*N]` and returns `nbar`.
    ///
    /// Errors: no pair yet ([`SahdError::NoPairs`]), `a_out` shorter than `N * N`.
    pub fn split(&self, a_out: &mut [f64]) -> Result<f64, SahdError> {
        let n = self.n;
        let nbar = self.check_out(a_out.len(), n * n)?;
        for (k, x) in a_out[..n * n].iter_mut().enumerate() {
            *x = self.a(k / n, k % n);
        }
        Ok(nbar)
    }

    /// Writes the assembled kernel `K_ij = nbar + A_ij` (`N x N`, row-major) into `out[..N*N]`,
    /// for inspection and tests (the assembled entries round `A` to the precision of `nbar`).
    ///
    /// Errors: no pair yet ([`SahdError::NoPairs`]), `out` shorter than `N * N`.
    pub fn kernel(&self, out: &mut [f64]) -> Result<(), SahdError> {
        let n = self.n;
        let nbar = self.split(out)?;
        for x in &mut out[..n * n] {
            *x += nbar;
        }
        Ok(())
    }

    /// `(ln |det K|, sign det K)` by the matrix determinant lemma on `K = nbar J + A` (falling
    /// back to the LU of the assembled `K` when `A` is exactly singular, e.g. `N = 1`); a singular
    /// `K` gives `(-inf, 0)`.
    ///
    /// `scratch` needs at least `N * N + N` elements. Errors: no pair yet, short `scratch`.
    pub fn slogdet(&self, scratch: &mut [f64]) -> Result<(f64, i8), SahdError> {
        let n = self.n;
        let nn = n * n;
        let nbar = self.check_out(scratch.len(), nn + n)?;
        let (work, x) = scratch.split_at_mut(nn);
        self.split(work)?;
        Ok(rank_one_core(nbar, work, &mut x[..n], n, |w| {
            for (k, v) in w.iter_mut().enumerate() {
                *v = nbar + self.a(k / n, k % n);
            }
        }))
    }

    /// The SAHD score `ln |det K|`: finite, or `-inf` when `K` is singular (e.g. two identical
    /// codes in every pair, or all codes empty). See [`slogdet`](Self::slogdet).
    pub fn score(&self, scratch: &mut [f64]) -> Result<f64, SahdError> {
        self.slogdet(scratch).map(|(log, _)| log)
    }
}

/// Accumulates each layer's codes ([`accumulate`](SahdKernel::accumulate)); a refused code set
/// becomes the kernel's [`fault`](SahdKernel::fault) and later code sets are ignored.
impl SpikeObserver for SahdKernel<'_> {
    fn on_spikes(&mut self, _: usize, _: LayerId, codes: &SpikeCodes<'_>) {
        if self.fault.is_some() {
            return;
        }
        let c = codes;
        if let Err(e) = self.accumulate(c.words, c.words_per_code, c.n_bits, c.multiplicity) {
            self.fault = Some(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::{hamming, pack_rows_u8, popcount, words_for};
    use crate::rng::SplitMix64;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    /// One (layer, timestep) pair: N unpacked 0/1 codes of n bits, row-major.
    struct Pair {
        bits: Vec<u8>,
        n_bits: usize,
        mult: u32,
    }

    fn random_pair(rng: &mut SplitMix64, n: usize, n_bits: usize, mult: u32) -> Pair {
        // per-sample firing rates from 0 to 60 %, some samples silent
        let bits = (0..n)
            .flat_map(|_| {
                let rate = rng.next_u64() % 61;
                let rate = if rate < 3 { 0 } else { rate };
                (0..n_bits)
                    .map(|_| (rng.next_u64() % 100 < rate) as u8)
                    .collect::<Vec<_>>()
            })
            .collect();
        Pair { bits, n_bits, mult }
    }

    /// K straight from the formula on 0/1 vectors, in f64.
    fn dense_kernel(pairs: &[Pair], n: usize) -> Vec<f64> {
        let mut k = vec![0.0; n * n];
        let mut count = 0;
        for p in pairs {
            let nb = p.n_bits as f64;
            let code = |i: usize| &p.bits[i * p.n_bits..(i + 1) * p.n_bits];
            for _ in 0..p.mult {
                count += 1;
                for i in 0..n {
                    for j in 0..n {
                        let si = code(i).iter().map(|&b| b as f64).sum::<f64>() / nb;
                        let sj = code(j).iter().map(|&b| b as f64).sum::<f64>() / nb;
                        let e = nb * (si * (1.0 - sj) + sj * (1.0 - si));
                        let h = code(i).iter().zip(code(j)).filter(|(a, b)| a != b).count();
                        k[i * n + j] += nb - 0.5 * h as f64 / (e + 1e-3);
                    }
                }
            }
        }
        k.iter().map(|x| x / count as f64).collect()
    }

    fn direct_slogdet(k: &[f64], n: usize) -> f64 {
        let mut m = k.to_vec();
        let mut log = 0.0;
        for c in 0..n {
            let p = (c..n)
                .max_by(|&a, &b| m[a * n + c].abs().total_cmp(&m[b * n + c].abs()))
                .unwrap();
            for j in 0..n {
                m.swap(c * n + j, p * n + j);
            }
            let piv = m[c * n + c];
            if piv == 0.0 {
                return f64::NEG_INFINITY;
            }
            log += piv.abs().ln();
            for i in c + 1..n {
                let l = m[i * n + c] / piv;
                for j in c..n {
                    m[i * n + j] -= l * m[c * n + j];
                }
            }
        }
        log
    }

    fn packed(p: &Pair, n: usize) -> (Vec<u64>, usize) {
        let wpc = words_for(p.n_bits);
        let mut out = vec![0u64; n * wpc];
        assert_eq!(pack_rows_u8(&p.bits, n, &mut out), Ok(wpc));
        (out, wpc)
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn matches_dense_formula() {
        let mut rng = SplitMix64::new(2024);
        for (case, &n) in [8usize, 13, 32].iter().enumerate() {
            let layers = [100usize, 777, 5000, 64, 2048];
            let pairs: Vec<Pair> = layers
                .iter()
                .enumerate()
                .map(|(l, &nb)| random_pair(&mut rng, n, nb, 1 + (l % 2) as u32))
                .collect();
            let want = dense_kernel(&pairs, n);
            let mut buf = vec![0.0; n * n];
            let mut buf2 = vec![0.0; n * n];
            let mut kern = SahdKernel::new(n, &mut buf).unwrap();
            let mut kern2 = SahdKernel::new(n, &mut buf2).unwrap();
            for p in &pairs {
                let (codes, wpc) = packed(p, n);
                kern.accumulate(&codes, wpc, p.n_bits, p.mult).unwrap();
                // the GPU path: counts given
                let pcs: Vec<u32> = (0..n)
                    .map(|i| popcount(&codes[i * wpc..(i + 1) * wpc]))
                    .collect();
                let mut h = vec![u32::MAX; n * n];
                for i in 0..n {
                    for j in i + 1..n {
                        h[i * n + j] = hamming(
                            &codes[i * wpc..(i + 1) * wpc],
                            &codes[j * wpc..(j + 1) * wpc],
                        );
                    }
                }
                kern2
                    .accumulate_hamming(&pcs, &h, p.n_bits, p.mult)
                    .unwrap();
            }
            assert_eq!(kern.pairs(), 7);
            let mut got = vec![0.0; n * n];
            kern.kernel(&mut got).unwrap();
            for (g, w) in got.iter().zip(&want) {
                assert!(close(*g, *w, 1e-12), "case {case}: {g} vs {w}");
            }
            let mut scratch = vec![0.0; n * n + n];
            let score = kern.score(&mut scratch).unwrap();
            let reference = direct_slogdet(&want, n);
            std::println!("N={n}: score {score}, dense reference {reference}");
            assert!(score.is_finite());
            assert!(close(score, reference, 1e-9), "{score} vs {reference}");
            assert_eq!(kern2.score(&mut scratch).unwrap(), score);
            // multiplicity 2 == accumulating twice (up to rounding)
            let mut buf3 = vec![0.0; n * n];
            let mut kern3 = SahdKernel::new(n, &mut buf3).unwrap();
            for p in &pairs {
                let (codes, wpc) = packed(p, n);
                for _ in 0..p.mult {
                    kern3.accumulate(&codes, wpc, p.n_bits, 1).unwrap();
                }
            }
            assert!(close(kern3.score(&mut scratch).unwrap(), score, 1e-12));
        }
    }

    #[test]
    fn hamming_distance_is_naswots_kernel() {
        // K_ij = mean over pairs (with multiplicity) of n - H_ij, straight from 0/1 vectors
        let mut rng = SplitMix64::new(77);
        let n = 9;
        let pairs: Vec<Pair> = [50usize, 300, 129]
            .iter()
            .enumerate()
            .map(|(l, &nb)| random_pair(&mut rng, n, nb, 1 + l as u32))
            .collect();
        let mut want = vec![0.0; n * n];
        let mut count = 0.0;
        for p in &pairs {
            let code = |i: usize| &p.bits[i * p.n_bits..(i + 1) * p.n_bits];
            for i in 0..n {
                for j in 0..n {
                    let h = code(i).iter().zip(code(j)).filter(|(a, b)| a != b).count();
                    want[i * n + j] += p.mult as f64 * (p.n_bits - h) as f64;
                }
            }
            count += p.mult as f64;
        }
        let mut buf = vec![0.0; n * n];
        let mut kern = SahdKernel::new(n, &mut buf)
            .unwrap()
            .with_distance(Distance::Hamming);
        for p in &pairs {
            let (codes, wpc) = packed(p, n);
            kern.accumulate(&codes, wpc, p.n_bits, p.mult).unwrap();
        }
        let mut got = vec![0.0; n * n];
        kern.kernel(&mut got).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!(close(*g, w / count, 1e-12), "{g} vs {}", w / count);
        }
        let mut scratch = vec![0.0; n * n + n];
        let want_k: Vec<f64> = want.iter().map(|w| w / count).collect();
        let score = kern.score(&mut scratch).unwrap();
        assert!(close(score, direct_slogdet(&want_k, n), 1e-9));
        // and it differs from the sparsity-aware score of the same codes
        let mut buf2 = vec![0.0; n * n];
        let mut sahd = SahdKernel::new(n, &mut buf2).unwrap();
        for p in &pairs {
            let (codes, wpc) = packed(p, n);
            sahd.accumulate(&codes, wpc, p.n_bits, p.mult).unwrap();
        }
        assert!(sahd.score(&mut scratch).unwrap() != score);
    }

    #[test]
    fn singular_cases() {
        let n = 6;
        let n_bits = 300;
        let wpc = words_for(n_bits);
        let mut scratch = vec![0.0; n * n + n];
        let mut buf = vec![0.0; n * n];
        // identical codes: K = nbar J, singular
        let mut rng = SplitMix64::new(5);
        let one = random_pair(&mut rng, 1, n_bits, 1);
        let same: Vec<u8> = (0..n).flat_map(|_| one.bits.iter().copied()).collect();
        let mut codes = vec![0u64; n * wpc];
        pack_rows_u8(&same, n, &mut codes).unwrap();
        let mut k = SahdKernel::new(n, &mut buf).unwrap();
        k.accumulate(&codes, wpc, n_bits, 1).unwrap();
        assert_eq!(k.slogdet(&mut scratch).unwrap(), (f64::NEG_INFINITY, 0));
        // two of six codes identical (in every pair): still singular
        let mut p = random_pair(&mut rng, n, n_bits, 1);
        let (a, b) = p.bits.split_at_mut(n_bits * 3);
        b[n_bits..2 * n_bits].copy_from_slice(&a[n_bits..2 * n_bits]);
        let (codes, _) = packed(&p, n);
        k.reset();
        k.accumulate(&codes, wpc, n_bits, 3).unwrap();
        assert_eq!(k.score(&mut scratch).unwrap(), f64::NEG_INFINITY);
        // all-zero codes: E = 0, terms 0, K = nbar J
        k.reset();
        k.accumulate(&vec![0u64; n * wpc], wpc, n_bits, 1).unwrap();
        let mut kk = vec![0.0; n * n];
        k.kernel(&mut kk).unwrap();
        assert!(kk.iter().all(|&x| x == n_bits as f64));
        assert_eq!(k.score(&mut scratch).unwrap(), f64::NEG_INFINITY);
        // one silent code among others: finite, and as the formula says
        let mut p = random_pair(&mut rng, n, n_bits, 1);
        p.bits[..n_bits].fill(0);
        p.bits[n_bits..2 * n_bits].fill(1);
        let (codes, _) = packed(&p, n);
        k.reset();
        k.accumulate(&codes, wpc, n_bits, 1).unwrap();
        k.kernel(&mut kk).unwrap();
        let want = dense_kernel(&[p], n);
        assert!(kk.iter().zip(&want).all(|(a, b)| close(*a, *b, 1e-13)));
        let s = k.score(&mut scratch).unwrap();
        assert!(s.is_finite());
        assert!(close(s, direct_slogdet(&want, n), 1e-9));
        // N = 1: K = [nbar]
        let mut b1 = [0.0; 1];
        let mut k1 = SahdKernel::new(1, &mut b1).unwrap();
        k1.accumulate(&[0b1011], 1, 10, 1).unwrap();
        k1.accumulate(&[0], 1, 30, 1).unwrap();
        assert_eq!(k1.slogdet(&mut [0.0; 2]).unwrap(), (20f64.ln(), 1));
    }

    #[test]
    fn observing_equals_accumulating_and_keeps_the_first_fault() {
        let codes = [0b1011u64, 0b0110, 0b1111];
        let (mut b1, mut b2) = (vec![0.0; 9], vec![0.0; 9]);
        let mut direct = SahdKernel::new(3, &mut b1).unwrap();
        let mut observed = SahdKernel::new(3, &mut b2).unwrap();
        direct.accumulate(&codes, 1, 4, 2).unwrap();
        let c = SpikeCodes {
            words: &codes,
            words_per_code: 1,
            n_bits: 4,
            multiplicity: 2,
        };
        observed.on_spikes(0, LayerId::Hidden, &c);
        let (mut s1, mut s2) = ([0.0; 12], [0.0; 12]);
        assert_eq!(direct.score(&mut s1), observed.score(&mut s2));
        assert_eq!((observed.fault(), observed.check()), (None, Ok(())));
        // A bit beyond n_bits = 2 is refused; the fault sticks and a good set after it is ignored.
        observed.on_spikes(1, LayerId::Hidden, &SpikeCodes { n_bits: 2, ..c });
        observed.on_spikes(2, LayerId::Hidden, &c);
        assert_eq!(observed.fault(), Some(SahdError::NonZeroPadding { row: 0 }));
        assert_eq!(observed.check(), Err(SahdError::NonZeroPadding { row: 0 }));
        assert_eq!(observed.pairs(), 2);
        assert_eq!(
            observed.score(&mut s2),
            Err(SahdError::NonZeroPadding { row: 0 })
        );
        observed.reset();
        assert_eq!(observed.fault(), None);
    }

    #[test]
    fn errors_not_panics() {
        let mut buf = vec![0.0; 16];
        assert_eq!(
            SahdKernel::new(0, &mut buf).unwrap_err(),
            SahdError::EmptyBatch
        );
        assert!(SahdKernel::new(5, &mut buf).is_err());
        assert_eq!(
            SahdKernel::new(usize::MAX, &mut buf).unwrap_err(),
            SahdError::Overflow
        );
        let mut k = SahdKernel::new(2, &mut buf).unwrap();
        let mut s = [0.0; 6];
        assert_eq!(k.score(&mut s), Err(SahdError::NoPairs));
        assert_eq!(k.kernel(&mut s), Err(SahdError::NoPairs));
        assert_eq!(k.accumulate(&[0, 0], 1, 0, 1), Err(SahdError::ZeroBits));
        assert_eq!(
            k.accumulate(&[0, 0], 1, 65, 1),
            Err(SahdError::TooFewWords { needed: 2, got: 1 })
        );
        assert!(k.accumulate(&[0, 0, 0], 1, 64, 1).is_err());
        assert_eq!(
            k.accumulate(&[1, 1 << 10], 1, 10, 1),
            Err(SahdError::NonZeroPadding { row: 1 })
        );
        assert_eq!(
            k.accumulate(&[1, 0, 1, 1], 2, 10, 1),
            Err(SahdError::NonZeroPadding { row: 1 })
        );
        assert!(k.accumulate_hamming(&[1], &[0; 4], 10, 1).is_err());
        assert!(k.accumulate_hamming(&[1, 1], &[0; 3], 10, 1).is_err());
        assert_eq!(
            k.accumulate_hamming(&[11, 1], &[0; 4], 10, 1),
            Err(SahdError::CountOutOfRange { i: 0, j: 0 })
        );
        // |p_i - p_j| = 2 > H = 1; parity; H > 2n - p_i - p_j
        for h in [1u32, 3, 9] {
            assert_eq!(
                k.accumulate_hamming(&[4, 6], &[0, h, 0, 0], 10, 1),
                Err(SahdError::CountOutOfRange { i: 0, j: 1 })
            );
        }
        assert_eq!(k.pairs(), 0);
        // the failed calls left nothing behind
        k.accumulate_hamming(&[4, 6], &[0, 2, 0, 0], 10, 0).unwrap();
        assert_eq!(k.pairs(), 0);
        k.accumulate(&[1, 2], 1, 10, 1).unwrap();
        let mut kk = [0.0; 4];
        k.kernel(&mut kk).unwrap();
        // p = 1, 1; E = 2 - 0.2 = 1.8; H = 2
        let off = 10.0 - 0.5 * 2.0 / (1.8 + 1e-3);
        assert_eq!(kk[0], 10.0);
        assert!(close(kk[1], off, 1e-15) && kk[1] == kk[2]);
        assert!(k.kernel(&mut [0.0; 3]).is_err());
        assert!(k.score(&mut [0.0; 5]).is_err());
        assert!(k.split(&mut [0.0; 3]).is_err());
        assert!(k.score(&mut s).unwrap().is_finite());
        std::println!("{}", SahdError::CountOutOfRange { i: 0, j: 1 });
    }

    proptest! {
        #[test]
        fn score_is_finite_or_neg_inf(
            n in 1usize..10,
            n_bits in 1usize..300,
            layers in 1usize..4,
            seed in any::<u64>(),
            density in 0u64..5,
        ) {
            let mut rng = SplitMix64::new(seed);
            let wpc = words_for(n_bits);
            let mut buf = vec![0.0; n * n];
            let mut k = SahdKernel::new(n, &mut buf).unwrap();
            for l in 0..layers {
                let nb = (n_bits + 37 * l) % 300 + 1;
                let w = words_for(nb);
                let codes: Vec<u64> = (0..n * wpc.max(w))
                    .map(|idx| {
                        let (row_word, word) = (idx % wpc.max(w), rng.next_u64());
                        // sparse, dense, all-zero or all-one-ish codes
                        let word = match density {
                            0 => 0,
                            1 => word & rng.next_u64() & rng.next_u64(),
                            2 => word,
                            3 => !0,
                            _ => if rng.next_u64().is_multiple_of(2) { 0 } else { word },
                        };
                        if row_word + 1 < w {
                            word
                        } else if row_word + 1 == w {
                            let tail = nb % 64;
                            if tail == 0 { word } else { word & ((1u64 << tail) - 1) }
                        } else {
                            0
                        }
                    })
                    .collect();
                k.accumulate(&codes, wpc.max(w), nb, (l % 3) as u32).unwrap();
            }
            let mut scratch = vec![0.0; n * n + n];
            match k.score(&mut scratch) {
                Ok(s) => prop_assert!(s.is_finite() || s == f64::NEG_INFINITY, "{}", s),
                Err(e) => prop_assert_eq!(e, SahdError::NoPairs),
            }
        }
    }
}
