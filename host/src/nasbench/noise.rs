//! The benchmark's own run-to-run noise, measured on its isomorphic twins.
//!
//! SpikeNAS-Bench trained every cell once. Where edge `2<-1` is `zero`, nodes 1 and 2 both read
//! only the input node, and relabelling them (swapping the ops of `1<-0` and `2<-0`, and of
//! `3<-1` and `3<-2`) gives the same network: node 3 sums the same three inputs. The benchmark
//! gives the two labellings different ids and trained each separately, so such a pair is one
//! network trained twice, from two initialisations. The difference of their accuracies is the
//! benchmark's run-to-run noise, and it tells how much of a single row is the network and how
//! much is the run.
//!
//! ```
//! use lightsnn::nasbench::{noise, BenchCell};
//! // 1<-0 conv3@0.5, 2<-0 skip, 2<-1 zero, 3<-0 conv3, 3<-1 zero, 3<-2 conv3@1.5
//! let cell = BenchCell::new([2, 1, 0, 3, 0, 4]).unwrap();
//! // the same network with nodes 1 and 2 relabelled
//! assert_eq!(noise::twin(cell), Some(BenchCell::new([1, 2, 0, 3, 4, 0]).unwrap()));
//! // with 2<-1 not zero, node 2 reads node 1: no relabelling gives the same network
//! assert_eq!(noise::twin(BenchCell::new([2, 1, 3, 3, 0, 4]).unwrap()), None);
//! ```

use super::cell_id::BenchCell;
use super::table::Table;
use crate::stats::{bootstrap, mean_std, pearson, Estimate};
use serde::{Deserialize, Serialize};

/// Bootstrap resamples of [`TwinNoise::run_sd_good`]'s interval.
const RESAMPLES: usize = 1000;

/// The other labelling of `cell`'s network: nodes 1 and 2 swapped. `None` where edge `2<-1`
/// is not `zero` (node 2 then reads node 1) or where the swap gives the cell itself.
pub fn twin(cell: BenchCell) -> Option<BenchCell> {
    let [a, b, e21, c, d, e] = cell.0;
    if e21 != 0 {
        return None;
    }
    let other = BenchCell([b, a, 0, c, e, d]);
    (other != cell).then_some(other)
}

/// What the twins of a table say about its noise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TwinNoise {
    /// Twin pairs in the table whose two cells both learned (test accuracy above 10%).
    pub pairs: usize,
    /// The standard deviation of one run's test accuracy (points) from those pairs: the
    /// standard deviation of the pairs' differences over `sqrt(2)`.
    pub run_sd: f64,
    /// The table's median test accuracy.
    pub median: f64,
    /// Twin pairs whose two cells both reach the median.
    pub good_pairs: usize,
    /// One run's standard deviation from the pairs at or above the median (the cells a search
    /// chooses between), with a 95% bootstrap interval over the pairs.
    pub run_sd_good: Estimate,
    /// Pearson correlation, over the pairs at or above the median, of the twins' differences in
    /// final validation accuracy with their differences in test accuracy: how much of one run's
    /// test-accuracy luck shows in its validation accuracy too.
    pub val_test_corr: Option<f64>,
    /// The test accuracy a cell needs to be in the table's top 5% ([`Table::top_line`]).
    pub top5_line: f64,
    /// Cells that have a twin in the table (both in it).
    pub family_cells: usize,
    /// Of those, cells in the top 5%.
    pub family_top5: usize,
    /// Mean test accuracy of the twins of those top-5% cells.
    pub top5_twin_mean: f64,
    /// How many of those twins are in the top 5% too.
    pub top5_twins_in_top5: usize,
    /// Twin pairs whose mean accuracy (the network's accuracy averaged over its two runs)
    /// reaches the top-5% line.
    pub pair_means_in_top5: usize,
}

/// Measures the twins of `table`; `None` if it holds no pair of twins that both learned.
pub fn measure(table: &Table) -> Option<TwinNoise> {
    let top5_line = table.top_line(0.05);
    let median = table.median();
    let mut pairs: Vec<(f64, f64, f64, f64)> = Vec::new();
    let (mut family_cells, mut family_top5) = (0, 0);
    let (mut top5_twins, mut top5_twins_in_top5) = (Vec::new(), 0);
    for r in table.records() {
        let Some(t) = twin(r.cell).and_then(|c| table.get(c.id())) else {
            continue;
        };
        family_cells += 1;
        if r.test_acc >= top5_line {
            family_top5 += 1;
            top5_twins.push(t.test_acc);
            top5_twins_in_top5 += usize::from(t.test_acc >= top5_line);
        }
        if r.id < t.id && !r.is_dead() && !t.is_dead() {
            pairs.push((r.test_acc, t.test_acc, r.val_acc_final, t.val_acc_final));
        }
    }
    if pairs.is_empty() {
        return None;
    }
    let diffs: Vec<f64> = pairs.iter().map(|p| p.0 - p.1).collect();
    let good: Vec<&(f64, f64, f64, f64)> = pairs
        .iter()
        .filter(|p| p.0 >= median && p.1 >= median)
        .collect();
    let good_diffs: Vec<f64> = good.iter().map(|p| p.0 - p.1).collect();
    let good_val_diffs: Vec<f64> = good.iter().map(|p| p.2 - p.3).collect();
    let run_sd_good = bootstrap(&good_diffs, &good_diffs, run_sd_of, RESAMPLES, 0);
    Some(TwinNoise {
        pairs: pairs.len(),
        run_sd: run_sd_of(&diffs, &diffs).unwrap_or(f64::NAN),
        median,
        good_pairs: good.len(),
        run_sd_good,
        val_test_corr: pearson(&good_val_diffs, &good_diffs),
        top5_line,
        family_cells,
        family_top5,
        top5_twin_mean: mean_std(&top5_twins).0,
        top5_twins_in_top5,
        pair_means_in_top5: pairs
            .iter()
            .filter(|p| (p.0 + p.1) / 2.0 >= top5_line)
            .count(),
    })
}

/// One run's standard deviation from twin differences `d`: `sd(d) / sqrt(2)` (the second
/// argument is the bootstrap's pairing and is not read).
fn run_sd_of(d: &[f64], _: &[f64]) -> Option<f64> {
    (d.len() >= 2).then(|| mean_std(d).1 / std::f64::consts::SQRT_2)
}

/// The measurement as a Markdown section.
pub fn markdown(n: &TwinNoise) -> String {
    let pct = |k: usize, of: usize| {
        if of == 0 {
            "-".to_string()
        } else {
            format!("{:.0}%", 100.0 * k as f64 / of as f64)
        }
    };
    format!(
        "## The benchmark's run-to-run noise (isomorphic twins)\n\n\
         Where edge `2<-1` is `zero`, swapping nodes 1 and 2 gives the same network under \
         another id; the benchmark trained both, so each such pair is one network trained \
         twice.\n\n\
         - {} pairs of twins that both learned: one run's test accuracy has a standard deviation \
         of {:.2} points.\n\
         - {} pairs with both cells at or above the median ({:.2}%): {} points.\n\
         - Correlation of the twins' validation-accuracy differences with their test-accuracy \
         differences (same pairs): {}.\n\
         - Top-5% line {:.2}%. Of the {} cells that have a twin, {} are in the top 5% ({}); \
         their twins average {:.2}% and {} of them are in the top 5% too ({}). {} of the pairs \
         reach the line on their mean.\n",
        n.pairs,
        n.run_sd,
        n.good_pairs,
        n.median,
        n.run_sd_good,
        n.val_test_corr
            .map_or("undefined".to_string(), |c| format!("{c:.2}")),
        n.top5_line,
        n.family_cells,
        n.family_top5,
        pct(n.family_top5, n.family_cells),
        n.top5_twin_mean,
        n.top5_twins_in_top5,
        pct(n.top5_twins_in_top5, n.family_top5),
        n.pair_means_in_top5,
    )
}

#[cfg(test)]
mod tests {
    use super::super::record::Record;
    use super::*;
    use std::path::Path;

    fn record(cell: [u8; 6], test_acc: f64, val: f64) -> Record {
        let cell = BenchCell::new(cell).unwrap();
        Record {
            id: cell.id(),
            cell,
            params: 0,
            epochs: 100,
            test_acc,
            val_acc_final: val,
            val_acc_best: val,
            val_acc_early: [None; 5],
            train_acc_final: 0.0,
            firing_rates: [0.0; 16],
        }
    }

    #[test]
    fn twins_are_an_involution_on_their_family() {
        let mut family = 0;
        for c in BenchCell::all() {
            if let Some(t) = twin(c) {
                family += 1;
                assert_ne!(t, c);
                assert_eq!(twin(t), Some(c));
                assert_eq!(t.0[2], 0);
                // the same multiset of ops
                let (mut a, mut b) = (c.0, t.0);
                a.sort_unstable();
                b.sort_unstable();
                assert_eq!(a, b);
            }
        }
        // 5^5 cells with 2<-1 zero, less the 5^3 that are their own twin (a = b, d = e)
        assert_eq!(family, 3125 - 125);
    }

    #[test]
    fn measures_hand_made_pairs() {
        // two pairs of twins, a dead cell (10%) and its twin, and cells without twins
        let records = vec![
            record([2, 1, 0, 3, 0, 4], 89.0, 80.0),
            record([1, 2, 0, 3, 4, 0], 88.0, 79.0), // twin of the first: diff 1.0
            record([3, 0, 0, 3, 0, 2], 86.0, 77.0),
            record([0, 3, 0, 3, 2, 0], 87.0, 77.5), // twin of the third: diff -1.0
            record([4, 4, 0, 0, 2, 3], 10.0, 10.0),
            record([4, 4, 0, 0, 3, 2], 85.0, 76.0), // its twin learned, the pair does not count
            record([2, 2, 2, 2, 2, 2], 87.5, 78.0),
            record([3, 3, 3, 3, 3, 3], 86.5, 77.0),
        ];
        let table = Table::from_records(records, Path::new("t.csv")).unwrap();
        let n = measure(&table).unwrap();
        assert_eq!(n.pairs, 2);
        // differences +1 and -1 (in id order): sd sqrt(2), one run's sd 1
        assert!((n.run_sd - 1.0).abs() < 1e-12, "{}", n.run_sd);
        assert_eq!(n.family_cells, 6);
        // top 5% of 8 cells: the best one (ceil(0.4) = 1), 89.0
        assert_eq!(n.top5_line, 89.0);
        assert_eq!(n.family_top5, 1);
        assert_eq!(n.top5_twin_mean, 88.0);
        assert_eq!(n.top5_twins_in_top5, 0);
        assert_eq!(n.pair_means_in_top5, 0);
        // median of the 8: (86.5 + 87.0) / 2; both cells of the first pair reach it only
        assert!((n.median - 86.75).abs() < 1e-12);
        assert_eq!(n.good_pairs, 1);
        assert!(n.run_sd_good.value.is_none(), "one pair has no spread");
        let md = markdown(&n);
        assert!(md.contains("2 pairs of twins"), "{md}");
    }

    #[test]
    fn none_without_pairs() {
        let records = vec![record([2, 2, 2, 2, 2, 2], 87.5, 78.0)];
        let table = Table::from_records(records, Path::new("t.csv")).unwrap();
        assert!(measure(&table).is_none());
    }
}
