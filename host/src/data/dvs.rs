//! DVS128 Gesture: AEDAT 3.1 recordings, 128x128 pixels, 2 polarities, 11 classes.
//!
//! Official layout (`DvsGesture/`): `userXX_<lighting>.aedat` recordings, each with
//! `userXX_<lighting>_labels.csv` (`class,startTime_usec,endTime_usec` header, then one row per
//! gesture, classes 1..11), and the split lists `trials_to_train.txt` / `trials_to_test.txt`
//! (one `.aedat` name a line). Without the split lists, users 1-23 are training and 24-29 test,
//! as in the official split. One labelled sample = the events with `start <= t < end`.
//!
//! AEDAT 3.1: ASCII header lines starting with `#` (the first `#!AER-DAT3.1`, the last
//! `#!END-HEADER`), then packets of a 28-byte little-endian header (eventType i16, eventSource
//! i16, eventSize i32, eventTSOffset i32, eventTSOverflow i32, eventCapacity i32, eventNumber
//! i32, eventValid i32) and `eventNumber * eventSize` bytes of events. Polarity events (type 1,
//! 8 bytes: u32 data, i32 timestamp) give `x = (data >> 17) & 0x1FFF`, `y = (data >> 2) &
//! 0x1FFF`, `p = (data >> 1) & 1`, `t = (eventTSOverflow << 31) | timestamp`. Packets of other
//! types are skipped. As in the reference (SpikingJelly), the validity bit is not consulted.

use std::path::{Path, PathBuf};

use super::error::{excerpt, read_file, read_text, require_dir};
use super::frames::Event;
use super::{DataError, Split};

/// Sensor side in pixels.
pub const SIDE: usize = 128;
/// Number of gesture classes.
const CLASSES: u16 = 11;
/// Gestures a recording holds at most in the official set (one of each class, one repeated);
/// sizes the memory check before framing.
pub(crate) const GESTURES_PER_RECORDING: usize = 12;
const PACKET_HEADER: usize = 28;
const POLARITY_EVENT: i16 = 1;
const POLARITY_EVENT_SIZE: usize = 8;
const END_HEADER: &[u8] = b"#!END-HEADER";

fn le_i32(b: &[u8], at: usize) -> i32 {
    i32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Skips the ASCII header; returns the offset of the first packet.
fn skip_header(name: &Path, bytes: &[u8]) -> Result<usize, DataError> {
    if !bytes.starts_with(b"#!AER-DAT3") {
        return Err(DataError::malformed(
            name,
            0,
            "not an AEDAT 3 file",
            "the first line #!AER-DAT3.1",
        ));
    }
    let mut pos = 0;
    loop {
        if bytes.get(pos) != Some(&b'#') {
            return Err(DataError::malformed(
                name,
                pos,
                "header ended without #!END-HEADER",
                "header lines starting with '#', the last being #!END-HEADER",
            ));
        }
        let Some(len) = bytes[pos..].iter().position(|&b| b == b'\n') else {
            return Err(DataError::malformed(
                name,
                pos,
                "unterminated header line",
                "header lines ending with a line feed, the last being #!END-HEADER",
            ));
        };
        let line = bytes[pos..pos + len]
            .strip_suffix(b"\r")
            .unwrap_or(&bytes[pos..pos + len]);
        pos += len + 1;
        if line == END_HEADER {
            return Ok(pos);
        }
    }
}

/// Parses one AEDAT 3.1 recording (named `name` in errors) into its polarity events, in file
/// order. Packets of other event types are skipped; truncated packets and events outside the
/// 128x128 sensor are errors.
pub fn parse_aedat(name: &Path, bytes: &[u8]) -> Result<Vec<Event>, DataError> {
    let mut pos = skip_header(name, bytes)?;
    let mut events = Vec::new();
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.len() < PACKET_HEADER {
            return Err(DataError::malformed(
                name,
                pos,
                format!("truncated packet header of {} bytes", rest.len()),
                format!("a {PACKET_HEADER}-byte packet header"),
            ));
        }
        let event_type = i16::from_le_bytes([rest[0], rest[1]]);
        let event_size = le_i32(rest, 4);
        let ts_overflow = le_i32(rest, 12);
        let event_number = le_i32(rest, 20);
        if event_size < 0 || event_number < 0 {
            return Err(DataError::malformed(
                name,
                pos,
                format!("eventSize {event_size}, eventNumber {event_number}"),
                "non-negative eventSize and eventNumber",
            ));
        }
        let (size, number) = (event_size as usize, event_number as usize);
        let payload = size
            .checked_mul(number)
            .filter(|&n| n <= rest.len() - PACKET_HEADER);
        let Some(payload) = payload else {
            return Err(DataError::malformed(
                name,
                pos,
                format!(
                    "packet of {number} events of {size} bytes but only {} bytes left",
                    rest.len() - PACKET_HEADER
                ),
                "eventNumber * eventSize bytes of events after the packet header",
            ));
        };
        let data_at = pos + PACKET_HEADER;
        if event_type == POLARITY_EVENT {
            if size != POLARITY_EVENT_SIZE {
                return Err(DataError::malformed(
                    name,
                    pos,
                    format!("polarity packet with eventSize {size}"),
                    format!("eventSize {POLARITY_EVENT_SIZE} for polarity events (type 1)"),
                ));
            }
            let high = (ts_overflow as u32 as u64) << 31;
            events.reserve(number);
            let data = &bytes[data_at..data_at + payload];
            for (i, e) in data.chunks_exact(POLARITY_EVENT_SIZE).enumerate() {
                let word = le_i32(e, 0) as u32;
                let ts = le_i32(e, 4) as u32 as u64;
                let x = (word >> 17) & 0x1FFF;
                let y = (word >> 2) & 0x1FFF;
                if x as usize >= SIDE || y as usize >= SIDE {
                    return Err(DataError::malformed(
                        name,
                        data_at + i * POLARITY_EVENT_SIZE,
                        format!("polarity event at x={x}, y={y}"),
                        format!("x and y below {SIDE}"),
                    ));
                }
                events.push(Event {
                    t: high | ts,
                    x: x as u16,
                    y: y as u16,
                    p: ((word >> 1) & 1) as u8,
                });
            }
        }
        pos = data_at + payload;
    }
    Ok(events)
}

/// One labelled gesture of a recording: label 0..10 and the time window `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gesture {
    pub label: u16,
    pub start: u64,
    pub end: u64,
}

/// Parses a `*_labels.csv` file (named `name` in errors).
pub(crate) fn parse_labels(name: &Path, text: &str) -> Result<Vec<Gesture>, DataError> {
    let expected = "`class,startTime_usec,endTime_usec` with class 1..11";
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (i == 0 && line.starts_with(|c: char| c.is_ascii_alphabetic())) {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let parsed = match fields[..] {
            [c, s, e] => c
                .parse::<u16>()
                .ok()
                .zip(s.parse::<u64>().ok())
                .zip(e.parse::<u64>().ok()),
            _ => None,
        };
        match parsed {
            Some(((_, start), end)) if start > end => {
                return Err(DataError::bad_line(
                    name,
                    i + 1,
                    format!("start {start} after end {end} in {}", excerpt(line)),
                    "startTime_usec <= endTime_usec",
                ))
            }
            Some(((class, start), end)) if (1..=CLASSES).contains(&class) => out.push(Gesture {
                label: class - 1,
                start,
                end,
            }),
            _ => return Err(DataError::bad_line(name, i + 1, excerpt(line), expected)),
        }
    }
    Ok(out)
}

/// The recordings of `split` under `dir` (the `DvsGesture` folder itself or a folder holding
/// it): from the trial list if present, else by user number.
pub(crate) fn split_files(dir: &Path, split: Split) -> Result<Vec<PathBuf>, DataError> {
    require_dir(dir)?;
    let nested = dir.join("DvsGesture");
    let dir = if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    };
    let list = dir.join(match split {
        Split::Train => "trials_to_train.txt",
        Split::Test => "trials_to_test.txt",
    });
    let files: Vec<PathBuf> = if list.is_file() {
        read_text(&list)?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| dir.join(l.rsplit(['/', '\\']).next().unwrap_or(l)))
            .collect()
    } else {
        let entries = std::fs::read_dir(&dir).map_err(|e| DataError::io(&dir, e))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| DataError::io(&dir, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let user = name
                .strip_prefix("user")
                .and_then(|r| r.split('_').next())
                .and_then(|u| u.parse::<u32>().ok());
            if let (Some(user), true) = (user, name.ends_with(".aedat")) {
                if (user <= 23) == (split == Split::Train) {
                    files.push(path);
                }
            }
        }
        files.sort();
        files
    };
    if files.is_empty() {
        return Err(DataError::missing(
            &dir,
            format!(
                "no DVS128 Gesture {split} recordings (userXX_<lighting>.aedat with \
                 userXX_<lighting>_labels.csv, listed in {})",
                list.file_name().and_then(|n| n.to_str()).unwrap_or("")
            ),
        ));
    }
    Ok(files)
}

/// The labels file belonging to a recording.
pub(crate) fn labels_path(aedat: &Path) -> PathBuf {
    let stem = aedat.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    aedat.with_file_name(format!("{stem}_labels.csv"))
}

/// Reads one recording and its labels: the events and the gestures.
pub(crate) fn read_recording(aedat: &Path) -> Result<(Vec<Event>, Vec<Gesture>), DataError> {
    let labels_file = labels_path(aedat);
    let gestures = parse_labels(&labels_file, &read_text(&labels_file)?)?;
    let events = parse_aedat(aedat, &read_file(aedat)?)?;
    Ok((events, gestures))
}
