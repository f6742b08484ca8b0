//! Why a benchmark table cannot be read.

use std::path::PathBuf;

/// An error reading a benchmark table; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The path cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line does not have the expected form.
    #[error("{path}, line {line}: {problem}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        problem: String,
    },
    /// Two rows describe the same id.
    #[error("{path}: architecture id {id} appears twice")]
    DuplicateId {
        /// The file or folder.
        path: PathBuf,
        /// The repeated id.
        id: u32,
    },
    /// Nothing to read.
    #[error("{path}: {problem}")]
    Empty {
        /// The file or folder.
        path: PathBuf,
        /// What was expected.
        problem: String,
    },
}
