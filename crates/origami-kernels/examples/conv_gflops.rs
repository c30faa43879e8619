//! Times one 2-D convolution, forward and both gradients, and prints GFLOP/s per direction.
//!
//! `cargo run --release --example conv_gflops -- N C H K KERNEL PAD STRIDE GROUPS [ALGO]`
//! (H, KERNEL and PAD: one size for both axes, or `HxW`; ALGO: auto, direct, unrolled,
//! winograd). For profiling single shapes; the sweep is the benchmark.
//!
//! With `ORIGAMI_AB=auto:forward,unrolled:forward` (ALGO:DIRECTION pairs) it alternates the
//! listed passes call by call for 40 rounds and prints each one's fastest, first-quartile
//! and median time: on a shared machine whose speed drifts by 1.5x over seconds, passes
//! timed side by side see the same drift, where separate runs do not.
mod common;

use common::best_of;
use origami_kernels::{ConvAlgorithm, ConvOp, ConvSpec};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> usize { args[i].parse().expect("a number") };
    // `S` or `SHxSW`: rectangular planes and windows (the temporal (9, 1) convolutions).
    let pair = |i: usize| -> [usize; 2] {
        match args[i].split_once('x') {
            Some((a, b)) => [a, b].map(|v| v.parse().expect("a number")),
            None => [num(i); 2],
        }
    };
    let (n, c, h, k, ks, pad, stride, groups) = (
        num(0),
        num(1),
        pair(2),
        num(3),
        pair(4),
        pair(5),
        num(6),
        num(7),
    );
    let algo = args
        .get(8)
        .and_then(|a| ConvAlgorithm::from_name(a))
        .unwrap_or(ConvAlgorithm::Auto);
    let conv = ConvSpec::new(n, c, k, h, ks)
        .with_padding(pad)
        .with_stride([stride, stride])
        .with_groups(groups)
        .build()
        .unwrap();
    let x = vec![0.5f32; conv.input_len()];
    let w = vec![0.25f32; conv.weight_len()];
    let mut y = vec![0.0f32; conv.output_len()];
    let mut dx = x.clone();
    let mut dw = w.clone();
    let flop = 2.0 * (conv.output_len() * c / groups * ks[0] * ks[1]) as f64;
    let reps = ((2e9 / flop) as usize).clamp(3, 200);
    // An optional tenth argument picks one direction (forward, backward_input,
    // backward_weight), for profiling.
    let only = args.get(9).cloned();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let scratch = |op| vec![0.0f32; conv.scratch_len::<f32>(op, algo)];
    let mut s = scratch(ConvOp::Forward);
    if let Ok(list) = std::env::var("ORIGAMI_AB") {
        let (mut y_out, mut dx_out) = (y.clone(), dx.clone());
        let most = ConvOp::ALL
            .into_iter()
            .flat_map(|op| ConvAlgorithm::ALL.map(|a| conv.scratch_len::<f32>(op, a)))
            .max();
        let mut s = vec![0.0f32; most.unwrap_or(0)];
        return alternate(&list, flop, |algo, direction| {
            match direction {
                ConvOp::Forward => conv.forward(algo, &x, &w, None, &mut y_out, &mut s),
                ConvOp::BackwardInput => conv.backward_input(algo, &y, &w, &mut dx_out, &mut s),
                _ => conv.backward_weight(algo, &x, &y, &mut dw, &mut s),
            }
            .unwrap()
        });
    }
    let reps_for = |name: &str| if wanted(name) { reps } else { 0 };
    let fwd = best_of(reps_for("forward"), || {
        conv.forward(algo, &x, &w, None, &mut y, &mut s).unwrap()
    });
    let mut s = scratch(ConvOp::BackwardInput);
    let bwd_in = best_of(reps_for("backward_input"), || {
        conv.backward_input(algo, &y, &w, &mut dx, &mut s).unwrap()
    });
    let mut s = scratch(ConvOp::BackwardWeight);
    let bwd_w = best_of(reps_for("backward_weight"), || {
        conv.backward_weight(algo, &x, &y, &mut dw, &mut s).unwrap()
    });
    for (name, t) in [
        ("forward", fwd),
        ("backward_input", bwd_in),
        ("backward_weight", bwd_w),
    ] {
        println!(
            "{name:16} {:8.3} ms {:6.1} GFLOP/s",
            t * 1e3,
            flop / t / 1e9
        );
    }
}

/// Times the `ALGO:DIRECTION` passes of `list` in turn, `run` calling one, and prints each
/// one's order statistics.
fn alternate(list: &str, flop: f64, mut run: impl FnMut(ConvAlgorithm, ConvOp)) {
    let passes: Vec<(&str, ConvAlgorithm, ConvOp)> = list
        .split(',')
        .map(|pass| {
            let (algo, direction) = pass.split_once(':').unwrap_or((pass, "forward"));
            let direction = match direction {
                "forward" => ConvOp::Forward,
                "backward_input" => ConvOp::BackwardInput,
                "backward_weight" => ConvOp::BackwardWeight,
                other => panic!("unknown direction {other}"),
            };
            let algo = ConvAlgorithm::from_name(algo).expect("an algorithm name");
            (pass, algo, direction)
        })
        .collect();
    let mut times = vec![Vec::new(); passes.len()];
    for _ in 0..40 {
        for (&(_, algo, direction), t) in passes.iter().zip(&mut times) {
            let start = std::time::Instant::now();
            run(algo, direction);
            t.push(start.elapsed().as_secs_f64());
        }
    }
    for ((name, ..), mut t) in passes.into_iter().zip(times) {
        t.sort_by(f64::total_cmp);
        println!(
            "{name:28} min {:8.3} ms ({:5.1} GFLOP/s)  q1 {:8.3}  median {:8.3}",
            t[0] * 1e3,
            flop / t[0] / 1e9,
            t[10] * 1e3,
            t[20] * 1e3
        );
    }
}
