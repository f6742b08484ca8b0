//! What a search or a scoring will need, estimated before anything is allocated: memory
//! (weights, batches, and the activations of every candidate scored at once) and time (dense
//! multiply-accumulates per scoring at a measured cost). A configuration that does not fit the
//! machine's free memory is refused with the estimate instead of starting a network that cannot
//! finish; otherwise the estimate goes to the progress bar.

use super::score::KernelPath;
use super::setup::{Method, SearchSetup};
use crate::config::NetConfig;
use crate::model::{Mixing, Network};
use anyhow::{bail, Result};
use candle_core::Device;
use snn_nostd::genotype::Op;

/// Live f32 maps of the first cell's size (`N x C1 x H1 x W1`) that one candidate's forward
/// pass holds at its peak. Counted on the CPU engine (`cpu::forward`) for the backward cell:
/// cell 1 holds its 4 node values, 4 membranes, 3 (+3 new) back states, 12 conv outputs and 3
/// merged conv buffers; cell 2's maps are half that size; SNASNet's pools add 8. 48 bounds
/// that with room for temporaries, and serves for Candle's live tensors too.
pub const LIVE_MAPS: f64 = 48.0;

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

/// Bytes of the activations of one candidate's forward pass on a batch of `batch`.
pub fn activation_bytes(net: &NetConfig, batch: usize) -> f64 {
    let (h, w) = net.cell1_hw();
    LIVE_MAPS * 4.0 * (batch * net.c1 * h * w) as f64
}

/// Kernel taps (`k * k`) of the conv ops of `ops`.
fn conv_taps<'a>(ops: impl IntoIterator<Item = &'a Op>) -> f64 {
    ops.into_iter()
        .map(|op| match op {
            Op::Conv3 => 9.0,
            Op::Conv1 => 1.0,
            _ => 0.0,
        })
        .sum()
}

/// Dense multiply-accumulates of one sample and one timestep of `net` whose cells run convs of
/// `taps` kernel taps in all (the sum of `k * k` over the conv ops of every edge), from cell 1
/// to the output (the stem, computed once per batch, is left out).
pub fn dense_macs_per_step(net: &NetConfig, taps: f64) -> f64 {
    let cell = |(h, w): (usize, usize), c: usize| -> f64 { (h * w * c * c) as f64 * taps };
    let (h1, w1) = net.cell1_hw();
    cell(net.cell1_hw(), net.c1)
        + (h1 * w1 * net.c1 * net.c2 * 9) as f64
        + cell(net.cell2_hw(), net.c2)
        + (net.features() * net.hidden + net.hidden * net.classes * net.votes) as f64
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
                (2..=net.ops.len() as u64)
                    .rev()
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
        let [c, h, wd] = net.input;
        let inputs = 4.0 * (w.repeats * w.batch * frames * c * h * wd) as f64;
        let (h1, w1) = net.cell1_hw();
        let stems = 4.0 * (w.repeats * w.batch * frames * net.c1 * h1 * w1) as f64;
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
            dense_macs_per_step(net, w.taps) * (net.timesteps * w.batch * w.repeats) as f64;
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

    /// Refuses when the host memory needed is above `available` bytes (`None`: unknown, not
    /// checked). The error gives the estimate.
    pub fn check_memory(&self, available: Option<u64>) -> Result<()> {
        if let Some(free) = available {
            if self.host_bytes > free as f64 {
                bail!(
                    "this configuration needs about {} of memory, but only {} is free \
                     (MemAvailable): {}; lower --width, --batch, --timesteps or --hidden",
                    bytes(self.host_bytes),
                    bytes(free as f64),
                    self.breakdown()
                );
            }
        }
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

/// Free host memory in bytes: `MemAvailable` of `/proc/meminfo`, lowered to what a cgroup v2
/// memory limit leaves; `None` when neither can be read.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let avail = meminfo.as_deref().and_then(mem_available);
    let read = |f: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{f}"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    let cgroup = match (read("memory.max"), read("memory.current")) {
        (Some(max), Some(cur)) => Some(max.saturating_sub(cur)),
        _ => None,
    };
    match (avail, cgroup) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut it = line.split_whitespace().skip(1);
    let kb: u64 = it.next()?.parse().ok()?;
    Some(kb * 1024)
}

/// `b` bytes in binary units.
fn bytes(b: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
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

    #[test]
    fn meminfo_and_units() {
        let m = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   23548192 kB\n";
        assert_eq!(mem_available(m), Some(23_548_192 * 1024));
        assert_eq!(mem_available("MemTotal: 5 kB\n"), None);
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0 * 1024.0), "3.0 GiB");
        assert_eq!(duration(30.0), "30 s");
        assert_eq!(duration(3.0 * 86_400.0), "3 days");
        assert!(available_memory().is_some(), "Linux exposes MemAvailable");
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
    fn the_paper_width_times_a_hundred_does_not_fit() {
        // --width 100 on CIFAR-10: C1/C2 = 25,600/51,200, terabytes of weights.
        let setup = SearchSetup {
            net: demo(100.0),
            batch: 32,
            repeats: 2,
            seed: 0,
            method: Method::Prune,
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
