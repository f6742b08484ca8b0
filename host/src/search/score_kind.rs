//! The score of a search's candidates: a kernel's ln|det K| (SAHD, NASWOT) or the rate spread.

use serde::{Deserialize, Serialize};
use snn_nostd::sahd::Distance;

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
    /// The negated rate spread of the cells' LIF layers (`search::spread`): how much their
    /// firing rates change from one input to the next. A score of conv thresholds, not of op
    /// kinds (a cell that never fires has no spread); `--method prune-thresholds` uses it.
    Spread,
}

impl ScoreKind {
    /// The kernel's distance (`None` for [`ScoreKind::Spread`], which is not a kernel score).
    pub fn distance(self) -> Option<Distance> {
        match self {
            ScoreKind::Sahd => Some(Distance::SparsityAware),
            ScoreKind::Naswot => Some(Distance::Hamming),
            ScoreKind::Spread => None,
        }
    }

    /// The name on the command line and in reports: `sahd` or `naswot`.
    pub fn name(self) -> &'static str {
        match self {
            ScoreKind::Sahd => "sahd",
            ScoreKind::Naswot => "naswot",
            ScoreKind::Spread => "spread",
        }
    }

    /// Whether this is the paper's SAHD (the default, left out of search files).
    pub fn is_sahd(&self) -> bool {
        *self == ScoreKind::Sahd
    }
}
