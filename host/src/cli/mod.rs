//! The `lightsnn` command line.

mod bench;
mod common;
mod eval;
mod eval_int;
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
