//! `lightsnn-tools`: host-side helpers for the lightsnn firmware.
//!
//! - [`qemu`]: run the firmware ELF under `qemu-system-arm` (semihosting, `-icount shift=0`);
//! - [`defmt_log`]: decode its defmt stream with the ELF's defmt table (`defmt-decoder`);
//! - [`report`]: parse the per-image result lines into structured records;
//! - [`elf`], [`icount`]: function address ranges and exact instruction counts with the
//!   `qemu-icount` TCG plugin;
//! - [`firmware`]: build the firmware with a given model blob and image set;
//! - [`mod@reference`]: the host integer reference (the same `snn-nostd` engine on the host);
//! - [`testblob`]: random test models in the blob format;
//! - [`e2e`]: the whole check: build, run under QEMU, decode, compare with the reference, count
//!   instructions.
#![deny(missing_docs)]

pub mod defmt_log;
pub mod e2e;
pub mod elf;
pub mod firmware;
pub mod icount;
pub mod qemu;
pub mod reference;
pub mod report;
pub mod sar;
pub mod testblob;

/// Size of one CIFAR-10 binary record (label byte + 3 x 32 x 32 pixels).
pub const CIFAR_RECORD: usize = 1 + 3072;
