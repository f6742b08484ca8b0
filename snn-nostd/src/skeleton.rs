//! The network's shape rules and neuron constants (SPEC §1, §4), defined once for the host
//! (Candle network, CPU scoring engine, export) and the device (the blob's [`Dims`]).
//!
//! [`Dims`]: crate::model::Dims

/// LIF membrane time constant: the charge is `V <- V + (X - V) / tau`, `(V + 3X) / 4`.
pub const LIF_TAU: f64 = 4.0 / 3.0;
/// LIF firing threshold (fire where `V >= V_th`).
pub const LIF_V_THRESHOLD: f64 = 1.0;
/// Membrane potential after a spike (hard reset).
pub const LIF_V_RESET: f64 = 0.0;
/// BatchNorm epsilon.
pub const BN_EPS: f64 = 1e-5;

/// Height and width of cell 1's maps: the input's, halved by the stem's MaxPool2 where it has
/// one.
pub const fn cell1_hw(in_h: usize, in_w: usize, stem_pool: bool) -> (usize, usize) {
    if stem_pool {
        (in_h / 2, in_w / 2)
    } else {
        (in_h, in_w)
    }
}

/// Height and width of cell 2's maps: cell 1's after the down conv's MaxPool2.
pub const fn cell2_hw(cell1: (usize, usize)) -> (usize, usize) {
    (cell1.0 / 2, cell1.1 / 2)
}

/// Height and width of the map entering fc1: cell 2's after MaxPool(`p`) (`floor`; `p = 0`
/// gives an empty map).
pub const fn pooled_hw(cell2: (usize, usize), p: usize) -> (usize, usize) {
    match (cell2.0.checked_div(p), cell2.1.checked_div(p)) {
        (Some(h), Some(w)) => (h, w),
        _ => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_of_the_datasets() {
        // CIFAR-10 32x32, DVS128 128x128 with the stem pool, N-MNIST 34x34, p = 2.
        assert_eq!(pooled_hw(cell2_hw(cell1_hw(32, 32, false)), 2), (8, 8));
        assert_eq!(cell1_hw(128, 128, true), (64, 64));
        assert_eq!(pooled_hw(cell2_hw(cell1_hw(128, 128, true)), 2), (16, 16));
        assert_eq!(pooled_hw(cell2_hw(cell1_hw(34, 34, false)), 2), (8, 8));
        assert_eq!(pooled_hw((5, 5), 0), (0, 0));
    }
}
