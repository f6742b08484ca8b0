//! What a search, a scoring, a training run or an evaluation will need, estimated before
//! anything is allocated: memory (weights, batches, and the activations of every candidate
//! scored at once, or of the network trained or evaluated) and, for searches, time (dense
//! multiply-accumulates per scoring at a measured cost). A configuration that does not fit the
//! machine's free memory is refused with the estimate ([`crate::limits`]) instead of starting a
//! network that cannot finish; otherwise the estimate goes to the progress bar. Every command
//! checks its estimate (see docs/cli.md, "Errors and outputs").

use super::score::KernelPath;
use super::setup::{Method, SearchSetup};
use super::stack::activation_bytes;
use crate::config::NetConfig;
use crate::limits::{check_fits, format_bytes as bytes, product};
use crate::model::{Mixing, Network};
use anyhow::Result;
use candle_core::Device;
use snn_nostd::genotype::Op;

/// CPU seconds per dense multiply-accumulate of the CPU engine (event-driven: its real work
/// follows the spikes, about 10-20 % of the dense count). Measured on the demo search
/// (`lightsnn search`: built-in sample, C1/C2 8/16, T 5, batch 32, R 2): 12.1 s of user time for
/// 60 scorings of 5.28e9 dense MACs, 3.8e-11 s per MAC (2-core development machine; 16.6 s
/// wall at load 5.9).
pub const CPU_ENGINE_S_PER_MAC: f64 = 3.8e-11;

/// CPU seconds per dense multiply-accumulate of the Candle path on the CPU (dense float
/// convolutions). Measured with `lightsnn score --engine candle` of the all-conv3 genotype on
/// the demo configuration: 5.26 s of user time for 5.28e9 dense MACs (same machine; 13.9 s wall
/// at load 11).
pub const CANDLE_CPU_S_PER_MAC: f64 = 1.0e-9;

/// Cell-1-sized f32 maps (`C1 x H1 x W1`) that Candle keeps per sample and timestep while
/// training (forward and BPTT backward), besides [`TRAIN_MAPS_PER_CONV`] per conv or pool edge.
/// Measured from the peak RSS of `lightsnn bench train --steps 1 --train-path candle` (width
/// 1/32, T 5) at two batch sizes, whose difference is the per-sample part: 41 maps with no conv
/// edge (three skips), 234 with 8 conv3 edges, 290 with 12; 48 + 24 per conv edge bounds all
/// three.
pub const TRAIN_MAPS_BASE: f64 = 48.0;

/// Cell-1-sized maps per sample and timestep that each conv (or pool) edge adds while training
/// (see [`TRAIN_MAPS_BASE`]).
pub const TRAIN_MAPS_PER_CONV: f64 = 24.0;

/// The share of the training maps that an evaluation keeps: Candle records the forward graph
/// of the weights there too, without the gradients. Measured from the peak RSS of `lightsnn
/// eval` (width 1/32): 95 maps per sample and timestep with 6 conv edges (T 2, batch 100 and
/// 200), 111 with 8 (T 5, batch 32 and 96), against 192 and 240 counted for training.
pub const EVAL_MAPS_SHARE: f64 = 0.55;

/// Cell-1-sized maps per sample and timestep that the hand-written CPU training path
/// (`--train-path cpu`) keeps, besides [`TRAIN_CPU_MAPS_PER_CONV`] per conv edge. Measured like
/// [`TRAIN_MAPS_BASE`] (`lightsnn bench train --steps 1`, width 1/32, T 5, batch 32 and 96): 9.4
/// maps with no conv edge, 34 with 8 conv3 edges, 43 with 12.
pub const TRAIN_CPU_MAPS_BASE: f64 = 12.0;

/// Cell-1-sized maps per sample and timestep that each conv edge adds on the CPU training path
/// (see [`TRAIN_CPU_MAPS_BASE`]).
pub const TRAIN_CPU_MAPS_PER_CONV: f64 = 3.0;

/// What a pass over one batch keeps alive ([`Estimate::for_network`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Candle training: every timestep's maps kept for the backward pass, and the weights'
    /// gradients and momentum buffers besides the weights.
    Train,
    /// Training on the hand-written CPU path, whose validation still runs on Candle: the peak is
    /// the larger of the two (with the CPU path's own copies of the weights, gradients and
    /// momentum). Measured with `lightsnn train` (width 1/32, T 5, 8 conv edges) at batch 32
    /// and 96: 87 maps per sample and timestep, below the validation's count.
    TrainCpu,
    /// Candle evaluation (also validation, calibration and the integer comparison): the
    /// forward pass only.
    Eval,
}

/// Kernel taps (`k * k`) of the conv ops of `ops`.
fn conv_taps<'a>(ops: impl IntoIterator<Item = &'a Op>) -> f64 {
    ops.into_iter()
        .filter_map(|op| op.kernel())
        .map(|k| (k * k) as f64)
        .sum()
}

/// Dense multiply-accumulates of one sample and one timestep of `net` whose cells run convs of
/// `taps` kernel taps in all (the sum of `k * k` over the conv ops of every edge), from cell 1
/// to the output (the stem, computed once per batch, is left out).
pub fn dense_macs_per_step(net: &NetConfig, taps: f64) -> f64 {
    let cell = |(h, w): (usize, usize), c: usize| -> f64 { product(&[h, w, c, c]) * taps };
    let (h1, w1) = net.shape.cell1_hw();
    cell(net.shape.cell1_hw(), net.shape.c1)
        + product(&[h1, w1, net.shape.c1, net.shape.c2, 9])
        + cell(net.shape.cell2_hw(), net.shape.c2)
        + product(&[net.shape.fc1_in(), net.shape.hidden])
        + product(&[net.shape.hidden, net.shape.classes, net.shape.votes])
}

/// Frames per sample of `net`'s data: T for event data, 1 for images (repeated over time).
pub fn frames_per_sample(net: &NetConfig) -> usize {
    if net.dataset.is_event() {
        net.shape.timesteps
    } else {
        1
    }
}

/// Refuses training or evaluating (`pass`) the single-path network `net` of genotype `g` on
/// batches of `batch` samples on `device` when the machine cannot hold it, before anything is
/// allocated; `hint` says what to do.
pub fn check_network(
    net: &NetConfig,
    g: &snn_nostd::genotype::Genotype,
    batch: usize,
    pass: Pass,
    device: &Device,
    hint: &str,
) -> Result<()> {
    let alive = Mixing::single_path(g).alive();
    Estimate::for_network(net, &alive, (batch, frames_per_sample(net)), pass, device)
        .check_memory_hint(crate::limits::available_memory(), hint)
}

/// Memory and time a search (or one scoring) needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    /// Bytes of the network's parameters, times the copies held (Candle's and, for the CPU
    /// engine, its own layout).
    pub weight_bytes: f64,
    /// Bytes of the repeat batches and of the cached stem outputs.
    pub data_bytes: f64,
    /// Bytes of the activations of one candidate's forward pass ([`activation_bytes`]).
    pub activation_bytes: f64,
    /// Candidates scored at once: threads on the CPU engine, candidates stacked per pass on
    /// Candle.
    pub in_flight: usize,
    /// Bytes of host memory at the peak.
    pub host_bytes: f64,
    /// Bytes of GPU memory at the peak (`None` on the CPU).
    pub device_bytes: Option<f64>,
    /// Scorings of each round.
    pub scorings_per_round: Vec<u64>,
    /// Dense multiply-accumulates of one scoring (all repeat batches and timesteps).
    pub macs_per_scoring: f64,
    /// Estimated wall time, seconds, on an otherwise idle machine (`None` for Candle on a GPU:
    /// no cost measured there).
    pub seconds: Option<f64>,
}

/// What is scored: the network, the ops its weights cover, and how.
struct Workload<'a> {
    net: &'a NetConfig,
    /// The ops the network has weights for, per edge.
    alive: &'a [Vec<Op>],
    /// Conv kernel taps of one scored candidate (see [`dense_macs_per_step`]).
    taps: f64,
    batch: usize,
    repeats: usize,
    frames: usize,
    scorings_per_round: Vec<u64>,
    path: KernelPath,
    stack: usize,
    cpu: bool,
}

impl Estimate {
    /// The estimate of `setup`'s search on `device`, for data of `frames` frames per sample
    /// (1 for images, T for event data).
    pub fn for_search(setup: &SearchSetup, frames: usize, device: &Device) -> Estimate {
        let net = &setup.net;
        let alive = Mixing::supernet(net.cell, &net.ops).alive();
        let supernet_taps = conv_taps(alive.iter().flatten());
        let (scorings_per_round, taps) = match setup.method {
            // A random genotype: one op per edge, uniformly drawn.
            Method::Random | Method::RandomShared => (
                vec![setup.random_samples as u64],
                supernet_taps / net.ops.len() as f64,
            ),
            // A pruning candidate lacks one op of one edge: the supernet bounds it.
            Method::Prune => (
                setup
                    .prune_stage_sizes()
                    .iter()
                    .flat_map(|&n| (2..=n as u64).rev())
                    .map(|k| k * net.cell.num_edges() as u64)
                    .collect(),
                supernet_taps,
            ),
        };
        Estimate::of(&Workload {
            net,
            alive: &alive,
            taps,
            batch: setup.batch,
            repeats: setup.repeats,
            frames,
            scorings_per_round,
            path: setup.kernel_path,
            stack: setup.stack(device),
            cpu: device.is_cpu(),
        })
    }

    /// The estimate of one scoring of the single-path network `alive` (one op per edge) on
    /// `repeats` batches of `batch` samples of `frames` frames.
    pub fn for_scoring(
        net: &NetConfig,
        alive: &[Vec<Op>],
        (batch, repeats, frames): (usize, usize, usize),
        path: KernelPath,
        device: &Device,
    ) -> Estimate {
        Estimate::of(&Workload {
            net,
            alive,
            taps: conv_taps(alive.iter().flatten()),
            batch,
            repeats,
            frames,
            scorings_per_round: vec![1],
            path,
            stack: 1,
            cpu: device.is_cpu(),
        })
    }

    fn of(w: &Workload<'_>) -> Estimate {
        let net = w.net;
        let engine = w.path == KernelPath::CpuEvent;
        let widest_round = w.scorings_per_round.iter().copied().max().unwrap_or(1) as usize;
        let in_flight = if engine {
            rayon::current_num_threads()
        } else {
            w.stack
        }
        .clamp(1, widest_round.max(1));
        let params = 4.0 * Network::param_count(net, w.alive) as f64;
        let frames = w.frames;
        let [c, h, wd] = net.shape.in_chw();
        let inputs = 4.0 * product(&[w.repeats, w.batch, frames, c, h, wd]);
        let (h1, w1) = net.shape.cell1_hw();
        let stems = 4.0 * product(&[w.repeats, w.batch, frames, net.shape.c1, h1, w1]);
        let act = activation_bytes(net, w.batch);
        // Candle's tensors (weights, batches, its activations) live on the device; the CPU
        // engine holds its own weights, stem outputs and activations on the host.
        let candle = params + inputs + if engine { 0.0 } else { act * in_flight as f64 };
        let host_engine = if engine {
            params + stems + act * in_flight as f64
        } else {
            0.0
        };
        let (host_bytes, device_bytes) = if w.cpu {
            (candle + host_engine, None)
        } else {
            (host_engine, Some(candle))
        };
        let macs_per_scoring =
            dense_macs_per_step(net, w.taps) * product(&[net.shape.timesteps, w.batch, w.repeats]);
        let scorings: u64 = w.scorings_per_round.iter().sum();
        // CPU time spread over the threads (candidates on the engine, inside ops on Candle).
        let cpu_seconds = |per_mac: f64| {
            scorings as f64 * macs_per_scoring * per_mac / rayon::current_num_threads() as f64
        };
        let seconds = if engine {
            Some(cpu_seconds(CPU_ENGINE_S_PER_MAC))
        } else if w.cpu {
            Some(cpu_seconds(CANDLE_CPU_S_PER_MAC))
        } else {
            None
        };
        Estimate {
            weight_bytes: if engine { 2.0 * params } else { params },
            data_bytes: inputs + if engine { stems } else { 0.0 },
            activation_bytes: act,
            in_flight,
            host_bytes,
            device_bytes,
            scorings_per_round: w.scorings_per_round.clone(),
            macs_per_scoring,
            seconds,
        }
    }

    /// The estimate of training (`pass` [`Pass::Train`]) or evaluating ([`Pass::Eval`]) the
    /// network `net` with the ops `alive` on batches of `batch` samples of `frames` frames (1
    /// for images, T for event data) on `device`.
    pub fn for_network(
        net: &NetConfig,
        alive: &[Vec<Op>],
        (batch, frames): (usize, usize),
        pass: Pass,
        device: &Device,
    ) -> Estimate {
        let params = 4.0 * Network::param_count(net, alive) as f64;
        // weights; training adds their gradients and the momentum buffers (the CPU path its own
        // copies of the three)
        let weights = match pass {
            Pass::Train => 3.0 * params,
            Pass::TrainCpu => 6.0 * params,
            Pass::Eval => params,
        };
        let [c, h, w] = net.shape.in_chw();
        // the host batch buffer and its tensor
        let batch_bytes = 4.0 * product(&[batch, frames, c, h, w]);
        let convs = alive
            .iter()
            .flatten()
            .filter(|op| !matches!(op, Op::Zero | Op::Skip))
            .count();
        let candle = TRAIN_MAPS_BASE + TRAIN_MAPS_PER_CONV * convs as f64;
        let maps = match pass {
            Pass::Train => candle,
            Pass::TrainCpu => (EVAL_MAPS_SHARE * candle)
                .max(TRAIN_CPU_MAPS_BASE + TRAIN_CPU_MAPS_PER_CONV * convs as f64),
            Pass::Eval => EVAL_MAPS_SHARE * candle,
        };
        let (h1, w1) = net.shape.cell1_hw();
        // per sample and timestep: the cell maps, and the classifier's input, hidden and output
        // values (with their surrogate and membrane copies)
        let per_step = maps * product(&[net.shape.c1, h1, w1])
            + 3.0
                * (net.shape.fc1_in() as f64
                    + net.shape.hidden as f64
                    + product(&[net.shape.classes, net.shape.votes]));
        let act = 4.0 * product(&[batch, net.shape.timesteps]) * per_step;
        let on_candle = weights + batch_bytes + act;
        let (host_bytes, device_bytes) = if device.is_cpu() {
            (on_candle + batch_bytes, None)
        } else {
            (params + batch_bytes, Some(on_candle))
        };
        Estimate {
            weight_bytes: weights,
            data_bytes: 2.0 * batch_bytes,
            activation_bytes: act,
            in_flight: 1,
            host_bytes,
            device_bytes,
            scorings_per_round: Vec::new(),
            macs_per_scoring: 0.0,
            seconds: None,
        }
    }

    /// Refuses when the host memory needed is above `available` bytes (`None`: unknown, only
    /// the absurd refused, see [`crate::limits::check_fits`]). The error gives the estimate and
    /// says which flags lower it.
    pub fn check_memory(&self, available: Option<u64>) -> Result<()> {
        self.check_memory_hint(available, "lower --width, --batch, --timesteps or --hidden")
    }

    /// [`Estimate::check_memory`] with another `hint` (what to do), e.g. for a network described
    /// by a checkpoint rather than by flags.
    pub fn check_memory_hint(&self, available: Option<u64>, hint: &str) -> Result<()> {
        check_fits(
            self.host_bytes,
            available,
            "this configuration",
            self.breakdown(),
            hint,
        )?;
        Ok(())
    }

    /// A short form for the progress bar: memory and time.
    pub fn short(&self) -> String {
        let mut s = format!("est. {}", bytes(self.host_bytes));
        if let Some(d) = self.device_bytes {
            s += &format!(" + {} GPU", bytes(d));
        }
        match self.seconds {
            Some(t) => s + &format!(", ~{}", duration(t)),
            None => s + ", time not estimated on GPU",
        }
    }

    /// Every term of the estimate, in words.
    pub fn breakdown(&self) -> String {
        if self.scorings_per_round.is_empty() {
            return format!(
                "weights {}, batches {}, activations {}",
                bytes(self.weight_bytes),
                bytes(self.data_bytes),
                bytes(self.activation_bytes)
            );
        }
        let rounds: Vec<String> = self
            .scorings_per_round
            .iter()
            .map(|r| r.to_string())
            .collect();
        let mut s = format!(
            "weights {}, batches {}, activations {} per candidate x {} in flight; \
             {} scorings ({} per round) of {:.3e} dense MACs each",
            bytes(self.weight_bytes),
            bytes(self.data_bytes),
            bytes(self.activation_bytes),
            self.in_flight,
            self.scorings_per_round.iter().sum::<u64>(),
            rounds.join("+"),
            self.macs_per_scoring
        );
        match self.seconds {
            Some(t) => s += &format!(", ~{}", duration(t)),
            None => s += ", time not estimated on a GPU (no cost measured there)",
        }
        s
    }
}

/// `t` seconds as s, min, h or days.
fn duration(t: f64) -> String {
    if t < 120.0 {
        format!("{t:.0} s")
    } else if t < 7200.0 {
        format!("{:.0} min", t / 60.0)
    } else if t < 172_800.0 {
        format!("{:.0} h", t / 3600.0)
    } else {
        format!("{:.0} days", t / 86_400.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DatasetKind, Overrides};
    use crate::limits::available_memory;

    #[test]
    fn durations() {
        assert_eq!(duration(30.0), "30 s");
        assert_eq!(duration(3.0 * 86_400.0), "3 days");
    }

    fn demo(width: f64) -> NetConfig {
        let o = Overrides {
            width: Some(width),
            ..Default::default()
        };
        NetConfig::for_dataset(DatasetKind::Cifar10, &o).unwrap()
    }

    #[test]
    fn terms_follow_the_configuration() {
        let net = demo(1.0 / 32.0);
        let alive = vec![vec![Op::Conv3]; 12];
        let e = Estimate::for_scoring(
            &net,
            &alive,
            (32, 2, 1),
            KernelPath::BitPacked,
            &Device::Cpu,
        );
        // Candle on the CPU: one copy of the weights, the two input batches, one candidate.
        let params = 4.0 * Network::param_count(&net, &alive) as f64;
        assert_eq!(e.weight_bytes, params);
        assert_eq!(e.data_bytes, 4.0 * (2 * 32 * 3 * 32 * 32) as f64);
        assert_eq!(e.activation_bytes, 48.0 * 4.0 * (32 * 8 * 32 * 32) as f64);
        assert_eq!(
            e.host_bytes,
            e.weight_bytes + e.data_bytes + e.activation_bytes
        );
        assert_eq!(e.in_flight, 1);
        // 12 conv3 edges per cell, the down conv, the classifier; T 5, N 32, R 2.
        let step = (32 * 32 * 8 * 8 * 9 * 12 + 32 * 32 * 8 * 16 * 9 + 16 * 16 * 16 * 16 * 9 * 12)
            as f64
            + (16 * 8 * 8 * 1024 + 1024 * 100) as f64;
        assert_eq!(e.macs_per_scoring, step * (5 * 32 * 2) as f64);
        // Twice the batch: twice the activations and the work.
        let e2 = Estimate::for_scoring(
            &net,
            &alive,
            (64, 2, 1),
            KernelPath::BitPacked,
            &Device::Cpu,
        );
        assert_eq!(e2.activation_bytes, 2.0 * e.activation_bytes);
        assert_eq!(e2.macs_per_scoring, 2.0 * e.macs_per_scoring);
        // Random genotypes: a third of the supernet's conv work on average.
        let random = SearchSetup {
            net: net.clone(),
            batch: 32,
            repeats: 2,
            seed: 0,
            method: Method::Random,
            score: Default::default(),
            thresholds: Default::default(),
            random_samples: 10,
            kernel_path: KernelPath::CpuEvent,
            candidates_per_pass: 0,
            data_label: String::new(),
            fit: None,
        };
        let r = Estimate::for_search(&random, 1, &Device::Cpu);
        let cells = (32 * 32 * 8 * 8 * 9 * 4 + 16 * 16 * 16 * 16 * 9 * 4) as f64;
        assert_eq!(
            r.macs_per_scoring,
            (step - 2.0 * cells) * (5 * 32 * 2) as f64
        );
        assert_eq!(r.scorings_per_round, vec![10]);
        assert!(e.check_memory(Some(u64::MAX)).is_ok());
        assert!(e.check_memory(None).is_ok());
        let err = e.check_memory(Some(1000)).unwrap_err().to_string();
        assert!(
            err.contains("1000 B is free") && err.contains("per candidate"),
            "{err}"
        );
    }

    #[test]
    fn network_passes_follow_the_measured_map_counts() {
        let net = demo(1.0 / 32.0);
        let g: snn_nostd::genotype::Genotype =
            "conv3,skip,zero,conv3,conv3,skip,conv3,conv3,zero,conv3,conv3,conv3"
                .parse()
                .unwrap();
        let alive = Mixing::single_path(&g).alive();
        let est = |pass| Estimate::for_network(&net, &alive, (64, 1), pass, &Device::Cpu);
        let (train, cpu, eval) = (est(Pass::Train), est(Pass::TrainCpu), est(Pass::Eval));
        // 8 conv edges: 48 + 24 * 8 = 240 maps of 8 x 32 x 32 per sample and timestep
        let maps = 4.0 * (64 * 5 * 8 * 32 * 32) as f64;
        let classifier = 4.0 * (64 * 5) as f64 * 3.0 * (16 * 8 * 8 + 1024 + 100) as f64;
        assert_eq!(train.activation_bytes, 240.0 * maps + classifier);
        assert_eq!(
            eval.activation_bytes,
            EVAL_MAPS_SHARE * 240.0 * maps + classifier
        );
        // the CPU path's peak is its Candle validation (0.55 * 240 > 12 + 3 * 8)
        assert_eq!(cpu.activation_bytes, eval.activation_bytes);
        assert_eq!(cpu.weight_bytes, 2.0 * train.weight_bytes);
        assert_eq!(train.weight_bytes, 3.0 * eval.weight_bytes);
        assert!(train.scorings_per_round.is_empty() && train.seconds.is_none());
        assert_eq!(
            train.host_bytes,
            train.weight_bytes + train.data_bytes + train.activation_bytes
        );
        assert!(
            train.breakdown().starts_with("weights "),
            "{}",
            train.breakdown()
        );
        let err = train
            .check_memory_hint(Some(1 << 20), "lower --batch")
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("; lower --batch") && err.contains("1.0 MiB is free"),
            "{err}"
        );
    }

    #[test]
    fn the_paper_width_times_a_hundred_does_not_fit() {
        // --width 100 on CIFAR-10: C1/C2 = 25,600/51,200, terabytes of weights.
        let setup = SearchSetup {
            net: demo(100.0),
            batch: 32,
            repeats: 2,
            seed: 0,
            method: Method::Prune,
            score: Default::default(),
            thresholds: Default::default(),
            random_samples: 0,
            kernel_path: KernelPath::CpuEvent,
            candidates_per_pass: 0,
            data_label: String::new(),
            fit: None,
        };
        let e = Estimate::for_search(&setup, 1, &Device::Cpu);
        assert!(e.host_bytes > 1e12, "{}", e.host_bytes);
        assert_eq!(e.scorings_per_round, vec![36, 24]);
        let err = e.check_memory(available_memory()).unwrap_err().to_string();
        assert!(err.contains("TiB") && err.contains("--width"), "{err}");
    }
}
