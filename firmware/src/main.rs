//! lightsnn firmware: integer SNN inference of embedded CIFAR-10 images on a Cortex-M4F/M7F,
//! logged with defmt (see `firmware/README.md`).
//!
//! Built for `thumbv7em-none-eabihf` it is `no_std`/`no_main` (the device code is in
//! `device.rs`); on the host it is a stub that explains how to build it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod device;

/// Host stand-in: the firmware only runs on `thumbv7em-none-eabihf`.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "lightsnn firmware: build it for the microcontroller target, e.g.\n  \
         cargo run -p firmware --release --target thumbv7em-none-eabihf"
    );
}
