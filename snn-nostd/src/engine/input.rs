//! Quantisation of raw input into the engine's `i16` input format.

use super::error::EngineError;
use super::fixed::round_shift;
use super::fixed::sat_i16;
use crate::model::Model;
use crate::model::Shape;

/// Quantises raw `u8` input (whole CHW frames: CIFAR RGB planes, or event counts) into the
/// model's `i16` input format, using the blob's integer normalisation if it has one (else
/// `q = raw << exp`). The host and the device share this code, so they feed identical inputs.
pub fn quantize_input_u8(
    model: &Model<'_>,
    raw: &[u8],
    out: &mut [i16],
) -> Result<(), EngineError> {
    let d = model.shape();
    check_input_len(d, raw.len(), out.len())?;
    let plane = d.in_h * d.in_w;
    let frame = d.frame_len();
    let inp = &model.parts().input;
    for (i, (&r, o)) in raw.iter().zip(out.iter_mut()).enumerate() {
        let c = (i % frame) / plane;
        *o = match &inp.norm {
            Some(n) => {
                let v = r as i64 * n.mul[c] as i64 + n.add[c] as i64;
                sat_i16(round_shift(v, n.shift as i32))
            }
            None => sat_i16(round_shift(r as i64, -(inp.exp as i32))),
        };
    }
    Ok(())
}

/// Quantises real-valued input (already normalised, whole CHW frames) into the model's input
/// format: `round(x * 2^exp)` (half away from zero), saturated; NaN gives 0.
pub fn quantize_input_f32(
    model: &Model<'_>,
    x: &[f32],
    out: &mut [i16],
) -> Result<(), EngineError> {
    let d = model.shape();
    check_input_len(d, x.len(), out.len())?;
    let scale = (1u32 << model.parts().input.exp) as f32;
    for (&v, o) in x.iter().zip(out.iter_mut()) {
        let s = v * scale;
        let r = if s >= 0.0 { s + 0.5 } else { s - 0.5 };
        *o = r as i16; // `as` saturates and maps NaN to 0
    }
    Ok(())
}

pub(super) fn check_input_len(d: &Shape, n: usize, out: usize) -> Result<(), EngineError> {
    let frame = d.frame_len();
    if n == 0 || !n.is_multiple_of(frame) || n != out {
        return Err(EngineError::InputLength {
            expected: if n != out { out } else { frame },
            got: n,
        });
    }
    Ok(())
}
