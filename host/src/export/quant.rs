//! Quantisation of a [`FloatNetwork`] into a model blob.
//!
//! 1. BatchNorm is folded into every conv (`w' = w g`, `b' = beta - mean g`,
//!    `g = gamma / sqrt(var + eps)`); the post-cell BNs become per-channel affines in front of
//!    their LIFs.
//! 2. Activation formats come from calibration ([`super::calibrate`]): the trained network's
//!    float forward pass runs on the calibration inputs and records the largest magnitude `m` of
//!    each tensor group (every node sum, partial sum, edge output and back state of a cell share
//!    one format; each post-cell BN output, the fc1 output and the fc2 output have their own:
//!    [`Ranges`]). The format exponent is the largest
//!    `a <= 14` with `max(m, 1) * 2^a <= 32767` (so the LIF threshold 1.0 = `2^a` fits, and
//!    values never saturate on the calibration data).
//! 3. Weights: per output channel, the power-of-two scale `2^e` with `e = floor(log2(qmax /
//!    max|w|))` (`qmax` 127 or 32767), lowered if the bias would not fit an `i32`;
//!    `q = round(w 2^e)`.

use super::calibrate::Ranges;
use super::error::{blob_shape, ExportError};
use super::weights::{CellWeights, ConvBn, FloatNetwork};
use snn_nostd::genotype::Op;
use snn_nostd::model::owned::{OwnedCell, OwnedLayer, OwnedModel, OwnedPost};
use snn_nostd::model::{limits, Bits, InputKind, InputNorm, InputParts};

/// Format exponents chosen by calibration, and the calibration ranges.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantReport {
    /// Largest magnitudes seen.
    pub ranges: Ranges,
    /// Input format.
    pub input_exp: u8,
    /// Cell formats.
    pub cell_exp: [u8; 2],
    /// Post-cell LIF formats.
    pub post_exp: [u8; 2],
    /// Hidden LIF format.
    pub hidden_exp: u8,
    /// Logit format.
    pub out_exp: u8,
}

/// A conv with BN folded in: weights `[co][ci][k][k]` and per-channel bias.
type FoldedConv = (Vec<f32>, Vec<f32>);

/// Folded layers of a network (BN folded into convs, BN affines of the post stages).
struct Folded {
    stem: FoldedConv,
    cells: [Vec<Option<FoldedConv>>; 2],
    post: [(Vec<f32>, Vec<f32>); 2],
    down: FoldedConv,
}

impl Folded {
    fn new(net: &FloatNetwork) -> Folded {
        let cell = |c: &CellWeights| {
            c.convs
                .iter()
                .map(|x| x.as_ref().map(ConvBn::folded))
                .collect()
        };
        Folded {
            stem: net.stem.folded(),
            cells: [cell(&net.cell1), cell(&net.cell2)],
            post: [net.bn_cell1.affine(), net.bn_cell2.affine()],
            down: net.down.folded(),
        }
    }
}

/// Largest `a` in `0..=cap` with `max(m, floor) * 2^a <= limit`.
fn exp_for(m: f32, floor: f32, limit: f64, cap: u8) -> u8 {
    let m = (m.max(floor) as f64).max(1e-30);
    let a = (limit / m).log2().floor();
    a.clamp(0.0, cap as f64) as u8
}

/// Per-output quantised weights, biases and shifts.
type QuantOutputs = (Vec<Vec<i32>>, Vec<i32>, Vec<i8>);

/// Quantises per output channel. `w(o)` yields the float weights of output `o` in the engine's
/// order for that output, `bias[o]` the float bias; `acc_off` is the input exponent for the
/// dense stem (0 for spike-fed layers), `a_out` the output format. Returns per-output
/// (quantised weights, bias, shift).
fn quantize_outputs(
    bits: Bits,
    weights: &[Vec<f32>],
    bias: &[f32],
    acc_off: i32,
    a_out: i32,
    what: &str,
) -> Result<QuantOutputs, ExportError> {
    let qmax = bits.qmax() as f64;
    let mut qs = Vec::with_capacity(weights.len());
    let mut bs = Vec::with_capacity(weights.len());
    let mut ss = Vec::with_capacity(weights.len());
    for (w, &b) in weights.iter().zip(bias) {
        let m = w.iter().fold(0f64, |a, &x| a.max(x.abs() as f64));
        if !m.is_finite() || !b.is_finite() {
            return Err(ExportError::Range(format!(
                "{what}: non-finite weight or bias"
            )));
        }
        let mut e: i32 = if m > 0.0 {
            (qmax / m).log2().floor() as i32
        } else {
            a_out - acc_off
        };
        // Shift = e + acc_off - a_out must lie in the engine's range.
        let hi = limits::MAX_SHIFT as i32 + a_out - acc_off;
        let lo = limits::MIN_SHIFT as i32 + a_out - acc_off;
        e = e.min(hi);
        // The bias, in accumulator units 2^-(e + acc_off), must fit an i32 (with headroom).
        while e > lo && (b as f64 * 2f64.powi(e + acc_off)).abs() > (1u64 << 30) as f64 {
            e -= 1;
        }
        if e < lo {
            return Err(ExportError::Range(format!(
                "{what}: weights too large for the fixed-point formats"
            )));
        }
        let scale = 2f64.powi(e);
        qs.push(
            w.iter()
                .map(|&x| ((x as f64 * scale).round() as i32).clamp(-(qmax as i32), qmax as i32))
                .collect(),
        );
        let bq = (b as f64 * 2f64.powi(e + acc_off)).round();
        if bq.abs() > i32::MAX as f64 {
            return Err(ExportError::Range(format!("{what}: bias too large")));
        }
        bs.push(bq as i32);
        ss.push((e + acc_off - a_out) as i8);
    }
    Ok((qs, bs, ss))
}

/// A conv `[co][ci][k][k]` (folded) as a spike-fed layer with weights `[ci][ky][kx][co]`.
fn event_conv(
    bits: Bits,
    w: &[f32],
    b: &[f32],
    c_in: usize,
    k: usize,
    a_out: i32,
    what: &str,
) -> Result<OwnedLayer, ExportError> {
    let c_out = b.len();
    let kk = c_in * k * k;
    let per_out: Vec<Vec<f32>> = (0..c_out)
        .map(|co| w[co * kk..(co + 1) * kk].to_vec())
        .collect();
    let (q, bias, shift) = quantize_outputs(bits, &per_out, b, 0, a_out, what)?;
    // q[co][ci*k*k + ky*k + kx] -> [ci][ky][kx][co]
    let mut flat = vec![0i32; c_out * kk];
    for (co, qo) in q.iter().enumerate() {
        for (i, &v) in qo.iter().enumerate() {
            flat[i * c_out + co] = v;
        }
    }
    Ok(OwnedLayer::new(bits, &flat, &bias, &shift))
}

/// A per-channel affine `y = g x + b` from format `a_in` to `a_out`:
/// `mul = round(g 2^(a_out - a_in + s))`, `add = round(b 2^(a_out + s))`, largest `s <= 40`
/// keeping both within 2^30.
fn affine(
    g: &[f32],
    b: &[f32],
    a_in: i32,
    a_out: i32,
    what: &str,
) -> Result<OwnedPost, ExportError> {
    let mg = g.iter().fold(0f64, |a, &x| a.max(x.abs() as f64)) * 2f64.powi(a_out - a_in);
    let mb = b.iter().fold(0f64, |a, &x| a.max(x.abs() as f64)) * 2f64.powi(a_out);
    let m = mg.max(mb).max(1e-30);
    if !m.is_finite() {
        return Err(ExportError::Range(format!("{what}: non-finite BatchNorm")));
    }
    let s = ((2f64.powi(30) / m).log2().floor()).min(40.0);
    if s < 0.0 {
        return Err(ExportError::Range(format!(
            "{what}: BatchNorm scale too large"
        )));
    }
    let s = s as i32;
    let mul: Vec<i32> = g
        .iter()
        .map(|&x| (x as f64 * 2f64.powi(a_out - a_in + s)).round() as i32)
        .collect();
    let add: Vec<i32> = b
        .iter()
        .map(|&x| (x as f64 * 2f64.powi(a_out + s)).round() as i32)
        .collect();
    Ok(OwnedPost::new(a_out as u8, &mul, &add, s as u8))
}

/// Quantises `net` to a model blob with `bits`-wide weights, the activation formats chosen
/// from the calibration `ranges` ([`super::calibrate`] of the same network). Returns the blob
/// and the chosen formats.
pub fn quantize_with_report(
    net: &FloatNetwork,
    bits: Bits,
    ranges: &Ranges,
) -> Result<(Vec<u8>, QuantReport), ExportError> {
    net.validate()?;
    net.check_blob_support()?;
    let folded = Folded::new(net);
    let f = QuantReport::choose(net, ranges);
    let cell = |k: usize, c: usize| quantize_cell(net, &folded, bits, &f, k, c);
    let post = |k: usize| {
        let (g, b) = &folded.post[k];
        let what = format!("bn_cell{}", k + 1);
        affine(g, b, f.cell_exp[k] as i32, f.post_exp[k] as i32, &what)
    };
    let (fc1, fc2) = quantize_classifier(net, bits, &f)?;
    let model = OwnedModel {
        dataset: net.dataset,
        shape: blob_shape(&net.shape)?,
        genotype: net.genotype.clone(),
        bits,
        input: InputParts {
            exp: f.input_exp,
            norm: input_norm(net, f.input_exp)?,
        },
        stem: quantize_stem(net, &folded, bits, &f)?,
        cell1: cell(0, net.shape.c1)?,
        post1: post(0)?,
        down: event_conv(
            bits,
            &folded.down.0,
            &folded.down.1,
            net.shape.c1,
            3,
            f.cell_exp[1] as i32,
            "down",
        )?,
        cell2: cell(1, net.shape.c2)?,
        post2: post(1)?,
        fc1,
        hidden_exp: f.hidden_exp,
        fc2,
        out_exp: f.out_exp,
    };
    Ok((model.encode()?, f))
}

impl QuantReport {
    /// The formats for `ranges` (widened to the whole normalised pixel range for static images).
    fn choose(net: &FloatNetwork, ranges: &Ranges) -> QuantReport {
        let mut r = *ranges;
        // Static images with a known normalisation span [(0 - mean)/std, (1 - mean)/std].
        if let Some(n) = &net.normalization {
            for (m, s) in n.mean.iter().zip(&n.std) {
                r.input = r.input.max((m / s).abs()).max(((1.0 - m) / s).abs());
            }
        }
        let act_exp = |m: f32| exp_for(m, 1.0, 32767.0, limits::MAX_ACT_EXP);
        QuantReport {
            ranges: r,
            input_exp: exp_for(r.input, 1e-6, 32767.0, limits::MAX_IN_EXP),
            cell_exp: r.cell.map(act_exp),
            post_exp: r.post.map(act_exp),
            hidden_exp: act_exp(r.hidden),
            // Logits are i32 and summed over votes and timesteps: keep 2^20 of headroom.
            out_exp: exp_for(r.out, 1e-6, (1u64 << 20) as f64, limits::MAX_OUT_EXP),
        }
    }
}

/// The stem: dense, weights `[co][ci][ky][kx]`, accumulator units `2^-(a_in + e)`.
fn quantize_stem(
    net: &FloatNetwork,
    folded: &Folded,
    bits: Bits,
    f: &QuantReport,
) -> Result<OwnedLayer, ExportError> {
    let (sw, sb) = &folded.stem;
    let per = net.shape.in_c * 9;
    let per_out: Vec<Vec<f32>> = (0..net.shape.c1)
        .map(|co| sw[co * per..(co + 1) * per].to_vec())
        .collect();
    let (a_in, a_cell) = (f.input_exp as i32, f.cell_exp[0] as i32);
    let (q, bias, shift) = quantize_outputs(bits, &per_out, sb, a_in, a_cell, "stem")?;
    Ok(OwnedLayer::new(bits, &q.concat(), &bias, &shift))
}

/// Cell `k` (`c` channels): its event convs in the cell's format.
fn quantize_cell(
    net: &FloatNetwork,
    folded: &Folded,
    bits: Bits,
    f: &QuantReport,
    k: usize,
    c: usize,
) -> Result<OwnedCell, ExportError> {
    let a = f.cell_exp[k] as i32;
    let mut convs = Vec::new();
    for (e, (conv, &op)) in folded.cells[k].iter().zip(net.genotype.ops()).enumerate() {
        convs.push(match (op, conv) {
            (Op::Conv3 | Op::Conv1, Some((w, b))) => {
                let kk = if op == Op::Conv3 { 3 } else { 1 };
                let what = format!("cell{} edge {e}", k + 1);
                Some(event_conv(bits, w, b, c, kk, a, &what)?)
            }
            _ => None,
        });
    }
    Ok(OwnedCell {
        exp: a as u8,
        convs,
    })
}

/// fc1 (float `[h][j_chw]` -> engine `[j_hwc][h]`) and fc2 (float `[o][h]` -> engine `[h][o]`).
fn quantize_classifier(
    net: &FloatNetwork,
    bits: Bits,
    f: &QuantReport,
) -> Result<(OwnedLayer, OwnedLayer), ExportError> {
    let c2 = net.shape.c2;
    let [_, _, (ph, pw)] = net.sizes();
    let n_in = c2 * ph * pw;
    let h = net.shape.hidden;
    let per_out: Vec<Vec<f32>> = (0..h)
        .map(|o| net.fc1[o * n_in..(o + 1) * n_in].to_vec())
        .collect();
    let zeros = vec![0.0; h];
    let (q, bias, shift) = quantize_outputs(bits, &per_out, &zeros, 0, f.hidden_exp as i32, "fc1")?;
    let mut flat = vec![0i32; n_in * h];
    for (o, qo) in q.iter().enumerate() {
        for c in 0..c2 {
            for py in 0..ph {
                for px in 0..pw {
                    let chw = (c * ph + py) * pw + px;
                    let hwc = (py * pw + px) * c2 + c;
                    flat[hwc * h + o] = qo[chw];
                }
            }
        }
    }
    let fc1 = OwnedLayer::new(bits, &flat, &bias, &shift);

    let no = net.shape.classes * net.shape.votes;
    let per_out: Vec<Vec<f32>> = (0..no)
        .map(|o| net.fc2_weight[o * h..(o + 1) * h].to_vec())
        .collect();
    let a_out = f.out_exp as i32;
    let (q, bias, shift) = quantize_outputs(bits, &per_out, &net.fc2_bias, 0, a_out, "fc2")?;
    let mut flat = vec![0i32; h * no];
    for (o, qo) in q.iter().enumerate() {
        for (k, &v) in qo.iter().enumerate() {
            flat[k * no + o] = v;
        }
    }
    Ok((fc1, OwnedLayer::new(bits, &flat, &bias, &shift)))
}

/// Raw `u8` pixels -> input format `a_in`: `q = (raw * mul + add) >> s` (static, normalised
/// input only).
fn input_norm(net: &FloatNetwork, a_in: u8) -> Result<Option<InputNorm>, ExportError> {
    let (Some(n), InputKind::Static) = (&net.normalization, net.shape.input) else {
        return Ok(None);
    };
    let m = n
        .mean
        .iter()
        .zip(&n.std)
        .map(|(&mu, &sd)| (1.0 / (255.0 * sd as f64)).max((mu / sd).abs() as f64))
        .fold(0f64, f64::max)
        * 2f64.powi(a_in as i32);
    let s = ((2f64.powi(30) / m).log2().floor()).clamp(0.0, 40.0) as i32;
    let sc = 2f64.powi(a_in as i32 + s);
    let mul: Vec<i32> = n
        .std
        .iter()
        .map(|&sd| (sc / (255.0 * sd as f64)).round() as i32)
        .collect();
    let add: Vec<i32> = n
        .mean
        .iter()
        .zip(&n.std)
        .map(|(&mu, &sd)| (-(mu as f64) / sd as f64 * sc).round() as i32)
        .collect();
    InputNorm::new(&mul, &add, s as u8)
        .map(Some)
        .ok_or_else(|| ExportError::Shape("normalization: at most 8 channels".into()))
}

/// Quantises `net` to a model blob (see [`quantize_with_report`]).
pub fn quantize(net: &FloatNetwork, bits: Bits, ranges: &Ranges) -> Result<Vec<u8>, ExportError> {
    quantize_with_report(net, bits, ranges).map(|(b, _)| b)
}
