//! The `lightsnn` command line.

mod bench;
mod common;
mod search;

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
    /// Benchmarks (ratios against baselines run in the same process).
    Bench(bench::BenchArgs),
}

/// Parses the command line and runs the subcommand.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Search(a) => search::search(a),
        Command::Score(a) => search::score(a),
        Command::Bench(a) => bench::bench(a),
    }
}
