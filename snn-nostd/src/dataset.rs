//! The datasets lightsnn knows: what their samples look like and how many classes they have.
//!
//! One enum serves the host (data loaders, the CLI, configuration files) and the device (the
//! model blob records the dataset a network was trained on, so that a tool reading the blob
//! need not guess it from the shapes).
//!
//! ```
//! use snn_nostd::dataset::DatasetKind;
//! use snn_nostd::shape::InputKind;
//!
//! let d: DatasetKind = "N-MNIST".parse().unwrap();
//! assert_eq!(d, DatasetKind::Nmnist);
//! assert_eq!(d.input(), InputKind::Events);
//! assert_eq!((d.channels(), d.height(), d.width()), (2, 34, 34));
//! assert_eq!(d.num_classes(), 10);
//! assert!("mnist".parse::<DatasetKind>().is_err());
//! ```

use crate::shape::InputKind;
use core::fmt;
use core::str::FromStr;
use serde::{Deserialize, Serialize};

/// CIFAR-10 per-channel mean (RGB, on values scaled to [0, 1]).
pub const CIFAR10_MEAN: [f32; 3] = [0.4913, 0.4821, 0.4465];
/// CIFAR-10 per-channel standard deviation.
pub const CIFAR10_STD: [f32; 3] = [0.2470, 0.2434, 0.2615];
/// CIFAR-100 per-channel mean.
pub const CIFAR100_MEAN: [f32; 3] = [0.5071, 0.4867, 0.4408];
/// CIFAR-100 per-channel standard deviation.
pub const CIFAR100_STD: [f32; 3] = [0.2673, 0.2564, 0.2762];

/// A supported dataset.
///
/// Parses from and displays as `cifar10`, `cifar100`, `nmnist`, `dvs128` (parsing ignores case,
/// `-` and `_`, so `CIFAR-10` and `n_mnist` work too). Serialised by name in text formats
/// (JSON) and by variant index in the model blob (postcard): the variants keep their order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DatasetKind {
    /// CIFAR-10: 32x32 RGB images, 10 classes (binary version).
    Cifar10,
    /// CIFAR-100: 32x32 RGB images, 100 fine classes (20 coarse), binary version.
    Cifar100,
    /// N-MNIST: 34x34 event camera, 2 polarities, 10 classes.
    Nmnist,
    /// DVS128 Gesture: 128x128 event camera, 2 polarities, 11 classes (AEDAT 3.1).
    Dvs128,
}

impl DatasetKind {
    /// All kinds, in declaration order.
    pub const ALL: [DatasetKind; 4] = [
        DatasetKind::Cifar10,
        DatasetKind::Cifar100,
        DatasetKind::Nmnist,
        DatasetKind::Dvs128,
    ];

    /// The input kind of the dataset's samples: static images or event frames.
    pub const fn input(self) -> InputKind {
        match self {
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => InputKind::Static,
            DatasetKind::Nmnist | DatasetKind::Dvs128 => InputKind::Events,
        }
    }

    /// True for event-camera data (framed into `T` count frames), false for static images.
    pub const fn is_event(self) -> bool {
        matches!(self.input(), InputKind::Events)
    }

    /// Number of classes (CIFAR-100: the fine labels).
    pub const fn num_classes(self) -> usize {
        match self {
            DatasetKind::Cifar10 | DatasetKind::Nmnist => 10,
            DatasetKind::Cifar100 => 100,
            DatasetKind::Dvs128 => 11,
        }
    }

    /// Channels of one input frame: 3 (RGB) for static images, 2 (polarities) for event data.
    pub const fn channels(self) -> usize {
        if self.is_event() {
            2
        } else {
            3
        }
    }

    /// Height of the network input in pixels.
    pub const fn height(self) -> usize {
        match self {
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => 32,
            DatasetKind::Nmnist => 34,
            DatasetKind::Dvs128 => 128,
        }
    }

    /// Width of the network input in pixels.
    pub const fn width(self) -> usize {
        self.height()
    }

    /// Per-channel `(mean, std)` that static images are normalised with in training (the blob
    /// records the normalisation it was exported with); event data is not normalised and gets
    /// `([0; 3], [1; 3])`.
    pub const fn mean_std(self) -> ([f32; 3], [f32; 3]) {
        match self {
            DatasetKind::Cifar10 => (CIFAR10_MEAN, CIFAR10_STD),
            DatasetKind::Cifar100 => (CIFAR100_MEAN, CIFAR100_STD),
            DatasetKind::Nmnist | DatasetKind::Dvs128 => ([0.0; 3], [1.0; 3]),
        }
    }

    /// The canonical lower-case name (`cifar10`, `cifar100`, `nmnist`, `dvs128`), as the CLI
    /// spells it.
    pub const fn name(self) -> &'static str {
        match self {
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
            DatasetKind::Nmnist => "nmnist",
            DatasetKind::Dvs128 => "dvs128",
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name no dataset has (see [`DatasetKind`]'s parsing rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownDataset;

impl fmt::Display for UnknownDataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown dataset; expected one of cifar10, cifar100, dvs128, nmnist")
    }
}

#[cfg(feature = "std")]
impl std::error::Error for UnknownDataset {}

impl FromStr for DatasetKind {
    type Err = UnknownDataset;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // the name's characters, lower-cased, without `-` and `_`
        let key = s
            .chars()
            .filter(|c| !matches!(c, '-' | '_'))
            .flat_map(char::to_lowercase);
        DatasetKind::ALL
            .into_iter()
            .find(|k| k.name().chars().eq(key.clone()))
            .ok_or(UnknownDataset)
    }
}
