//! Which dataset, which split.

use std::fmt;
use std::str::FromStr;

use super::DataError;

/// The supported datasets: one enum for the host and the device, defined in snn-nostd (the model
/// blob records it).
pub use snn_nostd::dataset::DatasetKind;

/// Which part of a dataset to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Split {
    /// The official training split.
    Train,
    /// The official test split.
    Test,
}

impl Split {
    /// `train` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "train" => Ok(Split::Train),
            "test" => Ok(Split::Test),
            _ => Err(DataError::InvalidArgument(format!(
                "unknown split {s:?}; expected train or test"
            ))),
        }
    }
}
