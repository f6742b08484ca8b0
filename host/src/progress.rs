//! Progress of long library work, reported to whoever runs it: the library calls a
//! [`Progress`], the command line implements it with a progress bar, tests and library users
//! pass [`NoProgress`] or their own.

/// Receives the progress of one long operation. Every method has an empty default, and all take
/// `&self` so that parallel workers can report through a shared reference.
pub trait Progress: Sync {
    /// A new phase of `total` steps (0: unknown) starts, described by `what`.
    fn start(&self, total: u64, what: &str) {
        let _ = (total, what);
    }

    /// `n` more steps are done.
    fn advance(&self, n: u64) {
        let _ = n;
    }

    /// A line for the user (printed above the bar, never mixed into it).
    fn note(&self, line: &str) {
        let _ = line;
    }

    /// The operation ended.
    fn finish(&self) {}
}

/// Reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// The progress bar of a search (scorings done, ETA).
pub fn scorings_bar() -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(0);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {prefix} [{elapsed_precise}] {bar:30} {pos}/{len} scorings {msg} (eta {eta})",
        )
        .expect("valid template"),
    );
    pb
}
