//! The `lightsnn` command line.

mod bench;
mod bench_nas;
mod common;
mod eval;
mod export;
mod search;
mod study;
mod train;

pub use search::progress_bar as search_progress_bar;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// LightSNN: training-free architecture search, training and deployment of spiking networks.
#[derive(Parser, Debug)]
#[command(name = "lightsnn", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Search a cell by pruning by importance (or random search) with the SAHD score.
    Search(search::SearchArgs),
    /// Print the SAHD score of one fixed genotype.
    Score(search::ScoreArgs),
    /// Train a single-path network (surrogate gradients, BPTT) from a genotype or search file.
    Train(Box<train::TrainArgs>),
    /// Evaluate a checkpoint on the test split: top-1, per-class accuracy, confusion matrix,
    /// SAR per layer, synaptic operations and energy estimate.
    Eval(eval::EvalArgs),
    /// Evidence for the search: train the found cells and K random cells with one budget;
    /// correlate SAHD score with test accuracy (Kendall tau, Spearman rho, bootstrap CIs).
    Study(Box<study::StudyArgs>),
    /// Benchmarks (ratios against baselines run in the same process).
    Bench(bench::BenchArgs),
    /// Fold BN, quantise to int8/int16 and write the model blob for the device.
    Export(export::ExportArgs),
}

/// Whether the command line `args` (without the program name) runs Candle training or
/// evaluation, which is faster with Candle's element-wise CPU ops on the calling thread
/// (`CANDLE_NUM_THREADS=1`; matrix products and convolutions still use every core): `train`,
/// `eval`, `study` and `bench train`. Candle hands element-wise ops to a spinning barrier
/// pool; on a loaded machine the spinning threads steal the cores the work needs (measured here:
/// one training epoch 97 s with the pool, 51 s without). The pool size is read once, so the
/// binary sets the variable at start-up, before any thread exists, and only where the user has
/// not set it; the library never changes the environment.
pub fn wants_serial_elementwise(args: &[String]) -> bool {
    let word = |i: usize| args.get(i).map(String::as_str);
    matches!(
        (word(0), word(1)),
        (Some("train" | "eval" | "study"), _) | (Some("bench"), Some("train"))
    )
}

/// Parses the command line and runs the subcommand.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Search(a) => search::search(a),
        Command::Score(a) => search::score(a),
        Command::Train(a) => train::run(*a),
        Command::Eval(a) => eval::run(a),
        Command::Study(a) => study::run(*a),
        Command::Bench(a) => bench::bench(a),
        Command::Export(a) => export::export(a),
    }
}

#[cfg(test)]
mod serial_tests {
    use super::wants_serial_elementwise;

    fn wants(line: &str) -> bool {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        wants_serial_elementwise(&args)
    }

    #[test]
    fn serial_elementwise_only_for_candle_training_and_evaluation() {
        assert!(wants("train --out x"));
        assert!(wants("eval --checkpoint c"));
        assert!(wants("study --dataset cifar10"));
        assert!(wants("bench train --steps 2"));
        assert!(!wants("bench sahd"));
        assert!(!wants("search --out s.json"));
        assert!(!wants("export --checkpoint c"));
        assert!(!wants(""));
    }
}
