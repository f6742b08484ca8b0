//! Fuzzes the model blob decoder, and runs one inference whenever a blob decodes.
//!
//! The first input byte selects the mode: even = the rest is a whole blob (header checks);
//! odd = the rest is a postcard payload, wrapped in a header with a correct length and CRC, so
//! that the payload parser, the validator and the engine see the mutations instead of stopping
//! at the checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snn_nostd::crc32::crc32;
use snn_nostd::engine::{buffer_sizes, Engine};
use snn_nostd::model::{decode, FORMAT_VERSION, MAGIC};

fn run(blob: &[u8]) {
    let Ok(model) = decode(blob) else { return };
    let s = buffer_sizes(&model);
    let d = model.shape();
    // Keep each execution cheap: skip models whose buffers or work are large.
    let work = d
        .timesteps
        .saturating_mul(d.n1().saturating_add(d.n2()).saturating_add(d.frame_len()));
    if s.bytes() > (8 << 20) || s.input > (1 << 20) || work > (1 << 22) {
        return;
    }
    let mut act = vec![0i16; s.act];
    let mut acc = vec![0i32; s.acc];
    let mut bits = vec![0u64; s.bits];
    let mut engine = Engine::new(&model, &mut act, &mut acc, &mut bits).expect("sized by buffer_sizes");
    let input: Vec<i16> = (0..s.input)
        .map(|i| (blob[i % blob.len()] as i16).wrapping_mul(257))
        .collect();
    let pred = engine.infer(&input, &mut ()).expect("input sized by buffer_sizes");
    assert!(pred < d.classes as usize);
    for l in engine.stats() {
        assert!(l.spikes <= l.neurons as u64 * l.steps);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 1 == 0 {
        run(rest);
    } else {
        let mut blob = Vec::with_capacity(14 + rest.len());
        blob.extend_from_slice(&MAGIC);
        blob.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        blob.extend_from_slice(&(rest.len() as u32).to_le_bytes());
        blob.extend_from_slice(&crc32(rest).to_le_bytes());
        blob.extend_from_slice(rest);
        run(&blob);
    }
});
