//! Code-size probe: 2-D `f32` convolution, forward and the three gradients, every
//! algorithm, with sizes only known at run time (so nothing is constant-folded away).
#![no_std]
#![no_main]

use core::hint::black_box;
use cortex_m_rt::entry;
use cortex_m_semihosting::debug;
use origami_kernels::{ConvAlgorithm, ConvOp, ConvSpec};
use panic_semihosting as _;

#[entry]
fn main() -> ! {
    let n = black_box(4usize);
    let Ok(conv) = ConvSpec::new(1, 2, 2, [n, n], [3, 3])
        .with_padding([1, 1])
        .build()
    else {
        debug::exit(debug::EXIT_FAILURE);
        loop {}
    };
    let x = [0.5f32; 32];
    let w = [0.25f32; 36];
    let mut y = [0.0f32; 32];
    let mut g = [0.0f32; 36];
    let mut b = [0.0f32; 2];
    let mut s = [0.0f32; 16384];
    let mut ok = true;
    for algo in black_box([ConvAlgorithm::Direct, ConvAlgorithm::Unrolled]) {
        let len = conv.scratch_len::<f32>(ConvOp::Forward, algo);
        ok &= conv
            .forward(
                algo,
                &x[..conv.input_len()],
                &w[..conv.weight_len()],
                None,
                &mut y[..conv.output_len()],
                &mut s[..len],
            )
            .is_ok();
        ok &= conv
            .backward_input(
                algo,
                &y[..conv.output_len()],
                &w[..conv.weight_len()],
                &mut g[..conv.input_len()],
                &mut s,
            )
            .is_ok();
        ok &= conv
            .backward_weight(
                algo,
                &x[..conv.input_len()],
                &y[..conv.output_len()],
                &mut g[..conv.weight_len()],
                &mut s,
            )
            .is_ok();
        ok &= conv.backward_bias(&y[..conv.output_len()], &mut b).is_ok();
    }
    black_box((&y, &g, &b));
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {}
}
