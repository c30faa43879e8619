//! Code-size probe: 2-D `f32` pooling, every kind and algorithm, forward and backward.
#![no_std]
#![no_main]

use core::hint::black_box;
use cortex_m_rt::entry;
use cortex_m_semihosting::debug;
use origami_kernels::{PoolAlgorithm, PoolKind, PoolOp, PoolSpec};
use panic_semihosting as _;

#[entry]
fn main() -> ! {
    let n = black_box(4usize);
    let Ok(pool) = PoolSpec::new(1, 2, [n, n], [2, 2]).build() else {
        debug::exit(debug::EXIT_FAILURE);
        loop {}
    };
    let x = [0.5f32; 32];
    let mut y = [0.0f32; 8];
    let mut idx = [0usize; 8];
    let mut dx = [0.0f32; 32];
    let mut s = [0.0f32; 16384];
    let mut ok = true;
    for kind in black_box(PoolKind::ALL) {
        for algo in black_box(PoolAlgorithm::ALL) {
            let len = pool.scratch_len::<f32>(kind, PoolOp::Forward, algo);
            ok &= pool
                .forward(
                    kind,
                    algo,
                    &x[..pool.input_len()],
                    &mut y[..pool.output_len()],
                    Some(&mut idx[..pool.output_len()]),
                    &mut s[..len],
                )
                .is_ok();
            ok &= pool
                .backward(
                    kind,
                    algo,
                    &y[..pool.output_len()],
                    Some(&idx[..pool.output_len()]),
                    &mut dx[..pool.input_len()],
                    &mut s,
                )
                .is_ok();
        }
    }
    black_box((&y, &dx));
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {}
}
