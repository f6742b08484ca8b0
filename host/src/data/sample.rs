//! The small real CIFAR-10 sample shipped with lightsnn and compiled into the binary: the first
//! 800 training and 200 test records of the official CIFAR-10 batches (lossless, from
//! `data/cifar10-sample/`). It is the default data of `lightsnn search` so that the main job runs
//! with no download.

use crate::data::{Dataset, DatasetKind, Split};
use anyhow::Result;

const TRAIN: &[u8] = include_bytes!("../../../data/cifar10-sample/data_batch_1.bin");
const TEST: &[u8] = include_bytes!("../../../data/cifar10-sample/test_batch.bin");

/// Label of the sample in reports.
pub const SAMPLE_LABEL: &str = "builtin CIFAR-10 sample (800 train / 200 test records)";

/// Loads a split of the built-in sample.
pub fn cifar10_sample(split: Split) -> Result<Dataset> {
    let (name, bytes) = match split {
        Split::Train => ("builtin:data_batch_1.bin", TRAIN),
        Split::Test => ("builtin:test_batch.bin", TEST),
    };
    Ok(Dataset::from_cifar_bytes(
        DatasetKind::Cifar10,
        &[(name, bytes)],
    )?)
}
