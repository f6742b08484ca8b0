//! Property tests: no input makes a parser panic.

use std::path::Path;

use proptest::prelude::*;

use crate::data::cifar::{parse_into, Records};
use crate::data::dvs::parse_labels;
use crate::data::{parse_aedat, parse_nmnist_events, Dataset, DatasetKind, Event};

const AEDAT_HEADER: &[u8] = b"#!AER-DAT3.1\r\n#!END-HEADER\r\n";

/// A valid AEDAT file with a skipped packet and polarity events built from `seeds`.
fn valid_aedat(seeds: &[u32]) -> Vec<u8> {
    let mut f = AEDAT_HEADER.to_vec();
    let push_header = |f: &mut Vec<u8>, ty: i16, n: usize| {
        f.extend(ty.to_le_bytes());
        f.extend(0i16.to_le_bytes());
        for v in [8i32, 4, 0, n as i32, n as i32, n as i32] {
            f.extend(v.to_le_bytes());
        }
    };
    push_header(&mut f, 2, 1);
    f.extend([0xAB; 8]);
    push_header(&mut f, 1, seeds.len());
    for (i, s) in seeds.iter().enumerate() {
        let (x, y, p) = (s % 128, (s >> 7) % 128, (s >> 14) & 1);
        f.extend(((x << 17) | (y << 2) | (p << 1)).to_le_bytes());
        f.extend((i as i32).to_le_bytes());
    }
    f
}

proptest! {
    #[test]
    fn cifar_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..8000)) {
        for kind in [DatasetKind::Cifar10, DatasetKind::Cifar100] {
            let mut r = Records::default();
            if parse_into(kind, Path::new("f"), &bytes, &mut r).is_ok() {
                let rec = if kind == DatasetKind::Cifar10 { 3073 } else { 3074 };
                prop_assert_eq!(r.labels.len(), bytes.len() / rec);
                prop_assert_eq!(r.pixels.len(), r.labels.len() * 3072);
            }
        }
    }

    #[test]
    fn cifar_valid_truncations_never_panic(n in 0usize..3, cut in 0usize..9300) {
        let bytes: Vec<u8> = (0..n * 3073).map(|i| if i % 3073 == 0 { 9 } else { i as u8 }).collect();
        let cut = cut.min(bytes.len());
        let res = Dataset::from_cifar_bytes(DatasetKind::Cifar10, &[("f", &bytes[..cut])]);
        prop_assert_eq!(res.is_ok(), cut % 3073 == 0);
    }

    #[test]
    fn nmnist_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        if let Ok(ev) = parse_nmnist_events(Path::new("f"), &bytes) {
            prop_assert!(ev.iter().all(|e| e.x < 34 && e.y < 34 && e.p < 2));
        }
    }

    #[test]
    fn aedat_random_bytes_never_panic(
        prefix in any::<bool>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..2000),
    ) {
        let mut f = if prefix { AEDAT_HEADER.to_vec() } else { Vec::new() };
        f.extend(bytes);
        if let Ok(ev) = parse_aedat(Path::new("f"), &f) {
            prop_assert!(ev.iter().all(|e| e.x < 128 && e.y < 128 && e.p < 2));
        }
    }

    #[test]
    fn aedat_truncations_never_panic(
        seeds in proptest::collection::vec(any::<u32>(), 0..40),
        cut in any::<proptest::sample::Index>(),
        flip in any::<proptest::sample::Index>(),
        xor in any::<u8>(),
    ) {
        let full = valid_aedat(&seeds);
        prop_assert_eq!(parse_aedat(Path::new("f"), &full).unwrap().len(), seeds.len());
        let cut = cut.index(full.len() + 1);
        let _ = parse_aedat(Path::new("f"), &full[..cut]);
        let mut corrupt = full.clone();
        let at = flip.index(corrupt.len());
        corrupt[at] ^= xor;
        let _ = parse_aedat(Path::new("f"), &corrupt);
    }

    #[test]
    fn labels_csv_never_panics(text in ".{0,200}") {
        let _ = parse_labels(Path::new("l.csv"), &text);
    }

    #[test]
    fn framing_preserves_counts(
        seeds in proptest::collection::vec(any::<u32>(), 0..300),
        t in 1usize..12,
    ) {
        let events: Vec<Event> = seeds
            .iter()
            .map(|s| Event { t: 0, x: (s % 34) as u16, y: ((s >> 8) % 34) as u16, p: ((s >> 16) & 1) as u8 })
            .collect();
        let ds = Dataset::from_events(DatasetKind::Nmnist, &[(events.clone(), 0)], t).unwrap();
        let mut out = Vec::new();
        ds.fill_batch(&[0], None, &mut out);
        let n = events.len();
        let di = n / t;
        for (f, frame) in out.chunks(2312).enumerate() {
            let want = if f + 1 == t { n - di * (t - 1) } else { di };
            prop_assert_eq!(frame.iter().sum::<f32>() as usize, want);
        }
    }
}
