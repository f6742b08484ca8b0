//! The CPU training path's copy of the network's tensors (plain vectors by parameter name), its
//! gradients, and the SGD update (the formula of `train::optim::Sgd`, in the same f32
//! operations).

use crate::model::Network;
use crate::train::optim::Sgd;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use std::collections::BTreeMap;

/// Weights, BatchNorm statistics and momentum buffers, by the names of the network's
/// `ParamStore` (sorted: the update order of `Sgd`).
#[derive(Clone, Debug)]
pub struct Params {
    trainable: BTreeMap<String, Vec<f32>>,
    /// Running mean and variance by BatchNorm prefix (`stem.bn`).
    running: BTreeMap<String, (Vec<f32>, Vec<f32>)>,
    momentum: BTreeMap<String, Vec<f32>>,
}

impl Params {
    /// Copies the tensors of `net` and the momentum buffers of `opt`.
    pub fn load(net: &Network, opt: &Sgd) -> Result<Params> {
        let mut trainable = BTreeMap::new();
        for (name, var) in net.params.trainable() {
            trainable.insert(name.clone(), crate::model::plain::values(var, name)?);
        }
        let mut running = BTreeMap::new();
        for (name, var) in net.params.state() {
            let v = crate::model::plain::values(var, name)?;
            let (prefix, which) = match name.rsplit_once('.') {
                Some(pw) => pw,
                None => bail!("unexpected state tensor {name}"),
            };
            let e = running
                .entry(prefix.to_string())
                .or_insert_with(|| (Vec::new(), Vec::new()));
            match which {
                "running_mean" => e.0 = v,
                "running_var" => e.1 = v,
                _ => bail!("unexpected state tensor {name}"),
            }
        }
        let mut momentum = BTreeMap::new();
        for (name, t) in opt.buffers() {
            let v: Vec<f32> = t
                .flatten_all()?
                .to_vec1()
                .with_context(|| format!("momentum buffer {name}"))?;
            momentum.insert(name.clone(), v);
        }
        Ok(Params {
            trainable,
            running,
            momentum,
        })
    }

    /// Writes the tensors back into `net` and the momentum buffers into `opt`.
    pub fn store(&self, net: &Network, opt: &mut Sgd) -> Result<()> {
        let dev = net.params.device().clone();
        for (name, var) in net.params.trainable() {
            let v = self.get(name).to_vec();
            var.set(&Tensor::from_vec(v, var.dims(), &dev)?)?;
        }
        for (name, var) in net.params.state() {
            let (prefix, which) = name.rsplit_once('.').expect("checked at load");
            let (m, v) = &self.running[prefix];
            let data = if which == "running_mean" { m } else { v };
            var.set(&Tensor::from_vec(data.clone(), var.dims(), &dev)?)?;
        }
        let mut bufs = BTreeMap::new();
        for (name, b) in &self.momentum {
            let dims = net.params.trainable()[name].dims().to_vec();
            bufs.insert(
                name.clone(),
                Tensor::from_vec(b.clone(), dims, &Device::Cpu)?,
            );
        }
        opt.set_buffers(bufs);
        Ok(())
    }

    /// The values of trainable tensor `name`.
    pub fn get(&self, name: &str) -> &[f32] {
        match self.trainable.get(name) {
            Some(v) => v,
            None => panic!("the CPU training path has no tensor {name}"),
        }
    }

    /// The running mean and variance of the BatchNorm `prefix`.
    pub fn running_mut(&mut self, prefix: &str) -> (&mut [f32], &mut [f32]) {
        match self.running.get_mut(prefix) {
            Some((m, v)) => (m, v),
            None => panic!("the CPU training path has no BatchNorm {prefix}"),
        }
    }

    /// One SGD step over every tensor that has a gradient in `grads`, in name order:
    /// `g += wd * w`; `buf = g` (first step) or `momentum * buf + g`; `w -= lr * buf`.
    pub fn sgd(&mut self, grads: &Grads, momentum: f64, weight_decay: f64, lr: f64) {
        let (m, wd, lr) = (momentum as f32, weight_decay as f32, lr as f32);
        for (name, w) in self.trainable.iter_mut() {
            let Some(g) = grads.get(name) else {
                continue;
            };
            let buf = self.momentum.get_mut(name).filter(|_| m != 0.0);
            let mut fresh = Vec::new();
            let buf = match buf {
                Some(b) => {
                    for ((b, &g), &w) in b.iter_mut().zip(g.iter()).zip(w.iter()) {
                        let g = if wd != 0.0 { g + w * wd } else { g };
                        *b = *b * m + g;
                    }
                    b
                }
                None => {
                    fresh.extend(g.iter().zip(w.iter()).map(|(&g, &w)| {
                        if wd != 0.0 {
                            g + w * wd
                        } else {
                            g
                        }
                    }));
                    &mut fresh
                }
            };
            for (w, &b) in w.iter_mut().zip(buf.iter()) {
                *w -= b * lr;
            }
            if !fresh.is_empty() {
                self.momentum.insert(name.clone(), fresh);
            }
        }
    }
}

/// Gradients of one step by tensor name; a tensor without an entry received none (no path
/// from it to the loss), which the update skips as `Sgd` skips it.
#[derive(Debug, Default)]
pub struct Grads {
    map: BTreeMap<String, Vec<f32>>,
    /// BatchNorm weight and bias gradients by prefix.
    bn: BTreeMap<String, (Vec<f32>, Vec<f32>)>,
}

impl Grads {
    /// The gradient of `name` (`len` values), created at 0 on first use.
    pub fn entry(&mut self, name: &str, len: usize) -> &mut [f32] {
        self.map
            .entry(name.to_string())
            .or_insert_with(|| vec![0.0; len])
    }

    /// The weight and bias gradients of the BatchNorm `prefix` over `c` channels.
    pub fn bn_pair(&mut self, prefix: &str, c: usize) -> (&mut [f32], &mut [f32]) {
        let (w, b) = self
            .bn
            .entry(prefix.to_string())
            .or_insert_with(|| (vec![0.0; c], vec![0.0; c]));
        (w, b)
    }

    /// The gradient of `name`, if it received one.
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        if let Some(v) = self.map.get(name) {
            return Some(v);
        }
        let (prefix, which) = name.rsplit_once('.')?;
        let (w, b) = self.bn.get(prefix)?;
        match which {
            "weight" => Some(w),
            "bias" => Some(b),
            _ => None,
        }
    }
}
