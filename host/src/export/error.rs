//! Why an export failed ([`ExportError`]): one error type for the converter, the calibration,
//! the quantiser, the board check and the integer run.

use snn_nostd::engine::EngineError;
use snn_nostd::model::{check_shape, DecodeError, EncodeError};
use snn_nostd::shape::Shape;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The float network's shapes are inconsistent.
    #[error("float network shape error: {0}")]
    Shape(String),
    /// The model blob (and the integer engine) cannot express a part of the network yet.
    #[error(
        "the model blob format does not support {0} yet; export this network with --format nir"
    )]
    Unsupported(String),
    /// A value cannot be represented in the fixed-point formats.
    #[error("quantisation range error: {0}")]
    Range(String),
    /// No calibration inputs were given.
    #[error("quantisation needs at least one calibration input")]
    NoCalibration,
    /// The float network's forward pass (calibration) failed.
    #[error("float forward pass: {0:#}")]
    Forward(anyhow::Error),
    /// A calibration input has the wrong length.
    #[error("input has {got} values, expected {expected}")]
    InputLength {
        /// Expected values.
        expected: usize,
        /// Given values.
        got: usize,
    },
    /// The quantised model could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A blob could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The integer engine refused to run.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The model does not fit the board.
    #[error(
        "model does not fit {board}: needs {need} bytes of {resource} ({need_kib:.1} KiB, \
         including {reserve} bytes reserved for the firmware), the board has {have} \
         ({have_kib:.1} KiB)",
        need_kib = *need as f64 / 1024.0,
        have_kib = *have as f64 / 1024.0
    )]
    DoesNotFit {
        /// Board name.
        board: &'static str,
        /// `flash` or `RAM`.
        resource: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes reserved for code / stack within `need`.
        reserve: usize,
        /// Bytes the board has.
        have: usize,
    },
    /// No size that a board sizing may choose fits (or the sizes given do not).
    #[error("{sizes} cannot fit: {cause}")]
    NoSizeFits {
        /// The sizes tried last (the smallest), e.g. `C1/C2 4/8, H 16, T 5`.
        sizes: String,
        /// Why they do not fit (a [`ExportError::DoesNotFit`]).
        cause: Box<ExportError>,
    },
    /// An unknown board name.
    #[error("unknown board `{0}` (known: stm32f411, stm32f746, nrf52840, stm32h743)")]
    UnknownBoard(String),
    /// File I/O failed.
    #[error("I/O error")]
    Io(#[from] std::io::Error),
}

/// `shape` if the model blob can hold it ([`check_shape`]: the blob's limits), else an
/// [`ExportError::Shape`] naming the size out of range.
pub(crate) fn blob_shape(shape: &Shape) -> Result<Shape, ExportError> {
    check_shape(shape).map(|()| *shape).map_err(|e| {
        ExportError::Shape(format!("the model blob cannot hold this network: {}", e.0))
    })
}
