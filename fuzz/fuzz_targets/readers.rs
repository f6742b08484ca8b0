//! Fuzzes the readers of hostile run files: a checkpoint's safetensors header and `lightsnn`
//! metadata (and its tensors, loaded on the CPU), and a run's `state.json`, with the checks of
//! `host/tests/common/readers.rs` (shared with the stable harness `host/tests/fuzz_readers.rs`).
//!
//! The first input byte selects the reader: 0 = the rest is a whole checkpoint file; 1 = the
//! rest is the `lightsnn` metadata JSON, wrapped in a valid safetensors file (so that mutations
//! reach the metadata parser and its checks instead of stopping at the header); 2 = the rest is
//! a `state.json`.
#![no_main]

#[path = "../../host/tests/common/readers.rs"]
mod readers;

use libfuzzer_sys::fuzz_target;
use lightsnn::train::checkpoint::METADATA_KEY;

/// A safetensors file with one small tensor and `meta` as its `lightsnn` metadata.
fn wrap(meta: &str) -> Vec<u8> {
    let header = serde_json::json!({
        "__metadata__": { METADATA_KEY: meta },
        "x": { "dtype": "F32", "shape": [2], "data_offsets": [0, 8] },
    });
    let mut h = serde_json::to_vec(&header).expect("a JSON value");
    h.resize(h.len().div_ceil(8) * 8, b' ');
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend([0u8; 8]);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => readers::check_checkpoint(rest),
        1 => readers::check_checkpoint(&wrap(&String::from_utf8_lossy(rest))),
        _ => readers::check_state(&String::from_utf8_lossy(rest)),
    }
});
