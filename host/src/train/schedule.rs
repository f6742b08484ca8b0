//! The learning-rate schedule (docs/design.md, "Training"): cosine annealing per epoch down to
//! `eta_min`.

/// Learning rate of epoch `epoch` (0-based) out of `epochs`:
/// `eta_min + 0.5 (lr - eta_min) (1 + cos(pi epoch / epochs))`, as PyTorch's
/// `CosineAnnealingLR(T_max = epochs)` stepped once per epoch. Epoch 0 uses `lr`; the last epoch
/// uses a value just above `eta_min`.
pub fn cosine_lr(lr: f64, eta_min: f64, epoch: usize, epochs: usize) -> f64 {
    if epochs == 0 {
        return lr;
    }
    let x = std::f64::consts::PI * epoch as f64 / epochs as f64;
    eta_min + 0.5 * (lr - eta_min) * (1.0 + x.cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_endpoints_and_midpoint() {
        let (lr, min) = (0.1, 0.001);
        assert_eq!(cosine_lr(lr, min, 0, 10), lr);
        assert!((cosine_lr(lr, min, 5, 10) - (min + 0.5 * (lr - min))).abs() < 1e-15);
        assert!((cosine_lr(lr, min, 10, 10) - min).abs() < 1e-15);
        let mut prev = f64::INFINITY;
        for e in 0..10 {
            let v = cosine_lr(lr, min, e, 10);
            assert!(v < prev && v > min);
            prev = v;
        }
    }
}
