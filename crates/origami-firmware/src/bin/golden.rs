//! The firmware test: every embedded golden case through every algorithm, results over
//! semihosting, exit status 0 when all pass and 1 otherwise. No heap: the working memory is
//! two static arenas sized by the build script from `scratch_len`.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use origami_firmware::{ARENA_F32, ARENA_F64, CASE_COUNT, CASES, Failure, MAX_OUTPUT, run_case};
use panic_semihosting as _;

#[entry]
fn main() -> ! {
    let arena32 = cortex_m::singleton!(: [f32; ARENA_F32] = [0.0; ARENA_F32]).unwrap();
    let arena64 = cortex_m::singleton!(: [f64; ARENA_F64] = [0.0; ARENA_F64]).unwrap();
    let indices = cortex_m::singleton!(: [usize; MAX_OUTPUT] = [0; MAX_OUTPUT]).unwrap();
    hprintln!(
        "origami firmware: {} golden cases on Cortex-M4F, arenas {} x f32 + {} x f64",
        CASE_COUNT,
        ARENA_F32,
        ARENA_F64
    );
    let (mut passed, mut failed, mut checks) = (0u32, 0u32, 0u32);
    for case in CASES {
        match run_case(case, arena32, arena64, indices) {
            Ok(t) => {
                passed += 1;
                checks += t.passed;
                hprintln!(
                    "ok   {} ({} checks, {} variants not applicable)",
                    case.name,
                    t.passed,
                    t.skipped
                );
            }
            Err(f) => {
                failed += 1;
                match f {
                    Failure::Mismatch(what, permille) => hprintln!(
                        "FAIL {}: {} off by {} thousandths of the bound",
                        case.name,
                        what,
                        permille
                    ),
                    other => hprintln!("FAIL {}: {:?}", case.name, other),
                }
            }
        }
    }
    hprintln!(
        "{} passed, {} failed ({} comparisons)",
        passed,
        failed,
        checks
    );
    debug::exit(if failed == 0 {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {}
}
