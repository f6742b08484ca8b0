//! Float against integer on the real CIFAR-10 lossless test subset (1,000 images) of
//! `$LIGHTSNN_DATA`, for the trained network the repository keeps in `firmware/assets/` (see its
//! README). Extended suite only (feature `real-data`): the shipped blob was calibrated on that
//! subset's training split, which the repository does not ship.

use lightsnn::data::{Dataset, DatasetKind, Split};
use lightsnn::export::pipeline::{compare, export_checkpoint};
use lightsnn::export::Bits;
use lightsnn_tests::real_data;
use std::path::PathBuf;

fn checkpoint() -> PathBuf {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../firmware/assets/trained.safetensors");
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

/// Largest top-1 gap (percentage points) between the float network and its int8 export.
const MAX_GAP_INT8: f64 = 3.0;
/// Minimum fraction of test images on which both give the same class.
const MIN_AGREEMENT_INT8: f64 = 0.80;

mod real_data {
    use super::*;

    #[test]
    fn int8_export_tracks_the_float_network() {
        let dir = real_data("cifar10-lossless-subset");
        let train = Dataset::load(DatasetKind::Cifar10, &dir, Split::Train, 1).unwrap();
        let test = Dataset::load(DatasetKind::Cifar10, &dir, Split::Test, 1).unwrap();
        let e = export_checkpoint(&checkpoint(), &train, Bits::B8, 64).unwrap();
        let c = compare(&e.blob, Some((&e.net, &e.genotype)), &test, 100).unwrap();
        let f = c.float_top1.unwrap();
        let ag = c.agreement.unwrap();
        println!(
        "CIFAR-10 test subset ({} images): float top-1 {:.2}%, int8 top-1 {:.2}%, agreement {:.2}%",
        test.len(),
        100.0 * f,
        100.0 * c.integer_top1,
        100.0 * ag
    );
        assert!(f > 0.15, "the kept network is trained (float top-1 {f})");
        assert!(
            (100.0 * (f - c.integer_top1)).abs() <= MAX_GAP_INT8,
            "top-1 gap above {MAX_GAP_INT8} points"
        );
        assert!(
            ag >= MIN_AGREEMENT_INT8,
            "agreement {ag} below {MIN_AGREEMENT_INT8}"
        );
        // the shipped firmware blob is exactly this export
        let shipped = std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../firmware/assets/trained.bin"),
        )
        .unwrap();
        assert_eq!(
            shipped, e.blob,
            "firmware/assets/trained.bin is stale: re-export it (see firmware/assets/README.md)"
        );
    }
}
