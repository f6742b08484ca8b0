//! The error of the SAHD kernel, the bit packing and the log-determinant: its own module, so that
//! `bits`, `pairwise`, `logdet` and `sahd` all use it without importing each other.

use core::fmt;

/// Why a SAHD, bit-packing or log-determinant call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SahdError {
    /// A caller buffer is too short.
    BufferTooSmall {
        /// Elements needed.
        needed: usize,
        /// Elements given.
        got: usize,
    },
    /// An input slice has the wrong length.
    LengthMismatch {
        /// The length expected.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// A batch of zero codes.
    EmptyBatch,
    /// A code of zero bits (its spike rate is undefined).
    ZeroBits,
    /// `words_per_code` is smaller than `words_for(n_bits)`.
    TooFewWords {
        /// Words a code of `n_bits` needs.
        needed: usize,
        /// `words_per_code` given.
        got: usize,
    },
    /// Code `row` has a bit set at or beyond `n_bits`.
    NonZeroPadding {
        /// The offending code (sample) index.
        row: usize,
    },
    /// A given popcount (`i == j`) or Hamming distance (`i < j`) is impossible: above `n_bits`,
    /// or inconsistent with the two popcounts.
    CountOutOfRange {
        /// First code index.
        i: usize,
        /// Second code index (`== i` for a popcount).
        j: usize,
    },
    /// The score was asked for before any pair was accumulated.
    NoPairs,
    /// A matrix entry or constant is NaN or infinite.
    NonFinite,
    /// A size or count does not fit its integer type.
    Overflow,
    /// A bit index past the end of a code.
    IndexOutOfRange {
        /// The index.
        index: usize,
        /// The code's length in bits.
        len: usize,
    },
}

impl fmt::Display for SahdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SahdError::BufferTooSmall { needed, got } => {
                write!(f, "buffer too small: needs {needed} elements, got {got}")
            }
            SahdError::LengthMismatch { expected, found } => {
                write!(f, "wrong input length: expected {expected}, found {found}")
            }
            SahdError::EmptyBatch => {
                f.write_str("the SAHD kernel needs at least one code per batch")
            }
            SahdError::ZeroBits => f.write_str("a spike code has zero bits"),
            SahdError::TooFewWords { needed, got } => write!(
                f,
                "words per code too small: the codes need {needed} words, got {got}"
            ),
            SahdError::NonZeroPadding { row } => {
                write!(f, "code {row} has bits set beyond its length")
            }
            SahdError::CountOutOfRange { i, j } if i == j => {
                write!(f, "popcount of code {i} is larger than the code length")
            }
            SahdError::CountOutOfRange { i, j } => write!(
                f,
                "Hamming distance of codes {i} and {j} is impossible for their length and popcounts"
            ),
            SahdError::NoPairs => f.write_str("no (layer, timestep) pair accumulated yet"),
            SahdError::NonFinite => f.write_str("a matrix entry is NaN or infinite"),
            SahdError::Overflow => f.write_str("a size or count overflows"),
            SahdError::IndexOutOfRange { index, len } => {
                write!(f, "bit {index} is past the end of a {len}-bit code")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SahdError {}
