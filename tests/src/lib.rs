//! Cross-crate tests live in `tests/tests/`. This library holds the helpers every test crate of
//! the workspace uses to find its data (`lightsnn` takes it as a dev-dependency):
//!
//! - the default suite reads only what the repository ships ([`shipped_data`]: `data/NAME`) and
//!   files the tests write themselves, so it passes on a fresh clone anywhere;
//! - the extended suite (cargo feature `real-data`, see `tools/test-real-data.sh`) reads the
//!   larger real data of the folder named by [`DATA_VAR`] ([`real_data`]), laid out like the
//!   project's `../shared/data`.
#![deny(missing_docs)]

use std::path::PathBuf;

/// The environment variable naming the real-data folder of the extended suite.
pub const DATA_VAR: &str = "LIGHTSNN_DATA";

/// The sub-folders of the real-data folder the extended suite reads.
pub const REAL_DATA_FOLDERS: [&str; 4] = [
    "cifar10-lossless-subset",
    "cifar10-jpeg",
    "nmnist-small",
    "spikenas-bench",
];

/// Path of a data folder shipped in the repository (`data/NAME` from the repository root).
/// Panics with a message naming the path when it is missing: tests never skip silently.
pub fn shipped_data(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../data")
        .join(name);
    assert!(
        p.is_dir(),
        "shipped data folder {} is missing: it is part of the repository (is the checkout complete?)",
        p.display()
    );
    p
}

/// Path of a folder of the real data of the extended suite: `$LIGHTSNN_DATA/NAME`.
///
/// Panics, naming the variable and the folder expected, when the variable is unset or the
/// folder is missing: an extended test never passes without its data.
pub fn real_data(name: &str) -> PathBuf {
    let layout = REAL_DATA_FOLDERS.join("/, ");
    let root = match std::env::var_os(DATA_VAR) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => panic!(
            "{DATA_VAR} is not set: the real-data tests (feature `real-data`) read the folder it \
             names, laid out like the project's ../shared/data ({layout}/); run \
             `LIGHTSNN_DATA=/path/to/shared/data bash tools/test-real-data.sh`"
        ),
    };
    let p = root.join(name);
    assert!(
        p.is_dir(),
        "{DATA_VAR}={}: the folder {} is missing (expected a folder laid out like the project's \
         ../shared/data: {layout}/)",
        root.display(),
        p.display()
    );
    p
}
