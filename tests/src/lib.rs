//! Cross-crate tests live in `tests/tests/`. This library holds shared helpers.
#![deny(missing_docs)]

use std::path::PathBuf;

/// Path of a folder of the shared real data (`../shared/data/NAME` from the repository root).
/// Panics with a message naming the path when it is missing: tests never skip silently.
pub fn shared_data(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(name);
    assert!(
        p.is_dir(),
        "shared data folder {} is missing: these tests read the real CIFAR-10 / N-MNIST data in place (see README)",
        p.display()
    );
    p
}
