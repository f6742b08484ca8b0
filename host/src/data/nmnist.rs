//! N-MNIST: 34x34 pixels, 2 polarities, 10 classes.
//!
//! Event files hold 5 bytes per event, big-endian packed 40 bits: x (8 bits), y (8 bits),
//! polarity (1 bit), timestamp in microseconds (23 bits). Two folder layouts are read:
//!
//! * the `nmnist-small` layout: `<id>.bs2` files plus the label lists `train1K.txt` (training
//!   split) and `test100.txt` (test split), each a header line then `id<TAB>class` lines;
//! * the official layout of the full set: `Train/<digit>/<id>.bin`, `Test/<digit>/<id>.bin`.

use std::path::{Path, PathBuf};

use super::error::{excerpt, read_file, read_text, require_dir};
use super::frames::Event;
use super::{DataError, Split};

/// Sensor side in pixels.
pub const SIDE: usize = 34;
/// Bytes per event.
const EVENT_BYTES: usize = 5;
/// A `y` of 240 marks a timestamp overflow in the original recordings (as the official
/// MATLAB/Python readers handle it): not an event, later timestamps gain 2^13 us.
const OVERFLOW_Y: u8 = 240;
const OVERFLOW_INCREMENT: u64 = 1 << 13;

/// Parses the bytes of one N-MNIST event file (named `name` in errors).
///
/// Errors if the length is not a multiple of 5 or an event lies outside the 34x34 sensor.
/// Timestamp-overflow markers (`y == 240`) are skipped, as in the official readers.
pub fn parse_events(name: &Path, bytes: &[u8]) -> Result<Vec<Event>, DataError> {
    let whole = bytes.len() / EVENT_BYTES * EVENT_BYTES;
    if whole != bytes.len() {
        return Err(DataError::malformed(
            name,
            whole,
            format!(
                "truncated event: {} bytes left over ({} bytes in file)",
                bytes.len() - whole,
                bytes.len()
            ),
            format!("events of {EVENT_BYTES} bytes"),
        ));
    }
    let mut events = Vec::with_capacity(bytes.len() / EVENT_BYTES);
    let mut overflow = 0u64;
    for (i, e) in bytes.chunks_exact(EVENT_BYTES).enumerate() {
        let (x, y) = (e[0], e[1]);
        if y == OVERFLOW_Y {
            overflow += OVERFLOW_INCREMENT;
            continue;
        }
        if x as usize >= SIDE || y as usize >= SIDE {
            return Err(DataError::malformed(
                name,
                i * EVENT_BYTES,
                format!("event {i} at x={x}, y={y}"),
                format!("x and y below {SIDE}"),
            ));
        }
        let t = ((e[2] as u64 & 0x7F) << 16) | ((e[3] as u64) << 8) | e[4] as u64;
        events.push(Event {
            t: t + overflow,
            x: x as u16,
            y: y as u16,
            p: e[2] >> 7,
        });
    }
    Ok(events)
}

/// A sample file and its label.
pub(crate) type Labelled = (PathBuf, u16);

/// Lists the sample files of `split` under `dir`, in either layout.
pub(crate) fn split_files(dir: &Path, split: Split) -> Result<Vec<Labelled>, DataError> {
    require_dir(dir)?;
    let (list, official) = match split {
        Split::Train => ("train1K.txt", "Train"),
        Split::Test => ("test100.txt", "Test"),
    };
    let list_path = dir.join(list);
    if list_path.is_file() {
        return read_label_list(dir, &list_path);
    }
    let official_dir = dir.join(official);
    if official_dir.is_dir() {
        return official_files(&official_dir);
    }
    Err(DataError::missing(
        dir,
        format!(
            "no N-MNIST {split} split: expected the label list {list} (with <id>.bs2 files) \
             or the official folder {official}/<digit>/<id>.bin"
        ),
    ))
}

/// Reads a label list (`header`, then `id<TAB>class` lines).
fn read_label_list(dir: &Path, path: &Path) -> Result<Vec<Labelled>, DataError> {
    let text = read_text(path)?;
    let expected = "`<id><TAB><class>` with a numeric id and a class 0..9";
    let mut out = Vec::new();
    // the line of each id seen (a repeated id would count one sample twice)
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (i == 0 && line.starts_with('#')) {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [id, class] = fields[..] else {
            return Err(DataError::bad_line(
                path,
                i + 1,
                format!("{} fields in {}", fields.len(), excerpt(line)),
                expected,
            ));
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DataError::bad_line(
                path,
                i + 1,
                format!("id {id:?}"),
                expected,
            ));
        }
        let label = match class.parse::<u16>() {
            Ok(c) if c < 10 => c,
            _ => {
                return Err(DataError::bad_line(
                    path,
                    i + 1,
                    format!("class {class:?}"),
                    expected,
                ))
            }
        };
        // the same id names the same file (`<id>.bs2`)
        if let Some(first) = seen.insert(id.to_string(), i + 1) {
            return Err(DataError::bad_line(
                path,
                i + 1,
                format!("id {id} repeats line {first}"),
                "each id once",
            ));
        }
        let file = dir.join(format!("{id}.bs2"));
        if !file.is_file() {
            return Err(DataError::bad_line(
                path,
                i + 1,
                format!("id {id} has no file {}", file.display()),
                "an <id>.bs2 file beside the list for every id",
            ));
        }
        out.push((file, label));
    }
    if out.is_empty() {
        return Err(DataError::missing(
            dir,
            format!(
                "no samples listed in {}",
                path.file_name().unwrap_or_default().to_string_lossy()
            ),
        ));
    }
    Ok(out)
}

/// Lists `<dir>/<digit>/*.bin`, ordered by digit then numeric id.
fn official_files(dir: &Path) -> Result<Vec<Labelled>, DataError> {
    let mut out = Vec::new();
    for digit in 0..10u16 {
        let sub = dir.join(digit.to_string());
        if !sub.is_dir() {
            continue;
        }
        let entries = std::fs::read_dir(&sub).map_err(|e| DataError::io(&sub, e))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| DataError::io(&sub, e))?.path();
            if path.extension().is_some_and(|e| e == "bin") && path.is_file() {
                let id = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.parse::<u64>().ok());
                files.push((id, path));
            }
        }
        files.sort();
        out.extend(files.into_iter().map(|(_, p)| (p, digit)));
    }
    if out.is_empty() {
        return Err(DataError::missing(
            dir,
            "no N-MNIST event files (<digit>/<id>.bin)",
        ));
    }
    Ok(out)
}

/// Reads the events of one sample file.
pub(crate) fn read_events(path: &Path) -> Result<Vec<Event>, DataError> {
    let bytes = read_file(path)?;
    parse_events(path, &bytes)
}
