//! The event-driven engine against the dense baseline as the spike rate varies.
//!
//! [`scale_drive`] rescales a blob so that every LIF receives `s` times its input: with the
//! LIF linear below the threshold, that is the same network with every threshold divided by
//! `s` (up to the rounding of the rescaled integers and the saturation of the `i16` values), so
//! a larger `s` gives a higher spike-to-activation ratio (SAR). [`sweep`] runs the firmware with
//! both engines on the same images for each scale (every run bit for bit against the host
//! reference) and [`crossover`] finds the SAR at which the dense baseline starts to win.
//!
//! How each stage is rescaled (`s = 2^k f`, `k = ceil(log2 s)`, `f` in `(1/2, 1]`):
//! - convolutions and fc1 (stem, cell convs, down conv, fc1: their inputs are spikes or the
//!   image): weights and biases times `f` (rounded; `|f| <= 1`, so nothing overflows), every
//!   output shift less `k`;
//! - skip and pool edges: nothing (they carry node sums that are already scaled);
//! - the post-cell affines (their input, the cell output, is already scaled): the offset times
//!   `s` (where that leaves the `i32` range, multipliers and offsets drop a few fraction bits and
//!   the affine's shift shrinks by as many);
//! - fc2 and the voting: nothing (the logits only rank the classes).

use crate::e2e::{self, Config};
use anyhow::{bail, ensure, Context, Result};
use snn_nostd::model::owned::{OwnedCell, OwnedLayer, OwnedModel, OwnedPost};
use snn_nostd::model::{limits, Bits};
use std::fmt::Write as _;
use std::path::Path;

/// `s` as `(k, f)` with `s = 2^k f`, `f` in `(1/2, 1]`.
fn split(s: f64) -> (i32, f64) {
    let k = s.log2().ceil() as i32;
    let f = s / 2f64.powi(k);
    // Guard the rounding of `log2` at exact powers of two.
    if f <= 0.5 {
        (k - 1, 2.0 * f)
    } else {
        (k, f)
    }
}

fn scale_layer(l: &OwnedLayer, bits: Bits, s: f64, what: &str) -> Result<OwnedLayer> {
    let (k, f) = split(s);
    let v = l.view();
    let n = l.weights.len() / bits.bytes();
    let w: Vec<i32> = (0..n)
        .map(|i| (v.weight_at(bits, i) as f64 * f).round() as i32)
        .collect();
    let outputs = l.shift.len();
    let bias: Vec<i32> = (0..outputs)
        .map(|o| (v.bias_at(o) as f64 * f).round() as i32)
        .collect();
    let shift = (0..outputs)
        .map(|o| {
            let sh = v.shift_at(o) as i32 - k;
            ensure!(
                (limits::MIN_SHIFT as i32..=limits::MAX_SHIFT as i32).contains(&sh),
                "{what}: scale {s} needs shift {sh}, outside the blob's range"
            );
            Ok(sh as i8)
        })
        .collect::<Result<Vec<i8>>>()?;
    Ok(OwnedLayer::new(bits, &w, &bias, &shift))
}

fn scale_cell(c: &OwnedCell, bits: Bits, s: f64, what: &str) -> Result<OwnedCell> {
    let convs = c
        .convs
        .iter()
        .map(|l| {
            l.as_ref()
                .map(|l| scale_layer(l, bits, s, what))
                .transpose()
        })
        .collect::<Result<_>>()?;
    Ok(OwnedCell { exp: c.exp, convs })
}

fn scale_post(p: &OwnedPost, s: f64, what: &str) -> Result<OwnedPost> {
    let ints = |b: &[u8]| -> Vec<f64> {
        (0..b.len() / 4)
            .map(|i| snn_nostd::model::read_i32(b, i) as f64)
            .collect()
    };
    let (mul, add) = (ints(&p.mul), ints(&p.add));
    let top = add.iter().fold(0f64, |m, a| m.max((a * s).abs()));
    // Where `s` times an offset leaves the `i32` range, drop `j` bits of precision from the
    // multipliers and offsets (and of the shift) instead.
    let mut j = 0u8;
    while top / 2f64.powi(j as i32) >= (1u64 << 30) as f64 {
        j += 1;
    }
    ensure!(
        j <= p.shift,
        "{what}: scale {s} overflows an offset even without the affine's {} fraction bits",
        p.shift
    );
    let d = 2f64.powi(j as i32);
    let q =
        |v: &[f64], f: f64| -> Vec<i32> { v.iter().map(|x| (x * f / d).round() as i32).collect() };
    Ok(OwnedPost::new(
        p.exp,
        &q(&mul, 1.0),
        &q(&add, s),
        p.shift - j,
    ))
}

/// `blob` with every LIF's input scaled by `s` (module docs), re-encoded.
pub fn scale_drive(blob: &[u8], s: f64) -> Result<Vec<u8>> {
    ensure!(
        s.is_finite() && s > 0.0,
        "the drive scale must be positive, not {s}"
    );
    let model = snn_nostd::model::decode(blob).context("decoding the model blob")?;
    let m = OwnedModel::from_parts(model.parts());
    let bits = m.bits;
    let scaled = OwnedModel {
        stem: scale_layer(&m.stem, bits, s, "stem")?,
        cell1: scale_cell(&m.cell1, bits, s, "cell 1")?,
        post1: scale_post(&m.post1, s, "post 1")?,
        down: scale_layer(&m.down, bits, s, "down conv")?,
        cell2: scale_cell(&m.cell2, bits, s, "cell 2")?,
        post2: scale_post(&m.post2, s, "post 2")?,
        fc1: scale_layer(&m.fc1, bits, s, "fc1")?,
        ..m
    };
    scaled.encode().context("encoding the scaled model")
}

/// One point of the curve.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Point {
    /// The drive scale.
    pub scale: f64,
    /// Mean SAR over the images (0..1).
    pub sar: f64,
    /// Synaptic operations per inference (event-driven).
    pub synops: f64,
    /// Instructions per inference, event-driven engine.
    pub event: f64,
    /// Instructions per inference, dense baseline.
    pub dense: f64,
}

impl Point {
    /// Event-driven / dense instructions.
    pub fn ratio(&self) -> f64 {
        self.event / self.dense
    }
}

/// Runs the firmware with both engines (feature `dense`, instructions counted) on `blob`
/// rescaled by each of `scales`, in `cfg`'s directories; every run is checked bit for bit
/// against the host reference ([`e2e::run`]).
pub fn sweep(cfg: &Config, blob: &[u8], scales: &[f64]) -> Result<Vec<Point>> {
    let mut points = Vec::new();
    for (i, &s) in scales.iter().enumerate() {
        let path = cfg.work_dir.join(format!("sar-{i}.bin"));
        std::fs::create_dir_all(&cfg.work_dir)?;
        std::fs::write(&path, scale_drive(blob, s)?)
            .with_context(|| format!("writing {}", path.display()))?;
        let run = Config {
            model: path.clone(),
            dense: true,
            count_instructions: true,
            ..cfg.clone()
        };
        let o = e2e::run(&run).with_context(|| format!("drive scale {s}"))?;
        let (Some(e), Some(d)) = (o.cost, o.dense_cost) else {
            bail!("drive scale {s}: no instruction counts");
        };
        let imgs = &o.reference.images;
        let n = imgs.len().max(1) as f64;
        points.push(Point {
            scale: s,
            sar: imgs.iter().map(|i| i.sar_ppm as f64).sum::<f64>() / n / 1e6,
            synops: imgs.iter().map(|i| i.synops as f64).sum::<f64>() / n,
            event: e.per_inference,
            dense: d.per_inference,
        });
    }
    Ok(points)
}

/// Where the curve crosses event / dense = 1.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Crossover {
    /// Between two measured points (linear interpolation in SAR).
    Measured(f64),
    /// Events win at every measured point; the least-squares line of the ratio against SAR,
    /// extrapolated, reaches 1 at this SAR (`None`: it never does, or lies beyond SAR 1).
    Beyond {
        /// Highest measured SAR.
        max_sar: f64,
        /// Extrapolated crossover SAR, if within `(max_sar, 1]`.
        extrapolated: Option<f64>,
    },
    /// Dense wins at every measured point.
    Below {
        /// Lowest measured SAR.
        min_sar: f64,
    },
}

/// The crossover SAR of `points` (sorted by SAR here).
pub fn crossover(points: &[Point]) -> Option<Crossover> {
    let mut p: Vec<&Point> = points.iter().collect();
    p.sort_by(|a, b| a.sar.total_cmp(&b.sar));
    let (first, last) = (p.first()?, p.last()?);
    for w in p.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.ratio() < 1.0 && b.ratio() >= 1.0 {
            let t = (1.0 - a.ratio()) / (b.ratio() - a.ratio());
            return Some(Crossover::Measured(a.sar + t * (b.sar - a.sar)));
        }
    }
    if first.ratio() >= 1.0 {
        return Some(Crossover::Below { min_sar: first.sar });
    }
    // Least squares ratio = a + b SAR.
    let n = p.len() as f64;
    let (sx, sy) = (
        p.iter().map(|q| q.sar).sum::<f64>(),
        p.iter().map(|q| q.ratio()).sum::<f64>(),
    );
    let sxx = p.iter().map(|q| q.sar * q.sar).sum::<f64>();
    let sxy = p.iter().map(|q| q.sar * q.ratio()).sum::<f64>();
    let den = n * sxx - sx * sx;
    let extrapolated = (den.abs() > 1e-12)
        .then(|| {
            let b = (n * sxy - sx * sy) / den;
            let a = (sy - b * sx) / n;
            (1.0 - a) / b
        })
        .filter(|&x| x.is_finite() && x > last.sar && x <= 1.0);
    Some(Crossover::Beyond {
        max_sar: last.sar,
        extrapolated,
    })
}

/// The curve as a table, and the crossover.
pub fn describe(points: &[Point]) -> String {
    let mut s = String::new();
    writeln!(
        s,
        "SAR curve (drive scaled, same images, both engines in one run each, bit-exact):"
    )
    .unwrap();
    writeln!(
        s,
        "  {:>6} {:>7} {:>12} {:>14} {:>14} {:>8}",
        "scale", "SAR %", "synops", "event instr", "dense instr", "ev/dense"
    )
    .unwrap();
    for q in points {
        writeln!(
            s,
            "  {:>6.2} {:>7.2} {:>12.0} {:>14.0} {:>14.0} {:>8.3}",
            q.scale,
            100.0 * q.sar,
            q.synops,
            q.event,
            q.dense,
            q.ratio()
        )
        .unwrap();
    }
    let line = match crossover(points) {
        Some(Crossover::Measured(x)) => format!(
            "crossover: events win below SAR {:.1}% (interpolated between measured points)",
            100.0 * x
        ),
        Some(Crossover::Beyond {
            max_sar,
            extrapolated: Some(x),
        }) => format!(
            "crossover: events win at every measured SAR (up to {:.1}%); the fitted line reaches 1 at SAR {:.1}% (extrapolated, not measured)",
            100.0 * max_sar,
            100.0 * x
        ),
        Some(Crossover::Beyond { max_sar, .. }) => format!(
            "crossover: none; events win at every measured SAR (up to {:.1}%), and the fitted line stays below 1 up to SAR 100%",
            100.0 * max_sar
        ),
        Some(Crossover::Below { min_sar }) => format!(
            "crossover: none measured; dense wins at every SAR from {:.1}%",
            100.0 * min_sar
        ),
        None => "crossover: no points".into(),
    };
    writeln!(s, "{line}").unwrap();
    s
}

/// Reads `blob_path` and runs [`sweep`] on it.
pub fn sweep_file(cfg: &Config, blob_path: &Path, scales: &[f64]) -> Result<Vec<Point>> {
    let blob =
        std::fs::read(blob_path).with_context(|| format!("reading {}", blob_path.display()))?;
    sweep(cfg, &blob, scales)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testblob::{self, TestModelSpec};

    #[test]
    fn split_covers_powers_of_two_and_fractions() {
        for s in [0.25, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 16.0] {
            let (k, f) = split(s);
            assert!(f > 0.5 && f <= 1.0, "{s}: f {f}");
            assert!((2f64.powi(k) * f - s).abs() < 1e-12, "{s}");
        }
    }

    fn point(sar: f64, ratio: f64) -> Point {
        Point {
            scale: 1.0,
            sar,
            synops: 1.0,
            event: ratio * 100.0,
            dense: 100.0,
        }
    }

    #[test]
    fn crossover_interpolates_extrapolates_and_reports_none() {
        let m = crossover(&[point(0.2, 0.5), point(0.6, 1.5)]).unwrap();
        assert_eq!(m, Crossover::Measured(0.4));
        // ratio = 2 SAR: reaches 1 at 0.5.
        let b = crossover(&[point(0.1, 0.2), point(0.3, 0.6)]).unwrap();
        let Crossover::Beyond {
            max_sar,
            extrapolated: Some(x),
        } = b
        else {
            panic!("{b:?}")
        };
        assert_eq!(max_sar, 0.3);
        assert!((x - 0.5).abs() < 1e-9);
        let flat = crossover(&[point(0.1, 0.2), point(0.3, 0.21)]).unwrap();
        assert_eq!(
            flat,
            Crossover::Beyond {
                max_sar: 0.3,
                extrapolated: None
            }
        );
        assert_eq!(
            crossover(&[point(0.1, 1.2), point(0.3, 1.4)]),
            Some(Crossover::Below { min_sar: 0.1 })
        );
        assert_eq!(crossover(&[]), None);
    }

    /// Scale 1 leaves the blob as it is; other scales decode, and the host reference's spike
    /// rate rises with the scale.
    #[test]
    fn scaled_blobs_decode_and_sar_rises_with_the_scale() {
        let spec =
            TestModelSpec::cifar(4, 32, 2, testblob::LIGHTSNN_GENOTYPE, Bits::B8, 3).unwrap();
        let blob = testblob::random_blob(&spec).unwrap();
        assert_eq!(scale_drive(&blob, 1.0).unwrap(), blob);
        let images =
            std::fs::read(crate::firmware::workspace_root().join("firmware/assets/images.bin"))
                .unwrap();
        let sar = |s: f64| {
            let r = crate::reference::run(&scale_drive(&blob, s).unwrap(), &images).unwrap();
            r.images.iter().map(|i| i.sar_ppm as u64).sum::<u64>()
        };
        let (low, mid, high) = (sar(0.4), sar(1.0), sar(3.0));
        assert!(low < mid && mid < high, "{low} {mid} {high}");
        assert!(scale_drive(&blob, 0.0).is_err());
        assert!(scale_drive(&blob, f64::NAN).is_err());
        assert!(scale_drive(b"not a blob", 2.0).is_err());
    }
}
