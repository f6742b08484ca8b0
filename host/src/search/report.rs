//! The search result as written to `--out FILE.json`, and read back (`lightsnn train --arch`).

use crate::config::{DatasetKind, NetConfig, Preset};
use crate::fsutil::write_atomic;
use crate::search::score_kind::ScoreKind;
use crate::search::setup::Thresholds;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use snn_nostd::genotype::{CellType, Genotype, OpSet};
use std::path::Path;

/// Format tag written into every search file.
pub const SEARCH_FORMAT: &str = "lightsnn-search/1";

/// One scored candidate: the supernet with `removed` taken off `edge`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateScore {
    /// Edge in canonical notation, e.g. `2<-1`.
    pub edge: String,
    /// The op removed (pruning) or the whole genotype (random search).
    pub candidate: String,
    /// SAHD score ln|det K| averaged over the repeats (-inf, written as JSON `null`, for a
    /// singular kernel).
    #[serde(deserialize_with = "score_or_null")]
    pub score: f64,
    /// The score on each repeat batch, in batch order (their mean is `score`; empty in files
    /// written before version 0.1 recorded them).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "scores_or_null"
    )]
    pub repeat_scores: Vec<f64>,
}

/// A score as JSON writes it: a number, or `null` for a score that was not finite (read back
/// as -inf, which ranks it last as the search did).
fn score_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NEG_INFINITY))
}

/// [`score_or_null`] for a list of scores.
fn scores_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    let v = Vec::<Option<f64>>::deserialize(d)?;
    Ok(v.into_iter()
        .map(|s| s.unwrap_or(f64::NEG_INFINITY))
        .collect())
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
    /// `--board`: where the board overruled the scores (pruning: a removal that scored best
    /// but would have left no cell that fits; random search: how many samples did not fit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub board: Vec<String>,
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
    /// The score's kernel: `sahd` (left out of the file) or `naswot`.
    #[serde(default, skip_serializing_if = "ScoreKind::is_sahd")]
    pub score: ScoreKind,
    /// How pruning chose conv thresholds (left out when `joint`, the default).
    #[serde(default, skip_serializing_if = "Thresholds::is_joint")]
    pub thresholds: Thresholds,
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
    /// Writes the report as pretty JSON to `path` (atomically: a temporary file, then a rename).
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        write_atomic(path, &json)
    }

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

/// The parts of a `lightsnn search --out` file that `train` reads.
#[derive(Deserialize)]
struct ArchFile {
    format: String,
    genotype: String,
    cell: String,
    ops: Vec<String>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

/// What an architecture file says.
#[derive(Clone, Debug, PartialEq)]
pub struct Arch {
    /// The genotype text.
    pub genotype: String,
    /// Its cell type.
    pub cell: CellType,
    /// The op set it was searched over.
    pub ops: OpSet,
    /// The dataset it was searched on, when recorded.
    pub dataset: Option<DatasetKind>,
    /// The preset whose network it was searched on ([`NetConfig::preset`]), when recorded.
    pub preset: Option<Preset>,
}

/// Reads an architecture file, each error naming the file.
pub fn read_arch(path: &Path) -> Result<Arch> {
    let text = crate::fsutil::read_input_text(path)?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    match v.get("format").and_then(|f| f.as_str()) {
        Some(SEARCH_FORMAT) => {}
        other => bail!(
            "{}: not a lightsnn search result (format {:?}, expected {SEARCH_FORMAT:?}; write one with `lightsnn search --out FILE.json`)",
            path.display(),
            other.unwrap_or("missing")
        ),
    }
    let a: ArchFile = serde_json::from_value(v)
        .with_context(|| format!("{}: malformed search result", path.display()))?;
    debug_assert_eq!(a.format, SEARCH_FORMAT);
    let cell: CellType = a
        .cell
        .parse()
        .with_context(|| format!("{}: cell {:?}", path.display(), a.cell))?;
    let ops: OpSet = a
        .ops
        .join(",")
        .parse()
        .with_context(|| format!("{}: ops {:?}", path.display(), a.ops))?;
    let dataset = a
        .config
        .as_ref()
        .and_then(|c| c.pointer("/net/dataset"))
        .and_then(|d| d.as_str())
        .and_then(|d| d.parse().ok());
    let preset = a
        .config
        .as_ref()
        .and_then(|c| c.get("net"))
        .and_then(|n| serde_json::from_value::<NetConfig>(n.clone()).ok())
        .and_then(|n| n.preset());
    Ok(Arch {
        genotype: a.genotype,
        cell,
        ops,
        dataset,
        preset,
    })
}

/// A short device name for reports.
pub fn device_name(d: &Device) -> String {
    match d {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(_) => "cuda".to_string(),
        Device::Metal(_) => "metal".to_string(),
    }
}

/// What a search algorithm returns: the found genotype, its rounds, and the best score (random
/// searches).
pub(crate) type SearchOutcome = (Genotype, Vec<RoundReport>, Option<f64>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_arch_reads_what_search_writes_and_names_the_file_on_errors() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("arch.json");
        let text = format!(
            r#"{{"format": "{SEARCH_FORMAT}", "genotype": "conv3 zero skip conv1 avgpool maxpool conv3 zero skip conv1 avgpool maxpool",
               "cell": "backward", "ops": ["zero", "skip", "conv1", "conv3", "avgpool", "maxpool"],
               "config": {{"net": {{"dataset": "nmnist"}}}}}}"#
        );
        std::fs::write(&good, text).unwrap();
        let a = read_arch(&good).unwrap();
        assert_eq!(a.cell, CellType::Backward);
        assert_eq!(a.ops.len(), 6);
        assert_eq!(a.dataset, Some(DatasetKind::Nmnist));
        assert!(a.genotype.starts_with("conv3 zero"));

        let other = dir.path().join("other.json");
        std::fs::write(&other, r#"{"format": "lightsnn-codes/1"}"#).unwrap();
        let e = format!("{:#}", read_arch(&other).unwrap_err());
        assert!(
            e.contains("other.json") && e.contains("not a lightsnn search result"),
            "{e}"
        );
        let broken = dir.path().join("broken.json");
        std::fs::write(&broken, "{").unwrap();
        let e = format!("{:#}", read_arch(&broken).unwrap_err());
        assert!(e.contains("broken.json") && e.contains("not JSON"), "{e}");
        let e = format!(
            "{:#}",
            read_arch(&dir.path().join("missing.json")).unwrap_err()
        );
        assert!(e.contains("missing.json"), "{e}");
    }
}
