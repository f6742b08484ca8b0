//! What a search is asked to do: the algorithm ([`Method`]) and the configuration
//! ([`SearchSetup`]). The driver that runs it is [`super::run`].

use super::score::KernelPath;
use crate::config::NetConfig;
use crate::model::Mode;
use candle_core::Device;
use serde::{Deserialize, Serialize};
use snn_nostd::sahd::Distance;

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

/// The kernel candidates are scored with: ln|det K| of the kernel of the spike codes, with the
/// distance of [`Distance`] (docs/design.md, "The SAHD score").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScoreKind {
    /// LightSNN's sparsity-aware Hamming kernel (SAHD): each distance divided by the distance
    /// expected of random codes of the same spike rates. The paper's score.
    #[default]
    Sahd,
    /// NASWOT's plain Hamming kernel `n - H`: distances are not divided by their rate-expected
    /// value, so a layer's spike rate counts (on SpikeNAS-Bench, where SAHD ranks the conv
    /// thresholds against accuracy, it prefers `conv3@0.5`; docs/spikenas-bench.md).
    Naswot,
}

impl ScoreKind {
    /// The kernel's distance.
    pub fn distance(self) -> Distance {
        match self {
            ScoreKind::Sahd => Distance::SparsityAware,
            ScoreKind::Naswot => Distance::Hamming,
        }
    }

    /// The name on the command line and in reports: `sahd` or `naswot`.
    pub fn name(self) -> &'static str {
        match self {
            ScoreKind::Sahd => "sahd",
            ScoreKind::Naswot => "naswot",
        }
    }

    /// Whether this is the paper's SAHD (the default, left out of search files).
    pub fn is_sahd(&self) -> bool {
        *self == ScoreKind::Sahd
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
    /// The kernel candidates are scored with.
    pub score: ScoreKind,
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

    /// Number of scorings the search will run (for progress bars).
    pub fn total_scorings(&self) -> u64 {
        match self.method {
            Method::Random | Method::RandomShared => self.random_samples as u64,
            Method::Prune => {
                let k = self.net.ops.len() as u64;
                let e = self.net.cell.num_edges() as u64;
                // rounds remove one op per edge: k + (k-1) + ... + 2 candidates per edge
                e * (2..=k).sum::<u64>()
            }
        }
    }
}
