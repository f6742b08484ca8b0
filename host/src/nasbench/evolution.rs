//! Regularized evolution on the table (Real et al., "Regularized Evolution for Image Classifier
//! Architecture Search", AAAI 2019): the anchor a researcher would also try. It reads the
//! benchmark's *validation* accuracy of every cell it visits (one table query each); the cell it
//! returns is then judged, like every method, by its test accuracy.

use super::cell_id::{BenchCell, NUM_EDGES, NUM_OPS};
use super::table::Table;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;

/// Settings of a regularized-evolution run.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvolutionConfig {
    /// Table queries (cells evaluated), the population's initial cells included.
    pub queries: usize,
    /// Population size (the oldest member dies when a child is born).
    pub population: usize,
    /// Tournament size: the parent is the best of this many random members.
    pub sample: usize,
}

impl Default for EvolutionConfig {
    /// 20 members, tournaments of 5 (settings common on small tabular benchmarks).
    fn default() -> Self {
        EvolutionConfig {
            queries: 100,
            population: 20,
            sample: 5,
        }
    }
}

/// What a run found: the best cell by validation accuracy among those it queried.
#[derive(Clone, Debug, PartialEq)]
pub struct EvolutionResult {
    /// The cell with the highest validation accuracy seen (first seen wins ties).
    pub best: BenchCell,
    /// Its validation accuracy (the fitness).
    pub best_val_acc: f64,
    /// Table queries made.
    pub queries: usize,
}

/// The fitness of a cell: its final validation accuracy in the table. A cell the table does not
/// hold (a partial table) has fitness 0, so it is never chosen over a known one.
fn fitness(table: &Table, c: BenchCell) -> f64 {
    table.get(c.id()).map_or(0.0, |r| r.val_acc_final)
}

/// `c` with one edge's op replaced by a different op, both drawn uniformly.
pub fn mutate(c: BenchCell, rng: &mut impl Rng) -> BenchCell {
    let mut ops = c.0;
    let e = rng.gen_range(0..NUM_EDGES);
    let shift = rng.gen_range(1..NUM_OPS as u8);
    ops[e] = (ops[e] + shift) % NUM_OPS as u8;
    BenchCell(ops)
}

/// A uniformly random cell.
pub fn random_cell(rng: &mut impl Rng) -> BenchCell {
    BenchCell(std::array::from_fn(|_| rng.gen_range(0..NUM_OPS as u8)))
}

/// Runs regularized evolution with `cfg` from `seed`: the population starts with `population`
/// random cells; each cycle a tournament of `sample` random members picks the fittest as
/// parent, its mutation joins the population and the oldest member leaves, until `queries`
/// cells have been evaluated.
///
/// ```
/// use lightsnn::nasbench::{evolution, Table};
/// # let table_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
/// #     .join("../data/spikenas-bench-sample/cifar10-sample.csv");
/// let table = Table::read(&table_path)?;
/// let cfg = evolution::EvolutionConfig { queries: 50, population: 10, sample: 3 };
/// let found = evolution::regularized_evolution(&table, cfg, 0);
/// assert_eq!(found.queries, 50);
/// # Ok::<(), lightsnn::nasbench::TableError>(())
/// ```
pub fn regularized_evolution(table: &Table, cfg: EvolutionConfig, seed: u64) -> EvolutionResult {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let population = cfg.population.max(1);
    let mut pop: VecDeque<(BenchCell, f64)> = VecDeque::with_capacity(population);
    let mut best: Option<(BenchCell, f64)> = None;
    let mut queries = 0;
    let record = |c: BenchCell, best: &mut Option<(BenchCell, f64)>| {
        let f = fitness(table, c);
        if best.is_none_or(|(_, b)| f > b) {
            *best = Some((c, f));
        }
        f
    };
    while queries < cfg.queries {
        let child = if pop.len() < population {
            random_cell(&mut rng)
        } else {
            let parent = (0..cfg.sample.max(1))
                .map(|_| pop[rng.gen_range(0..pop.len())])
                .fold(None::<(BenchCell, f64)>, |acc, m| match acc {
                    Some(a) if a.1 >= m.1 => Some(a),
                    _ => Some(m),
                })
                .expect("a tournament has at least one member");
            mutate(parent.0, &mut rng)
        };
        let f = record(child, &mut best);
        queries += 1;
        if pop.len() == population {
            pop.pop_front();
        }
        pop.push_back((child, f));
    }
    let (best, best_val_acc) = best.unwrap_or((BenchCell([0; NUM_EDGES]), 0.0));
    EvolutionResult {
        best,
        best_val_acc,
        queries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lightsnn_tests::shipped_data;

    fn table() -> Table {
        Table::read(&shipped_data("spikenas-bench-sample").join("cifar10-sample.csv")).unwrap()
    }

    #[test]
    fn mutation_changes_exactly_one_edge() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..500 {
            let c = random_cell(&mut rng);
            let m = mutate(c, &mut rng);
            let changed = c.0.iter().zip(&m.0).filter(|(a, b)| a != b).count();
            assert_eq!(changed, 1);
            assert!(m.0.iter().all(|&o| (o as usize) < NUM_OPS));
        }
    }

    #[test]
    fn evolution_is_seeded_and_climbs() {
        let t = table();
        let cfg = EvolutionConfig {
            queries: 300,
            population: 10,
            sample: 3,
        };
        let a = regularized_evolution(&t, cfg, 5);
        assert_eq!(a, regularized_evolution(&t, cfg, 5));
        assert_eq!(a.queries, 300);
        // the sample holds 255 of 15,625 cells: the best it finds is one of them, and no
        // worse than the best of its first 10 random cells
        assert!(t.get(a.best.id()).is_some());
        assert_eq!(a.best_val_acc, t.get(a.best.id()).unwrap().val_acc_final);
        let first = regularized_evolution(&t, EvolutionConfig { queries: 10, ..cfg }, 5);
        assert!(a.best_val_acc >= first.best_val_acc);
    }
}
