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

    /// The current phase's description changes to `what` (its steps and ETA go on).
    fn set_message(&self, what: &str) {
        let _ = what;
    }

    /// A label for the whole operation, shown before its phases (e.g. which search of several
    /// runs).
    fn set_prefix(&self, label: &str) {
        let _ = label;
    }

    /// The operation ended.
    fn finish(&self) {}
}

/// Reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
