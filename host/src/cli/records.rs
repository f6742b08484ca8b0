//! `lightsnn export-records`: test samples as the firmware's embedded input records (label
//! byte + the whole raw `u8` sample, `snn_nostd::model::Shape::record_len`), framed by the same
//! loader as training and evaluation.

use super::common::{load_split, parse_dataset, parse_positive};
use super::usage;
use anyhow::{bail, Context, Result};
use clap::Args;
use lightsnn::data::{DatasetKind, Split};
use lightsnn::fsutil::{check_output_file, read_input, write_atomic};
use snn_nostd::model::{decode, InputKind};
use std::path::{Path, PathBuf};

/// Options of `lightsnn export-records`.
#[derive(Args, Debug)]
pub struct RecordsArgs {
    /// The model blob the records are for (written by `lightsnn export`): its dataset and
    /// timesteps T are used, so the records are exactly its input. Without it, give
    /// `--dataset` (and `--timesteps` for event data).
    #[arg(long, required_unless_present = "dataset")]
    model: Option<PathBuf>,
    /// Dataset, when no `--model` is given.
    #[arg(long, value_parser = parse_dataset, conflicts_with = "model")]
    dataset: Option<DatasetKind>,
    /// Frames per event sample (T), when no `--model` is given: N-MNIST and DVS128 Gesture
    /// only. Events are binned into T frames exactly as `lightsnn train` and `lightsnn eval` do.
    #[arg(long, value_parser = parse_positive, conflicts_with = "model")]
    timesteps: Option<usize>,
    /// Dataset folder in the official layout. Without it, the built-in CIFAR-10 sample.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Which split the samples come from.
    #[arg(long, default_value = "test", value_enum, ignore_case = true)]
    split: Split,
    /// First sample of the split written.
    #[arg(long, default_value_t = 0)]
    skip: usize,
    /// Number of samples written.
    #[arg(long, default_value_t = 4, value_parser = parse_positive)]
    count: usize,
    /// Where to write the records (e.g. for the firmware's `LIGHTSNN_IMAGES`).
    #[arg(long)]
    out: PathBuf,
}

/// Runs `lightsnn export-records`.
pub fn run(a: RecordsArgs) -> Result<()> {
    let mut inputs: Vec<(&str, &Path)> = Vec::new();
    if let Some(m) = &a.model {
        inputs.push(("--model", m));
    }
    if let Some(d) = &a.data {
        inputs.push(("--data", d));
    }
    check_output_file("--out", &a.out, &inputs)?;
    let (kind, timesteps, whose, input_len) = match &a.model {
        Some(path) => {
            let blob =
                read_input(path).with_context(|| format!("cannot read {}", path.display()))?;
            let model = decode(&blob)
                .with_context(|| format!("{}: not a valid model blob", path.display()))?;
            let d = model.shape();
            let kind = model.dataset();
            let t = match d.input {
                InputKind::Events => d.timesteps,
                InputKind::Static => 1,
            };
            (
                kind,
                t,
                format!("{}: ", path.display()),
                Some(d.input_len()),
            )
        }
        None => {
            let kind = a.dataset.expect("clap requires --model or --dataset");
            let t = match (kind.is_event(), a.timesteps) {
                (true, Some(t)) => t,
                (true, None) => {
                    return Err(usage(format!(
                        "--timesteps is required for {kind} without --model (the frames per sample)"
                    )))
                }
                (false, Some(_)) => {
                    return Err(usage(format!(
                        "--timesteps applies to event data only; {kind} records hold one image"
                    )))
                }
                (false, None) => 1,
            };
            (kind, t, String::new(), None)
        }
    };
    let (data, label) = load_split(kind, a.data.as_deref(), a.split, timesteps, &whose)?;
    let end = a.skip.saturating_add(a.count);
    if end > data.len() {
        bail!(
            "{label}: the {kind} {} split holds {} samples, --skip {} --count {} asks for {} to {}",
            a.split,
            data.len(),
            a.skip,
            a.count,
            a.skip,
            end.saturating_sub(1)
        );
    }
    if let (Some(n), Some(m)) = (input_len, &a.model) {
        if n != data.sample_len() {
            bail!(
                "{}: the model's input is {n} bytes per sample, the {kind} samples of {label} are \
                 {}; give the data the model was trained on",
                m.display(),
                data.sample_len()
            );
        }
    }
    let record = 1 + data.sample_len();
    let mut out = Vec::with_capacity(a.count * record);
    let mut sample = Vec::new();
    let (mut saturated, mut records_saturated) = (0usize, 0usize);
    for i in a.skip..end {
        let label = u8::try_from(data.label(i)).expect("labels fit a byte (at most 100 classes)");
        out.push(label);
        let n = data.write_u8(i, &mut sample);
        saturated += n;
        records_saturated += usize::from(n > 0);
        out.extend_from_slice(&sample);
    }
    let [c, h, w] = data.frame_shape();
    let what = if kind.is_event() {
        format!("{timesteps} frames of {c}x{h}x{w} event counts")
    } else {
        format!("a {c}x{h}x{w} image")
    };
    write_atomic(&a.out, &out)?;
    println!(
        "wrote {}: {} records of {record} bytes (label + {what}), {kind} {} samples {} to {} of {label}",
        a.out.display(),
        a.count,
        a.split,
        a.skip,
        end - 1
    );
    if saturated > 0 {
        eprintln!(
            "warning: {saturated} event counts above 255 saturated at 255 in {records_saturated} \
             of the {} records: the device sees 255 where `lightsnn eval` sees the count",
            a.count
        );
    }
    Ok(())
}
