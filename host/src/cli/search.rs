//! `lightsnn search` and `lightsnn score`.

use super::common::{BoardArgs, EngineArg, NetArgs};
use anyhow::{Context, Result};
use clap::Args;
use lightsnn::data::Split;
use lightsnn::fsutil::{check_output_dir, check_output_file, write_atomic};
use lightsnn::model::Mixing;
use lightsnn::search::batches::{draw_batches, round_batch_seed};
use lightsnn::search::dump as dump_codes;
use lightsnn::search::estimate::frames_per_sample;
use lightsnn::search::stability::StabilityReport;
use lightsnn::search::{
    available_memory, check_batch, run_search, Estimate, Method, ScoreKind, Scorer, SearchReport,
    SearchSetup, Thresholds,
};
use snn_nostd::genotype::Genotype;
use std::path::PathBuf;

/// Options of `lightsnn search`.
#[derive(Args, Debug)]
pub struct SearchArgs {
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    board: BoardArgs,
    /// Search algorithm: `prune` (LightSNN), `random` (SNASNet's random search: its sampling
    /// rules, a fresh network and fresh batches per candidate) or `random-shared` (every edge
    /// drawn independently, one set of weights and batches for all candidates).
    #[arg(long, value_enum, default_value = "prune")]
    method: Method,
    /// The score's kernel: `sahd` (the paper's sparsity-aware Hamming kernel) or `naswot` (the
    /// plain Hamming kernel, which also counts spike rates; see docs/spikenas-bench.md).
    #[arg(long, value_enum, default_value = "sahd")]
    score: ScoreKind,
    /// How `--method prune` chooses the thresholds of thresholded convs (`conv3@0.5`, `conv3`,
    /// `conv3@1.5`): `joint` (pruned with the other ops by `--score`, the paper's pruning) or
    /// `spread` (two stages: the op kinds by `--score`, then the kept convs' thresholds by the
    /// rate spread; on SpikeNAS-Bench the better of the two, see docs/spikenas-bench.md)
    /// [default: spread for `--method prune` on a space with thresholded convs, joint
    /// otherwise].
    #[arg(long, value_enum)]
    thresholds: Option<Thresholds>,
    /// Genotypes sampled by `--method random` / `random-shared`.
    #[arg(long, default_value_t = 5000)]
    samples: usize,
    /// Search batch size N [default: 256 for `--method random` (SNASNet's search batch), 32
    /// otherwise (the paper's)].
    #[arg(long)]
    batch: Option<usize>,
    /// Batches averaged per score (R) [default: 4 with `--thresholds spread`, 2 otherwise (the
    /// paper's)].
    #[arg(long)]
    repeats: Option<usize>,
    /// Seed for weights and batch draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Seed stability: run the search with seeds `seed`, `seed + 1`, ... `seed + S - 1` and
    /// report the distinct genotypes, per-edge agreement and decisive decisions (`--out` then
    /// holds that summary with every search in it).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// Write the full result (genotype, every round's scores, config, timing) here as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Scoring engine: auto (the CPU engine on the CPU, Candle on a GPU), candle (the
    /// reference) or cpu.
    #[arg(long, value_enum, default_value = "auto")]
    engine: EngineArg,
    /// Candle engine: candidates of a round stacked on the batch axis per forward pass (0 =
    /// auto: as many as fit 32 GiB of activations on a GPU, 1 on the CPU). Scores do not
    /// depend on it.
    #[arg(long, default_value_t = 0)]
    candidates_per_pass: usize,
}

/// Options of `lightsnn score`.
#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// The genotype: 12 (backward cell) or 6 (forward cell) op names in canonical edge order.
    #[arg(long)]
    genotype: String,
    #[command(flatten)]
    net: NetArgs,
    /// Batch size N.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Batches averaged (R).
    #[arg(long, default_value_t = 2)]
    repeats: usize,
    /// Seed for weights and batches.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The score's kernel: `sahd` (the paper's) or `naswot` (the plain Hamming kernel).
    #[arg(long, value_enum, default_value = "sahd")]
    score: ScoreKind,
    /// Scoring engine: auto (the CPU engine on the CPU, Candle on a GPU), candle (the
    /// reference) or cpu.
    #[arg(long, value_enum, default_value = "auto")]
    engine: EngineArg,
    /// Also write every (layer, timestep) code set, its bit count and multiplicity, and each
    /// repeat's kernel matrix to this folder (npy files and manifest.json; see docs/cli.md), so
    /// the score can be recomputed elsewhere (`tools/sahd-check.py`).
    #[arg(long)]
    dump_codes: Option<PathBuf>,
}

/// Runs `lightsnn search`.
pub fn search(a: SearchArgs) -> Result<()> {
    let cfg = a.net.net_config()?;
    if let Some(out) = &a.out {
        check_output_file("--out", out, &a.net.inputs())?;
    }
    // With --board: sized for the op set's conv cells; the search returns the best-scoring
    // cell among those that fit (checked again for the cell it returns).
    let cfg = a.board.size_search(cfg, a.net.shape.fixed())?;
    let fit = a.board.filter(&cfg)?;
    let device = a.net.device.open()?;
    let thresholds = a
        .thresholds
        .unwrap_or_else(|| Thresholds::default_for(a.method, cfg.ops.ops()));
    let mut setup = SearchSetup {
        net: cfg,
        batch: a.batch.unwrap_or(a.method.default_batch()),
        repeats: a.repeats.unwrap_or(thresholds.default_repeats()),
        seed: a.seed,
        method: a.method,
        score: a.score,
        thresholds,
        random_samples: a.samples,
        kernel_path: a.engine.kernel_path(&device),
        candidates_per_pass: a.candidates_per_pass,
        data_label: String::new(),
        fit,
    };
    check_batch(setup.batch)?;
    // Before the data is framed: what the search needs must fit.
    let estimate = Estimate::for_search(&setup, frames_per_sample(&setup.net), &device);
    estimate.check_memory(available_memory())?;
    let (data, label) = a.net.load(Split::Train, setup.net.shape.timesteps)?;
    setup.data_label = label;
    eprintln!("estimate: {}", estimate.breakdown());
    if a.seeds > 1 {
        eprintln!("(per seed; {} seeds)", a.seeds);
        return search_seeds(&setup, a.seeds, &data, &device, a.out.as_deref(), &a.board);
    }
    let pb = super::progress::scorings_bar();
    let report = run_search(&setup, &data, &device, &pb)?;
    print_summary(&report);
    print_warnings(&report);
    a.board.check_found(&setup.net, &report.genotype)?;
    if let Some(out) = &a.out {
        report.write(out)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

/// Prints where a board overruled the scores (stdout) and the search's noise warnings
/// (stderr).
fn print_warnings(r: &SearchReport) {
    for note in r.rounds.iter().flat_map(|x| &x.board) {
        println!("{note}");
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    if !r.warnings.is_empty() {
        let total: usize = r.rounds.iter().map(|x| x.decisions.len()).sum();
        eprintln!(
            "warning: {} of {total} pruning decisions lie inside the repeat noise (recorded in the JSON as decisions[].decisive = false)",
            r.warnings.len()
        );
    }
}

/// `search --seeds S`: the same search with S seeds, and their stability summary.
fn search_seeds(
    setup: &SearchSetup,
    seeds: u64,
    data: &lightsnn::data::Dataset,
    device: &candle_core::Device,
    out: Option<&std::path::Path>,
    board: &BoardArgs,
) -> Result<()> {
    let mut reports = Vec::new();
    for k in 0..seeds {
        let mut s = setup.clone();
        s.seed = setup.seed.wrapping_add(k);
        let pb = super::progress::scorings_bar();
        pb.0.set_prefix(format!("seed {}", s.seed));
        let r = run_search(&s, data, device, &pb)?;
        println!(
            "seed {:>3}: {} ({:.2} s, {} of {} decisions inside the noise)",
            s.seed,
            r.genotype,
            r.wall_s,
            r.warnings.len(),
            r.rounds.iter().map(|x| x.decisions.len()).sum::<usize>()
        );
        board.check_found(&s.net, &r.genotype)?;
        reports.push(r);
    }
    let st = StabilityReport::new(reports);
    println!(
        "distinct genotypes: {} of {} seeds",
        st.genotypes.len(),
        seeds
    );
    for g in &st.genotypes {
        println!("  {:>3} x {}", g.count, g.genotype);
    }
    println!("per-edge agreement (modal op, share of seeds):");
    for e in &st.edges {
        println!(
            "  {:>5}: {:<7} {:5.1}%",
            e.edge,
            e.modal_op,
            100.0 * e.agreement
        );
    }
    println!("mean agreement: {:.1}%", 100.0 * st.mean_agreement);
    println!(
        "decisive pruning decisions: {} of {} (median margin / SE {})",
        st.decisive,
        st.decisions,
        st.median_margin_over_se
            .map_or("n/a".to_string(), |m| format!("{m:.2}"))
    );
    if st.decisive < st.decisions {
        eprintln!(
            "warning: {} of {} pruning decisions lie inside the repeat noise; see decisions[] in the JSON",
            st.decisions - st.decisive,
            st.decisions
        );
    }
    if let Some(out) = out {
        write_atomic(out, &serde_json::to_vec_pretty(&st)?)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

fn print_summary(r: &SearchReport) {
    let c = &r.config.net;
    println!(
        "lightsnn search: {} on {} | {} cell, ops {{{}}} | C1/C2 {}/{}, T {}, batch {}, repeats {}, seed {}, device {}, engine {}",
        r.config.method,
        r.config.data,
        r.cell,
        r.ops.join(", "),
        c.shape.c1,
        c.shape.c2,
        c.shape.timesteps,
        r.config.batch,
        r.config.repeats,
        r.seed,
        r.device,
        r.config.engine
    );
    for round in &r.rounds {
        println!(
            "round {} ({:.2} s, {} scorings):",
            round.round,
            round.wall_s,
            round.scores.len()
        );
        if r.config.method.starts_with("random") {
            let best = round
                .scores
                .iter()
                .max_by(|a, b| a.score.total_cmp(&b.score))
                .map(|s| s.score);
            println!("  best of {} samples: {:?}", round.scores.len(), best);
            continue;
        }
        let mut edge = String::new();
        for s in &round.scores {
            if s.edge != edge {
                if !edge.is_empty() {
                    println!();
                }
                edge = s.edge.clone();
                print!("  {:>5}:", edge);
            }
            print!("  -{} {:.4}", s.candidate, s.score);
        }
        println!();
        let pruned: Vec<String> = round
            .pruned
            .iter()
            .map(|p| format!("{}:{}", p.edge, p.op))
            .collect();
        println!("  pruned: {}", pruned.join(" "));
        let margins: Vec<String> = round
            .decisions
            .iter()
            .map(|d| {
                let flag = match d.decisive {
                    Some(true) => "",
                    Some(false) => "?",
                    None => "",
                };
                match d.margin_se {
                    Some(se) => format!("{}:{:.3}/{:.3}{flag}", d.edge, d.margin, se),
                    None => format!("{}:{:.3}", d.edge, d.margin),
                }
            })
            .collect();
        println!("  margin/SE: {} (? = inside the noise)", margins.join(" "));
    }
    println!("genotype: {}", r.genotype);
    println!("edges:    {}", r.edges.join(","));
    println!("wall time: {:.2} s", r.wall_s);
}

/// Runs `lightsnn score`.
pub fn score(a: ScoreArgs) -> Result<()> {
    let g: Genotype = a
        .genotype
        .parse()
        .with_context(|| format!("bad --genotype {:?}", a.genotype))?;
    let mut cfg = a.net.net_config()?;
    cfg.cell = g.cell();
    g.check_op_set(&cfg.ops)
        .with_context(|| format!("genotype {g} does not fit --space {}", cfg.ops))?;
    check_batch(a.batch)?;
    if let Some(dir) = &a.dump_codes {
        if !a.score.is_sahd() {
            anyhow::bail!(
                "--dump-codes writes the SAHD kernel (its format documents that one); drop \
                 --score {} or --dump-codes",
                a.score.name()
            );
        }
        check_output_dir("--dump-codes", dir, &[], &a.net.inputs())?;
    }
    let device = a.net.device.open()?;
    let alive: Vec<Vec<_>> = g.ops().iter().map(|&o| vec![o]).collect();
    let path = a.engine.kernel_path(&device);
    Estimate::for_scoring(
        &cfg,
        &alive,
        (a.batch, a.repeats, frames_per_sample(&cfg)),
        path,
        &device,
    )
    .check_memory(available_memory())?;
    let (data, _) = a.net.load(Split::Train, cfg.shape.timesteps)?;
    let net = lightsnn::model::Network::new(&cfg, &alive, a.seed, &device)?;
    let batches = draw_batches(
        &data,
        a.batch,
        a.repeats,
        round_batch_seed(a.seed, 1),
        &device,
    )?;
    let mode = lightsnn::model::Mode::scoring(cfg.bn_mode);
    let scorer = Scorer::new(&net, path)?.with_score(a.score);
    let mixing = Mixing::single_path(&g);
    let s = match &a.dump_codes {
        None => scorer.sahd_score(&mixing, &batches, mode)?,
        Some(dir) => {
            let dump = dump_codes::dump_score(&scorer, &mixing, &batches, mode)?;
            let m = dump_codes::write_dump(dir, &g.to_string(), &dump)?;
            println!(
                "wrote {} code sets and {} kernels to {}",
                m.records.len(),
                m.kernels.len(),
                dir.display()
            );
            m.score
        }
    };
    println!("genotype: {g}");
    let name = match a.score {
        ScoreKind::Spread => "SPREAD -(rate spread)".to_string(),
        k => format!("{} ln|det K|", k.name().to_uppercase()),
    };
    println!("{name}: {s:.6}");
    if !s.is_finite() {
        eprintln!("warning: {}", lightsnn::search::score::NOT_FINITE_HELP);
    }
    if a.dump_codes.is_some() {
        println!("{name} (all digits): {s:?}");
    }
    Ok(())
}
