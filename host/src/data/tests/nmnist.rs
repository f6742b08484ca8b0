use std::path::Path;

use super::write;
use crate::data::{parse_nmnist_events, DataError, Dataset, DatasetKind, Event, Split};
use lightsnn_tests::shipped_data;

/// Encodes events in the N-MNIST 5-byte format.
fn encode(events: &[(u8, u8, u8, u32)]) -> Vec<u8> {
    events
        .iter()
        .flat_map(|&(x, y, p, t)| {
            [
                x,
                y,
                (p << 7) | ((t >> 16) & 0x7F) as u8,
                (t >> 8) as u8,
                t as u8,
            ]
        })
        .collect()
}

/// Frame sums of sample `i` of `ds` (one value per frame).
fn frame_sums(ds: &Dataset, i: usize) -> Vec<f32> {
    let mut out = Vec::new();
    ds.fill_batch(&[i], None, &mut out);
    let per_frame: usize = ds.frame_shape().iter().product();
    out.chunks(per_frame).map(|f| f.iter().sum()).collect()
}

/// Loads the `nmnist-small` layout folder `dir` (`n_train` / `n_test` samples, ids from 1 and
/// 60001) at T = 10 and checks its labels, framing and pixels against the raw event files;
/// returns the training split.
fn check_nmnist_prefix(dir: &Path, n_train: usize, n_test: usize) -> Dataset {
    let t = 10;
    let train = Dataset::load(DatasetKind::Nmnist, dir, Split::Train, t).unwrap();
    let test = Dataset::load(DatasetKind::Nmnist, dir, Split::Test, t).unwrap();
    assert_eq!((train.len(), test.len()), (n_train, n_test));
    assert_eq!(train.frames(), t);
    assert_eq!(train.frame_shape(), [2, 34, 34]);
    assert_eq!(&train.labels()[..2], &[5, 0]);
    assert_eq!(&test.labels()[..5], &[7, 2, 1, 0, 4]);

    // Sample 0 is 1.bs2: check the framing against the raw events.
    let path = dir.join("1.bs2");
    let events = parse_nmnist_events(&path, &std::fs::read(&path).unwrap()).unwrap();
    let n = events.len();
    assert!(n > 1000, "{n} events");
    assert_eq!(train.event_count(0), Some(n as u64));
    let sums = frame_sums(&train, 0);
    let di = n / t;
    for (f, &s) in sums.iter().enumerate() {
        let want = if f + 1 == t { n - (t - 1) * di } else { di };
        assert_eq!(s as usize, want, "frame {f}");
    }
    assert_eq!(sums.iter().sum::<f32>() as usize, n);

    // A specific pixel: the first event's pixel and polarity, counted in frame 0 and frame T-1.
    let mut out = Vec::new();
    train.fill_batch(&[0], None, &mut out);
    let e = events[0];
    let cell = e.p as usize * 34 * 34 + e.y as usize * 34 + e.x as usize;
    let same = |ev: &&Event| (ev.x, ev.y, ev.p) == (e.x, e.y, e.p);
    let in_first = events[..di].iter().filter(same).count();
    let in_last = events[(t - 1) * di..].iter().filter(same).count();
    assert!(in_first >= 1);
    assert_eq!(out[cell] as usize, in_first);
    assert_eq!(out[(t - 1) * 2312 + cell] as usize, in_last);

    // Every test sample's frames sum to its event count, and the whole batch agrees.
    for i in 0..test.len() {
        let id = 60001 + i;
        let p = dir.join(format!("{id}.bs2"));
        let n = std::fs::read(&p).unwrap().len() / 5;
        assert_eq!(
            frame_sums(&test, i).iter().sum::<f32>() as usize,
            n,
            "{}",
            p.display()
        );
    }
    let mut batch = Vec::new();
    test.fill_batch(&[0, 1, 2], None, &mut batch);
    assert_eq!(batch.len(), 3 * t * 2312);
    train
}

#[test]
fn shipped_nmnist_sample() {
    let train = check_nmnist_prefix(&shipped_data("nmnist-sample"), 40, 10);
    assert_eq!(train.class_counts(), vec![4, 6, 4, 5, 4, 3, 5, 3, 2, 4]);
}

/// The larger real data of `$LIGHTSNN_DATA` (extended suite).
#[cfg(feature = "real-data")]
mod real_data {
    use super::check_nmnist_prefix;
    use lightsnn_tests::real_data;

    #[test]
    fn nmnist_small() {
        let train = check_nmnist_prefix(&real_data("nmnist-small"), 1000, 100);
        assert!(
            train.class_counts().iter().all(|&c| c > 50),
            "{:?}",
            train.class_counts()
        );
    }
}

#[test]
fn framing_remainder_and_few_events() {
    // 7 events, T = 3: di = 2, frames take 2, 2, 3 events.
    let events: Vec<Event> = (0..7)
        .map(|i| Event {
            t: i,
            x: i as u16,
            y: 1,
            p: (i % 2) as u8,
        })
        .collect();
    let ds = Dataset::from_events(DatasetKind::Nmnist, &[(events.clone(), 4)], 3).unwrap();
    assert_eq!(frame_sums(&ds, 0), vec![2.0, 2.0, 3.0]);
    let mut out = Vec::new();
    ds.fill_batch(&[0], None, &mut out);
    // Event 6: x = 6, y = 1, p = 0, in the last frame.
    assert_eq!(out[2 * 2312 + 34 + 6], 1.0);
    // Event 5: x = 5, p = 1, in the last frame too.
    assert_eq!(out[2 * 2312 + 1156 + 34 + 5], 1.0);
    // Event 1: x = 1, p = 1, in frame 0.
    assert_eq!(out[1156 + 34 + 1], 1.0);

    // Fewer events than frames: all in the last frame; no events: all zero.
    let ds = Dataset::from_events(
        DatasetKind::Nmnist,
        &[(events[..2].to_vec(), 0), (Vec::new(), 1)],
        5,
    )
    .unwrap();
    assert_eq!(frame_sums(&ds, 0), vec![0.0, 0.0, 0.0, 0.0, 2.0]);
    assert_eq!(frame_sums(&ds, 1), vec![0.0; 5]);

    // Repeated events at one pixel are counted.
    let same = vec![
        Event {
            t: 0,
            x: 33,
            y: 33,
            p: 1
        };
        9
    ];
    let ds = Dataset::from_events(DatasetKind::Nmnist, &[(same, 9)], 1).unwrap();
    let mut out = Vec::new();
    ds.fill_batch(&[0], None, &mut out);
    assert_eq!(out[2311], 9.0);
    assert_eq!(out.iter().sum::<f32>(), 9.0);

    assert!(Dataset::from_events(DatasetKind::Nmnist, &[(Vec::new(), 10)], 1).is_err());
    let bad = vec![Event {
        t: 0,
        x: 34,
        y: 0,
        p: 0,
    }];
    assert!(Dataset::from_events(DatasetKind::Nmnist, &[(bad, 0)], 1).is_err());
    assert!(Dataset::from_events(DatasetKind::Cifar10, &[], 1).is_err());
    assert!(Dataset::from_events(DatasetKind::Nmnist, &[], 0).is_err());
}

#[test]
fn parse_events_bits() {
    let bytes = encode(&[(3, 4, 1, 0x7F_FFFF), (33, 0, 0, 12345)]);
    let ev = parse_nmnist_events(Path::new("x.bs2"), &bytes).unwrap();
    assert_eq!(
        ev[0],
        Event {
            t: 0x7F_FFFF,
            x: 3,
            y: 4,
            p: 1
        }
    );
    assert_eq!(
        ev[1],
        Event {
            t: 12345,
            x: 33,
            y: 0,
            p: 0
        }
    );

    // Timestamp-overflow markers (y = 240) are skipped and shift later timestamps.
    let bytes = encode(&[(1, 1, 0, 10), (0, 240, 0, 0), (2, 2, 1, 5)]);
    let ev = parse_nmnist_events(Path::new("x.bs2"), &bytes).unwrap();
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[1].t, 5 + 8192);

    let err = parse_nmnist_events(Path::new("x.bs2"), &bytes[..13]).unwrap_err();
    assert!(
        matches!(err, DataError::Malformed { offset: 10, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("x.bs2"));

    let bytes = encode(&[(1, 1, 0, 10), (1, 34, 0, 11)]);
    let err = parse_nmnist_events(Path::new("y.bs2"), &bytes).unwrap_err();
    assert!(
        matches!(err, DataError::Malformed { offset: 5, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("y=34"), "{err}");
}

#[test]
fn small_layout_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // No label list at all.
    let err = Dataset::load(DatasetKind::Nmnist, dir, Split::Train, 4).unwrap_err();
    assert!(matches!(err, DataError::MissingFiles { .. }));
    assert!(err.to_string().contains("train1K.txt"), "{err}");

    write(
        dir,
        "train1K.txt",
        b"#sample #class\r\n1\t3\r\n2\t9\r\n\r\n",
    );
    write(dir, "1.bs2", &encode(&[(0, 0, 0, 1), (1, 1, 1, 2)]));
    // 2.bs2 missing: the error names it and the list's line.
    let err = Dataset::load(DatasetKind::Nmnist, dir, Split::Train, 4).unwrap_err();
    assert!(matches!(err, DataError::BadLine { line: 3, .. }));
    assert!(err.to_string().contains("2.bs2"), "{err}");

    write(dir, "2.bs2", &encode(&[(5, 6, 1, 3)]));
    let ds = Dataset::load(DatasetKind::Nmnist, dir, Split::Train, 1).unwrap();
    assert_eq!(ds.labels(), &[3, 9]);
    assert_eq!(ds.event_count(1), Some(1));

    // Malformed event file, then malformed label lines.
    write(dir, "2.bs2", &[1, 2, 3]);
    let err = Dataset::load(DatasetKind::Nmnist, dir, Split::Train, 1).unwrap_err();
    assert!(err.to_string().contains("2.bs2"), "{err}");
    for bad in ["#h\n1\t10\n", "#h\n1 2 3\n", "#h\nx1\t2\n", "#h\n../1\t2\n"] {
        write(dir, "train1K.txt", bad.as_bytes());
        let err = Dataset::load(DatasetKind::Nmnist, dir, Split::Train, 1).unwrap_err();
        assert!(
            matches!(err, DataError::BadLine { line: 2, .. }),
            "{bad:?}: {err}"
        );
        assert!(err.to_string().contains("train1K.txt"));
    }
    let err = Dataset::load(DatasetKind::Nmnist, dir, Split::Train, 0).unwrap_err();
    assert!(matches!(err, DataError::InvalidArgument(_)));
}

#[test]
fn official_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "Train/3/12.bin", &encode(&[(0, 0, 0, 1); 12]));
    write(dir, "Train/3/5.bin", &encode(&[(0, 0, 0, 1); 5]));
    write(dir, "Train/7/1.bin", &encode(&[(2, 2, 1, 1); 1]));
    write(dir, "Train/7/notes.txt", b"ignored");
    write(dir, "Test/0/2.bin", &encode(&[(9, 9, 1, 4); 2]));
    let train = Dataset::load(DatasetKind::Nmnist, dir, Split::Train, 2).unwrap();
    assert_eq!(train.labels(), &[3, 3, 7]);
    let counts: Vec<_> = (0..3).map(|i| train.event_count(i).unwrap()).collect();
    assert_eq!(counts, vec![5, 12, 1]);
    let test = Dataset::load(DatasetKind::Nmnist, dir, Split::Test, 2).unwrap();
    assert_eq!(test.labels(), &[0]);
    let mut out = Vec::new();
    test.fill_batch(&[0], None, &mut out);
    assert_eq!(out[2312 + 1156 + 9 * 34 + 9], 1.0);
    assert_eq!(out[1156 + 9 * 34 + 9], 1.0);

    write(dir, "Train/7/1.bin", &encode(&[(40, 2, 1, 1)]));
    let err = Dataset::load(DatasetKind::Nmnist, dir, Split::Train, 2).unwrap_err();
    assert!(
        err.to_string().contains("1.bin") && err.to_string().contains("x=40"),
        "{err}"
    );
}

/// `write_u8` gives the counts of `fill_batch` as bytes, saturated at 255 (and says how many).
#[test]
fn event_samples_as_u8_counts() {
    let ds = Dataset::load(
        DatasetKind::Nmnist,
        &shipped_data("nmnist-sample"),
        Split::Test,
        4,
    )
    .unwrap();
    let (mut floats, mut bytes) = (Vec::new(), Vec::new());
    for i in 0..ds.len() {
        ds.fill_batch(&[i], None, &mut floats);
        assert_eq!(ds.write_u8(i, &mut bytes), 0);
        assert_eq!(bytes.len(), 4 * 2 * 34 * 34);
        assert!(floats.iter().zip(&bytes).all(|(&f, &b)| f == b as f32));
    }
    // 300 events at one pixel in one frame: saturated at 255, counted once.
    let same = vec![
        Event {
            t: 0,
            x: 2,
            y: 3,
            p: 1
        };
        300
    ];
    let ds = Dataset::from_events(DatasetKind::Nmnist, &[(same, 1)], 1).unwrap();
    assert_eq!(ds.write_u8(0, &mut bytes), 1);
    assert_eq!(bytes[1156 + 3 * 34 + 2], 255);
    assert_eq!(bytes.iter().map(|&b| b as u32).sum::<u32>(), 255);
}
