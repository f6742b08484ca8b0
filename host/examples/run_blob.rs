//! Runs an exported model blob with the device's integer engine (`snn-nostd`, the code the
//! firmware runs) on test records as the firmware embeds them, and prints each prediction and
//! the spike rate of every LIF layer.
//!
//! Run: `cargo run --release -p lightsnn --example run_blob [-- MODEL.bin [RECORDS.bin]]`
//! (default: `firmware/assets/trained.bin`, the trained int8 CIFAR-10 network the firmware
//! ships, on the four CIFAR-10 test images of `firmware/assets/images.bin`; records of other
//! networks come from `lightsnn export-records`).

use anyhow::{Context, Result};
use lightsnn::train::eval::class_names;
use snn_nostd::engine::{buffer_sizes, quantize_input_u8, Engine};
use snn_nostd::model::decode;

const ASSETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../firmware/assets");

fn main() -> Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("{ASSETS}/trained.bin"));
    let blob = std::fs::read(&path).with_context(|| format!("cannot read {path}"))?;
    let records = std::env::args()
        .nth(2)
        .unwrap_or_else(|| format!("{ASSETS}/images.bin"));
    let images = std::fs::read(&records).with_context(|| format!("cannot read {records}"))?;

    // Decode the blob (zero-copy) and give the engine its three arenas.
    let model = decode(&blob).with_context(|| format!("{path}: not a model blob"))?;
    let s = buffer_sizes(&model);
    let (mut act, mut acc, mut bits) = (vec![0i16; s.act], vec![0i32; s.acc], vec![0u64; s.bits]);
    let mut engine = Engine::new(&model, &mut act, &mut acc, &mut bits)?;
    let mut input = vec![0i16; s.input];
    // A record: the label byte, then one sample as `quantize_input_u8` takes it.
    let record_len = model.shape().record_len();
    let classes = class_names(model.dataset());

    let mut correct = 0;
    for (i, record) in images.chunks_exact(record_len).enumerate() {
        let (label, pixels) = (record[0] as usize, &record[1..]);
        quantize_input_u8(&model, pixels, &mut input)?;
        // `&mut ()` observes nothing; a SpikeObserver would see every layer's spike codes.
        let class = engine.infer(&input, &mut ())?;
        correct += usize::from(class == label);
        println!(
            "image {i}: predicted {}, label {}",
            classes[class], classes[label]
        );
    }
    println!("{correct} of {} correct", images.len() / record_len);

    // Spike statistics accumulate over all the images run.
    let (mut spikes, mut slots) = (0u64, 0u64);
    for layer in engine.stats() {
        println!(
            "{:<12} spike rate {:.4}",
            layer.layer.to_string(),
            layer.sar()
        );
        spikes += layer.spikes;
        slots += layer.neurons as u64 * layer.steps;
    }
    println!(
        "spike rate, all layers: {:.4}",
        spikes as f64 / slots as f64
    );
    Ok(())
}
