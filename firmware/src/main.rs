//! lightsnn firmware (stub while the engine lands).
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
