//! How clearly a pruning decision won: its margin against the repeat noise.
//!
//! On an edge, the op whose removal scores highest is pruned. Its *margin* is that score minus
//! the runner-up's (the next best removal on the same edge). Every candidate of a round is
//! scored on the same R batches, so the noise that matters is that of the *paired* difference:
//! with `d_r` = winner − runner-up on batch r, the margin is `mean(d)` and its standard error is
//! `sd(d) / sqrt(R)`. A decision is **decisive** when the margin exceeds
//! [`DECISIVE_SE`] standard errors; otherwise another draw of batches could flip it.
//!
//! The unpaired spread (the winner's own standard deviation over the repeats) is recorded
//! too: it is much larger, because one batch gives every candidate a higher or lower score
//! than another, and says how far apart scores of different *rounds* or *seeds* may lie.
//!
//! For an indecisive decision, the repeats that would make it decisive at the same batch
//! size follow from `SE ∝ 1/sqrt(R)`: `R' = ceil((DECISIVE_SE · sd(d) / margin)²)`.

use super::score::argmax_first;
use serde::{Deserialize, Serialize};

/// Standard errors a margin must exceed to count as decisive (about a 95% one-sided
/// normal test on the paired differences).
pub const DECISIVE_SE: f64 = 2.0;

/// Repeats above which more batches are no practical way to decide: the warning then says the
/// two removals are indistinguishable at this batch size.
pub const PRACTICAL_REPEATS: usize = 64;

/// One edge's pruning decision in a round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Edge in canonical notation.
    pub edge: String,
    /// The op pruned (its removal scored highest).
    pub pruned: String,
    /// The runner-up: the op whose removal scored next best.
    pub runner_up: String,
    /// Winner's score minus the runner-up's (mean over the repeats); +inf, written as JSON
    /// `null`, when the runner-up scored -inf.
    #[serde(deserialize_with = "margin_or_null")]
    pub margin: f64,
    /// Standard error of the margin from the paired per-batch differences (`None` with one
    /// repeat: the noise cannot be estimated).
    pub margin_se: Option<f64>,
    /// Standard deviation of the winner's score over the repeats (unpaired spread).
    pub winner_spread: Option<f64>,
    /// Whether the margin exceeds [`DECISIVE_SE`] standard errors (`None` with one repeat).
    pub decisive: Option<bool>,
    /// Repeats that would make an indecisive decision decisive at the same batch size.
    pub repeats_needed: Option<usize>,
}

/// A margin as JSON writes it: a number, or `null` for +inf (the runner-up scored -inf).
fn margin_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
}

impl Decision {
    /// The decision on one edge from its candidates' `(op, per-repeat scores)`, in op order.
    /// `None` for an edge with fewer than two candidates.
    pub fn from_scores(edge: &str, cands: &[(String, Vec<f64>)]) -> Option<Decision> {
        if cands.len() < 2 {
            return None;
        }
        let means: Vec<f64> = cands.iter().map(|(_, r)| mean(r)).collect();
        let w = argmax_first(&means)?;
        let others: Vec<f64> = means
            .iter()
            .enumerate()
            .map(|(i, &m)| if i == w { f64::NEG_INFINITY } else { m })
            .collect();
        let u = argmax_first(&others)?;
        let margin = means[w] - means[u];
        let (rw, ru) = (&cands[w].1, &cands[u].1);
        let diffs: Vec<f64> = rw.iter().zip(ru).map(|(a, b)| a - b).collect();
        let n = diffs.len();
        let (sd_d, margin_se) = if n >= 2 {
            let sd = sample_sd(&diffs);
            (Some(sd), Some(sd / (n as f64).sqrt()))
        } else {
            (None, None)
        };
        let decisive = margin_se.map(|se| margin.is_finite() && margin > DECISIVE_SE * se);
        let repeats_needed = match (decisive, sd_d) {
            (Some(false), Some(sd)) => Some(repeats_for(margin, sd)),
            _ => None,
        };
        Some(Decision {
            edge: edge.to_string(),
            pruned: cands[w].0.clone(),
            runner_up: cands[u].0.clone(),
            margin,
            margin_se,
            winner_spread: (rw.len() >= 2).then(|| sample_sd(rw)),
            decisive,
            repeats_needed,
        })
    }

    /// The warning for an indecisive decision, naming what would make it decisive; `None`
    /// for a decisive one.
    pub fn warning(&self, round: usize, repeats: usize, batch: usize) -> Option<String> {
        match self.decisive {
            Some(true) => None,
            None => Some(format!(
                "round {round}, edge {}: pruned {} over {} by {:.4}, but with --repeats {repeats} the repeat noise cannot be estimated; use --repeats 2 or more to judge it",
                self.edge, self.pruned, self.runner_up, self.margin
            )),
            Some(false) => {
                let se = self.margin_se.unwrap_or(f64::NAN);
                let need = self.repeats_needed.unwrap_or(usize::MAX);
                let advice = if need <= PRACTICAL_REPEATS {
                    format!("--repeats {need} (at --batch {batch}) would make it decisive")
                } else {
                    format!(
                        "more repeats are no practical remedy (about {} needed at --batch {batch}): the two removals score alike; a larger --batch scores on more sample pairs",
                        if need == usize::MAX { "unboundedly many".to_string() } else { need.to_string() }
                    )
                };
                Some(format!(
                    "round {round}, edge {}: pruned {} over {} by {:.4}, inside the repeat noise ({DECISIVE_SE} x SE = {:.4}, {repeats} repeats); {advice}",
                    self.edge,
                    self.pruned,
                    self.runner_up,
                    self.margin,
                    DECISIVE_SE * se
                ))
            }
        }
    }
}

/// `ceil((DECISIVE_SE · sd / margin)²)`, at least 2; `usize::MAX` when the margin is 0 or not
/// finite.
fn repeats_for(margin: f64, sd: f64) -> usize {
    if !(margin.is_finite() && margin > 0.0) {
        return usize::MAX;
    }
    let r = (DECISIVE_SE * sd / margin).powi(2).ceil();
    if r >= usize::MAX as f64 {
        usize::MAX
    } else {
        (r as usize).max(2)
    }
}

fn mean(v: &[f64]) -> f64 {
    super::score::mean_in_order(v)
}

fn sample_sd(v: &[f64]) -> f64 {
    crate::stats::mean_std(v).1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(op: &str, r: &[f64]) -> (String, Vec<f64>) {
        (op.to_string(), r.to_vec())
    }

    #[test]
    fn clear_winner_is_decisive() {
        // differences winner - runner-up: 1.0, 1.2, 0.8 -> mean 1.0, sd 0.2, se 0.2/sqrt 3
        let d = Decision::from_scores(
            "1<-0",
            &[
                c("zero", &[5.0, 6.0, 7.0]),
                c("skip", &[6.0, 7.2, 7.8]),
                c("conv3", &[4.0, 4.0, 4.0]),
            ],
        )
        .unwrap();
        assert_eq!((d.pruned.as_str(), d.runner_up.as_str()), ("skip", "zero"));
        assert!((d.margin - 1.0).abs() < 1e-12);
        assert!((d.margin_se.unwrap() - 0.2 / 3f64.sqrt()).abs() < 1e-12);
        assert_eq!(d.decisive, Some(true));
        assert_eq!(d.repeats_needed, None);
        assert!(d.warning(1, 3, 32).is_none());
        // the unpaired spread of the winner (6, 7.2, 7.8) is far larger than the paired SE
        assert!(d.winner_spread.unwrap() > 0.9);
    }

    #[test]
    fn noisy_winner_warns_with_repeats_needed() {
        // differences: +0.3, -0.1 -> mean 0.1, sd 0.2828, se 0.2
        let d = Decision::from_scores("2<-1", &[c("zero", &[1.0, 2.0]), c("conv3", &[1.3, 1.9])])
            .unwrap();
        assert_eq!(d.pruned, "conv3");
        assert_eq!(d.decisive, Some(false));
        // (2 * 0.28284 / 0.1)^2 = 32.0 -> 32 (allow the rounding of the f64 arithmetic)
        let need = d.repeats_needed.unwrap();
        assert!((32..=33).contains(&need), "{need}");
        let w = d.warning(2, 2, 32).unwrap();
        assert!(w.contains("edge 2<-1") && w.contains("--repeats"), "{w}");
    }

    #[test]
    fn one_repeat_cannot_judge() {
        let d = Decision::from_scores("0<-1", &[c("a", &[1.0]), c("b", &[2.0])]).unwrap();
        assert_eq!((d.decisive, d.margin_se), (None, None));
        assert!(d.warning(1, 1, 32).unwrap().contains("--repeats 2"));
        assert!(Decision::from_scores("0<-1", &[c("a", &[1.0])]).is_none());
    }

    #[test]
    fn equal_scores_need_unbounded_repeats() {
        let d = Decision::from_scores("0<-1", &[c("a", &[1.0, 2.0]), c("b", &[1.0, 2.0])]).unwrap();
        assert_eq!(d.margin, 0.0);
        assert_eq!(d.decisive, Some(false));
        assert_eq!(d.repeats_needed, Some(usize::MAX));
        assert!(d.warning(1, 2, 32).unwrap().contains("no practical remedy"));
    }
}
