//! Rank statistics shared by the study and the benchmark evaluation: Kendall's tau-b and
//! Spearman's rho (both with ties), tau within groups, the top-fraction hit rate, bootstrap
//! confidence intervals and percentiles.
//!
//! Everything here is plain `f64` arithmetic. Kendall's tau-b uses Knight's O(n log n)
//! algorithm (a merge sort counts the discordant pairs exactly, as integers), so it serves the
//! few tens of points of a study and the 15,625 cells of a benchmark alike.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Kendall's tau-b of the pairs `(x[i], y[i])`: (concordant − discordant) /
/// sqrt((n0 − n1)(n0 − n2)), where n0 = n(n−1)/2 and n1, n2 count the pairs tied in x and in y.
/// `None` when fewer than two points, when the lengths differ, when x or y is constant, or when
/// a value is NaN. Infinite values are ordinary values (two equal infinities tie).
///
/// Knight's algorithm: sort by (x, y), count the pairs tied in x, in y and in both, and count
/// the discordant pairs as the inversions of y in that order (merge sort); every count is an
/// exact integer, so the result equals the O(n²) pair count's to the last bit.
///
/// ```
/// use lightsnn::stats::kendall_tau_b;
/// // one discordant pair out of six
/// assert_eq!(kendall_tau_b(&[1., 2., 3., 4.], &[1., 3., 2., 4.]), Some(4.0 / 6.0));
/// ```
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 2 || y.len() != n || x.iter().chain(y).any(|v| v.is_nan()) {
        return None;
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]).then(y[a].total_cmp(&y[b])));
    let pairs = |t: u64| t * t.saturating_sub(1) / 2;
    // ties in x, and in (x, y) jointly, are runs of the sorted order
    let (mut tied_x, mut tied_xy) = (0u64, 0u64);
    let (mut run_x, mut run_xy) = (1u64, 1u64);
    for w in idx.windows(2) {
        let (a, b) = (w[0], w[1]);
        if x[a] == x[b] {
            run_x += 1;
            if y[a] == y[b] {
                run_xy += 1;
            } else {
                tied_xy += pairs(run_xy);
                run_xy = 1;
            }
        } else {
            tied_x += pairs(run_x);
            tied_xy += pairs(run_xy);
            (run_x, run_xy) = (1, 1);
        }
    }
    tied_x += pairs(run_x);
    tied_xy += pairs(run_xy);
    let mut ys: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
    let discordant = sort_counting_inversions(&mut ys);
    // ys is now sorted: ties in y are its runs
    let mut tied_y = 0u64;
    let mut run = 1u64;
    for w in ys.windows(2) {
        if w[0] == w[1] {
            run += 1;
        } else {
            tied_y += pairs(run);
            run = 1;
        }
    }
    tied_y += pairs(run);
    let n0 = pairs(n as u64);
    let s = n0 as i128 - tied_x as i128 - tied_y as i128 + tied_xy as i128 - 2 * discordant as i128;
    let denom = (((n0 - tied_x) as f64) * ((n0 - tied_y) as f64)).sqrt();
    (denom > 0.0).then(|| s as f64 / denom)
}

/// Sorts `v` ascending (a stable merge sort) and returns the number of pairs `i < j` with
/// `v[i] > v[j]` before sorting (equal values are not inversions).
fn sort_counting_inversions(v: &mut [f64]) -> u64 {
    let n = v.len();
    let mut buf = vec![0.0; n];
    let mut inversions = 0u64;
    let mut width = 1;
    while width < n {
        let mut lo = 0;
        while lo < n {
            let mid = (lo + width).min(n);
            let hi = (lo + 2 * width).min(n);
            let (mut i, mut j, mut k) = (lo, mid, lo);
            while i < mid && j < hi {
                if v[j] < v[i] {
                    // v[j] precedes every remaining element of the left run
                    inversions += (mid - i) as u64;
                    buf[k] = v[j];
                    j += 1;
                } else {
                    buf[k] = v[i];
                    i += 1;
                }
                k += 1;
            }
            buf[k..k + (mid - i)].copy_from_slice(&v[i..mid]);
            k += mid - i;
            buf[k..k + (hi - j)].copy_from_slice(&v[j..hi]);
            lo = hi;
        }
        v.copy_from_slice(&buf);
        width *= 2;
    }
    inversions
}

/// Kendall's tau-b within groups (e.g. cells of equal parameter count): the mean of each
/// group's tau-b, weighted by the group's number of pairs, over the groups where it is defined
/// (at least two points, neither side constant). Returns `None` when no group qualifies,
/// otherwise the mean and the number of groups that entered it.
///
/// ```
/// use lightsnn::stats::kendall_tau_within_groups;
/// // group 0 agrees perfectly, group 1 disagrees; both have one pair: mean 0
/// let (tau, groups) = kendall_tau_within_groups(
///     &[1., 2., 1., 2.], &[1., 2., 2., 1.], &[0, 0, 1, 1]).unwrap();
/// assert_eq!((tau, groups), (0.0, 2));
/// ```
pub fn kendall_tau_within_groups(x: &[f64], y: &[f64], group: &[u64]) -> Option<(f64, usize)> {
    if x.len() != y.len() || x.len() != group.len() {
        return None;
    }
    let mut members: std::collections::BTreeMap<u64, Vec<usize>> = Default::default();
    for (i, &g) in group.iter().enumerate() {
        members.entry(g).or_default().push(i);
    }
    let (mut sum, mut weight, mut used) = (0.0, 0.0, 0);
    for idx in members.values() {
        let gx: Vec<f64> = idx.iter().map(|&i| x[i]).collect();
        let gy: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
        if let Some(t) = kendall_tau_b(&gx, &gy) {
            let w = (idx.len() * (idx.len() - 1) / 2) as f64;
            sum += w * t;
            weight += w;
            used += 1;
        }
    }
    (used > 0).then(|| (sum / weight, used))
}

/// The top-fraction hit rate: the share of the `k = ceil(fraction * n)` items with the highest
/// `score` whose `truth` is among the `k` highest truths (every item whose truth is at least
/// the k-th highest counts, so ties at the truth boundary all count as hits). Ties in `score`
/// at the boundary are resolved by expectation: the tied items share the remaining places
/// equally, as a uniformly random tie-break would on average (so a score that ranks everything
/// equal gets the base rate). `None` for empty inputs, different lengths, NaN, or a fraction
/// outside `(0, 1]`.
///
/// ```
/// use lightsnn::stats::top_hit_rate;
/// // top 50% by score = items 2, 3; top 50% by truth = items 1, 3: one hit of two
/// assert_eq!(top_hit_rate(&[1., 2., 3., 4.], &[0., 9., 1., 8.], 0.5), Some(0.5));
/// ```
pub fn top_hit_rate(score: &[f64], truth: &[f64], fraction: f64) -> Option<f64> {
    let n = score.len();
    if n == 0
        || truth.len() != n
        || !(fraction > 0.0 && fraction <= 1.0)
        || score.iter().chain(truth).any(|v| v.is_nan())
    {
        return None;
    }
    let k = ((fraction * n as f64).ceil() as usize).clamp(1, n);
    let mut by_truth = truth.to_vec();
    by_truth.sort_by(|a, b| b.total_cmp(a));
    let truth_cut = by_truth[k - 1];
    let mut by_score = score.to_vec();
    by_score.sort_by(|a, b| b.total_cmp(a));
    let score_cut = by_score[k - 1];
    let hit = |i: usize| (truth[i] >= truth_cut) as u64 as f64;
    let above: Vec<usize> = (0..n).filter(|&i| score[i] > score_cut).collect();
    let tied: Vec<usize> = (0..n).filter(|&i| score[i] == score_cut).collect();
    let places = (k - above.len()) as f64;
    let hits_above: f64 = above.iter().map(|&i| hit(i)).sum();
    let hits_tied: f64 = tied.iter().map(|&i| hit(i)).sum();
    Some((hits_above + places * hits_tied / tied.len() as f64) / k as f64)
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

    /// The O(n²) definition, the oracle of the fast version.
    fn kendall_pairs(x: &[f64], y: &[f64]) -> Option<f64> {
        let n = x.len();
        let (mut s, mut tx, mut ty, mut pairs) = (0i64, 0i64, 0i64, 0i64);
        let sign = |d: f64| (d > 0.0) as i64 - (d < 0.0) as i64;
        for i in 0..n {
            for j in i + 1..n {
                pairs += 1;
                let (dx, dy) = (sign(x[i] - x[j]), sign(y[i] - y[j]));
                tx += (dx == 0) as i64;
                ty += (dy == 0) as i64;
                s += dx * dy;
            }
        }
        let d = (((pairs - tx) * (pairs - ty)) as f64).sqrt();
        (n >= 2 && d > 0.0).then(|| s as f64 / d)
    }

    #[test]
    fn fast_kendall_equals_the_pair_count() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for trial in 0..200 {
            let n = rng.gen_range(2..60);
            // few distinct values on some trials, so that ties of every kind occur
            let levels = if trial % 2 == 0 { 4 } else { 1000 };
            let x: Vec<f64> = (0..n).map(|_| rng.gen_range(0..levels) as f64).collect();
            let y: Vec<f64> = (0..n).map(|_| rng.gen_range(0..levels) as f64).collect();
            assert_eq!(kendall_tau_b(&x, &y), kendall_pairs(&x, &y), "{x:?} {y:?}");
        }
        assert_eq!(kendall_tau_b(&[1., f64::NAN], &[1., 2.]), None);
        let inf = f64::INFINITY;
        assert_eq!(
            kendall_tau_b(&[-inf, -inf, 1., 2.], &[0., 1., 2., 3.]),
            kendall_pairs(&[-inf, -inf, 1., 2.], &[0., 1., 2., 3.])
        );
    }

    #[test]
    fn tau_within_groups_by_hand() {
        // group 7: x 1 2 3, y 1 3 2 -> tau 1/3 (3 pairs); group 9: x 1 2, y 2 1 -> -1 (1 pair);
        // group 4: one point (skipped); group 5: constant y (undefined, skipped).
        // weighted mean: (3 * 1/3 + 1 * -1) / 4 = 0
        let x = [1., 2., 3., 1., 2., 5., 1., 2.];
        let y = [1., 3., 2., 2., 1., 5., 3., 3.];
        let g = [7, 7, 7, 9, 9, 4, 5, 5];
        let (t, used) = kendall_tau_within_groups(&x, &y, &g).unwrap();
        close(t, 0.0);
        assert_eq!(used, 2);
        assert_eq!(kendall_tau_within_groups(&[1.], &[1.], &[0]), None);
    }

    #[test]
    fn top_hit_rate_by_hand() {
        // n = 10, fraction 0.2 -> k = 2. truth top 2: items 0 (10) and 1 (9).
        let truth = [10., 9., 1., 2., 3., 4., 5., 6., 7., 8.];
        // score picks items 0 and 9: one hit
        let mut score = [0.0; 10];
        score[0] = 5.;
        score[9] = 4.;
        close(top_hit_rate(&score, &truth, 0.2).unwrap(), 0.5);
        // a constant score gets the base rate k/n = 0.2
        close(top_hit_rate(&[1.0; 10], &truth, 0.2).unwrap(), 0.2);
        // item 0 above, items 1, 2, 3 tied for the last place: 1 + 1 * (1/3) hits of 2
        let score = [9., 5., 5., 5., 0., 0., 0., 0., 0., 0.];
        close(
            top_hit_rate(&score, &truth, 0.2).unwrap(),
            (1.0 + 1.0 / 3.0) / 2.0,
        );
        // ties in truth at the cut all count: truth top-2 cut = 9, items 1 and 2 both 9
        let truth = [10., 9., 9., 1., 1., 1., 1., 1., 1., 1.];
        let score = [0., 0., 1., 0., 0., 0., 0., 0., 0., 2.];
        close(top_hit_rate(&score, &truth, 0.2).unwrap(), 0.5);
        assert_eq!(top_hit_rate(&[1.], &[1.], 0.0), None);
        assert_eq!(top_hit_rate(&[], &[], 0.5), None);
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
