//! Cross-crate tests live in `tests/tests/`. This library holds shared helpers.
#![deny(missing_docs)]
