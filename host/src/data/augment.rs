//! Static-image preprocessing: normalisation and the CIFAR training augmentation
//! (random crop 32 with 4 zero-padding, then random horizontal flip; docs/design.md, "Training").

use rand::{Rng, RngCore};

/// Side of a CIFAR image.
pub(crate) const SIDE: usize = 32;
/// Zero-padding of the random crop, on each side.
pub const CROP_PADDING: usize = 4;

pub use snn_nostd::dataset::{CIFAR100_MEAN, CIFAR100_STD, CIFAR10_MEAN, CIFAR10_STD};

/// Per-channel lookup table from a raw byte to its normalised value `(v/255 - mean) / std`.
pub(crate) struct Normalizer {
    lut: [[f32; 256]; 3],
}

impl Normalizer {
    /// A table for the given per-channel mean and standard deviation.
    pub(crate) fn new(mean: [f32; 3], std: [f32; 3]) -> Self {
        let mut lut = [[0.0; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, slot) in table.iter_mut().enumerate() {
                *slot = (v as f32 / 255.0 - mean[c]) / std[c];
            }
        }
        Normalizer { lut }
    }
}

/// One draw of the training augmentation: crop offset into the padded 40x40 image, and flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CropFlip {
    /// Row of the crop's top-left corner in the padded image, 0..=8.
    pub dy: usize,
    /// Column of the crop's top-left corner in the padded image, 0..=8.
    pub dx: usize,
    /// Mirror left-right after cropping.
    pub flip: bool,
}

impl CropFlip {
    /// No augmentation (the centre crop of the padded image is the image itself).
    pub const IDENTITY: CropFlip = CropFlip {
        dy: CROP_PADDING,
        dx: CROP_PADDING,
        flip: false,
    };

    /// Draws a crop offset (row, then column, as torchvision's `RandomCrop`) and a fair flip.
    pub fn sample(rng: &mut dyn RngCore) -> Self {
        let dy = rng.gen_range(0..=2 * CROP_PADDING);
        let dx = rng.gen_range(0..=2 * CROP_PADDING);
        let flip = rng.gen_bool(0.5);
        CropFlip { dy, dx, flip }
    }
}

/// Writes one raw CIFAR image (`3*32*32` bytes, channel planes, row-major) into `out`
/// (`3*32*32` floats), cropped/flipped by `cf` and normalised. Pixels that come from the zero
/// padding get the normalised value of a raw 0.
pub(crate) fn write_image(raw: &[u8], norm: &Normalizer, cf: CropFlip, out: &mut [f32]) {
    let plane = SIDE * SIDE;
    for c in 0..3 {
        let lut = &norm.lut[c];
        let src = &raw[c * plane..(c + 1) * plane];
        let dst = &mut out[c * plane..(c + 1) * plane];
        for y in 0..SIDE {
            let row = &mut dst[y * SIDE..(y + 1) * SIDE];
            // Source row in the unpadded image.
            let sy = (y + cf.dy).wrapping_sub(CROP_PADDING);
            if sy >= SIDE {
                row.fill(lut[0]);
                continue;
            }
            let src_row = &src[sy * SIDE..(sy + 1) * SIDE];
            for (x, o) in row.iter_mut().enumerate() {
                let cx = if cf.flip { SIDE - 1 - x } else { x };
                let sx = (cx + cf.dx).wrapping_sub(CROP_PADDING);
                *o = if sx < SIDE {
                    lut[src_row[sx] as usize]
                } else {
                    lut[0]
                };
            }
        }
    }
}
