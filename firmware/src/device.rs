//! Device side.
use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::debug;

#[cfg(all(feature = "semihosting", feature = "rtt"))]
compile_error!("enable exactly one defmt transport: `semihosting` (QEMU) or `rtt` (boards)");
#[cfg(not(any(feature = "semihosting", feature = "rtt")))]
compile_error!("enable one defmt transport: `semihosting` (QEMU) or `rtt` (boards)");
#[cfg(feature = "rtt")]
use defmt_rtt as _;
#[cfg(feature = "semihosting")]
use defmt_semihosting as _;

/// A value aligned to 8 bytes.
#[repr(C, align(8))]
pub struct Aligned<T: ?Sized>(pub T);

mod assets {
    use super::Aligned;
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

#[entry]
fn main() -> ! {
    let blob: &[u8] = &assets::MODEL.0;
    let images: &[u8] = assets::IMAGES;
    defmt::println!(
        "blob {=usize} bytes, images {=usize} bytes",
        blob.len(),
        images.len()
    );
    let spikes = [1u32, 2, 3];
    defmt::println!(
        "image {=usize} label {=u8} pred {=u8} sar_ppm {=u32} spikes {=[?]}",
        0,
        images[0],
        3,
        1234,
        &spikes[..]
    );
    debug::exit(debug::EXIT_SUCCESS);
    loop {}
}

#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    defmt::error!("HardFault at pc {=u32:#010x}", ef.pc());
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    defmt::error!("panic: {}", defmt::Display2Format(info));
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}
