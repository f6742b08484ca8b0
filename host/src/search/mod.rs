//! The training-free architecture search: SAHD scoring, pruning by importance and the random
//! baseline (docs/design.md: "The SAHD score", "Pruning by importance", "Random search
//! baselines").

pub mod batches;
pub mod bench;
pub mod cpu;
pub mod dump;
pub mod estimate;
pub mod families;
pub mod margin;
pub mod prune;
pub mod random;
pub mod report;
pub mod run;
pub mod score;
pub mod score_kind;
pub mod setup;
pub mod spread;
pub mod stability;
pub mod stack;
pub mod trace;

pub use crate::limits::available_memory;
pub use estimate::{Estimate, Pass};
pub use report::{CandidateScore, RoundReport, SearchReport};
pub use run::run_search;
pub use score::{check_batch, sahd_score, KernelPath, Scorer};
pub use setup::{Method, ScoreKind, SearchSetup, Thresholds};

#[cfg(test)]
mod board_tests;
#[cfg(test)]
mod tests;
