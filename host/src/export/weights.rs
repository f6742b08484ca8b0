//! The weights of a trained single-path network in plain Rust (docs/design.md, "Macro skeleton"),
//! as the quantiser ([`super::quantize`]) and the NIR export ([`super::nir`]) take them: convs
//! with their BatchNorms, the post-cell BatchNorms, the classifier and the input normalisation.

use super::error::ExportError;
use crate::config::PoolKind;
use snn_nostd::genotype::Genotype;
use snn_nostd::shape::Shape;
use snn_nostd::skeleton::CellSchedule;

pub use crate::model::plain::{Bn, BN_EPS};

impl Bn {
    fn check(&self, c: usize, what: &str) -> Result<(), ExportError> {
        let ok = [&self.gamma, &self.beta, &self.mean, &self.var]
            .iter()
            .all(|v| v.len() == c)
            && self.var.iter().all(|&v| v + BN_EPS > 0.0);
        if ok {
            Ok(())
        } else {
            Err(ExportError::Shape(format!(
                "{what}: BatchNorm needs {c} channels and variances > -eps"
            )))
        }
    }
}

/// A convolution without bias followed by BatchNorm.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvBn {
    /// Weights `[out][in][k][k]` (PyTorch order).
    pub weight: Vec<f32>,
    /// The BatchNorm after the conv (`out` channels).
    pub bn: Bn,
}

impl ConvBn {
    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.bn.channels()
    }

    fn check(&self, c_in: usize, c_out: usize, k: usize, what: &str) -> Result<(), ExportError> {
        self.bn.check(c_out, what)?;
        if self.weight.len() != c_out * c_in * k * k {
            return Err(ExportError::Shape(format!(
                "{what}: conv weight has {} values, expected {c_out}x{c_in}x{k}x{k}",
                self.weight.len()
            )));
        }
        Ok(())
    }

    /// BN folded into the conv: weights `w * g` (same layout) and bias `b`.
    pub fn folded(&self) -> (Vec<f32>, Vec<f32>) {
        let (g, b) = self.bn.affine();
        let per = self.weight.len() / g.len().max(1);
        let w = self
            .weight
            .iter()
            .enumerate()
            .map(|(i, &w)| w * g[i / per])
            .collect();
        (w, b)
    }
}

/// The weights of one cell: one entry per edge of the genotype's cell type, in canonical edge
/// order; `Some` exactly on conv edges (`conv3` and the thresholded `conv3@0.5`, `conv3@1.5`:
/// k = 3, `conv1`: k = 1).
#[derive(Clone, Debug, PartialEq)]
pub struct CellWeights {
    /// Per-edge conv + BN.
    pub convs: Vec<Option<ConvBn>>,
}

/// Per-channel input normalisation `x = (raw / 255 - mean) / std` of static images.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalization {
    /// Per-channel mean (of `raw / 255`).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation.
    pub std: Vec<f32>,
}

/// A trained single-path LightSNN network in plain Rust (docs/design.md, "Macro skeleton"), as
/// exported from Candle.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatNetwork {
    /// The dataset it was trained on (recorded in the blob).
    pub dataset: snn_nostd::dataset::DatasetKind,
    /// Input, timesteps, widths, classifier pool, hidden units, classes and votes.
    pub shape: Shape,
    /// The pool of the two downsampling stages (after the down conv and after cell 2).
    pub downsample: PoolKind,
    /// Genotype of both cells.
    pub genotype: Genotype,
    /// Stem conv `in_c -> c1` (3x3) + BN.
    pub stem: ConvBn,
    /// Cell 1 weights.
    pub cell1: CellWeights,
    /// BN after cell 1 (before its LIF).
    pub bn_cell1: Bn,
    /// Down conv `c1 -> c2` (3x3) + BN, followed by the 2x2 pool of `downsample`.
    pub down: ConvBn,
    /// Cell 2 weights.
    pub cell2: CellWeights,
    /// BN after cell 2 (before its LIF).
    pub bn_cell2: Bn,
    /// fc1 weights `[h][c2 * ph * pw]`, input flattened channel-major (PyTorch order).
    pub fc1: Vec<f32>,
    /// fc2 weights `[classes * v][h]`.
    pub fc2_weight: Vec<f32>,
    /// fc2 bias `[classes * v]`.
    pub fc2_bias: Vec<f32>,
    /// Normalisation of raw `u8` images (static input), recorded in the blob so a device can
    /// feed raw pixels; `None` for event input or pre-normalised data.
    pub normalization: Option<Normalization>,
}

impl FloatNetwork {
    /// Spatial size of cell 1, cell 2 and the pooled map.
    pub fn sizes(&self) -> [(usize, usize); 3] {
        let s = &self.shape;
        [s.cell1_hw(), s.cell2_hw(), s.pooled_hw()]
    }

    /// Refuses, naming it, what the model blob and the integer engine cannot express yet:
    /// average-pool downsampling and thresholded convs (the SpikeNAS-Bench network; its NIR
    /// export works).
    pub fn check_blob_support(&self) -> Result<(), ExportError> {
        if self.downsample == PoolKind::Avg {
            return Err(ExportError::Unsupported(
                "average-pool downsampling (the SpikeNAS-Bench network)".into(),
            ));
        }
        let g = &self.genotype;
        if !CellSchedule::of_genotype(g.cell(), g.ops()).base_class_only() {
            return Err(ExportError::Unsupported(format!(
                "thresholded conv ops (conv3@0.5, conv3@1.5; genotype {g})"
            )));
        }
        Ok(())
    }

    /// Checks every shape against the dimensions.
    pub fn validate(&self) -> Result<(), ExportError> {
        let shape = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(ExportError::Shape(what.to_string()))
            }
        };
        shape(
            self.shape.in_c > 0
                && self.shape.timesteps > 0
                && self.shape.c1 > 0
                && self.shape.c2 > 0
                && self.shape.pool > 0,
            "zero dimension",
        )?;
        shape(
            self.shape.hidden > 0 && self.shape.classes > 0 && self.shape.votes > 0,
            "zero dimension",
        )?;
        let [(h1, w1), (h2, w2), (ph, pw)] = self.sizes();
        shape(
            h1 > 0 && w1 > 0 && h2 > 0 && w2 > 0 && ph > 0 && pw > 0,
            "input too small for the pooling stages",
        )?;
        self.stem.check(self.shape.in_c, self.shape.c1, 3, "stem")?;
        self.down.check(self.shape.c1, self.shape.c2, 3, "down")?;
        self.bn_cell1.check(self.shape.c1, "bn_cell1")?;
        self.bn_cell2.check(self.shape.c2, "bn_cell2")?;
        for (cell, c, name) in [
            (&self.cell1, self.shape.c1, "cell1"),
            (&self.cell2, self.shape.c2, "cell2"),
        ] {
            shape(
                cell.convs.len() == self.genotype.ops().len(),
                &format!("{name}: one entry per edge needed"),
            )?;
            for (e, (conv, &op)) in cell.convs.iter().zip(self.genotype.ops()).enumerate() {
                match (op.kernel(), conv) {
                    (Some(k), Some(cb)) => cb.check(c, c, k, &format!("{name} edge {e}"))?,
                    (Some(_), None) => {
                        return Err(ExportError::Shape(format!("{name} edge {e}: conv missing")))
                    }
                    (None, Some(_)) => {
                        return Err(ExportError::Shape(format!(
                            "{name} edge {e}: weights on a {op} edge"
                        )))
                    }
                    (None, None) => {}
                }
            }
        }
        shape(
            self.fc1.len() == self.shape.hidden * self.shape.c2 * ph * pw,
            "fc1 must be [h][c2 * ph * pw]",
        )?;
        shape(
            self.fc2_weight.len() == self.shape.classes * self.shape.votes * self.shape.hidden,
            "fc2 weight must be [classes * v][h]",
        )?;
        shape(
            self.fc2_bias.len() == self.shape.classes * self.shape.votes,
            "fc2 bias must be [classes * v]",
        )?;
        if let Some(n) = &self.normalization {
            shape(
                n.mean.len() == self.shape.in_c
                    && n.std.len() == self.shape.in_c
                    && n.std.iter().all(|&s| s > 0.0),
                "normalization needs in_c means and positive stds",
            )?;
        }
        Ok(())
    }
}
