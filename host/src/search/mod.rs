//! The training-free architecture search: SAHD scoring, pruning by importance and the random
//! baseline (SPEC §5, §6).

pub mod cpu;
pub mod dump;
pub mod prune;
pub mod random;
pub mod report;
pub mod score;

pub use prune::{run_search, Method, SearchSetup};
pub use report::{CandidateScore, RoundReport, SearchReport};
pub use score::{sahd_score, KernelPath, Scorer};

#[cfg(test)]
mod tests;
