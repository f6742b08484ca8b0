//! `lightsnn score --dump-codes DIR`: the spike codes behind a SAHD score, written so that the
//! score can be recomputed outside this crate (`tools/sahd-check.py` does it with numpy).
//!
//! # Format `lightsnn-codes/1`
//! - `DIR/manifest.json` ([`Manifest`]): the genotype, batch size `n`, the score (mean over the
//!   repeats of `ln |det K|`), each repeat's score, and one entry per (repeat, LIF layer,
//!   timestep) code set in recording order: layer name, timestep, `n_bits`, `words_per_code`,
//!   multiplicity and the file holding the codes.
//! - `DIR/r<R>/<I>.codes.npy` (`I` zero-padded to 3 digits): `uint64` little-endian (`<u8`),
//!   C order, shape `(n, words_per_code)`: sample `i`'s code is row `i`; bit `k` of the code is
//!   bit `k % 64` of word `k / 64`; bits at and past `n_bits` are 0. The bit order within a code
//!   is the engine's (the CPU engine stores positions channel-last); every sample uses the same
//!   order, so popcounts and Hamming distances, all the score reads, do not depend on it.
//! - `DIR/r<R>/kernel.npy`: `float64` (`<f8`), shape `(n, n)`: the kernel `K` of repeat `R`
//!   (docs/design.md, "The SAHD score"), `K_ij = sum_l m_l (n_l - 0.5 H_ij / (E_ij + 1e-3)) /
//!   sum_l m_l` over its code sets `l` with multiplicity `m_l`,
//!   `E_ij = (p_i + p_j) - 2 p_i p_j / n_l` from the popcounts `p`.
//!
//! The `.npy` files are NumPy format version 1.0 (`numpy.load` reads them); this module writes
//! and reads that one fixed layout itself (two dtypes, 2-D, C order): a general `.npy` crate
//! would bring a Python-literal parser for a ten-line header.

use super::score::Scorer;
use super::trace::CodeRecord;
use crate::fsutil::write_atomic;
use crate::model::{Mixing, Mode};
use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use snn_nostd::sahd::SahdKernel;
use std::path::Path;

/// Format tag of `manifest.json`.
pub const CODES_FORMAT: &str = "lightsnn-codes/1";

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";

/// One repeat (batch) of a dumped scoring.
#[derive(Clone, Debug)]
pub struct RepeatDump {
    /// Its code sets in recording order.
    pub records: Vec<CodeRecord>,
    /// The kernel `K`, `n x n` row-major.
    pub kernel: Vec<f64>,
    /// `ln |det K|`.
    pub score: f64,
}

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`CODES_FORMAT`].
    pub format: String,
    /// The scored genotype.
    pub genotype: String,
    /// Samples per batch.
    pub n: usize,
    /// The score: the mean of `repeat_scores`.
    pub score: f64,
    /// `ln |det K|` of each repeat.
    pub repeat_scores: Vec<f64>,
    /// The constant added to `E_ij` (1e-3).
    pub eps: f64,
    /// Every code set, repeat by repeat in recording order.
    pub records: Vec<RecordEntry>,
    /// Each repeat's kernel file, relative to the folder.
    pub kernels: Vec<String>,
    /// The lightsnn version that wrote the dump.
    pub version: String,
}

/// One code set in the manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordEntry {
    /// Repeat (0-based).
    pub repeat: usize,
    /// Position in the repeat's recording order (0-based).
    pub index: usize,
    /// Layer name: `cell<C>.node<J>`, `cell<C>.out` or `hidden`.
    pub layer: String,
    /// Timestep (0-based).
    pub t: usize,
    /// Bits per code.
    pub n_bits: usize,
    /// `u64` words per code.
    pub words_per_code: usize,
    /// Multiplicity.
    pub multiplicity: u32,
    /// The codes file, relative to the folder.
    pub file: String,
}

/// Scores `mixing` on `batches` like [`Scorer::sahd_score`] and keeps every code set and
/// kernel. The mean of the repeat scores equals `sahd_score`'s result bit for bit.
pub fn dump_score(
    scorer: &Scorer<'_>,
    mixing: &Mixing,
    batches: &[Tensor],
    mode: Mode,
) -> Result<Vec<RepeatDump>> {
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let n = b.dim(0)?;
        let mut buf = vec![0f64; n * n];
        let mut kernel = SahdKernel::new(n, &mut buf).context("SAHD kernel")?;
        let records = scorer.trace_batch(mixing, b, mode, &mut kernel)?;
        let mut k = vec![0f64; n * n];
        kernel.kernel(&mut k).context("SAHD kernel")?;
        let mut scratch = vec![0f64; n * n + n];
        let score = kernel.score(&mut scratch).context("SAHD log-det")?;
        out.push(RepeatDump {
            records,
            kernel: k,
            score,
        });
    }
    Ok(out)
}

/// The mean of the repeats' scores, as [`Scorer::sahd_score`] computes it.
pub fn mean_score(repeats: &[RepeatDump]) -> f64 {
    repeats.iter().map(|r| r.score).sum::<f64>() / repeats.len() as f64
}

/// Writes `repeats` to the folder `dir` in the [`CODES_FORMAT`] layout and returns the
/// manifest. The folder is built under a temporary name beside `dir` and renamed into place; an
/// existing `dir` is replaced only if it is an earlier dump (it holds a manifest of this
/// format), and refused otherwise.
pub fn write_dump(dir: &Path, genotype: &str, repeats: &[RepeatDump]) -> Result<Manifest> {
    let Some(first) = repeats.first() else {
        bail!("nothing to dump: no repeats");
    };
    let n = (first.kernel.len() as f64).sqrt() as usize;
    if dir.exists() && !is_dump(dir) {
        bail!(
            "{} exists and is not a lightsnn code dump (no {MANIFEST} of format {CODES_FORMAT}); choose another --dump-codes folder",
            dir.display()
        );
    }
    let tmp =
        crate::fsutil::temp_path(dir).with_context(|| format!("--dump-codes {}", dir.display()))?;
    if let Some(parent) = dir.parent().filter(|p| p.is_dir()) {
        crate::fsutil::clean_stale_temps(parent);
    }
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)
            .with_context(|| format!("cannot remove {}", tmp.display()))?;
    }
    let mut records = Vec::new();
    let mut kernels = Vec::new();
    for (r, rep) in repeats.iter().enumerate() {
        let sub = format!("r{r}");
        for (i, c) in rep.records.iter().enumerate() {
            let file = format!("{sub}/{i:03}.codes.npy");
            let bytes = npy_bytes(
                "<u8",
                (c.n, c.words_per_code),
                c.words.iter().flat_map(|w| w.to_le_bytes()),
            );
            write_atomic(&tmp.join(&file), &bytes)?;
            records.push(RecordEntry {
                repeat: r,
                index: i,
                layer: c.layer.to_string(),
                t: c.t,
                n_bits: c.n_bits,
                words_per_code: c.words_per_code,
                multiplicity: c.mult,
                file,
            });
        }
        let file = format!("{sub}/kernel.npy");
        let bytes = npy_bytes(
            "<f8",
            (n, n),
            rep.kernel.iter().flat_map(|v| v.to_le_bytes()),
        );
        write_atomic(&tmp.join(&file), &bytes)?;
        kernels.push(file);
    }
    let manifest = Manifest {
        format: CODES_FORMAT.to_string(),
        genotype: genotype.to_string(),
        n,
        score: mean_score(repeats),
        repeat_scores: repeats.iter().map(|r| r.score).collect(),
        eps: 1e-3,
        records,
        kernels,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    write_atomic(&tmp.join(MANIFEST), &serde_json::to_vec_pretty(&manifest)?)?;
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot replace the earlier dump {}", dir.display()))?;
    }
    std::fs::rename(&tmp, dir)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), dir.display()))?;
    Ok(manifest)
}

/// Whether `dir` holds a manifest of [`CODES_FORMAT`].
fn is_dump(dir: &Path) -> bool {
    std::fs::read(dir.join(MANIFEST))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| {
            v.get("format")
                .and_then(|f| f.as_str())
                .map(|f| f == CODES_FORMAT)
        })
        .unwrap_or(false)
}

/// A dump read back: the manifest, each record's words (manifest order) and each repeat's
/// kernel.
#[derive(Clone, Debug)]
pub struct ReadDump {
    /// The manifest.
    pub manifest: Manifest,
    /// Words of each manifest record (`n * words_per_code`).
    pub codes: Vec<Vec<u64>>,
    /// Each repeat's kernel, `n x n`.
    pub kernels: Vec<Vec<f64>>,
}

/// Reads a dump written by [`write_dump`]; every error names the file.
pub fn read_dump(dir: &Path) -> Result<ReadDump> {
    let mp = dir.join(MANIFEST);
    let text = std::fs::read(&mp).with_context(|| format!("cannot read {}", mp.display()))?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not a code-dump manifest", mp.display()))?;
    if manifest.format != CODES_FORMAT {
        bail!(
            "{}: format {:?}, expected {CODES_FORMAT:?}",
            mp.display(),
            manifest.format
        );
    }
    let n = manifest.n;
    let mut codes = Vec::with_capacity(manifest.records.len());
    for r in &manifest.records {
        let p = dir.join(&r.file);
        let bytes = read_npy(&p, "<u8", (n, r.words_per_code))?;
        codes.push(
            bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        );
    }
    let mut kernels = Vec::with_capacity(manifest.kernels.len());
    for f in &manifest.kernels {
        let bytes = read_npy(&dir.join(f), "<f8", (n, n))?;
        kernels.push(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        );
    }
    Ok(ReadDump {
        manifest,
        codes,
        kernels,
    })
}

/// The header dictionary of a 2-D C-order array.
fn npy_header(descr: &str, (rows, cols): (usize, usize)) -> String {
    format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}")
}

/// A `.npy` (format 1.0) file of a 2-D C-order array with the given little-endian bytes. The
/// header is padded with spaces and ends in `\n` so that the data starts at a multiple of 64.
fn npy_bytes(descr: &str, shape: (usize, usize), data: impl Iterator<Item = u8>) -> Vec<u8> {
    let mut header = npy_header(descr, shape);
    let unpadded = 10 + header.len() + 1;
    header.extend(std::iter::repeat_n(
        ' ',
        unpadded.next_multiple_of(64) - unpadded,
    ));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + shape.0 * shape.1 * 8);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(data);
    out
}

/// The data bytes of a `.npy` file written by [`npy_bytes`] with this dtype and shape.
fn read_npy(path: &Path, descr: &str, shape: (usize, usize)) -> Result<Vec<u8>> {
    let b = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if b.len() < 10 || &b[..8] != b"\x93NUMPY\x01\x00" {
        bail!("{}: not a .npy file of format 1.0", path.display());
    }
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = b
        .get(10..10 + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .with_context(|| format!("{}: truncated or unreadable header", path.display()))?;
    let want = npy_header(descr, shape);
    if header.trim_end() != want {
        bail!(
            "{}: header {:?}, expected {want:?}",
            path.display(),
            header.trim_end()
        );
    }
    let data = &b[10 + hlen..];
    let need = shape.0 * shape.1 * 8;
    if data.len() != need {
        bail!(
            "{}: {} data bytes, a {}x{} array of 8-byte values has {need}",
            path.display(),
            data.len(),
            shape.0,
            shape.1
        );
    }
    Ok(data.to_vec())
}
