use std::path::Path;

use super::write;
use crate::data::{parse_aedat, DataError, Dataset, DatasetKind, Event, Split};

const HEADER: &str = "#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n\
                      #Start-Time: 2017-01-01 00:00:00 (TZ+0000)\r\n#!END-HEADER\r\n";

/// A packet: 28-byte header then the events.
fn packet(event_type: i16, size: i32, overflow: i32, number: i32, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend(event_type.to_le_bytes());
    p.extend(1i16.to_le_bytes()); // eventSource
    p.extend(size.to_le_bytes());
    p.extend(4i32.to_le_bytes()); // eventTSOffset
    p.extend(overflow.to_le_bytes());
    p.extend(number.to_le_bytes()); // eventCapacity
    p.extend(number.to_le_bytes()); // eventNumber
    p.extend(number.to_le_bytes()); // eventValid
    p.extend_from_slice(payload);
    p
}

/// A polarity packet of `(x, y, p, timestamp)` events.
fn polarity(overflow: i32, events: &[(u32, u32, u32, i32)]) -> Vec<u8> {
    let payload: Vec<u8> = events
        .iter()
        .flat_map(|&(x, y, p, t)| {
            let data = (x << 17) | (y << 2) | (p << 1) | 1;
            data.to_le_bytes().into_iter().chain(t.to_le_bytes())
        })
        .collect();
    packet(1, 8, overflow, events.len() as i32, &payload)
}

/// A special-event packet (type 0), to be skipped: its "events" would decode out of range.
fn other_packet() -> Vec<u8> {
    packet(0, 8, 0, 2, &[0xFF; 16])
}

fn aedat(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut f = HEADER.as_bytes().to_vec();
    for p in packets {
        f.extend_from_slice(p);
    }
    f
}

/// user01 (train): gesture class 1 in [100, 200), class 11 in [200, 400), the latter also
/// holding events after a timestamp overflow. user24 (test): class 5 in [0, 1000).
fn write_gestures(dir: &Path, with_lists: bool) {
    let high = 1u64 << 31;
    let rec1 = aedat(&[
        polarity(
            0,
            &[
                (0, 0, 0, 50),
                (1, 2, 1, 100),
                (1, 2, 1, 110),
                (127, 127, 0, 150),
            ],
        ),
        other_packet(),
        polarity(
            0,
            &[
                (5, 6, 0, 199),
                (5, 6, 0, 200),
                (7, 8, 1, 250),
                (9, 9, 1, 300),
            ],
        ),
        polarity(1, &[(3, 4, 0, 10)]),
    ]);
    write(dir, "user01_led.aedat", &rec1);
    write(
        dir,
        "user01_led_labels.csv",
        format!(
            "class,startTime_usec,endTime_usec\r\n1,100,200\r\n11,200,{}\r\n",
            high + 11
        )
        .as_bytes(),
    );
    let rec2 = aedat(&[
        other_packet(),
        polarity(0, &[(64, 32, 1, 5), (64, 32, 1, 6)]),
    ]);
    write(dir, "user24_led.aedat", &rec2);
    write(
        dir,
        "user24_led_labels.csv",
        b"class,startTime_usec,endTime_usec\n5,0,1000\n",
    );
    if with_lists {
        write(dir, "trials_to_train.txt", b"user01_led.aedat\r\n\r\n");
        write(dir, "trials_to_test.txt", b"user24_led.aedat\n");
    }
}

fn batch(ds: &Dataset, i: usize) -> Vec<f32> {
    let mut out = Vec::new();
    ds.fill_batch(&[i], None, &mut out);
    out
}

const FRAME: usize = 2 * 128 * 128;
fn cell(x: usize, y: usize, p: usize) -> usize {
    p * 128 * 128 + y * 128 + x
}

#[test]
fn written_gesture_files() {
    for with_lists in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("DvsGesture");
        write_gestures(&dir, with_lists);
        for d in [tmp.path(), dir.as_path()] {
            let train = Dataset::load(DatasetKind::Dvs128, d, Split::Train, 2).unwrap();
            assert_eq!(train.labels(), &[0, 10]);
            assert_eq!(train.frames(), 2);
            assert_eq!(train.frame_shape(), [2, 128, 128]);
            // Gesture 0: events at t = 100, 110, 150, 199 (not 50, not 200).
            assert_eq!(train.event_count(0), Some(4));
            let g0 = batch(&train, 0);
            assert_eq!(g0.len(), 2 * FRAME);
            assert_eq!(g0[cell(1, 2, 1)], 2.0);
            assert_eq!(g0[FRAME + cell(127, 127, 0)], 1.0);
            assert_eq!(g0[FRAME + cell(5, 6, 0)], 1.0);
            assert_eq!(g0[cell(0, 0, 0)], 0.0);
            // Gesture 1: t = 200, 250, 300 and 2^31 + 10 (after the overflow).
            assert_eq!(train.event_count(1), Some(4));
            let g1 = batch(&train, 1);
            assert_eq!(g1[cell(5, 6, 0)], 1.0);
            assert_eq!(g1[cell(7, 8, 1)], 1.0);
            assert_eq!(g1[FRAME + cell(9, 9, 1)], 1.0);
            assert_eq!(g1[FRAME + cell(3, 4, 0)], 1.0);

            let test = Dataset::load(DatasetKind::Dvs128, d, Split::Test, 3).unwrap();
            assert_eq!(test.labels(), &[4]);
            let g = batch(&test, 0);
            // 2 events, 3 frames: di = 0, everything in the last frame.
            assert_eq!(g[2 * FRAME + cell(64, 32, 1)], 2.0);
            assert_eq!(g.iter().sum::<f32>(), 2.0);
        }
    }
}

#[test]
fn aedat_parsing() {
    let bytes = aedat(&[
        polarity(0, &[(127, 0, 1, 7)]),
        other_packet(),
        polarity(2, &[(0, 127, 0, 3)]),
    ]);
    let ev = parse_aedat(Path::new("r.aedat"), &bytes).unwrap();
    assert_eq!(
        ev,
        vec![
            Event {
                t: 7,
                x: 127,
                y: 0,
                p: 1
            },
            Event {
                t: (2 << 31) | 3,
                x: 0,
                y: 127,
                p: 0
            },
        ]
    );
    // Header only: no events.
    assert!(parse_aedat(Path::new("r"), HEADER.as_bytes())
        .unwrap()
        .is_empty());
}

#[test]
fn aedat_errors() {
    let name = Path::new("bad.aedat");
    let good = aedat(&[polarity(0, &[(1, 1, 1, 1), (2, 2, 0, 2)])]);
    let hdr = HEADER.len();

    let expect = |bytes: &[u8], offset: u64, needle: &str| {
        let err = parse_aedat(name, bytes).unwrap_err();
        match &err {
            DataError::Malformed { offset: o, .. } => assert_eq!(*o, offset, "{err}"),
            other => panic!("unexpected {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("bad.aedat") && msg.contains(needle), "{msg}");
    };
    expect(b"#!AER-DAT2.0\r\n", 0, "AER-DAT3.1");
    expect(b"#!AER-DAT3.1\r\n#x\r\n", 18, "END-HEADER");
    expect(b"#!AER-DAT3.1\r\nnot a header\r\n", 14, "END-HEADER");
    expect(b"#!AER-DAT3.1\r\n#!END-HEA", 14, "END-HEADER");
    // Truncated packet header and payload.
    expect(&good[..hdr + 20], hdr as u64, "28-byte packet header");
    expect(
        &good[..good.len() - 1],
        hdr as u64,
        "eventNumber * eventSize",
    );
    // Wrong polarity event size, negative event number.
    let mut bytes = aedat(&[packet(1, 4, 0, 1, &[0; 4])]);
    expect(&bytes, hdr as u64, "eventSize 8");
    bytes = aedat(&[packet(3, 8, 0, -1, &[])]);
    expect(&bytes, hdr as u64, "non-negative");
    // Huge sizes do not overflow.
    bytes = aedat(&[packet(3, i32::MAX, 0, i32::MAX, &[])]);
    expect(&bytes, hdr as u64, "bytes left");
    // Event out of the sensor: the second event.
    bytes = aedat(&[polarity(0, &[(1, 1, 1, 1), (128, 0, 0, 2)])]);
    expect(&bytes, (hdr + 28 + 8) as u64, "x=128");
}

#[test]
fn layout_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let err = Dataset::load(DatasetKind::Dvs128, dir, Split::Train, 4).unwrap_err();
    assert!(matches!(err, DataError::MissingFiles { .. }));
    assert!(err.to_string().contains("trials_to_train.txt"), "{err}");

    write_gestures(dir, true);
    std::fs::remove_file(dir.join("user24_led_labels.csv")).unwrap();
    let err = Dataset::load(DatasetKind::Dvs128, dir, Split::Test, 4).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().contains("user24_led_labels.csv"), "{err}");

    for bad in [
        "class,a,b\n12,0,5\n",
        "class,a,b\n0,0,5\n",
        "class,a,b\n1,0\n",
        "h\n1,x,5\n",
    ] {
        write(dir, "user24_led_labels.csv", bad.as_bytes());
        let err = Dataset::load(DatasetKind::Dvs128, dir, Split::Test, 4).unwrap_err();
        assert!(
            matches!(err, DataError::BadLine { line: 2, .. }),
            "{bad:?}: {err}"
        );
    }
    write(dir, "user24_led_labels.csv", b"class,a,b\n1,0,5\n");
    write(dir, "user24_led.aedat", &HEADER.as_bytes()[..20]);
    let err = Dataset::load(DatasetKind::Dvs128, dir, Split::Test, 4).unwrap_err();
    assert!(err.to_string().contains("user24_led.aedat"), "{err}");

    let err = Dataset::load(DatasetKind::Dvs128, dir, Split::Train, 0).unwrap_err();
    assert!(matches!(err, DataError::InvalidArgument(_)));
}

/// Gestures without events are named in a warning; a split whose gestures all lack events (a
/// header-only recording) is an error; a label row ending before it starts is a bad line.
#[test]
fn empty_gestures_and_reversed_windows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_gestures(dir, true);
    // user01's second window moved to a time without events
    write(
        dir,
        "user01_led_labels.csv",
        b"class,startTime_usec,endTime_usec\n1,100,200\n11,5000,6000\n",
    );
    let train = Dataset::load(DatasetKind::Dvs128, dir, Split::Train, 2).unwrap();
    assert_eq!(train.len(), 2);
    let w = train.warnings().join("\n");
    assert!(
        w.contains("1 of the 2 samples") && w.contains("user01_led.aedat (sample 2)"),
        "{w}"
    );
    // a header-only recording: no sample has events
    write(dir, "user01_led.aedat", HEADER.as_bytes());
    let err = Dataset::load(DatasetKind::Dvs128, dir, Split::Train, 2).unwrap_err();
    assert!(
        matches!(err, DataError::NoEvents { samples: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("no events"), "{err}");
    // start after end
    write(
        dir,
        "user01_led_labels.csv",
        b"class,startTime_usec,endTime_usec\n1,300,200\n",
    );
    let err = Dataset::load(DatasetKind::Dvs128, dir, Split::Train, 2).unwrap_err();
    assert!(matches!(err, DataError::BadLine { line: 2, .. }), "{err}");
    assert!(err.to_string().contains("start 300 after end 200"), "{err}");
}
