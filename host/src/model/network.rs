//! The LightSNN network (docs/design.md, "The cell" and "Macro skeleton"): stem, two searched
//! cells with forward and backward edges, the downsampling block and the voting classifier,
//! unrolled over T timesteps.
//!
//! One type serves the supernet (several weighted ops per edge, for the search) and the
//! single-path network (one op per edge, for training and export): what differs is the
//! [`Mixing`] passed to [`Network::forward`].

use super::edge_weights::{EdgeWeights, OpWeight};
use super::layers::{avg_pool3, batch_norm_groups, max_pool, max_pool3, vote, ConvBn, Mode};
use super::lif::LifState;
use super::mixing::Mixing;
use super::params::{BnParams, ParamCount, ParamStore};
use crate::config::{NetConfig, PoolKind};
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use snn_nostd::genotype::{LifClass, Op, LIF_CLASSES, NUM_NODES};
use snn_nostd::skeleton;
use std::collections::BTreeMap;

/// Identifies a LIF layer for spike recording and statistics: the one layer name of host and
/// device ([`snn_nostd::skeleton::LayerId`]).
pub use snn_nostd::skeleton::LayerId;

/// A real-valued point of the forward pass that a [`SpikeSink`] can
/// [`observe`](SpikeSink::observe).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Probe {
    /// The input batch `[N, F, C, H, W]` as given (observed once, at `t = 0`).
    Input,
    /// A value inside cell `cell` (0 or 1): its input (the stem or down-block output), every
    /// edge output, every partial and complete sum of a node's forward edges, every node value
    /// with its back state added (`u_i = x_i + B_i`), and every partial and complete sum of a
    /// back state, in the order the pass computes them.
    Cell {
        /// Cell index (0 = cell 1, 1 = cell 2).
        cell: u8,
    },
    /// The BatchNorm output after cell `cell` (0 or 1): the input of its LIF.
    CellOut {
        /// Cell index (0 or 1).
        cell: u8,
    },
    /// The fc1 output: the input of the hidden LIF.
    Hidden,
    /// The fc2 output (bias included, before the votes are averaged).
    Output,
}

/// Receives the spikes of every LIF layer at every timestep (and, if it wants them, the
/// real-valued tensors of [`Probe`]).
pub trait SpikeSink {
    /// `spikes` has shape `[N, ...]` with 0/1 values; `multiplicity` is how many LIF modules of
    /// the reference network this layer stands for (identical inputs give identical spikes).
    fn record(
        &mut self,
        layer: LayerId,
        t: usize,
        spikes: &Tensor,
        multiplicity: u32,
    ) -> Result<()>;

    /// The spikes of a pass over stacked candidates ([`Network::forward_candidates`]):
    /// `spikes` is `[G*N, ...]` and `multiplicity[g]` belongs to candidate `g` (0: the layer
    /// does not exist in that candidate). The provided method takes one group only and
    /// forwards it to [`record`](Self::record); sinks that score candidates override it.
    fn record_groups(
        &mut self,
        layer: LayerId,
        t: usize,
        spikes: &Tensor,
        multiplicity: &[u32],
    ) -> Result<()> {
        match multiplicity {
            [0] => Ok(()),
            [m] => self.record(layer, t, spikes, *m),
            _ => bail!(
                "this spike sink takes one network at a time, not {} stacked candidates",
                multiplicity.len()
            ),
        }
    }

    /// Sees the tensor `value` computed at `probe` in timestep `t`; the provided method ignores
    /// it (the pass computes the value anyway, so a sink that ignores it costs nothing).
    /// Calibration records the largest magnitudes through it (`export::calibrate`).
    fn observe(&mut self, probe: Probe, t: usize, value: &Tensor) -> Result<()> {
        let _ = (probe, t, value);
        Ok(())
    }
}

/// A sink that drops everything.
pub struct NoSink;

impl SpikeSink for NoSink {
    fn record(&mut self, _: LayerId, _: usize, _: &Tensor, _: u32) -> Result<()> {
        Ok(())
    }
}

/// Parameters of one cell: for each edge, the conv ops that exist on it.
#[derive(Debug)]
pub struct CellParams {
    /// Per edge (canonical order): the weighted ops present, by op.
    pub edges: Vec<BTreeMap<Op, ConvBn>>,
}

/// The network's parameters and configuration.
#[derive(Debug)]
pub struct Network {
    /// Shape and constants.
    pub cfg: NetConfig,
    /// Every tensor, named.
    pub params: ParamStore,
    /// Stem conv + BN.
    pub stem: ConvBn,
    /// The two cells.
    pub cells: [CellParams; 2],
    /// BatchNorm after each cell.
    pub cell_bn: [BnParams; 2],
    /// Conv3x3 C1 -> C2 + BN between the cells.
    pub down: ConvBn,
    /// Hidden linear layer `[H, features]`, no bias.
    pub fc1: Var,
    /// Output linear layer `[classes * V, H]`.
    pub fc2: Var,
    /// Output bias.
    pub fc2_bias: Var,
}

/// What a forward pass returns.
#[derive(Debug)]
pub struct Output {
    /// Mean over timesteps of the voted outputs, `[N, classes]`.
    pub logits: Tensor,
}

/// Options of one forward pass.
pub struct Forward<'a> {
    /// Which ops each edge runs, with weights.
    pub mixing: &'a Mixing,
    /// BatchNorm / dropout / surrogate behaviour.
    pub mode: Mode,
    /// Where spikes go.
    pub sink: &'a mut dyn SpikeSink,
    /// Dropout masks are drawn from this (training only; `None` disables dropout).
    pub dropout_rng: Option<&'a mut dyn rand::RngCore>,
}

impl Network {
    /// Builds the network with parameters for every op in `alive` (per edge), drawn from
    /// `seed`. For the supernet pass `Mixing::supernet(..).alive()`; for a single path the
    /// genotype's ops.
    pub fn new(cfg: &NetConfig, alive: &[Vec<Op>], seed: u64, device: &Device) -> Result<Network> {
        cfg.validate()?;
        if alive.len() != cfg.cell.num_edges() {
            bail!(
                "{} edges given for a {} cell with {} edges",
                alive.len(),
                cfg.cell,
                cfg.cell.num_edges()
            );
        }
        let mut ps = ParamStore::new(seed, device);
        let stem = ConvBn::new(&mut ps, "stem", cfg.shape.in_c, cfg.shape.c1, 3)?;
        let make_cell = |ps: &mut ParamStore, name: &str, c: usize| -> Result<CellParams> {
            let mut edges = Vec::new();
            for (ei, ops) in alive.iter().enumerate() {
                let mut m = BTreeMap::new();
                for &op in ops {
                    let Some(k) = op.kernel() else {
                        continue;
                    };
                    m.insert(op, ConvBn::new(ps, &format!("{name}.e{ei}.{op}"), c, c, k)?);
                }
                edges.push(m);
            }
            Ok(CellParams { edges })
        };
        let cell1 = make_cell(&mut ps, "cell1", cfg.shape.c1)?;
        let bn1 = ps.bn("cell1_bn", cfg.shape.c1)?;
        let down = ConvBn::new(&mut ps, "down", cfg.shape.c1, cfg.shape.c2, 3)?;
        let cell2 = make_cell(&mut ps, "cell2", cfg.shape.c2)?;
        let bn2 = ps.bn("cell2_bn", cfg.shape.c2)?;
        let fc1 = ps.linear("fc1.weight", cfg.shape.hidden, cfg.shape.fc1_in())?;
        let fc2 = ps.linear(
            "fc2.weight",
            cfg.shape.classes * cfg.shape.votes,
            cfg.shape.hidden,
        )?;
        let fc2_bias = ps.bias("fc2.bias", cfg.shape.classes * cfg.shape.votes)?;
        Ok(Network {
            cfg: cfg.clone(),
            params: ps,
            stem,
            cells: [cell1, cell2],
            cell_bn: [bn1, bn2],
            down,
            fc1,
            fc2,
            fc2_bias,
        })
    }

    /// Number of f32 values [`Network::new`] allocates for `cfg` and `alive` (weights, biases
    /// and BatchNorm statistics), counted without allocating them ([`ParamCount`]).
    pub fn param_count(cfg: &NetConfig, alive: &[Vec<Op>]) -> u64 {
        ParamCount::of(cfg, alive).total()
    }

    /// Checks a batch `[N, F, C, H, W]` and a mixing against the network (frame shape, F = 1 or
    /// T, one mixing entry per edge) and returns `(N, F)`. Every forward implementation calls it.
    pub fn check_input(&self, input: &Tensor, mixing: &Mixing) -> Result<(usize, usize)> {
        let cfg = &self.cfg;
        let (n, frames, c, h, w) = input.dims5()?;
        if [c, h, w] != cfg.shape.in_chw() {
            bail!(
                "input frames are {c}x{h}x{w}, the network expects {}x{}x{}",
                cfg.shape.in_c,
                cfg.shape.in_h,
                cfg.shape.in_w
            );
        }
        if frames != 1 && frames != cfg.shape.timesteps {
            bail!(
                "input has {frames} frames per sample; expected 1 (static) or T = {}",
                cfg.shape.timesteps
            );
        }
        if mixing.edges.len() != cfg.cell.num_edges() {
            bail!(
                "mixing has {} edges, the cell has {}",
                mixing.edges.len(),
                cfg.cell.num_edges()
            );
        }
        Ok((n, frames))
    }

    /// The stem: conv + BN (+ MaxPool2 for DVS) of one frame `[N, C, H, W]`.
    pub fn stem(&self, frame: &Tensor, mode: Mode) -> Result<Tensor> {
        let s = self.stem.forward(frame, mode)?;
        if self.cfg.shape.stem_pool {
            max_pool(&s, 2, mode)
        } else {
            Ok(s)
        }
    }

    /// Runs `input` of shape `[N, F, C, H, W]` (F = 1 for static data, repeated over the T
    /// timesteps; F = T for event data) and returns the mean voted output.
    pub fn forward(&self, input: &Tensor, opts: Forward<'_>) -> Result<Output> {
        let Forward {
            mixing,
            mode,
            sink,
            dropout_rng,
        } = opts;
        self.check_input(input, mixing)?;
        let weights = EdgeWeights::single(mixing, self.cfg.cell);
        self.run(input, &weights, mode, sink, dropout_rng)
    }

    /// Runs `input` `[N, F, C, H, W]` once for every candidate mixing, all candidates stacked
    /// on the batch axis in one pass (candidate `g` owns samples `g*N..(g+1)*N` of the spikes
    /// `sink` receives through [`SpikeSink::record_groups`]). Every candidate sees exactly
    /// the arithmetic of its own [`forward`](Self::forward) pass; BatchNorm batch statistics
    /// are per candidate. The stem runs once on the `N` samples. Scoring modes only.
    ///
    /// Returns the logits `[G*N, classes]`.
    pub fn forward_candidates(
        &self,
        input: &Tensor,
        candidates: &[Mixing],
        mode: Mode,
        sink: &mut dyn SpikeSink,
    ) -> Result<Output> {
        if matches!(mode, Mode::Train) {
            bail!("stacked candidates are for scoring; training runs one mixing");
        }
        for c in candidates {
            self.check_input(input, c)?;
        }
        let n = input.dim(0)?;
        let weights = EdgeWeights::stacked(candidates, self.cfg.cell, n, input.device())?;
        self.run(input, &weights, mode, sink, None)
    }

    /// The forward pass over resolved weights (one mixing or stacked candidates).
    fn run(
        &self,
        input: &Tensor,
        weights: &EdgeWeights,
        mode: Mode,
        sink: &mut dyn SpikeSink,
        dropout_rng: Option<&mut dyn rand::RngCore>,
    ) -> Result<Output> {
        let cfg = &self.cfg;
        let (n, frames, ..) = input.dims5()?;
        let groups = weights.groups;
        // The stem sees the same N samples for every candidate: run it once, then repeat.
        let stem = |frame: &Tensor| -> Result<Tensor> {
            let s = self.stem(frame, mode)?;
            if groups == 1 {
                Ok(s)
            } else {
                Ok(Tensor::cat(&vec![&s; groups], 0)?)
            }
        };
        let static_stem = if frames == 1 {
            Some(stem(&input.squeeze(1)?)?)
        } else {
            None
        };
        let mut cell_states = [CellState::default(), CellState::default()];
        let mut out_lif = [LifState::new(), LifState::new()];
        let mut hidden_lif = LifState::new();
        let dropout_mask = match dropout_rng {
            Some(rng) if mode == Mode::Train => {
                Some(dropout_mask(rng, n, cfg.shape.fc1_in(), input.device())?)
            }
            _ => None,
        };
        let surrogate = mode.surrogate();
        let ones = vec![1u32; groups];
        sink.observe(Probe::Input, 0, input)?;
        let mut acc: Option<Tensor> = None;
        for t in 0..cfg.shape.timesteps {
            let x0 = match &static_stem {
                Some(s) => s.clone(),
                None => stem(&input.narrow(1, t, 1)?.squeeze(1)?)?,
            };
            let y1 = self.cell_step(0, &x0, &mut cell_states[0], weights, mode, sink, t)?;
            let y1 = batch_norm_groups(&y1, &self.cell_bn[0], mode, groups)?;
            sink.observe(Probe::CellOut { cell: 0 }, t, &y1)?;
            let s1 = out_lif[0].step(&y1, &cfg.lif, surrogate)?;
            sink.record_groups(LayerId::CellOut { cell: 0 }, t, &s1, &ones)?;
            let x2 = downsample(
                &self.down.forward_groups(&s1, mode, groups)?,
                cfg.downsample,
                2,
                mode,
            )?;
            let y2 = self.cell_step(1, &x2, &mut cell_states[1], weights, mode, sink, t)?;
            let y2 = batch_norm_groups(&y2, &self.cell_bn[1], mode, groups)?;
            sink.observe(Probe::CellOut { cell: 1 }, t, &y2)?;
            let s2 = out_lif[1].step(&y2, &cfg.lif, surrogate)?;
            sink.record_groups(LayerId::CellOut { cell: 1 }, t, &s2, &ones)?;
            let mut f = downsample(&s2, cfg.downsample, cfg.shape.pool, mode)?.flatten_from(1)?;
            if let Some(m) = &dropout_mask {
                f = (f * m)?;
            }
            let hdn = f.matmul(&self.fc1.as_tensor().t()?)?;
            sink.observe(Probe::Hidden, t, &hdn)?;
            let sh = hidden_lif.step(&hdn, &cfg.lif, surrogate)?;
            sink.record_groups(LayerId::Hidden, t, &sh, &ones)?;
            let o = sh
                .matmul(&self.fc2.as_tensor().t()?)?
                .broadcast_add(self.fc2_bias.as_tensor())?;
            sink.observe(Probe::Output, t, &o)?;
            let v = vote(&o, cfg.shape.classes, cfg.shape.votes)?;
            acc = Some(match acc {
                None => v,
                Some(a) => (a + v)?,
            });
        }
        let logits = match acc {
            Some(a) => (a / cfg.shape.timesteps as f64)?,
            None => bail!("T must be at least 1"),
        };
        Ok(Output { logits })
    }

    /// One timestep of cell `ci` (docs/design.md, "The cell") with input `x0`; returns the output
    /// node x3.
    #[allow(clippy::too_many_arguments)]
    fn cell_step(
        &self,
        ci: usize,
        x0: &Tensor,
        st: &mut CellState,
        weights: &EdgeWeights,
        mode: Mode,
        sink: &mut dyn SpikeSink,
        t: usize,
    ) -> Result<Tensor> {
        let cell = &self.cells[ci];
        let cell_type = self.cfg.cell;
        let edges = cell_type.edges();
        let surrogate = mode.surrogate();
        // u_j = x_j + B_j for j < 3 (forward sources) ; u_3 = x_3.
        let mut u: [Option<Tensor>; NUM_NODES] = Default::default();
        let mut spikes: [Option<NodeSpikes>; NUM_NODES] = Default::default();
        let add_back = |x: Tensor, b: &Option<Tensor>| -> Result<Tensor> {
            Ok(match b {
                Some(b) => (x + b)?,
                None => x,
            })
        };
        let probe = Probe::Cell { cell: ci as u8 };
        sink.observe(probe, t, x0)?;
        u[0] = Some(add_back(x0.clone(), &st.back[0])?);
        sink.observe(probe, t, u[0].as_ref().expect("just set"))?;
        // Adds edge `ei`'s output (from its source node's value and spikes) to `sum`, observing
        // the output and the new sum; a node's spikes are computed (and recorded) once per
        // timestep, when the first LIF-headed op needs them: every LIF class the node has, in
        // threshold order.
        let add_edge = |ei: usize,
                        sum: Option<Tensor>,
                        u: &[Option<Tensor>; NUM_NODES],
                        spikes: &mut [Option<NodeSpikes>; NUM_NODES],
                        st: &mut CellState,
                        sink: &mut dyn SpikeSink|
         -> Result<Option<Tensor>> {
            let j = edges[ei].from as usize;
            let uj = u[j].as_ref().expect("node computed before use");
            if spikes[j].is_none() {
                let mut node_spikes = NodeSpikes::default();
                for class in LifClass::ALL {
                    if !weights.spikes_needed(j, class) {
                        continue;
                    }
                    let p = self.cfg.lif_for(class);
                    let s = st.lif[j][class.index()].step(uj, &p, surrogate)?;
                    let node = LayerId::CellNode {
                        cell: ci as u8,
                        node: j as u8,
                        class,
                    };
                    sink.record_groups(node, t, &s, &weights.mults(j, class))?;
                    node_spikes.0[class.index()] = Some(s);
                }
                spikes[j] = Some(node_spikes);
            }
            let Some(y) = self.edge(cell, ei, weights, uj, spikes[j].as_ref(), mode)? else {
                return Ok(sum);
            };
            sink.observe(probe, t, &y)?;
            Ok(Some(match sum {
                Some(a) => {
                    let a = (a + y)?;
                    sink.observe(probe, t, &a)?;
                    a
                }
                None => y,
            }))
        };
        // Forward edges, node by node.
        let mut x3 = None;
        for i in 1..NUM_NODES {
            let mut sum: Option<Tensor> = None;
            for (ei, _) in skeleton::forward_edges_into(cell_type, i) {
                sum = add_edge(ei, sum, &u, &mut spikes, st, &mut *sink)?;
            }
            let xi = match sum {
                Some(s) => s,
                None => x0.zeros_like()?,
            };
            if i < 3 {
                let ui = add_back(xi, &st.back[i])?;
                sink.observe(probe, t, &ui)?;
                u[i] = Some(ui);
            } else {
                u[i] = Some(xi.clone());
                x3 = Some(xi);
            }
        }
        // Backward edges: new back states from this timestep's values.
        let mut new_back: [Option<Tensor>; 3] = Default::default();
        for (i, back) in new_back.iter_mut().enumerate() {
            for (ei, _) in skeleton::backward_edges_into(cell_type, i) {
                *back = add_edge(ei, back.take(), &u, &mut spikes, st, &mut *sink)?;
            }
        }
        st.back = new_back;
        Ok(x3.expect("x3 computed"))
    }

    /// Output of edge `ei` given its source value `u` and that value's spikes (per LIF class).
    fn edge(
        &self,
        cell: &CellParams,
        ei: usize,
        weights: &EdgeWeights,
        u: &Tensor,
        spikes: Option<&NodeSpikes>,
        mode: Mode,
    ) -> Result<Option<Tensor>> {
        let mut sum: Option<Tensor> = None;
        for (op, w) in &weights.edges[ei] {
            let op = *op;
            let y = match op {
                Op::Zero => continue,
                Op::Skip => u.clone(),
                Op::AvgPool => avg_pool3(u)?,
                Op::MaxPool => max_pool3(u, mode)?,
                Op::Conv1 | Op::Conv3 | Op::Conv3Th05 | Op::Conv3Th15 => {
                    let conv = match cell.edges[ei].get(&op) {
                        Some(c) => c,
                        None => bail!(
                            "edge {ei} has no parameters for {op} (network built for other ops)"
                        ),
                    };
                    let class = op.lif_class().expect("conv ops have a LIF");
                    let s = spikes
                        .and_then(|s| s.0[class.index()].as_ref())
                        .expect("spikes exist for conv ops");
                    conv.forward_groups(s, mode, weights.groups)?
                }
            };
            let y = match w {
                OpWeight::One => y,
                OpWeight::Scalar(w) => (y * *w)?,
                OpWeight::PerSample(w) => y.broadcast_mul(w)?,
            };
            sum = add_opt(sum, Some(y))?;
        }
        Ok(sum)
    }
}

/// Per-cell recurrent state over one sequence.
#[derive(Default)]
struct CellState {
    /// Back states B0, B1, B2 (None = 0).
    back: [Option<Tensor>; 3],
    /// LIF membranes of the conv inputs, per source node and LIF class.
    lif: [[LifState; LIF_CLASSES]; NUM_NODES],
}

/// One node's spikes of one timestep, per LIF class (`None` where the node has no such LIF).
#[derive(Default)]
struct NodeSpikes([Option<Tensor>; LIF_CLASSES]);

/// A `k x k` pool with stride `k` of the kind the network downsamples with.
fn downsample(x: &Tensor, kind: PoolKind, k: usize, mode: Mode) -> Result<Tensor> {
    Ok(match kind {
        PoolKind::Max => max_pool(x, k, mode)?,
        PoolKind::Avg => x.avg_pool2d(k)?,
    })
}

fn add_opt(a: Option<Tensor>, b: Option<Tensor>) -> Result<Option<Tensor>> {
    Ok(match (a, b) {
        (Some(a), Some(b)) => Some((a + b)?),
        (a, None) => a,
        (None, b) => b,
    })
}

/// Dropout(0.5) mask, one per sequence: 0 or 2 per feature.
fn dropout_mask(
    rng: &mut dyn rand::RngCore,
    n: usize,
    features: usize,
    dev: &Device,
) -> Result<Tensor> {
    let data = dropout_values(rng, n, features);
    Ok(Tensor::from_vec(data, (n, features), dev)?.to_dtype(DType::F32)?)
}

/// The values of a Dropout(0.5) mask of `n` sequences of `features`: 0 or 2 each, drawn in
/// order (one `gen_bool(0.5)` per value). Every training path draws its mask with it.
pub fn dropout_values(rng: &mut dyn rand::RngCore, n: usize, features: usize) -> Vec<f32> {
    (0..n * features)
        .map(|_| if rng.gen_bool(0.5) { 2.0 } else { 0.0 })
        .collect()
}
