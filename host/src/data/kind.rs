//! Which dataset, which split.

use std::fmt;
use std::str::FromStr;

use super::DataError;

/// The supported datasets.
///
/// Parses from and displays as `cifar10`, `cifar100`, `dvs128`, `nmnist` (parsing ignores case,
/// `-` and `_`, so `CIFAR-10` and `n_mnist` work too); also a [`clap::ValueEnum`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// CIFAR-10: 32x32 RGB images, 10 classes (binary version).
    Cifar10,
    /// CIFAR-100: 32x32 RGB images, 100 fine classes (20 coarse), binary version.
    Cifar100,
    /// DVS128 Gesture: 128x128 event camera, 2 polarities, 11 classes (AEDAT 3.1).
    Dvs128,
    /// N-MNIST: 34x34 event camera, 2 polarities, 10 classes.
    Nmnist,
}

impl DatasetKind {
    /// The tag a model blob records (`snn_nostd::model::Dataset`).
    pub fn blob_tag(self) -> snn_nostd::model::Dataset {
        use snn_nostd::model::Dataset;
        match self {
            DatasetKind::Cifar10 => Dataset::Cifar10,
            DatasetKind::Cifar100 => Dataset::Cifar100,
            DatasetKind::Dvs128 => Dataset::Dvs128,
            DatasetKind::Nmnist => Dataset::Nmnist,
        }
    }

    /// The kind a model blob's tag names.
    pub fn from_blob_tag(tag: snn_nostd::model::Dataset) -> DatasetKind {
        use snn_nostd::model::Dataset;
        match tag {
            Dataset::Cifar10 => DatasetKind::Cifar10,
            Dataset::Cifar100 => DatasetKind::Cifar100,
            Dataset::Dvs128 => DatasetKind::Dvs128,
            Dataset::Nmnist => DatasetKind::Nmnist,
        }
    }

    /// All kinds, in declaration order.
    pub const ALL: [DatasetKind; 4] = [
        DatasetKind::Cifar10,
        DatasetKind::Cifar100,
        DatasetKind::Dvs128,
        DatasetKind::Nmnist,
    ];

    /// Number of classes (CIFAR-100: the fine labels).
    pub fn num_classes(self) -> usize {
        match self {
            DatasetKind::Cifar10 | DatasetKind::Nmnist => 10,
            DatasetKind::Cifar100 => 100,
            DatasetKind::Dvs128 => 11,
        }
    }

    /// Channels of one input frame: 3 (RGB) for static images, 2 (polarities) for event data.
    pub fn channels(self) -> usize {
        if self.is_event() {
            2
        } else {
            3
        }
    }

    /// Height of the network input in pixels.
    pub fn height(self) -> usize {
        match self {
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => 32,
            DatasetKind::Dvs128 => 128,
            DatasetKind::Nmnist => 34,
        }
    }

    /// Width of the network input in pixels.
    pub fn width(self) -> usize {
        self.height()
    }

    /// True for event-camera data (framed into `T` count frames), false for static images.
    pub fn is_event(self) -> bool {
        matches!(self, DatasetKind::Dvs128 | DatasetKind::Nmnist)
    }

    /// The canonical lower-case name (`cifar10`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
            DatasetKind::Dvs128 => "dvs128",
            DatasetKind::Nmnist => "nmnist",
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key: String = s
            .chars()
            .filter(|c| !matches!(c, '-' | '_'))
            .flat_map(char::to_lowercase)
            .collect();
        DatasetKind::ALL
            .into_iter()
            .find(|k| k.name() == key)
            .ok_or_else(|| {
                DataError::InvalidArgument(format!(
                    "unknown dataset {s:?}; expected one of cifar10, cifar100, dvs128, nmnist"
                ))
            })
    }
}

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
