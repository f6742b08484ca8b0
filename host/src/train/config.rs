//! What defines a training run ([`TrainConfig`], recorded in `state.json`) and its checks.

use super::checkpoint;
use super::metrics::LossKind;
use super::optim::SgdConfig;
use crate::config::NetConfig;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use snn_nostd::genotype::Genotype;
use std::path::{Path, PathBuf};

/// Everything that defines a training run (recorded in `state.json`; a resume takes it from
/// there).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The genotype (op names in canonical edge order).
    pub genotype: String,
    /// The network shape.
    pub net: NetConfig,
    /// Total epochs E (the cosine schedule spans them).
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Optimiser and schedule.
    pub optim: SgdConfig,
    /// Loss function.
    pub loss: LossKind,
    /// Master seed: initial weights, validation split and every epoch's RNG.
    pub seed: u64,
    /// Fraction of the training split held out for validation (model selection).
    pub val_fraction: f64,
    /// Dataset folder; `None` = the built-in CIFAR-10 sample.
    pub data: Option<PathBuf>,
    /// Initialisation of the two linear layers.
    #[serde(default)]
    pub linear_init: LinearInit,
}

/// How the classifier's linear layers are initialised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LinearInit {
    /// N(0, 0.01^2), as the reference (docs/design.md, "Initialisation"). At the paper's widths
    /// fc1 sums ~10^4 active spikes and the hidden LIFs reach threshold; in small networks
    /// (fan-in ~10^3) they stay silent, no gradient reaches fc2, and training stalls at chance.
    Reference,
    /// N(0, 2 / fan_in) (Kaiming normal): the hidden potential has the same spread at every
    /// width. At the paper's CIFAR-10 widths fc1 gets std 0.0078, close to the reference's 0.01.
    /// The default.
    #[default]
    Kaiming,
}

impl std::fmt::Display for LinearInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinearInit::Reference => "reference",
            LinearInit::Kaiming => "kaiming",
        })
    }
}

impl TrainConfig {
    /// The parsed genotype, checked against the network's cell type and op set.
    pub fn genotype(&self) -> Result<Genotype> {
        checkpoint::parse_genotype(&self.genotype, &self.net)
    }

    /// The first impossible number: `(its state.json field, its flag, what is wrong)`.
    fn first_problem(&self) -> Option<(&'static str, &'static str, String)> {
        if self.epochs == 0 {
            return Some(("epochs", "--epochs", "must be at least 1".into()));
        }
        if self.batch == 0 {
            return Some(("batch", "--batch", "must be at least 1".into()));
        }
        if !(self.val_fraction > 0.0 && self.val_fraction < 1.0) {
            let p = format!(
                "must be between 0 and 1 (exclusive), got {}",
                self.val_fraction
            );
            return Some(("val_fraction", "--val-fraction", p));
        }
        if !(self.optim.lr.is_finite() && self.optim.lr > 0.0) {
            let p = format!("must be a positive number, got {}", self.optim.lr);
            return Some(("optim.lr", "--lr", p));
        }
        None
    }

    /// Checks the numbers, naming the flags that gave them.
    pub fn validate(&self) -> Result<()> {
        if let Some((_, flag, problem)) = self.first_problem() {
            bail!("{flag} {problem}");
        }
        self.net.validate()?;
        self.genotype()?;
        Ok(())
    }

    /// Checks the numbers of a configuration recorded in `file` (a run's `state.json`), naming
    /// its fields.
    pub fn validate_recorded(&self, file: &Path) -> Result<()> {
        let f = file.display();
        if let Some((field, _, problem)) = self.first_problem() {
            bail!("{f}: config.{field} {problem}");
        }
        self.net
            .validate()
            .with_context(|| format!("{f}: config.net"))?;
        self.genotype()
            .with_context(|| format!("{f}: config.genotype"))?;
        Ok(())
    }

    /// A label for where the data came from.
    pub fn data_label(&self) -> String {
        match &self.data {
            Some(d) => d.display().to_string(),
            None => crate::data::sample::SAMPLE_LABEL.to_string(),
        }
    }
}
