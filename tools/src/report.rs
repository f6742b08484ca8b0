//! The firmware's per-image result lines, parsed from decoded defmt text.
//!
//! Contract with `firmware/src/device.rs` (one `defmt::println!` per image):
//! `image <i> label <l> pred <p> sar_ppm <s> synops <n> spikes [<c0>, ...] scores [<s0>, ...]`
//! and a closing `summary images <n> correct <k>`.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Result of one inference, as logged by the firmware or computed by the host reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageResult {
    /// Index of the image in the embedded image set.
    pub image: usize,
    /// True label (from the CIFAR record).
    pub label: u8,
    /// Predicted class.
    pub pred: u16,
    /// Spike-activity rate over all LIF layers, in parts per million.
    pub sar_ppm: u32,
    /// Synaptic operations (weight additions) of the inference.
    pub synops: u64,
    /// Spikes per LIF layer over all timesteps.
    pub spikes: Vec<u64>,
    /// Class scores (fc2 outputs summed over votes and timesteps).
    pub scores: Vec<i32>,
}

/// The closing summary line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Images run.
    pub images: usize,
    /// Correct predictions.
    pub correct: usize,
}

/// Key/value words `k1 v1 k2 v2 ...`; a value may be a bracketed list.
fn fields(text: &str) -> Option<Vec<(&str, &str)>> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let (key, tail) = rest.split_once(' ')?;
        let tail = tail.trim_start();
        let (value, tail) = if tail.starts_with('[') {
            let end = tail.find(']')? + 1;
            (&tail[..end], &tail[end..])
        } else {
            tail.split_once(' ').unwrap_or((tail, ""))
        };
        out.push((key, value));
        rest = tail.trim_start();
    }
    Some(out)
}

fn get<'a>(fields: &[(&str, &'a str)], key: &str) -> Result<&'a str> {
    fields
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .with_context(|| format!("missing field {key:?}"))
}

/// Parses a bracketed, comma-separated list of numbers.
fn list<T: std::str::FromStr>(text: &str) -> Result<Vec<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let Some(inner) = text.strip_prefix('[').and_then(|l| l.strip_suffix(']')) else {
        bail!("not a list: {text:?}");
    };
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().with_context(|| format!("bad number {s:?}")))
        .collect()
}

/// Parses an `image ...` line; `Ok(None)` for any other line.
pub fn parse_image(text: &str) -> Result<Option<ImageResult>> {
    let Some(rest) = text.strip_prefix("image ") else {
        return Ok(None);
    };
    let (index, rest) = rest.split_once(' ').context("truncated image line")?;
    let f = fields(rest).context("malformed image line")?;
    Ok(Some(ImageResult {
        image: index.parse()?,
        label: get(&f, "label")?.parse()?,
        pred: get(&f, "pred")?.parse()?,
        sar_ppm: get(&f, "sar_ppm")?.parse()?,
        synops: get(&f, "synops")?.parse()?,
        spikes: list(get(&f, "spikes")?)?,
        scores: list(get(&f, "scores")?)?,
    }))
}

/// Parses a `summary ...` line; `Ok(None)` for any other line.
pub fn parse_summary(text: &str) -> Result<Option<Summary>> {
    let Some(rest) = text.strip_prefix("summary ") else {
        return Ok(None);
    };
    let f = fields(rest).context("malformed summary line")?;
    Ok(Some(Summary {
        images: get(&f, "images")?.parse()?,
        correct: get(&f, "correct")?.parse()?,
    }))
}

/// Parses a `<key> <n>` line (e.g. `stack_bytes 8180`, `cycles 123`); `Ok(None)` for any
/// other line.
pub fn parse_count(text: &str, key: &str) -> Result<Option<u64>> {
    let Some(rest) = text.strip_prefix(key).and_then(|r| r.strip_prefix(' ')) else {
        return Ok(None);
    };
    Ok(Some(rest.trim().parse().with_context(|| {
        format!("malformed {key} line {text:?}")
    })?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_image_and_summary_lines() {
        let r = parse_image(
            "image 3 label 8 pred 7 sar_ppm 123456 synops 99 spikes [1, 22, 333] scores [-5, 0, 7]",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            r,
            ImageResult {
                image: 3,
                label: 8,
                pred: 7,
                sar_ppm: 123456,
                synops: 99,
                spikes: vec![1, 22, 333],
                scores: vec![-5, 0, 7],
            }
        );
        assert_eq!(
            parse_summary("summary images 4 correct 1").unwrap(),
            Some(Summary {
                images: 4,
                correct: 1
            })
        );
        assert_eq!(parse_image("layer 0 cell1.node0 neurons 8").unwrap(), None);
        assert_eq!(
            parse_count("stack_bytes 8180", "stack_bytes").unwrap(),
            Some(8180)
        );
        assert_eq!(
            parse_count("summary images 4", "stack_bytes").unwrap(),
            None
        );
        assert!(parse_count("cycles x", "cycles").is_err());
        assert_eq!(parse_summary("image 0 label 1").unwrap(), None);
        assert!(parse_image("image 0 label 1 pred 2").is_err());
        assert!(
            parse_image("image 0 label 1 pred 2 sar_ppm 3 synops 4 spikes [x] scores []").is_err()
        );
    }
}
