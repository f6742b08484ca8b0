//! The search result as written to `--out FILE.json`.

use crate::config::NetConfig;
use serde::{Deserialize, Serialize};

/// Format tag written into every search file.
pub const SEARCH_FORMAT: &str = "lightsnn-search/1";

/// One scored candidate: the supernet with `removed` taken off `edge`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateScore {
    /// Edge in canonical notation, e.g. `2<-1`.
    pub edge: String,
    /// The op removed (pruning) or the whole genotype (random search).
    pub candidate: String,
    /// SAHD score ln|det K| averaged over the repeats.
    pub score: f64,
    /// The score on each repeat batch, in batch order (their mean is `score`; empty in files
    /// written before version 0.1 recorded them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repeat_scores: Vec<f64>,
}

/// An op pruned from an edge at the end of a round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pruned {
    /// Edge in canonical notation.
    pub edge: String,
    /// The op removed.
    pub op: String,
}

/// Everything about one round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundReport {
    /// 1-based round number.
    pub round: usize,
    /// Every candidate's score, in edge then op-set order.
    pub scores: Vec<CandidateScore>,
    /// The op removed on each edge that had a choice.
    pub pruned: Vec<Pruned>,
    /// How clearly each edge's pruning decision won (empty for random search).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<super::margin::Decision>,
    /// Alive ops per edge after the round, in canonical edge order.
    pub alive_after: Vec<Vec<String>>,
    /// Seed of the round's batch draw (`random`: the master seed, from which every candidate's
    /// weight and batch seeds derive, see `search::random::candidate_seed`).
    pub batch_seed: u64,
    /// Device the round ran on.
    pub device: String,
    /// Wall time of the round in seconds.
    pub wall_s: f64,
}

/// The search configuration as recorded in the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchConfigRecord {
    /// The network configuration.
    pub net: NetConfig,
    /// Search batch size N.
    pub batch: usize,
    /// Repeats R.
    pub repeats: usize,
    /// `prune`, `random` (SNASNet's random search) or `random-shared`.
    pub method: String,
    /// How candidates were scored: `cpu-event`, `candle-bitpacked` or `candle-gram` (empty in
    /// files written before the CPU engine existed).
    #[serde(default)]
    pub engine: String,
    /// Random-search sample count (random method only).
    pub random_samples: Option<usize>,
    /// Where the data came from.
    pub data: String,
}

/// The whole search result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchReport {
    /// Always [`SEARCH_FORMAT`].
    pub format: String,
    /// The found genotype: op names in canonical edge order.
    pub genotype: String,
    /// `backward` or `forward`.
    pub cell: String,
    /// The op set, in order.
    pub ops: Vec<String>,
    /// Canonical edge names, the order of `genotype`.
    pub edges: Vec<String>,
    /// Score of the found architecture (random search: the best sample's score).
    pub best_score: Option<f64>,
    /// Master seed.
    pub seed: u64,
    /// Device.
    pub device: String,
    /// Configuration.
    pub config: SearchConfigRecord,
    /// Per-round detail.
    pub rounds: Vec<RoundReport>,
    /// Total wall time in seconds.
    pub wall_s: f64,
    /// Warnings printed on stderr during the search: every pruning decision whose margin lies
    /// inside the repeat noise (see [`super::margin`]).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// lightsnn version that wrote the file.
    pub version: String,
}

impl SearchReport {
    /// A copy without wall times and device, for comparing two runs for equality.
    pub fn without_timing(&self) -> SearchReport {
        let mut r = self.clone();
        r.wall_s = 0.0;
        for round in &mut r.rounds {
            round.wall_s = 0.0;
        }
        r
    }
}
