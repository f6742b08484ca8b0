//! Tests of the dataset readers: on the real samples the repository ships (`data/`), on small
//! files written in the official formats and, with the feature `real-data`, on the larger real
//! data of `$LIGHTSNN_DATA` (modules `real_data`).

mod augment;
mod cifar;
mod dvs;
mod fuzz;
mod nmnist;
mod split;

use std::path::Path;

/// Writes `bytes` to `dir/name`, creating parent folders.
pub(super) fn write(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}
