//! Code-size probe: the runtime alone (the baseline subtracted from the other probes).
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::debug;
use panic_semihosting as _;

#[entry]
fn main() -> ! {
    let x = core::hint::black_box(1.0f32);
    debug::exit(if x > 0.0 {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {}
}
