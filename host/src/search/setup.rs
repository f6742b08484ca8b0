//! What a search is asked to do: the algorithm ([`Method`]) and the configuration
//! ([`SearchSetup`]). The driver that runs it is [`super::run`].

use super::families::{
    has_threshold_families, is_one_threshold_family, op_kinds, threshold_family,
};
use super::score::KernelPath;
pub use super::score_kind::ScoreKind;
use crate::config::NetConfig;
use crate::model::Mode;
use candle_core::Device;
use serde::{Deserialize, Serialize};
use snn_nostd::genotype::Op;

/// SNASNet's search batch size (`search_batchsize = 256` in `find_best_neuroncell`), the
/// default batch of [`Method::Random`].
pub const SNASNET_SEARCH_BATCH: usize = 256;

/// The search algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// Pruning by importance (LightSNN).
    Prune,
    /// SNASNet's random search: SNASNet's cell sampling rules, a fresh network and fresh batches
    /// per candidate.
    Random,
    /// Random genotypes, every edge drawn independently, all scored with one set of weights on
    /// the same batches.
    RandomShared,
}

impl Method {
    /// The name used on the command line and in reports: `prune`, `random`, `random-shared`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Prune => "prune",
            Method::Random => "random",
            Method::RandomShared => "random-shared",
        }
    }

    /// Whether the method samples whole genotypes.
    pub fn is_random(self) -> bool {
        matches!(self, Method::Random | Method::RandomShared)
    }

    /// The default search batch size: SNASNet's 256 for its random search, the paper's 32
    /// otherwise.
    pub fn default_batch(self) -> usize {
        match self {
            Method::Random => SNASNET_SEARCH_BATCH,
            Method::Prune | Method::RandomShared => 32,
        }
    }
}

/// How the pruning search chooses the conv thresholds of a space with thresholded convs
/// (`conv3@0.5`, `conv3`, `conv3@1.5`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Thresholds {
    /// Thresholded convs are ops like any other, pruned together by the score (the paper's
    /// pruning).
    #[default]
    Joint,
    /// Two stages: the op kinds by the score, each threshold family standing as one op (its
    /// member at the network's threshold); then the thresholds of the kept convs by the rate
    /// spread of the cells' LIF layers (docs/spikenas-bench.md, "Thresholds by rate spread").
    Spread,
}

impl Thresholds {
    /// The name on the command line and in reports: `joint` or `spread`.
    pub fn name(self) -> &'static str {
        match self {
            Thresholds::Joint => "joint",
            Thresholds::Spread => "spread",
        }
    }

    /// The default of a search by `method` over the op set `ops` (`lightsnn search` and
    /// `lightsnn study`): [`Thresholds::Spread`] for the pruning search where the set has
    /// thresholded convs to choose between and other op kinds besides (on SpikeNAS-Bench the
    /// joint pruning's SAHD ranks the thresholds against accuracy, docs/spikenas-bench.md);
    /// [`Thresholds::Joint`] otherwise: the random searches have no stages, without thresholds
    /// the two are the same search, and a space of one conv's thresholds only is left to the
    /// chosen `--score`.
    ///
    /// ```
    /// use lightsnn::search::{Method, Thresholds};
    /// use snn_nostd::genotype::OpSet;
    /// let bench = OpSet::spikenas_bench();
    /// assert_eq!(Thresholds::default_for(Method::Prune, bench.ops()), Thresholds::Spread);
    /// assert_eq!(Thresholds::default_for(Method::Random, bench.ops()), Thresholds::Joint);
    /// assert_eq!(Thresholds::default_for(Method::Prune, OpSet::lightsnn().ops()), Thresholds::Joint);
    /// let convs: OpSet = "conv3@0.5,conv3,conv3@1.5".parse().unwrap();
    /// assert_eq!(Thresholds::default_for(Method::Prune, convs.ops()), Thresholds::Joint);
    /// ```
    pub fn default_for(method: Method, ops: &[Op]) -> Thresholds {
        if method == Method::Prune && has_threshold_families(ops) && !is_one_threshold_family(ops) {
            Thresholds::Spread
        } else {
            Thresholds::Joint
        }
    }

    /// The default score repeats R (batches averaged per score) of a search with these
    /// thresholds: the paper's 2 for [`Thresholds::Joint`] (and for the random searches, which
    /// are joint); 4 for [`Thresholds::Spread`]. At 2 the two-stage search's op-kind stage kept
    /// a `skip` or a `zero` by chance on some seeds; at 4 its cells over 20 seeds had a third of
    /// the spread (docs/spikenas-bench.md, "Repeats of the two-stage search").
    ///
    /// ```
    /// use lightsnn::search::Thresholds;
    /// assert_eq!(Thresholds::Joint.default_repeats(), 2);
    /// assert_eq!(Thresholds::Spread.default_repeats(), 4);
    /// ```
    pub fn default_repeats(self) -> usize {
        match self {
            Thresholds::Joint => 2,
            Thresholds::Spread => 4,
        }
    }

    /// Whether this is the default, joint pruning (left out of search files).
    pub fn is_joint(&self) -> bool {
        *self == Thresholds::Joint
    }
}

/// Everything a search needs besides data.
#[derive(Clone, Debug)]
pub struct SearchSetup {
    /// The network (op set and cell type included).
    pub net: NetConfig,
    /// Search batch size N.
    pub batch: usize,
    /// Batches averaged per score (R).
    pub repeats: usize,
    /// Master seed: weights and batch draws derive from it.
    pub seed: u64,
    /// Algorithm.
    pub method: Method,
    /// The kernel candidates are scored with (with [`Thresholds::Spread`], the op kinds'
    /// score).
    pub score: ScoreKind,
    /// How pruning chooses conv thresholds.
    pub thresholds: Thresholds,
    /// Genotypes sampled by the random method.
    pub random_samples: usize,
    /// How spike codes reach the kernel.
    pub kernel_path: KernelPath,
    /// Candidates stacked per Candle forward pass (0 = as many as fit, see
    /// [`auto_stack`](super::stack::auto_stack)); the CPU engine ignores it.
    pub candidates_per_pass: usize,
    /// Description of the data source, recorded in the report.
    pub data_label: String,
    /// `--board`: only cells that fit the board may be returned (pruning never removes an op
    /// whose removal would leave no fitting cell; a random search keeps the best-scoring
    /// fitting sample). `None`: every cell may.
    pub fit: Option<std::sync::Arc<crate::export::fit::FitFilter>>,
}

impl SearchSetup {
    /// The BatchNorm mode used for scoring.
    pub fn mode(&self) -> Mode {
        Mode::scoring(self.net.bn_mode)
    }

    /// Candidates per Candle pass: `candidates_per_pass`, or the memory-based default for 0.
    pub fn stack(&self, device: &Device) -> usize {
        match self.candidates_per_pass {
            0 => super::stack::auto_stack(&self.net, self.batch, device),
            k => k,
        }
    }

    /// The ops per edge each pruning stage starts from: the op set's size, or with
    /// [`Thresholds::Spread`] the number of op kinds, then the largest threshold family (an
    /// upper bound: edges that keep no conv skip the second stage).
    pub fn prune_stage_sizes(&self) -> Vec<usize> {
        let set = self.net.ops.ops();
        match self.thresholds {
            Thresholds::Joint => vec![set.len()],
            Thresholds::Spread => {
                let largest = set
                    .iter()
                    .map(|&o| threshold_family(o, set).len())
                    .max()
                    .unwrap_or(1);
                vec![op_kinds(set).len(), largest]
            }
        }
    }

    /// Number of scorings the search will run (for progress bars).
    pub fn total_scorings(&self) -> u64 {
        match self.method {
            Method::Random | Method::RandomShared => self.random_samples as u64,
            Method::Prune => {
                let e = self.net.cell.num_edges() as u64;
                // rounds remove one op per edge: k + (k-1) + ... + 2 candidates per edge
                self.prune_stage_sizes()
                    .iter()
                    .map(|&k| e * (2..=k as u64).sum::<u64>())
                    .sum()
            }
        }
    }
}
