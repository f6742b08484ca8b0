//! The checks of the checkpoint-metadata and `state.json` readers on hostile bytes, shared by
//! the stable fuzz harness (`host/tests/fuzz_readers.rs`) and the libFuzzer target
//! (`fuzz/fuzz_targets/readers.rs`, which includes this file): a reader returns an error or a
//! value that passes its own checks, and never panics.

use lightsnn::model::{Mixing, Network};
use lightsnn::train::checkpoint::{checkpoint_meta_from_bytes, tensors_from_bytes};
use lightsnn::train::TrainState;
use std::path::Path;

/// The checkpoint readers on `bytes`: metadata that describes a valid network, and finite
/// tensors that load on the CPU, or errors.
pub fn check_checkpoint(bytes: &[u8]) {
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
            assert!(
                v.iter().all(|x| x.is_finite()),
                "accepted tensors are finite"
            );
        }
    }
}

/// The `state.json` reader on `text`: a state whose configuration is valid and whose epochs
/// are in range, or an error.
pub fn check_state(text: &str) {
    if let Ok(st) = TrainState::parse(text, Path::new("state.json")) {
        st.config
            .validate()
            .expect("accepted configuration is valid");
        assert!(st.epoch <= st.config.epochs);
    }
}
