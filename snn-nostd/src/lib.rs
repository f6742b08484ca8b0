//! `snn-nostd`: the allocation-free core of lightsnn.
//!
//! Everything that both the host (search, training, export) and the microcontroller need lives
//! here, written once:
//! - [`genotype`]: the operation set, the 12 cell edges in canonical order, cell types and
//!   genotypes, with parsing and printing.
//! - [`dataset`]: the datasets, their input kinds, sizes and classes.
//! - [`bits`]: bit-packed spike codes and popcount Hamming distance.
//! - [`pairwise`]: all-pairs Hamming distances, cache-tiled, with AVX2 / AVX-512 dispatch.
//! - [`sahd`]: the sparsity-aware Hamming distance (SAHD) kernel and its log-determinant score.
//! - [`logdet`]: f64 natural log and log-determinants (LU, rank-one split) without `std`.
//! - [`model`]: the quantised model blob (postcard, magic, version, CRC-32), zero-copy decoding.
//! - [`observer`]: the spike-observer interface every forward pass reports through.
//! - [`engine`]: event-driven fixed-point inference of a decoded model.
//! - [`shape`]: the network's shape, one type for the host and the device.
//! - [`skeleton`]: the network's shape rules and neuron constants, shared with the host.
//! - [`rng`]: the SplitMix64 generator, for seeds and test data.
//! - [`simd`]: two-lane 16-bit DSP instructions (`SXTAB16`, `SMLAD`) with a portable fallback.
//! - `testutil` (feature `testutil`): random test models for the engine's and the firmware's
//!   tests.
//!
//! The crate is `#![no_std]` and never allocates: callers provide every buffer (the `alloc`
//! feature adds blob encoding for the host).
#![no_std]
#![deny(missing_docs)]

#[cfg(any(test, feature = "alloc"))]
extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod bits;
pub mod crc32;
pub mod dataset;
pub mod engine;
pub mod error;
pub mod genotype;
pub mod logdet;
pub mod model;
pub mod observer;
pub mod pairwise;
pub mod rng;
pub mod sahd;
pub mod shape;
pub mod simd;
pub mod skeleton;
#[cfg(any(test, feature = "testutil"))]
pub mod testutil;

pub use sahd::{Distance, SahdError, SahdKernel};
