//! Why the engine refused to run.

use core::fmt;

/// Why the engine refused to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EngineError {
    /// A scratch arena is smaller than [`buffer_sizes`](super::buffer_sizes) requires.
    BufferTooSmall {
        /// `act`, `acc` or `bits`.
        buffer: &'static str,
        /// Elements required.
        needed: usize,
        /// Elements given.
        got: usize,
    },
    /// [`Engine::infer_staged`](super::Engine::infer_staged) on a model whose input the engine cannot hold (event input, or
    /// a frame larger than a node buffer).
    NoStagedInput,
    /// An input slice has the wrong length.
    InputLength {
        /// Elements expected.
        expected: usize,
        /// Elements given.
        got: usize,
    },
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::BufferTooSmall {
                buffer,
                needed,
                got,
            } => write!(
                f,
                "engine buffer `{buffer}` too small: needs {needed} elements, got {got}"
            ),
            EngineError::NoStagedInput => {
                f.write_str("this model's input cannot be staged in the engine's buffers")
            }
            EngineError::InputLength { expected, got } => {
                write!(f, "input has {got} elements, expected {expected}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EngineError {}
