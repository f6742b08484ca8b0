//! Fuzzes the readers of hostile run files: a checkpoint's safetensors header and `lightsnn`
//! metadata (and its tensors, loaded on the CPU), and a run's `state.json`.
//!
//! The first input byte selects the reader: 0 = the rest is a whole checkpoint file; 1 = the
//! rest is the `lightsnn` metadata JSON, wrapped in a valid safetensors file (so that mutations
//! reach the metadata parser and its checks instead of stopping at the header); 2 = the rest is
//! a `state.json`. A reader must return an error or a value that passes its own checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lightsnn::model::{Mixing, Network};
use lightsnn::train::checkpoint::{checkpoint_meta_from_bytes, tensors_from_bytes, METADATA_KEY};
use lightsnn::train::TrainState;
use std::path::Path;

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

fn checkpoint(bytes: &[u8]) {
    if let Ok(meta) = checkpoint_meta_from_bytes(bytes, "fuzz.safetensors") {
        meta.net.validate().expect("accepted metadata is valid");
        if let Ok(g) = meta.genotype() {
            Network::param_count(&meta.net, &Mixing::single_path(&g).alive());
        }
    }
    let path = Path::new("fuzz.safetensors");
    if let Ok((tensors, _)) = tensors_from_bytes(bytes, path, &candle_core::Device::Cpu) {
        for t in tensors.values() {
            let v: Vec<f32> = t
                .to_dtype(candle_core::DType::F32)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1())
                .expect("a loaded tensor converts to f32");
            assert!(v.iter().all(|x| x.is_finite()), "accepted tensors are finite");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => checkpoint(rest),
        1 => checkpoint(&wrap(&String::from_utf8_lossy(rest))),
        _ => {
            let text = String::from_utf8_lossy(rest);
            if let Ok(st) = TrainState::parse(&text, Path::new("state.json")) {
                st.config.validate().expect("accepted configuration is valid");
                assert!(st.epoch <= st.config.epochs);
            }
        }
    }
});
