//! SGD with momentum and weight decay, with PyTorch's semantics (docs/design.md, "Training": the
//! weight decay is really applied, unlike the reference, which passes it into `dampening`).
//!
//! For each trainable tensor `w` with gradient `g`, in the sorted order of
//! [`ParamStore::trainable`](crate::model::params::ParamStore::trainable):
//! `g <- g + wd * w`; `buf <- g` on the first step, else `buf <- momentum * buf + g`;
//! `w <- w - lr * buf`. Tensors that received no gradient are skipped (as PyTorch skips
//! parameters whose `.grad` is `None`).

use anyhow::{bail, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Hyper-parameters of the optimiser and its schedule, as recorded in `state.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// Initial learning rate.
    pub lr: f64,
    /// Final learning rate of the cosine schedule (`0.01 * lr` by default).
    pub eta_min: f64,
    /// Momentum factor.
    pub momentum: f64,
    /// L2 weight decay added to the gradient.
    pub weight_decay: f64,
}

impl SgdConfig {
    /// The paper's optimiser (docs/design.md, "Training") at learning rate `lr`: momentum 0.9,
    /// weight decay 5e-4, cosine down to `0.01 * lr`.
    pub fn paper(lr: f64) -> SgdConfig {
        SgdConfig {
            lr,
            eta_min: 0.01 * lr,
            momentum: 0.9,
            weight_decay: 5e-4,
        }
    }
}

/// The optimiser state: one momentum buffer per trained tensor.
#[derive(Debug, Default)]
pub struct Sgd {
    /// Momentum factor.
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
    buffers: BTreeMap<String, Tensor>,
}

impl Sgd {
    /// A fresh optimiser with no momentum buffers.
    pub fn new(momentum: f64, weight_decay: f64) -> Sgd {
        Sgd {
            momentum,
            weight_decay,
            buffers: BTreeMap::new(),
        }
    }

    /// One update of every tensor of `params` that has a gradient in `grads`, at rate `lr`.
    pub fn step(
        &mut self,
        params: &BTreeMap<String, Var>,
        grads: &GradStore,
        lr: f64,
    ) -> Result<()> {
        for (name, var) in params {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let w = var.as_tensor().detach();
            let mut g = g.detach();
            if self.weight_decay != 0.0 {
                g = (g + (&w * self.weight_decay)?)?;
            }
            let buf = match self.buffers.remove(name) {
                Some(b) if self.momentum != 0.0 => ((b * self.momentum)? + g)?,
                _ => g,
            };
            var.set(&(w - (&buf * lr)?)?)?;
            self.buffers.insert(name.clone(), buf);
        }
        Ok(())
    }

    /// The momentum buffers by tensor name.
    pub fn buffers(&self) -> &BTreeMap<String, Tensor> {
        &self.buffers
    }

    /// Replaces the momentum buffers with ones kept elsewhere (the CPU training path keeps its
    /// own during an epoch).
    pub fn set_buffers(&mut self, buffers: BTreeMap<String, Tensor>) {
        self.buffers = buffers;
    }

    /// Replaces the momentum buffers (resume). Every buffer must name a parameter of `params`
    /// with the same shape; `origin` names the file in errors.
    pub fn load_buffers(
        &mut self,
        buffers: HashMap<String, Tensor>,
        params: &BTreeMap<String, Var>,
        origin: &str,
    ) -> Result<()> {
        let mut out = BTreeMap::new();
        for (name, t) in buffers {
            let Some(var) = params.get(&name) else {
                bail!("{origin}: momentum buffer {name} belongs to no parameter of the network");
            };
            if t.dims() != var.dims() {
                bail!(
                    "{origin}: momentum buffer {name} has shape {:?}, the parameter {:?}",
                    t.dims(),
                    var.dims()
                );
            }
            let t = t
                .to_dtype(var.dtype())?
                .to_device(var.as_tensor().device())?;
            out.insert(name, t);
        }
        self.buffers = out;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_pytorch_sgd_formula() -> Result<()> {
        let dev = Device::Cpu;
        let w = Var::new(&[1.0f32, -2.0], &dev)?;
        let mut params = BTreeMap::new();
        params.insert("w".to_string(), w.clone());
        let mut opt = Sgd::new(0.9, 0.1);
        // loss = sum(3 w) -> grad 3.
        let (mut wr, mut buf) = ([1.0f64, -2.0], [0.0f64; 2]);
        for step in 0..3 {
            let loss = (w.as_tensor() * 3.0)?.sum_all()?;
            let grads = loss.backward()?;
            opt.step(&params, &grads, 0.5)?;
            for i in 0..2 {
                let g = 3.0 + 0.1 * wr[i];
                buf[i] = if step == 0 { g } else { 0.9 * buf[i] + g };
                wr[i] -= 0.5 * buf[i];
            }
        }
        let got: Vec<f32> = w.as_tensor().to_vec1()?;
        for i in 0..2 {
            assert!((got[i] as f64 - wr[i]).abs() < 1e-5, "{got:?} vs {wr:?}");
        }
        Ok(())
    }
}
