//! Tests of the dataset readers, on the real data in `shared/data` and on small files written
//! in the official formats.

mod augment;
mod cifar;
mod dvs;
mod fuzz;
mod nmnist;
mod split;

use std::path::{Path, PathBuf};

/// A folder of the shared real data; fails (never skips) when it is missing.
pub(super) fn shared_data(sub: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(sub);
    assert!(
        path.is_dir(),
        "shared test data missing: expected the folder {}",
        path.display()
    );
    path
}

/// Writes `bytes` to `dir/name`, creating parent folders.
pub(super) fn write(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}
