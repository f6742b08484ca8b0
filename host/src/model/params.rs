//! Named parameters with deterministic, seeded initialisation (docs/design.md, "Initialisation":
//! conv kaiming-uniform with a = 2, BN weight 1 / bias 0, linear N(0, 0.01) / bias 0).
//!
//! Candle's CPU backend cannot be seeded, so every initial value is drawn here from a ChaCha8
//! stream in a fixed order and uploaded: the same seed gives the same weights on every device.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr_lite::normal;
use std::collections::BTreeMap;

/// A BatchNorm layer's parameters and running statistics.
#[derive(Clone, Debug)]
pub struct BnParams {
    /// Scale (gamma), trainable.
    pub weight: Var,
    /// Shift (beta), trainable.
    pub bias: Var,
    /// Running mean (not trained; updated in training mode).
    pub running_mean: Var,
    /// Running variance.
    pub running_var: Var,
}

/// Trainable and state tensors, by name. Names are stable and sorted, so iteration order (and so
/// optimiser updates and files) is deterministic.
#[derive(Debug)]
pub struct ParamStore {
    device: Device,
    rng: ChaCha8Rng,
    trainable: BTreeMap<String, Var>,
    state: BTreeMap<String, Var>,
}

impl ParamStore {
    /// An empty store drawing initial values from `seed`.
    pub fn new(seed: u64, device: &Device) -> ParamStore {
        ParamStore {
            device: device.clone(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            trainable: BTreeMap::new(),
            state: BTreeMap::new(),
        }
    }

    /// The device the tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    fn insert(
        &mut self,
        name: &str,
        data: Vec<f32>,
        shape: &[usize],
        trainable: bool,
    ) -> Result<Var> {
        let var = Var::from_vec(data, shape, &self.device)?;
        let map = if trainable {
            &mut self.trainable
        } else {
            &mut self.state
        };
        if map.insert(name.to_string(), var.clone()).is_some() {
            bail!("parameter {name} defined twice");
        }
        Ok(var)
    }

    /// A conv kernel `[out, in, k, k]`, kaiming-uniform with a = 2 (gain sqrt(2 / (1 + a^2))).
    pub fn conv(&mut self, name: &str, out: usize, inp: usize, k: usize) -> Result<Var> {
        let fan_in = (inp * k * k) as f64;
        let a = 2.0f64;
        let gain = (2.0 / (1.0 + a * a)).sqrt();
        let bound = (gain * (3.0 / fan_in).sqrt()) as f32;
        let n = out * inp * k * k;
        let data: Vec<f32> = (0..n).map(|_| self.rng.gen_range(-bound..bound)).collect();
        self.insert(name, data, &[out, inp, k, k], true)
    }

    /// A linear weight `[out, in]` drawn from N(0, 0.01).
    pub fn linear(&mut self, name: &str, out: usize, inp: usize) -> Result<Var> {
        let data: Vec<f32> = (0..out * inp)
            .map(|_| (0.01 * normal(&mut self.rng)) as f32)
            .collect();
        self.insert(name, data, &[out, inp], true)
    }

    /// A zero bias.
    pub fn bias(&mut self, name: &str, n: usize) -> Result<Var> {
        self.insert(name, vec![0.0; n], &[n], true)
    }

    /// BatchNorm over `c` channels: weight 1, bias 0, running mean 0, running var 1.
    pub fn bn(&mut self, name: &str, c: usize) -> Result<BnParams> {
        Ok(BnParams {
            weight: self.insert(&format!("{name}.weight"), vec![1.0; c], &[c], true)?,
            bias: self.insert(&format!("{name}.bias"), vec![0.0; c], &[c], true)?,
            running_mean: self.insert(
                &format!("{name}.running_mean"),
                vec![0.0; c],
                &[c],
                false,
            )?,
            running_var: self.insert(&format!("{name}.running_var"), vec![1.0; c], &[c], false)?,
        })
    }

    /// Trainable tensors, sorted by name.
    pub fn trainable(&self) -> &BTreeMap<String, Var> {
        &self.trainable
    }

    /// Non-trainable state (BN running statistics), sorted by name.
    pub fn state(&self) -> &BTreeMap<String, Var> {
        &self.state
    }

    /// Every tensor (trainable and state) by name, as plain tensors (for saving).
    pub fn all_tensors(&self) -> BTreeMap<String, Tensor> {
        self.trainable
            .iter()
            .chain(self.state.iter())
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect()
    }

    /// Total number of trainable scalars.
    pub fn num_trainable(&self) -> usize {
        self.trainable.values().map(|v| v.elem_count()).sum()
    }

    /// Overwrites every tensor from `tensors`; fails, naming the tensor, on a missing name or a
    /// shape mismatch, and on extra names.
    pub fn load_from(
        &self,
        tensors: &std::collections::HashMap<String, Tensor>,
        origin: &str,
    ) -> Result<()> {
        for (name, var) in self.trainable.iter().chain(self.state.iter()) {
            let t = tensors.get(name).with_context(|| {
                format!(
                    "{origin}: tensor {name} is missing (the checkpoint is for another network)"
                )
            })?;
            if t.dims() != var.dims() {
                bail!(
                    "{origin}: tensor {name} has shape {:?}, the network expects {:?} (another width, genotype or dataset?)",
                    t.dims(),
                    var.dims()
                );
            }
            var.set(&t.to_dtype(DType::F32)?.to_device(&self.device)?)?;
        }
        let known = self.trainable.len() + self.state.len();
        if tensors.len() != known {
            let extra: Vec<&String> = tensors
                .keys()
                .filter(|k| !self.trainable.contains_key(*k) && !self.state.contains_key(*k))
                .take(3)
                .collect();
            bail!("{origin}: the checkpoint has tensors the network lacks, e.g. {extra:?} (another genotype?)");
        }
        Ok(())
    }
}

/// The parameters of a network counted from its configuration, without allocating them: what
/// [`Network::new`](super::Network::new) creates for the same configuration and ops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParamCount {
    /// Trainable scalars: conv kernels, BatchNorm weights and biases, linear weights, the
    /// output bias (what PyTorch's `sum(p.numel() for p in net.parameters())` counts, e.g.
    /// SpikeNAS-Bench's `params` column).
    pub trainable: u64,
    /// BatchNorm running means and variances.
    pub state: u64,
}

impl ParamCount {
    /// The counts of a network of `cfg` with the ops `alive` on each edge (every op of every
    /// edge has its own weights; both cells share `alive`).
    pub fn of(
        cfg: &crate::config::NetConfig,
        alive: &[Vec<snn_nostd::genotype::Op>],
    ) -> ParamCount {
        let bn = |c: usize| ParamCount {
            trainable: 2 * c as u64,
            state: 2 * c as u64,
        };
        let conv_bn = |inp: usize, out: usize, k: usize| {
            bn(out)
                + ParamCount {
                    trainable: (out * inp * k * k) as u64,
                    state: 0,
                }
        };
        let cell = |c: usize| {
            alive
                .iter()
                .flatten()
                .filter_map(|op| op.kernel())
                .map(|k| conv_bn(c, c, k))
                .fold(ParamCount::default(), |a, b| a + b)
        };
        let outputs = cfg.shape.classes * cfg.shape.votes;
        let linear = ParamCount {
            trainable: (cfg.shape.hidden * cfg.shape.fc1_in()
                + outputs * cfg.shape.hidden
                + outputs) as u64,
            state: 0,
        };
        conv_bn(cfg.shape.in_c, cfg.shape.c1, 3)
            + cell(cfg.shape.c1)
            + bn(cfg.shape.c1)
            + conv_bn(cfg.shape.c1, cfg.shape.c2, 3)
            + cell(cfg.shape.c2)
            + bn(cfg.shape.c2)
            + linear
    }

    /// The counts of the single-path network of genotype `g` under `cfg`.
    pub fn of_genotype(
        cfg: &crate::config::NetConfig,
        g: &snn_nostd::genotype::Genotype,
    ) -> ParamCount {
        let alive: Vec<Vec<_>> = g.ops().iter().map(|&o| vec![o]).collect();
        ParamCount::of(cfg, &alive)
    }

    /// Every f32 value: trainable and state.
    pub fn total(&self) -> u64 {
        self.trainable + self.state
    }
}

impl std::ops::Add for ParamCount {
    type Output = ParamCount;
    fn add(self, o: ParamCount) -> ParamCount {
        ParamCount {
            trainable: self.trainable + o.trainable,
            state: self.state + o.state,
        }
    }
}

/// A standard normal draw (Box-Muller), enough for initialisation without another dependency.
mod rand_distr_lite {
    use rand::Rng;
    /// One N(0, 1) sample.
    pub fn normal<R: Rng>(rng: &mut R) -> f64 {
        let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
        let u2: f64 = rng.gen();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}
