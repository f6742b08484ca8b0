//! The `lightsnn` command line.

mod bench;
mod bench_nas;
mod common;
mod eval;
mod export;
mod progress;
mod records;
mod search;
mod study;
mod train;

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
    /// Write test samples as the firmware's input records (label byte + the raw u8 sample: a
    /// CIFAR image, or T frames of event counts binned as in training, saturated at 255).
    ExportRecords(records::RecordsArgs),
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

/// A command line whose flags cannot go together or whose value is outside the flag's range
/// (found after parsing); the binary exits with status 2 for it, as for clap's own usage
/// errors. The message names the flag.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A [`UsageError`] as an `anyhow::Error`, for `return Err(usage(...))`.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// The exit status for an error of [`run`]: 2 for a [`UsageError`] anywhere in its chain, 1
/// otherwise.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    if e.chain().any(|c| c.is::<UsageError>()) {
        2
    } else {
        1
    }
}

/// The one-line text of an error and its causes, `message: cause: cause`, leaving out a cause
/// whose text is already in the line (an error that prints its source and also returns it).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if out.is_empty() {
            out = s;
        } else if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
    }
    out
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
        Command::ExportRecords(a) => records::run(a),
    }
}

#[cfg(test)]
mod error_tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn causes_are_printed_once_and_usage_errors_exit_2() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let text = io.to_string();
        let e = anyhow::Error::new(io).context(format!("cannot read x: {text}"));
        assert_eq!(error_text(&e), format!("cannot read x: {text}"));
        assert_eq!(exit_code(&e), 1);
        let e = Err::<(), _>(usage("--stop-after must be at least 1"))
            .context("train")
            .unwrap_err();
        assert_eq!(error_text(&e), "train: --stop-after must be at least 1");
        assert_eq!(exit_code(&e), 2);
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
