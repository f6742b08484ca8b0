//! `lightsnn bench`.

use super::common::{demo_width, full_width, BoardArgs, DeviceArg};
use anyhow::Result;
use clap::{Args, Subcommand};
use lightsnn::export::fit::{Cells, Fixed};
use lightsnn::fsutil::write_atomic;
use lightsnn::search::bench::{
    bench_data, bench_setups, engine_bench, kernel_bench, search_bench, smoke_setups, stack_bench,
};
use lightsnn::search::KernelPath;
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
    /// Proxies against SpikeNAS-Bench: a stratified sample of its 15,625 cells scored untrained
    /// (SAHD with batch and running BatchNorm, NASWOT, parameters, grad-norm), each score's
    /// Kendall tau, Spearman rho, tau within equal parameter counts and top-5% hit rate against
    /// the benchmark's 100-epoch test accuracy, per split (development ids `id % 5 != 0`,
    /// held-out ids `id % 5 == 0`), and the width transfer of the scores.
    Nas(super::bench_nas::NasArgs),
    /// Search methods on SpikeNAS-Bench: the pruning search, SNASNet's random search, one
    /// random cell and regularized evolution on the table, over several seeds, each found cell
    /// looked up in the table (test accuracy, percentile, firing rate, parameters, search time).
    NasSearch(super::bench_nas::NasSearchArgs),
    /// SpikeNAS-Bench's own run-to-run noise, from its isomorphic twins (cells with edge `2<-1`
    /// `zero`, whose nodes 1 and 2 can be swapped: the same network under two ids, trained
    /// twice): one run's standard deviation, and how often a top-5% cell's twin is in the top
    /// 5% too. Reads only the table.
    NasNoise(super::bench_nas::NasNoiseArgs),
    /// Training images/s on the CPU demo configuration (built-in CIFAR-10 sample, width 1/32,
    /// T = 5, batch 64) or a preset's network: batch filling with augmentation, forward,
    /// backward, SGD update.
    Train(TrainBenchArgs),
}

#[derive(Args, Debug)]
struct TrainBenchArgs {
    /// Genotype to train [default:
    /// conv3,skip,zero,conv3,conv3,skip,conv3,conv3,zero,conv3,conv3,conv3; with
    /// `--preset spikenas-bench` the benchmark's best cell,
    /// conv3@0.5,conv3,zero,conv3@1.5,zero,conv3@1.5].
    #[arg(long)]
    genotype: Option<String>,
    /// A named network, as `train --preset`: `spikenas-bench` (SpikeNAS-Bench's CIFAR-10
    /// network: C1/C2 128/256 times `--width`, forward cell, average pools, H 1024, V 10, T 5)
    /// instead of the demo configuration.
    #[arg(long, value_enum)]
    preset: Option<lightsnn::config::Preset>,
    /// Width multiplier for C1/C2, as `train --width` (H is not scaled) [default: C1/C2 8/16:
    /// 1/32, 1/16 with `--preset spikenas-bench`].
    #[arg(long)]
    width: Option<f64>,
    /// Timed training steps (after one warm-up step).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Timesteps T (default: the demo configuration's 5).
    #[arg(long)]
    timesteps: Option<usize>,
    /// Which implementation runs the steps (as `train --train-path`).
    #[arg(long, value_enum, default_value = "auto")]
    train_path: lightsnn::train::fast::TrainPath,
    /// Device.
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    /// Benchmark the network `train --genotype G --board NAME` would train: C1/C2 and H sized
    /// to the part for the genotype (T: `--timesteps`, else CIFAR-10's default), instead of the
    /// demo configuration.
    #[command(flatten)]
    board: BoardArgs,
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
    /// Also run the paper's full-width CIFAR-10 search (256/512 channels; the default on
    /// CUDA, hours on a CPU).
    #[arg(long)]
    full: bool,
    /// A smoke run for CI (seconds, figures meaningless): the same steps on tiny configs
    /// (widths 1/128, 1/64, 1/32 standing for the full width; T 2, batch 8), a small kernel
    /// and one training step of batch 8.
    #[arg(long)]
    smoke: bool,
    /// Print the figures as JSON on stdout (the readable lines move to stderr), or with a
    /// path, write them there.
    #[arg(long, num_args = 0..=1, default_missing_value = "-", value_name = "PATH")]
    json: Option<PathBuf>,
    /// Also time the search `search --board NAME` runs: sized to the part (with `--smoke`:
    /// T 2, batch 8), returning the best-scoring cell that fits.
    #[command(flatten)]
    board: BoardArgs,
}

/// Runs `lightsnn bench`.
pub fn bench(a: BenchArgs) -> Result<()> {
    match a.what {
        BenchWhat::Search(s) => bench_search(s),
        BenchWhat::Train(t) => bench_train(t),
        BenchWhat::Nas(n) => super::bench_nas::nas(n),
        BenchWhat::NasSearch(n) => super::bench_nas::nas_search(n),
        BenchWhat::NasNoise(n) => super::bench_nas::nas_noise(n),
    }
}

fn bench_train(a: TrainBenchArgs) -> Result<()> {
    use lightsnn::train::bench::{bench_config, DEMO_GENOTYPE, PRESET_GENOTYPE};
    let dev = a.device.open()?;
    let width = a.width.unwrap_or(demo_width(a.preset));
    let mut net = bench_config(a.preset, width, a.timesteps)?;
    let genotype = match (&a.genotype, a.preset) {
        (Some(g), _) => g.clone(),
        (None, Some(_)) => PRESET_GENOTYPE.to_string(),
        (None, None) => DEMO_GENOTYPE.to_string(),
    };
    if a.board.board.is_some() {
        let g = lightsnn::train::checkpoint::parse_genotype(&genotype, &net)?;
        let fixed = Fixed {
            channels: a.width.is_some(),
            timesteps: a.timesteps.is_some(),
            ..Fixed::default()
        };
        let base = full_width(net, a.width.is_some())?;
        net = a.board.size(base, fixed, Cells::One(&g))?;
    }
    let r = lightsnn::train::bench::bench_train_net(
        net,
        &genotype,
        a.steps,
        a.batch,
        a.train_path,
        &dev,
    )?;
    println!(
        "train: {:.1} images/s ({} steps of batch {} in {:.2} s; C1/C2 {}/{}, H {}, T {}, genotype {}, {} trainable parameters, device {:?}, path {})",
        r.images_per_s,
        r.steps,
        r.batch,
        r.seconds,
        r.net.shape.c1,
        r.net.shape.c2,
        r.net.shape.hidden,
        r.net.shape.timesteps,
        genotype,
        r.trainable,
        a.device,
        r.path
    );
    Ok(())
}

fn bench_search(a: SearchBenchArgs) -> Result<()> {
    // With `--json` alone, stdout carries only the JSON.
    let json_stdout = a.json.as_deref() == Some(std::path::Path::new("-"));
    if let (Some(p), false) = (&a.json, json_stdout) {
        let inputs: Vec<(&str, &std::path::Path)> =
            a.data.iter().map(|d| ("--data", d.as_path())).collect();
        lightsnn::fsutil::check_output_file("--json", p, &inputs)?;
    }
    let say = |line: String| {
        if json_stdout {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    let kb = if a.smoke {
        kernel_bench(8, 4096, 2)?
    } else {
        kernel_bench(32, 131_072, 15)?
    };
    say(format!(
        "SAHD kernel (N={}, n={} bits, spike rate 0.15): bit-packed {:.3} ms, dense f32 GEMM {:.3} ms: {:.1}x",
        kb.n,
        kb.bits,
        kb.packed_s * 1e3,
        kb.dense_s * 1e3,
        kb.speedup
    ));
    let per: Vec<String> = kb
        .per_kernel_s
        .iter()
        .map(|(k, t)| format!("{k} {:.3} ms", t * 1e3))
        .collect();
    say(format!(
        "  bit-packed uses {}; each pair implementation this CPU runs: {}",
        kb.kernel,
        per.join(", ")
    ));
    say(format!(
        "  bandwidth bound (read the {} KiB of codes once at {:.1} GB/s, one core from DRAM): {:.3} ms; bit-packed is {:.2}x the bound",
        kb.code_bytes / 1024,
        kb.dram_read_bps / 1e9,
        kb.bandwidth_bound_s * 1e3,
        kb.vs_bound
    ));
    say(format!(
        "  cache bound (the same read from cache at {:.1} GB/s): {:.3} ms; bit-packed is {:.2}x it",
        kb.cache_read_bps / 1e9,
        kb.cache_bound_s * 1e3,
        kb.vs_cache_bound
    ));
    let mut searches = Vec::new();
    let mut engines = Vec::new();
    let mut stacks = Vec::new();
    let mut train_images_per_s = None;
    if !a.kernel_only {
        let device = a.device.open()?;
        let data = bench_data(a.data.as_deref())?;
        let full = a.full || !device.is_cpu();
        let mut setups = if a.smoke {
            smoke_setups(KernelPath::for_device(&device))?
        } else {
            bench_setups(KernelPath::for_device(&device), full)?
        };
        if let Some(name) = &a.board.board {
            // The search `search --board NAME` runs on this data (pruning, batch 32, 2
            // repeats, seed 0, as the other configs), last, so the Candle comparisons above
            // keep their configs.
            let mut setup = setups[0].1.clone();
            if a.smoke {
                setup.net.shape.timesteps = 2;
                setup.batch = 8;
            }
            let fixed = Fixed {
                timesteps: a.smoke,
                ..Fixed::default()
            };
            setup.net = a
                .board
                .size_search_saying(setup.net, fixed, &|l| say(l.to_string()))?;
            setup.fit = a.board.filter(&setup.net)?;
            let label = format!(
                "board {name} (C1/C2 {}/{}, H {}, T {})",
                setup.net.shape.c1,
                setup.net.shape.c2,
                setup.net.shape.hidden,
                setup.net.shape.timesteps
            );
            setups.push((label, setup));
        }
        if device.is_cpu() {
            for (name, setup) in setups.iter().take(2) {
                let e = engine_bench(name, setup, &data)?;
                say(format!(
                    "one supernet scoring, {}: Candle {:.3} s, event-driven CPU engine {:.3} s: {:.1}x (scores differ by {:.1e} relative)",
                    e.name, e.candle_s, e.cpu_event_s, e.speedup, e.score_rel_diff
                ));
                engines.push(e);
            }
        }
        // Candle: one pass per candidate against stacked candidates. On the CPU only the
        // demo config's first 6 candidates (Candle is slow there); on a GPU every config.
        let (stack_setups, max_cands) = if device.is_cpu() {
            (&setups[..1], 6)
        } else {
            (&setups[..], usize::MAX)
        };
        for (name, setup) in stack_setups {
            let per_pass = if device.is_cpu() {
                max_cands
            } else {
                setup.stack(&device)
            };
            let b = stack_bench(name, setup, &data, &device, max_cands, per_pass)?;
            say(format!(
                "Candle round-1 candidates, {}: {} candidates one pass each {:.2} s, stacked {} per pass {:.2} s: {:.1}x (scores differ by {:.1e} relative)",
                b.name, b.candidates, b.single_s, b.per_pass, b.stacked_s, b.speedup, b.score_rel_diff
            ));
            stacks.push(b);
        }
        for (name, setup) in &setups {
            let (b, _) = search_bench(name, setup, &data, &device)?;
            let rounds: Vec<String> = b.rounds_s.iter().map(|r| format!("{r:.2} s")).collect();
            say(format!(
                "search {} [{}]: {:.2} s (rounds: {}), {:.2} scorings/s, genotype {}",
                b.name,
                b.engine,
                b.wall_s,
                rounds.join(", "),
                b.scorings_per_s,
                b.genotype
            ));
            searches.push(b);
        }
        let (steps, batch) = if a.smoke { (1, 8) } else { (5, 64) };
        let r = lightsnn::train::bench::bench_train(
            lightsnn::train::bench::DEMO_GENOTYPE,
            steps,
            batch,
            None,
            lightsnn::train::fast::TrainPath::Auto,
            &device,
        )?;
        say(format!(
            "training step (demo config: width 1/32, H {}, T {}, batch {}, path {}): {:.1} images/s",
            r.net.shape.hidden, r.net.shape.timesteps, r.batch, r.path, r.images_per_s
        ));
        train_images_per_s = Some(r.images_per_s);
    }
    if let Some(p) = &a.json {
        let v = json!({
            "device": format!("{:?}", a.device).to_lowercase(),
            "kernel": kb,
            "engines": engines,
            "stacked": stacks,
            "searches": searches,
            "train_images_per_s": train_images_per_s,
        });
        let text = serde_json::to_string_pretty(&v)?;
        if json_stdout {
            println!("{text}");
        } else {
            write_atomic(p, text.as_bytes())?;
        }
    }
    Ok(())
}
