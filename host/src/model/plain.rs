//! Plain-Rust copies of the network's parameters: one weight type shared by the CPU scoring
//! engine (`search::cpu`), the export (`export::weights`) and the NIR writer, and one converter
//! from Candle tensors ([`values`], [`Bn::from_params`]).

use crate::model::params::BnParams;
use anyhow::{Context, Result};
use candle_core::Var;

/// The values of `v`, flattened, as `f32` (`what` names it in errors).
pub fn values(v: &Var, what: &str) -> Result<Vec<f32>> {
    v.as_tensor()
        .flatten_all()
        .and_then(|t| t.to_dtype(candle_core::DType::F32))
        .and_then(|t| t.to_vec1::<f32>())
        .with_context(|| format!("reading tensor {what}"))
}

/// BatchNorm epsilon (docs/design.md, "Operations").
pub const BN_EPS: f32 = snn_nostd::skeleton::BN_EPS as f32;

/// Inference-mode BatchNorm parameters, one entry per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Bn {
    /// Scale (weight).
    pub gamma: Vec<f32>,
    /// Shift (bias).
    pub beta: Vec<f32>,
    /// Running mean.
    pub mean: Vec<f32>,
    /// Running variance.
    pub var: Vec<f32>,
}

impl Bn {
    /// The identity BatchNorm over `c` channels (gamma 1, beta 0, mean 0, var 1 - eps).
    pub fn identity(c: usize) -> Bn {
        Bn {
            gamma: vec![1.0; c],
            beta: vec![0.0; c],
            mean: vec![0.0; c],
            var: vec![1.0 - BN_EPS; c],
        }
    }

    /// A copy of the Candle BatchNorm `b` (`what` names it in errors).
    pub fn from_params(b: &BnParams, what: &str) -> Result<Bn> {
        Ok(Bn {
            gamma: values(&b.weight, what)?,
            beta: values(&b.bias, what)?,
            mean: values(&b.running_mean, what)?,
            var: values(&b.running_var, what)?,
        })
    }

    /// Several BatchNorms side by side (channels concatenated).
    pub fn concat<'a>(parts: impl IntoIterator<Item = &'a Bn>) -> Bn {
        let mut out = Bn {
            gamma: Vec::new(),
            beta: Vec::new(),
            mean: Vec::new(),
            var: Vec::new(),
        };
        for p in parts {
            out.gamma.extend_from_slice(&p.gamma);
            out.beta.extend_from_slice(&p.beta);
            out.mean.extend_from_slice(&p.mean);
            out.var.extend_from_slice(&p.var);
        }
        out
    }

    /// Channels.
    pub fn channels(&self) -> usize {
        self.gamma.len()
    }

    /// The per-channel affine `y = g x + b` equal to this BatchNorm.
    pub fn affine(&self) -> (Vec<f32>, Vec<f32>) {
        let g: Vec<f32> = self
            .gamma
            .iter()
            .zip(&self.var)
            .map(|(&ga, &v)| ga / (v + BN_EPS).sqrt())
            .collect();
        let b = self
            .beta
            .iter()
            .zip(&self.mean)
            .zip(&g)
            .map(|((&be, &m), &gg)| be - m * gg)
            .collect();
        (g, b)
    }
}
