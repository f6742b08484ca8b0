//! Rank statistics for the study: Kendall's tau-b, Spearman's rho (both with ties), bootstrap
//! confidence intervals and percentiles.
//!
//! Everything here is plain `f64` arithmetic on small vectors (tens of points), written for
//! clarity rather than speed: Kendall's tau is the O(n²) pair count.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Kendall's tau-b of the pairs `(x[i], y[i])`: (concordant − discordant) /
/// sqrt((n0 − n1)(n0 − n2)), where n0 = n(n−1)/2 and n1, n2 count the pairs tied in x and in y.
/// `None` when fewer than two points, when the lengths differ, or when x or y is constant.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 2 || y.len() != n {
        return None;
    }
    let (mut s, mut tied_x, mut tied_y, mut pairs) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            pairs += 1;
            let dx = sign(x[i] - x[j]);
            let dy = sign(y[i] - y[j]);
            if dx == 0 {
                tied_x += 1;
            }
            if dy == 0 {
                tied_y += 1;
            }
            s += dx * dy;
        }
    }
    let denom = (((pairs - tied_x) * (pairs - tied_y)) as f64).sqrt();
    (denom > 0.0).then(|| s as f64 / denom)
}

fn sign(d: f64) -> i64 {
    if d > 0.0 {
        1
    } else if d < 0.0 {
        -1
    } else {
        0
    }
}

/// Ranks 1..=n, tied values sharing the mean of their ranks ("fractional" ranking).
pub fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        // positions i..=j (0-based) hold ranks i+1..=j+1; their mean is (i + j) / 2 + 1
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    ranks
}

/// Pearson's correlation coefficient; `None` for fewer than two points or a constant input.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 2 || y.len() != n {
        return None;
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    let d = (sxx * syy).sqrt();
    (d > 0.0).then(|| sxy / d)
}

/// Spearman's rho: Pearson's correlation of the average ranks (the tie-corrected definition).
pub fn spearman_rho(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() {
        return None;
    }
    pearson(&average_ranks(x), &average_ranks(y))
}

/// A statistic with its bootstrap percentile interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The statistic on the data (`None` if undefined, e.g. a constant input).
    pub value: Option<f64>,
    /// Lower end of the 95% percentile bootstrap interval.
    pub ci_low: Option<f64>,
    /// Upper end of the interval.
    pub ci_high: Option<f64>,
    /// Bootstrap resamples drawn.
    pub resamples: usize,
    /// Resamples on which the statistic was defined (the interval uses only these).
    pub defined: usize,
}

impl std::fmt::Display for Estimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.value, self.ci_low, self.ci_high) {
            (Some(v), Some(lo), Some(hi)) => write!(f, "{v:.3} [95% CI {lo:.3}, {hi:.3}]"),
            (Some(v), _, _) => write!(f, "{v:.3} [no interval]"),
            _ => f.write_str("undefined"),
        }
    }
}

/// `stat` on `(x, y)` with a 95% percentile bootstrap interval: `resamples` draws of n pairs
/// with replacement from a ChaCha8 stream seeded with `seed`; the interval is the 2.5% and
/// 97.5% empirical quantiles (linear interpolation) of the resampled statistic.
pub fn bootstrap(
    x: &[f64],
    y: &[f64],
    stat: fn(&[f64], &[f64]) -> Option<f64>,
    resamples: usize,
    seed: u64,
) -> Estimate {
    let value = stat(x, y);
    let n = x.len().min(y.len());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut values = Vec::with_capacity(resamples);
    let (mut bx, mut by) = (vec![0.0; n], vec![0.0; n]);
    if n > 0 {
        for _ in 0..resamples {
            for k in 0..n {
                let i = rng.gen_range(0..n);
                bx[k] = x[i];
                by[k] = y[i];
            }
            if let Some(v) = stat(&bx, &by) {
                values.push(v);
            }
        }
    }
    values.sort_by(f64::total_cmp);
    Estimate {
        value,
        ci_low: quantile(&values, 0.025),
        ci_high: quantile(&values, 0.975),
        resamples,
        defined: values.len(),
    }
}

/// The `q` quantile of sorted `v` by linear interpolation between order statistics (NumPy's
/// default); `None` for an empty input.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

/// Percentile rank of `value` among `population`, in percent: the share below it plus half
/// the share equal to it (so the median of a population ranks 50).
pub fn percentile_rank(value: f64, population: &[f64]) -> Option<f64> {
    if population.is_empty() {
        return None;
    }
    let below = population.iter().filter(|&&p| p < value).count() as f64;
    let equal = population.iter().filter(|&&p| p == value).count() as f64;
    Some(100.0 * (below + 0.5 * equal) / population.len() as f64)
}

/// Mean and sample standard deviation (n − 1; 0 for a single value).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    (m, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn kendall_by_hand() {
        // perfect agreement and reversal
        close(kendall_tau_b(&[1., 2., 3.], &[10., 20., 30.]).unwrap(), 1.0);
        close(kendall_tau_b(&[1., 2., 3.], &[3., 2., 1.]).unwrap(), -1.0);
        // x = 1 2 3 4, y = 1 3 2 4: pairs (6): one discordant (2,3) -> (5 - 1) / 6
        close(
            kendall_tau_b(&[1., 2., 3., 4.], &[1., 3., 2., 4.]).unwrap(),
            4.0 / 6.0,
        );
        // ties: x = 1 1 2 3, y = 1 2 2 3.
        // pairs: (0,1) x tie, y + -> 0; (0,2) ++; (0,3) ++; (1,2) x +, y tie -> 0; (1,3) ++;
        // (2,3) ++. S = 4, n0 = 6, n1 = 1 (x ties), n2 = 1 (y ties): 4 / sqrt(5 * 5) = 0.8
        close(
            kendall_tau_b(&[1., 1., 2., 3.], &[1., 2., 2., 3.]).unwrap(),
            0.8,
        );
        // x = 1 2 3, y = 5 5 1: (0,1) y tie; (0,2) +-; (1,2) +-: S = -2,
        // n0 = 3, n1 = 0, n2 = 1: -2 / sqrt(3 * 2)
        close(
            kendall_tau_b(&[1., 2., 3.], &[5., 5., 1.]).unwrap(),
            -2.0 / 6f64.sqrt(),
        );
        assert_eq!(kendall_tau_b(&[1., 1., 1.], &[1., 2., 3.]), None);
        assert_eq!(kendall_tau_b(&[1.], &[1.]), None);
    }

    #[test]
    fn ranks_with_ties() {
        assert_eq!(average_ranks(&[10., 30., 20.]), vec![1., 3., 2.]);
        assert_eq!(average_ranks(&[5., 1., 5., 5.]), vec![3., 1., 3., 3.]);
        assert_eq!(average_ranks(&[2., 2., 1., 1.]), vec![3.5, 3.5, 1.5, 1.5]);
    }

    #[test]
    fn spearman_by_hand() {
        // no ties: rho = 1 - 6 sum d^2 / (n (n^2 - 1)); x ranks 1 2 3 4 5, y ranks 2 1 4 3 5:
        // sum d^2 = 4 -> 1 - 24 / 120 = 0.8
        close(
            spearman_rho(&[1., 2., 3., 4., 5.], &[20., 10., 40., 30., 50.]).unwrap(),
            0.8,
        );
        // ties: x = 1 2 2 3 -> ranks 1 2.5 2.5 4; y = 1 2 3 4.
        // Pearson of (1, 2.5, 2.5, 4) and (1, 2, 3, 4): means 2.5; deviations
        // (-1.5, 0, 0, 1.5) and (-1.5, -0.5, 0.5, 1.5): sxy = 4.5, sxx = 4.5, syy = 5
        // -> 4.5 / sqrt(22.5) = 0.9486832980505138
        close(
            spearman_rho(&[1., 2., 2., 3.], &[1., 2., 3., 4.]).unwrap(),
            4.5 / 22.5f64.sqrt(),
        );
        assert_eq!(spearman_rho(&[1., 2.], &[3., 3.]), None);
    }

    #[test]
    fn quantiles_and_percentiles() {
        let v = [1., 2., 3., 4., 5.];
        close(quantile(&v, 0.5).unwrap(), 3.0);
        close(quantile(&v, 0.025).unwrap(), 1.1);
        close(quantile(&v, 0.975).unwrap(), 4.9);
        assert_eq!(quantile(&[], 0.5), None);
        close(percentile_rank(3., &v).unwrap(), 50.0);
        close(percentile_rank(6., &v).unwrap(), 100.0);
        close(percentile_rank(0., &v).unwrap(), 0.0);
        close(percentile_rank(2., &[2., 2.]).unwrap(), 50.0);
        let (m, s) = mean_std(&[1., 2., 3.]);
        close(m, 2.0);
        close(s, 1.0);
    }

    #[test]
    fn bootstrap_brackets_the_value_and_is_seeded() {
        let x: Vec<f64> = (0..30).map(|i| i as f64).collect();
        let y: Vec<f64> = x.iter().map(|v| v + 10.0 * ((v * 7.3).sin())).collect();
        let a = bootstrap(&x, &y, kendall_tau_b, 500, 7);
        let b = bootstrap(&x, &y, kendall_tau_b, 500, 7);
        assert_eq!(a, b);
        let v = a.value.unwrap();
        assert!(a.ci_low.unwrap() <= v && v <= a.ci_high.unwrap(), "{a}");
        assert!(a.ci_high.unwrap() - a.ci_low.unwrap() > 0.01);
        assert_eq!(a.resamples, 500);
        // perfectly monotone data: every resample with two distinct points gives tau = 1
        let p = bootstrap(&x, &x, kendall_tau_b, 200, 1);
        assert_eq!((p.ci_low, p.ci_high), (Some(1.0), Some(1.0)));
    }
}
