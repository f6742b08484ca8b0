//! CIFAR-10 / CIFAR-100, binary version.
//!
//! * CIFAR-10 (`cifar-10-batches-bin`): records of 1 label byte + 3072 pixel bytes (R, G, B
//!   planes of 32x32, row-major); training = `data_batch_1.bin` .. `data_batch_5.bin` (whichever
//!   exist), test = `test_batch.bin`.
//! * CIFAR-100 (`cifar-100-binary`): records of 1 coarse label byte, 1 fine label byte, 3072
//!   pixel bytes; `train.bin`, `test.bin`.

use std::path::{Path, PathBuf};

use super::error::{read_file, require_dir};
use super::{DataError, DatasetKind, Split};

/// Pixel bytes of one image.
pub(crate) const IMAGE_BYTES: usize = 3 * 32 * 32;

/// Labels and pixels of CIFAR records, as parsed.
#[derive(Debug, Default)]
pub(crate) struct Records {
    /// Label of each image (CIFAR-100: fine label).
    pub labels: Vec<u16>,
    /// CIFAR-100 coarse label of each image (empty for CIFAR-10).
    pub coarse: Vec<u16>,
    /// `IMAGE_BYTES` per image.
    pub pixels: Vec<u8>,
}

/// Label bytes in front of each record, and the classes each label byte may take.
fn label_layout(kind: DatasetKind) -> Result<&'static [(&'static str, u8)], DataError> {
    match kind {
        DatasetKind::Cifar10 => Ok(&[("label", 10)]),
        DatasetKind::Cifar100 => Ok(&[("coarse label", 20), ("fine label", 100)]),
        other => Err(DataError::InvalidArgument(format!(
            "{other} is not a CIFAR dataset; CIFAR binary files hold cifar10 or cifar100"
        ))),
    }
}

/// Parses the bytes of one CIFAR binary file (named `name` in errors), appending to `out`.
/// On error `out` may hold part of the file.
pub(crate) fn parse_into(
    kind: DatasetKind,
    name: &Path,
    bytes: &[u8],
    out: &mut Records,
) -> Result<(), DataError> {
    let layout = label_layout(kind)?;
    let record = layout.len() + IMAGE_BYTES;
    let whole = bytes.len() / record * record;
    if whole != bytes.len() {
        return Err(DataError::malformed(
            name,
            whole,
            format!(
                "truncated record: {} bytes left over after {} whole records ({} bytes in file)",
                bytes.len() - whole,
                bytes.len() / record,
                bytes.len()
            ),
            format!(
                "records of {record} bytes ({} + {IMAGE_BYTES} pixel bytes)",
                if layout.len() == 1 {
                    "1 label byte"
                } else {
                    "2 label bytes"
                }
            ),
        ));
    }
    let n = bytes.len() / record;
    out.labels.reserve(n);
    out.pixels.reserve(n * IMAGE_BYTES);
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        for (j, &(what, classes)) in layout.iter().enumerate() {
            if rec[j] >= classes {
                return Err(DataError::malformed(
                    name,
                    i * record + j,
                    format!("{what} {} in record {i}", rec[j]),
                    format!("a {what} below {classes}"),
                ));
            }
        }
        let label = rec[layout.len() - 1] as u16;
        out.labels.push(label);
        if layout.len() == 2 {
            out.coarse.push(rec[0] as u16);
        }
        out.pixels.extend_from_slice(&rec[layout.len()..]);
    }
    Ok(())
}

/// The files of `split` under `dir` (the batches folder itself, or a folder containing it).
pub(crate) fn split_files(
    kind: DatasetKind,
    dir: &Path,
    split: Split,
) -> Result<Vec<PathBuf>, DataError> {
    require_dir(dir)?;
    let (sub, title) = match kind {
        DatasetKind::Cifar10 => ("cifar-10-batches-bin", "CIFAR-10"),
        _ => ("cifar-100-binary", "CIFAR-100"),
    };
    let nested = dir.join(sub);
    let dir = if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    };
    let (names, expected): (Vec<String>, String) = match (kind, split) {
        (DatasetKind::Cifar10, Split::Train) => (
            (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
            format!("no {title} training batches (data_batch_1.bin .. data_batch_5.bin)"),
        ),
        (DatasetKind::Cifar10, Split::Test) => (
            vec!["test_batch.bin".into()],
            format!("no {title} test batch (test_batch.bin)"),
        ),
        (_, Split::Train) => (
            vec!["train.bin".into()],
            format!("no {title} training file (train.bin)"),
        ),
        (_, Split::Test) => (
            vec!["test.bin".into()],
            format!("no {title} test file (test.bin)"),
        ),
    };
    let files: Vec<PathBuf> = names
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.is_file())
        .collect();
    if files.is_empty() {
        return Err(DataError::missing(&dir, expected));
    }
    Ok(files)
}

/// Reads and parses all files of `split`.
pub(crate) fn load(kind: DatasetKind, dir: &Path, split: Split) -> Result<Records, DataError> {
    label_layout(kind)?;
    let mut records = Records::default();
    for path in split_files(kind, dir, split)? {
        let bytes = read_file(&path)?;
        parse_into(kind, &path, &bytes, &mut records)?;
    }
    Ok(records)
}
