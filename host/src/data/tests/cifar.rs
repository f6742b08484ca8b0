use std::path::Path;

use super::write;
use crate::data::{DataError, Dataset, DatasetKind, Split, CIFAR10_MEAN, CIFAR10_STD};
use lightsnn_tests::shipped_data;

const REC10: usize = 3073;

/// One CIFAR record: the label bytes then a deterministic image derived from `seed`.
fn record(labels: &[u8], seed: u8) -> Vec<u8> {
    let mut r = labels.to_vec();
    r.extend((0..3072).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)));
    r
}

fn records10(labels: &[u8]) -> Vec<u8> {
    labels.iter().flat_map(|&l| record(&[l], l * 3)).collect()
}

/// Loads the CIFAR-10 binary folder `dir` (`n_train` / `n_test` records, a prefix of the official
/// batches) and checks labels and pixels against its raw bytes; returns both splits.
fn check_cifar10_prefix(dir: &Path, n_train: usize, n_test: usize) -> (Dataset, Dataset) {
    let train = Dataset::load(DatasetKind::Cifar10, dir, Split::Train, 4).unwrap();
    let test = Dataset::load(DatasetKind::Cifar10, dir, Split::Test, 4).unwrap();
    assert_eq!((train.len(), test.len()), (n_train, n_test));
    assert_eq!(train.frames(), 1);
    assert_eq!(train.frame_shape(), [3, 32, 32]);
    assert_eq!(train.sample_len(), 3072);
    assert_eq!(train.coarse_labels(), None);

    for (set, file) in [(&train, "data_batch_1.bin"), (&test, "test_batch.bin")] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        for i in 0..50 {
            assert_eq!(set.label(i), bytes[i * REC10] as usize, "{file} record {i}");
        }
        // Pixels of record 3, normalised without augmentation.
        let mut out = Vec::new();
        set.fill_batch(&[3], None, &mut out);
        assert_eq!(out.len(), 3072);
        for k in [0, 1, 1023, 1024, 2047, 2048, 3071] {
            let c = k / 1024;
            let raw = bytes[3 * REC10 + 1 + k] as f32 / 255.0;
            let want = (raw - CIFAR10_MEAN[c]) / CIFAR10_STD[c];
            assert!((out[k] - want).abs() < 1e-5, "{file} pixel {k}");
        }
    }
    // The official batches begin with these labels.
    assert_eq!(&train.labels()[..10], &[6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
    assert_eq!(&test.labels()[..10], &[3, 8, 8, 0, 6, 6, 1, 6, 3, 1]);
    (train, test)
}

#[test]
fn shipped_cifar10_sample() {
    let dir = shipped_data("cifar10-sample");
    let (train, test) = check_cifar10_prefix(&dir, 800, 200);
    assert_eq!(
        train.class_counts(),
        vec![85, 89, 74, 70, 79, 64, 84, 84, 82, 89]
    );
    assert_eq!(
        test.class_counts(),
        vec![20, 14, 21, 19, 15, 18, 26, 18, 28, 21]
    );
    // The folder holds exactly the binary's built-in sample.
    let builtin = crate::data::sample::cifar10_sample(Split::Train).unwrap();
    assert_eq!(builtin.labels(), train.labels());
    let (mut a, mut b) = (Vec::new(), Vec::new());
    builtin.fill_batch(&[0, 799], None, &mut a);
    train.fill_batch(&[0, 799], None, &mut b);
    assert_eq!(a, b);
}

/// The larger real data of `$LIGHTSNN_DATA` (extended suite).
#[cfg(feature = "real-data")]
mod real_data {
    use super::check_cifar10_prefix;
    use crate::data::{Dataset, DatasetKind, Split};
    use lightsnn_tests::real_data;

    #[test]
    fn cifar10_lossless_subset() {
        let dir = real_data("cifar10-lossless-subset");
        let (train, test) = check_cifar10_prefix(&dir, 4000, 1000);
        for (set, n) in [(&train, 4000), (&test, 1000)] {
            let counts = set.class_counts();
            assert_eq!(counts.iter().sum::<usize>(), n);
            for c in counts {
                assert!(
                    c * 100 > n * 7 && c * 100 < n * 13,
                    "class count {c} of {n}"
                );
            }
        }
    }

    #[test]
    fn cifar10_jpeg_two_batches() {
        let dir = real_data("cifar10-jpeg");
        let t0 = std::time::Instant::now();
        let train = Dataset::load(DatasetKind::Cifar10, &dir, Split::Train, 1).unwrap();
        eprintln!("loaded 20,000 CIFAR-10 images in {:?}", t0.elapsed());
        let test = Dataset::load(DatasetKind::Cifar10, &dir, Split::Test, 1).unwrap();
        assert_eq!((train.len(), test.len()), (20_000, 10_000));
        assert_eq!(train.class_counts(), vec![2000; 10]);
        assert_eq!(test.class_counts(), vec![1000; 10]);
    }
}

#[test]
fn only_some_batches_and_nested_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar-10-batches-bin");
    write(&dir, "data_batch_1.bin", &records10(&[3, 1, 4]));
    write(&dir, "data_batch_2.bin", &records10(&[9, 0]));
    for d in [tmp.path(), dir.as_path()] {
        let ds = Dataset::load(DatasetKind::Cifar10, d, Split::Train, 1).unwrap();
        assert_eq!(ds.labels(), &[3, 1, 4, 9, 0]);
    }
    // The test batch is missing: the error names it and the folder.
    let err = Dataset::load(DatasetKind::Cifar10, tmp.path(), Split::Test, 1).unwrap_err();
    assert!(matches!(err, DataError::MissingFiles { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("test_batch.bin") && msg.contains("cifar-10-batches-bin"),
        "{msg}"
    );

    // A gap: only data_batch_2.bin.
    std::fs::remove_file(dir.join("data_batch_1.bin")).unwrap();
    let ds = Dataset::load(DatasetKind::Cifar10, &dir, Split::Train, 1).unwrap();
    assert_eq!(ds.labels(), &[9, 0]);

    // Pixels are kept exactly: record 1 of batch 2 has label 0, seed 0.
    let mut out = Vec::new();
    ds.fill_batch(&[1, 0], None, &mut out);
    assert_eq!(out.len(), 2 * 3072);
    let raw = (5u8).wrapping_mul(7) as f32 / 255.0;
    assert!((out[5] - (raw - CIFAR10_MEAN[0]) / CIFAR10_STD[0]).abs() < 1e-6);
}

#[test]
fn missing_folder_and_missing_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let gone = tmp.path().join("nowhere");
    let err = Dataset::load(DatasetKind::Cifar10, &gone, Split::Train, 1).unwrap_err();
    assert!(matches!(err, DataError::NoSuchFolder { .. }));
    assert!(err.to_string().contains("nowhere"), "{err}");

    let err = Dataset::load(DatasetKind::Cifar10, tmp.path(), Split::Train, 1).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("data_batch_1.bin") && msg.contains("training"),
        "{msg}"
    );
    assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");

    let err = Dataset::load(DatasetKind::Cifar100, tmp.path(), Split::Test, 1).unwrap_err();
    assert!(err.to_string().contains("test.bin"), "{err}");
}

#[test]
fn truncated_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = records10(&[1, 2]);
    bytes.extend_from_slice(&record(&[3], 0)[..100]);
    write(tmp.path(), "data_batch_1.bin", &bytes);
    let err = Dataset::load(DatasetKind::Cifar10, tmp.path(), Split::Train, 1).unwrap_err();
    match &err {
        DataError::Malformed { path, offset, .. } => {
            assert!(path.ends_with("data_batch_1.bin"));
            assert_eq!(*offset, 2 * REC10 as u64);
        }
        other => panic!("unexpected {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("data_batch_1.bin") && msg.contains("6146") && msg.contains("3073"),
        "{msg}"
    );
}

#[test]
fn bad_label() {
    let mut bytes = records10(&[1, 2, 3]);
    bytes[REC10] = 10;
    let err =
        Dataset::from_cifar_bytes(DatasetKind::Cifar10, &[("embedded.bin", &bytes)]).unwrap_err();
    match &err {
        DataError::Malformed { path, offset, .. } => {
            assert_eq!(path, Path::new("embedded.bin"));
            assert_eq!(*offset, REC10 as u64);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("label 10"), "{err}");
}

#[test]
fn from_bytes() {
    let a = records10(&[5, 6]);
    let b = records10(&[7]);
    let ds = Dataset::from_cifar_bytes(DatasetKind::Cifar10, &[("a", &a), ("b", &b)]).unwrap();
    assert_eq!(ds.labels(), &[5, 6, 7]);
    assert_eq!(ds.kind(), DatasetKind::Cifar10);
    let err = Dataset::from_cifar_bytes(DatasetKind::Nmnist, &[("a", &a)]).unwrap_err();
    assert!(matches!(err, DataError::InvalidArgument(_)));
    assert!(Dataset::from_cifar_bytes(DatasetKind::Dvs128, &[]).is_err());
    assert!(Dataset::from_cifar_bytes(DatasetKind::Cifar100, &[])
        .unwrap()
        .is_empty());
}

#[test]
fn cifar100_written_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar-100-binary");
    let train: Vec<u8> = [(19u8, 99u8), (0, 0), (4, 55)]
        .iter()
        .flat_map(|&(c, f)| record(&[c, f], f))
        .collect();
    write(&dir, "train.bin", &train);
    write(&dir, "test.bin", &record(&[7, 42], 1));
    let ds = Dataset::load(DatasetKind::Cifar100, tmp.path(), Split::Train, 1).unwrap();
    assert_eq!(ds.labels(), &[99, 0, 55]);
    assert_eq!(ds.coarse_labels(), Some(&[19u16, 0, 4][..]));
    assert_eq!(ds.class_counts().len(), 100);
    let test = Dataset::load(DatasetKind::Cifar100, &dir, Split::Test, 1).unwrap();
    assert_eq!((test.label(0), test.coarse_labels().unwrap()[0]), (42, 7));

    // Subsets keep both label kinds and the pixels.
    let sub = ds.subset(&[2, 0]);
    assert_eq!(sub.labels(), &[55, 99]);
    assert_eq!(sub.coarse_labels(), Some(&[4u16, 19][..]));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    sub.fill_batch(&[0], None, &mut a);
    ds.fill_batch(&[2], None, &mut b);
    assert_eq!(a, b);

    // Bad fine label (offset + 1) and bad coarse label.
    let mut bad = train.clone();
    bad[3074 + 1] = 100;
    let err = Dataset::from_cifar_bytes(DatasetKind::Cifar100, &[("t", &bad)]).unwrap_err();
    assert!(
        matches!(err, DataError::Malformed { offset: 3075, .. }),
        "{err}"
    );
    let mut bad = train.clone();
    bad[2 * 3074] = 20;
    let err = Dataset::from_cifar_bytes(DatasetKind::Cifar100, &[("t", &bad)]).unwrap_err();
    assert!(
        matches!(err, DataError::Malformed { offset: 6148, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("coarse label 20"), "{err}");
    // Truncated: CIFAR-10-sized records are not CIFAR-100 records.
    let err = Dataset::from_cifar_bytes(DatasetKind::Cifar100, &[("t", &records10(&[1, 2]))])
        .unwrap_err();
    assert!(err.to_string().contains("3074"), "{err}");
}
