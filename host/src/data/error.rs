//! The error type of the dataset readers.

use std::path::{Path, PathBuf};

/// Everything that can go wrong while reading a dataset.
///
/// Every variant that concerns a file names its path; malformed content also names the byte
/// offset (binary files) or the line (text files) and what was expected there.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The dataset folder given by the user does not exist (or is not a folder).
    #[error("dataset folder {} does not exist or is not a folder", path.display())]
    NoSuchFolder {
        /// The folder that was asked for.
        path: PathBuf,
    },
    /// The folder exists but the files of the requested split are not in it.
    #[error("{expected} in {}", dir.display())]
    MissingFiles {
        /// The folder that was searched.
        dir: PathBuf,
        /// Which files were expected, e.g. `no CIFAR-10 test batch (test_batch.bin)`.
        expected: String,
    },
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A binary file does not follow its format.
    #[error("{}: at byte offset {offset}: {problem}; expected {expected}", path.display())]
    Malformed {
        /// The file (or the name given for in-memory bytes).
        path: PathBuf,
        /// Byte offset of the offending record, event or packet.
        offset: u64,
        /// What is wrong.
        problem: String,
        /// What the format requires there.
        expected: String,
    },
    /// A text file (label list, label CSV, trial list) has a bad line.
    #[error("{}: line {line}: {problem}; expected {expected}", path.display())]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
        /// What the format requires there.
        expected: String,
    },
    /// Every sample of a split has no events: there is nothing to learn or score.
    #[error(
        "every one of the {samples} samples in {} has no events ({named}); the files hold no \
         events, or their label windows select none: check the dataset",
        dir.display()
    )]
    NoEvents {
        /// The dataset folder.
        dir: PathBuf,
        /// How many samples.
        samples: usize,
        /// Some of them, by file.
        named: String,
    },
    /// Loading would need more memory than is free.
    #[error(transparent)]
    TooLarge(#[from] crate::limits::TooLarge),
    /// An argument that cannot be honoured (unknown dataset name, zero timesteps, ...).
    #[error("{0}")]
    InvalidArgument(String),
}

impl DataError {
    /// An [`DataError::Io`] for `path`.
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A [`DataError::Malformed`] for `path` at `offset`.
    pub(crate) fn malformed(
        path: &Path,
        offset: usize,
        problem: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        DataError::Malformed {
            path: path.to_path_buf(),
            offset: offset as u64,
            problem: problem.into(),
            expected: expected.into(),
        }
    }

    /// A [`DataError::BadLine`] for `path` at 1-based `line`.
    pub(crate) fn bad_line(
        path: &Path,
        line: usize,
        problem: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        DataError::BadLine {
            path: path.to_path_buf(),
            line,
            problem: problem.into(),
            expected: expected.into(),
        }
    }

    /// A [`DataError::MissingFiles`] for `dir`.
    pub(crate) fn missing(dir: &Path, expected: impl Into<String>) -> Self {
        DataError::MissingFiles {
            dir: dir.to_path_buf(),
            expected: expected.into(),
        }
    }
}

/// `line` quoted for a message, cut after 60 characters (a binary file read as text can be one
/// very long line).
pub(crate) fn excerpt(line: &str) -> String {
    const MAX: usize = 60;
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}... ({} bytes)", &line[..cut], line.len()),
        None => format!("{line:?}"),
    }
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    crate::fsutil::read_input(path).map_err(|e| DataError::io(path, e))
}

/// Reads a whole text file (lossy UTF-8), naming it in the error.
pub(crate) fn read_text(path: &Path) -> Result<String, DataError> {
    let bytes = read_file(path)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Checks that `dir` is an existing folder.
pub(crate) fn require_dir(dir: &Path) -> Result<(), DataError> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(DataError::NoSuchFolder {
            path: dir.to_path_buf(),
        })
    }
}
