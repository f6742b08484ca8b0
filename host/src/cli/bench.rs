//! `lightsnn bench`.

use super::common::DeviceArg;
use crate::bench::{bench_data, bench_setups, engine_bench, kernel_bench, search_bench};
use crate::fsutil::write_atomic;
use crate::search::KernelPath;
use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;

/// Options of `lightsnn bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Subcommand, Debug)]
enum BenchWhat {
    /// Search wall times (demo and width-1/16 CIFAR-10 configs), scorings/s, the SAHD kernel
    /// bit-packed against a dense f32 GEMM formulation, and training-step images/s.
    Search(SearchBenchArgs),
    /// Training images/s on the CPU demo configuration (built-in CIFAR-10 sample, width 1/32,
    /// T = 5, batch 64): batch filling with augmentation, forward, backward, SGD update.
    Train(TrainBenchArgs),
}

#[derive(Args, Debug)]
struct TrainBenchArgs {
    /// Genotype to train.
    #[arg(long, default_value = crate::train::bench::DEMO_GENOTYPE)]
    genotype: String,
    /// Timed training steps (after one warm-up step).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Device.
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

#[derive(Args, Debug)]
struct SearchBenchArgs {
    /// CIFAR-10 folder for the search configs (default: the built-in sample).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Device.
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    /// Only the SAHD kernel benchmark (seconds instead of minutes).
    #[arg(long)]
    kernel_only: bool,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Runs `lightsnn bench`.
pub fn bench(a: BenchArgs) -> Result<()> {
    match a.what {
        BenchWhat::Search(s) => bench_search(s),
        BenchWhat::Train(t) => bench_train(t),
    }
}

fn bench_train(a: TrainBenchArgs) -> Result<()> {
    crate::train::prefer_serial_elementwise();
    let dev = a.device.open()?;
    let r = crate::train::bench::bench_train(&a.genotype, a.steps, a.batch, &dev)?;
    println!(
        "train: {:.1} images/s ({} steps of batch {} in {:.2} s; C1/C2 {}/{}, H {}, T {}, genotype {}, device {:?})",
        r.images_per_s,
        r.steps,
        r.batch,
        r.seconds,
        r.net.c1,
        r.net.c2,
        r.net.hidden,
        r.net.timesteps,
        a.genotype,
        a.device
    );
    Ok(())
}

fn bench_search(a: SearchBenchArgs) -> Result<()> {
    let kb = kernel_bench(32, 131_072, 15)?;
    println!(
        "SAHD kernel (N={}, n={} bits, spike rate 0.15): bit-packed {:.3} ms, dense f32 GEMM {:.3} ms: {:.1}x",
        kb.n,
        kb.bits,
        kb.packed_s * 1e3,
        kb.dense_s * 1e3,
        kb.speedup
    );
    let per: Vec<String> = kb
        .per_kernel_s
        .iter()
        .map(|(k, t)| format!("{k} {:.3} ms", t * 1e3))
        .collect();
    println!(
        "  bit-packed uses {}; each pair implementation this CPU runs: {}",
        kb.kernel,
        per.join(", ")
    );
    println!(
        "  bandwidth bound (read the {} KiB of codes once at {:.1} GB/s, one core from DRAM): {:.3} ms; bit-packed is {:.2}x the bound",
        kb.code_bytes / 1024,
        kb.dram_read_bps / 1e9,
        kb.bandwidth_bound_s * 1e3,
        kb.vs_bound
    );
    println!(
        "  cache bound (the same read from cache at {:.1} GB/s): {:.3} ms; bit-packed is {:.2}x it",
        kb.cache_read_bps / 1e9,
        kb.cache_bound_s * 1e3,
        kb.vs_cache_bound
    );
    let mut searches = Vec::new();
    let mut engines = Vec::new();
    if !a.kernel_only {
        let device = a.device.open()?;
        let data = bench_data(a.data.as_deref())?;
        if device.is_cpu() {
            for (name, setup) in bench_setups(KernelPath::CpuEvent)? {
                let e = engine_bench(&name, &setup, &data)?;
                println!(
                    "one supernet scoring, {}: Candle {:.3} s, event-driven CPU engine {:.3} s: {:.1}x (scores differ by {:.1e} relative)",
                    e.name, e.candle_s, e.cpu_event_s, e.speedup, e.score_rel_diff
                );
                engines.push(e);
            }
        }
        for (name, setup) in bench_setups(KernelPath::for_device(&device))? {
            let (b, _) = search_bench(&name, &setup, &data, &device)?;
            let rounds: Vec<String> = b.rounds_s.iter().map(|r| format!("{r:.2} s")).collect();
            println!(
                "search {} [{}]: {:.2} s (rounds: {}), {:.2} scorings/s, genotype {}",
                b.name,
                b.engine,
                b.wall_s,
                rounds.join(", "),
                b.scorings_per_s,
                b.genotype
            );
            searches.push(b);
        }
    }
    let mut train_images_per_s = None;
    if !a.kernel_only {
        let device = a.device.open()?;
        let r =
            crate::train::bench::bench_train(crate::train::bench::DEMO_GENOTYPE, 5, 64, &device)?;
        println!(
            "training step (demo config: width 1/32, H {}, T {}, batch {}): {:.1} images/s",
            r.net.hidden, r.net.timesteps, r.batch, r.images_per_s
        );
        train_images_per_s = Some(r.images_per_s);
    }
    if let Some(p) = &a.json {
        let v = json!({ "kernel": kb, "engines": engines, "searches": searches, "train_images_per_s": train_images_per_s });
        write_atomic(p, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(())
}
