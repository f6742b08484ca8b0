use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::augment::{write_image, CropFlip, Normalizer};
use crate::data::{Dataset, DatasetKind, CIFAR10_MEAN, CIFAR10_STD};

/// A raw image with distinct, non-zero pixel values per (c, y, x) (mod 255, + 1).
fn raw_image(seed: usize) -> Vec<u8> {
    (0..3072)
        .map(|i| ((i * 31 + seed) % 255 + 1) as u8)
        .collect()
}

fn px(img: &[f32], c: usize, y: usize, x: usize) -> f32 {
    img[c * 1024 + y * 32 + x]
}

fn norm_value(c: usize, v: u8) -> f32 {
    (v as f32 / 255.0 - CIFAR10_MEAN[c]) / CIFAR10_STD[c]
}

fn render(raw: &[u8], cf: CropFlip) -> Vec<f32> {
    let (mean, std) = DatasetKind::Cifar10.mean_std();
    let mut out = vec![0.0; 3072];
    write_image(raw, &Normalizer::new(mean, std), cf, &mut out);
    out
}

fn dataset(n: usize) -> Dataset {
    let bytes: Vec<u8> = (0..n)
        .flat_map(|i| std::iter::once((i % 10) as u8).chain(raw_image(i)))
        .collect();
    Dataset::from_cifar_bytes(DatasetKind::Cifar10, &[("mem", &bytes)]).unwrap()
}

#[test]
fn identity_is_plain_normalisation() {
    let raw = raw_image(0);
    let out = render(&raw, CropFlip::IDENTITY);
    for (k, &v) in out.iter().enumerate() {
        assert!((v - norm_value(k / 1024, raw[k])).abs() < 1e-6);
    }
    assert!((norm_value(0, 255) - (1.0 - 0.4913) / 0.2470).abs() < 1e-6);
}

#[test]
fn flip_really_flips() {
    let raw = raw_image(3);
    let plain = render(&raw, CropFlip::IDENTITY);
    let flipped = render(
        &raw,
        CropFlip {
            flip: true,
            ..CropFlip::IDENTITY
        },
    );
    assert_ne!(plain, flipped);
    for c in 0..3 {
        for y in 0..32 {
            for x in 0..32 {
                assert_eq!(px(&flipped, c, y, x), px(&plain, c, y, 31 - x));
            }
        }
    }
}

#[test]
fn crop_shifts_and_pads_with_normalised_zero() {
    let raw = raw_image(5);
    let plain = render(&raw, CropFlip::IDENTITY);
    // Top-left corner of the padded image: the image moves down-right by 4.
    let tl = render(
        &raw,
        CropFlip {
            dy: 0,
            dx: 0,
            flip: false,
        },
    );
    // Bottom-right corner: the image moves up-left by 4.
    let br = render(
        &raw,
        CropFlip {
            dy: 8,
            dx: 8,
            flip: false,
        },
    );
    // Crop then flip: padding ends up on the right.
    let tlf = render(
        &raw,
        CropFlip {
            dy: 0,
            dx: 0,
            flip: true,
        },
    );
    assert_eq!(tl.len(), 3072);
    for c in 0..3 {
        let zero = norm_value(c, 0);
        for y in 0..32 {
            for x in 0..32 {
                let want_tl = if y < 4 || x < 4 {
                    zero
                } else {
                    px(&plain, c, y - 4, x - 4)
                };
                assert_eq!(px(&tl, c, y, x), want_tl, "tl {c} {y} {x}");
                let want_br = if y >= 28 || x >= 28 {
                    zero
                } else {
                    px(&plain, c, y + 4, x + 4)
                };
                assert_eq!(px(&br, c, y, x), want_br, "br {c} {y} {x}");
                assert_eq!(px(&tlf, c, y, x), px(&tl, c, y, 31 - x));
            }
        }
        // The padding value is the normalised value of a raw 0, i.e. -mean/std.
        assert!((zero + CIFAR10_MEAN[c] / CIFAR10_STD[c]).abs() < 1e-6);
    }
}

#[test]
fn fill_batch_augmentation() {
    let ds = dataset(8);
    let idx = [0, 3, 7, 3];
    let run = |seed: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = vec![1.0; 5];
        ds.fill_batch(&idx, Some(&mut rng), &mut out);
        out
    };
    // Deterministic for a seed; another seed differs; shape unchanged.
    let a = run(42);
    assert_eq!(a, run(42));
    assert_ne!(a, run(43));
    assert_eq!(a.len(), idx.len() * 3072);

    // Without augmentation: plain normalisation.
    let mut plain = Vec::new();
    ds.fill_batch(&idx, None, &mut plain);
    assert_eq!(
        &plain[..3072],
        &render(&raw_image(0), CropFlip::IDENTITY)[..]
    );

    // Every augmented image is one of the 9 x 9 x 2 crop/flip renderings of its source, and
    // over many draws both flipped and unflipped images and all offsets occur.
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for _ in 0..100 {
        ds.fill_batch(&[5], Some(&mut rng), &mut out);
        let raw = raw_image(5);
        let cf = (0..=8)
            .flat_map(|dy| {
                (0..=8).flat_map(move |dx| [false, true].map(|flip| CropFlip { dy, dx, flip }))
            })
            .find(|&cf| render(&raw, cf) == out)
            .expect("augmented image is a crop/flip of the source");
        seen.insert((cf.dy, cf.dx, cf.flip));
    }
    assert!(seen.iter().any(|s| s.2) && seen.iter().any(|s| !s.2));
    assert!(seen.iter().any(|s| s.0 == 0) && seen.iter().any(|s| s.1 == 8));
}

#[test]
fn event_data_is_not_augmented() {
    use crate::data::Event;
    let ev = vec![
        Event {
            t: 0,
            x: 1,
            y: 2,
            p: 1
        };
        3
    ];
    let ds = Dataset::from_events(DatasetKind::Nmnist, &[(ev, 2)], 2).unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    ds.fill_batch(&[0], None, &mut a);
    ds.fill_batch(&[0], Some(&mut ChaCha8Rng::seed_from_u64(1)), &mut b);
    assert_eq!(a, b);
}
