//! NaN and infinity follow PyTorch, and every algorithm is deterministic.
//!
//! - NaN propagates through convolution (forward and both gradients) and through average
//!   and sum pooling to exactly the outputs whose windows hold it; max pooling returns NaN
//!   (with its index) when its window holds one. Infinities propagate the same way, and a
//!   window holding both `+inf` and `-inf` sums to NaN.
//! - The prefix-sum algorithms must not smear a NaN or infinity into windows that do not
//!   hold it: a subtracting prefix sum (`S[i + k] - S[i]`) would, since every later
//!   difference inherits it. Every case below compares the exact NaN / infinity pattern
//!   with the `f64` reference.
//! - Determinism: each algorithm gives bitwise-identical results on repeated calls, whatever
//!   the scratch memory held before. (Thread counts are `threads`' concern.)

use crate::common::{cast, random, tolerance};
use origami_kernels::{
    ConvAlgorithm, ConvNd, ConvOp, ConvSpec, Element, PoolAlgorithm, PoolKind, PoolOp, PoolSpec,
    reference,
};

/// `got` has NaN exactly where `expected` does, the same infinities, and finite values
/// within tolerance of the largest finite expected value.
fn assert_matches<T: Element>(got: &[T], expected: &[f64], context: &str) {
    assert_eq!(got.len(), expected.len(), "{context}");
    let scale = expected
        .iter()
        .filter(|v| v.is_finite())
        .fold(1e-300f64, |m, v| m.max(v.abs()));
    for (i, (g, &e)) in got.iter().zip(expected).enumerate() {
        let g = g.to_f64();
        if e.is_nan() {
            assert!(g.is_nan(), "{context}: expected NaN at {i}, got {g}");
        } else if e.is_infinite() {
            assert_eq!(g, e, "{context}: at {i}");
        } else {
            assert!(
                (g - e).abs() <= tolerance::<T>() * scale,
                "{context}: at {i} got {g}, expected {e} (a NaN or infinity smeared?)"
            );
        }
    }
}

/// Random data with special values planted: one NaN; `+inf`; `+inf` and `-inf` a few
/// positions apart (so some windows hold both); and NaN next to `+inf`.
fn planted(len: usize, seed: u64) -> Vec<(String, Vec<f64>)> {
    let base = random(len, seed);
    let at = |f: f64| ((len as f64 * f) as usize).min(len - 1);
    let plans: [(&str, Vec<(f64, f64)>); 4] = [
        ("nan", vec![(0.37, f64::NAN)]),
        ("inf", vec![(0.61, f64::INFINITY)]),
        (
            "inf_and_neg_inf",
            vec![(0.45, f64::INFINITY), (0.47, f64::NEG_INFINITY)],
        ),
        ("nan_and_inf", vec![(0.2, f64::NAN), (0.8, f64::INFINITY)]),
    ];
    plans
        .into_iter()
        .map(|(name, specials)| {
            let mut v = base.clone();
            for (f, x) in specials {
                v[at(f)] = x;
            }
            (name.to_owned(), v)
        })
        .collect()
}

fn pool_specs() -> Vec<PoolSpec<2>> {
    vec![
        // Stride-1 windows much smaller than the rows: many prefix-sum blocks per row.
        PoolSpec::new(1, 2, [23, 41], [5, 7])
            .with_stride([1, 1])
            .with_padding([2, 3]),
        PoolSpec::new(2, 1, [30, 30], [9, 9])
            .with_stride([1, 1])
            .with_padding([4, 4]),
        // Strided windows, and a non-overlapping tiling (Fold's case).
        PoolSpec::new(1, 3, [17, 19], [3, 3])
            .with_stride([2, 2])
            .with_padding([1, 1]),
        PoolSpec::new(1, 2, [16, 24], [2, 4]),
        // Rows wide enough for Direct's de-interleaved path (strides 2 and 3, dilation).
        PoolSpec::new(1, 2, [9, 75], [3, 3])
            .with_stride([2, 2])
            .with_padding([1, 1]),
        PoolSpec::new(1, 1, [8, 110], [2, 4])
            .with_stride([1, 3])
            .with_dilation([1, 2])
            .with_padding([1, 2]),
    ]
}

fn pool_special_values<T: Element>() {
    for spec in pool_specs() {
        let pool = spec.build().unwrap();
        for (name, x64) in planted(pool.input_len(), 7) {
            let x = cast::<T>(&x64);
            for (dy_name, dy64) in planted(pool.output_len(), 11) {
                let dy = cast::<T>(&dy64);
                for kind in PoolKind::ALL {
                    let mut expected = vec![0.0; pool.output_len()];
                    let mut expected_idx = vec![0usize; pool.output_len()];
                    reference::pool_forward(
                        &pool,
                        kind,
                        &x64,
                        &mut expected,
                        Some(&mut expected_idx),
                    )
                    .unwrap();
                    let mut expected_dx = vec![0.0; pool.input_len()];
                    reference::pool_backward(
                        &pool,
                        kind,
                        &dy64,
                        Some(&expected_idx),
                        &mut expected_dx,
                    )
                    .unwrap();
                    for algo in PoolAlgorithm::ALL {
                        if pool.supports::<T>(kind, algo).is_err() {
                            continue;
                        }
                        let ctx = format!(
                            "{} {} {} x:{name} dy:{dy_name} {spec:?}",
                            T::NAME,
                            kind.name(),
                            algo.name()
                        );
                        let mut y = vec![T::ZERO; pool.output_len()];
                        let mut idx = vec![usize::MAX; pool.output_len()];
                        let mut scratch =
                            vec![T::NAN; pool.scratch_len::<T>(kind, PoolOp::Forward, algo)];
                        pool.forward(kind, algo, &x, &mut y, Some(&mut idx), &mut scratch)
                            .unwrap();
                        assert_matches(&y, &expected, &format!("forward {ctx}"));
                        if kind == PoolKind::Max {
                            assert_eq!(idx, expected_idx, "indices {ctx}");
                        }
                        let mut dx = vec![T::ZERO; pool.input_len()];
                        let mut scratch =
                            vec![T::NAN; pool.scratch_len::<T>(kind, PoolOp::Backward, algo)];
                        pool.backward(kind, algo, &dy, Some(&expected_idx), &mut dx, &mut scratch)
                            .unwrap();
                        assert_matches(&dx, &expected_dx, &format!("backward {ctx}"));
                    }
                }
            }
        }
    }
}

#[test]
fn pooling_propagates_nan_and_infinity_like_pytorch_f32() {
    pool_special_values::<f32>();
}

#[test]
fn pooling_propagates_nan_and_infinity_like_pytorch_f64() {
    pool_special_values::<f64>();
}

/// The smear a subtracting prefix sum would make, shown on a row where it is easy to see.
#[test]
fn a_nan_reaches_only_the_windows_that_hold_it() {
    let pool = PoolSpec::new(1, 1, [64], [5])
        .with_stride([1])
        .build()
        .unwrap();
    let mut x = vec![1.0f32; 64];
    x[10] = f32::NAN;
    for kind in PoolKind::ALL {
        for algo in PoolAlgorithm::ALL {
            if pool.supports::<f32>(kind, algo).is_err() {
                continue;
            }
            let mut y = vec![0.0f32; pool.output_len()];
            let mut scratch = vec![0.0f32; pool.scratch_len::<f32>(kind, PoolOp::Forward, algo)];
            pool.forward(kind, algo, &x, &mut y, None, &mut scratch)
                .unwrap();
            for (o, v) in y.iter().enumerate() {
                // Output o reads inputs o..o + 5.
                let holds = (o..o + 5).contains(&10);
                assert_eq!(
                    v.is_nan(),
                    holds,
                    "{} {} output {o}",
                    kind.name(),
                    algo.name()
                );
            }
        }
    }
}

/// Every algorithm's forward pass and both gradients of `conv` on `x`, `w`, `dy` (scratch
/// full of NaN) match the `f64` reference's NaN / infinity pattern.
fn every_pass_matches<T: Element, const D: usize>(
    conv: &ConvNd<D>,
    x64: &[f64],
    w64: &[f64],
    dy64: &[f64],
    context: &str,
) {
    let mut y64 = vec![0.0; conv.output_len()];
    reference::conv_forward(conv, x64, w64, None, &mut y64).unwrap();
    let mut dx64 = vec![0.0; conv.input_len()];
    reference::conv_backward_input(conv, dy64, w64, &mut dx64).unwrap();
    let mut dw64 = vec![0.0; conv.weight_len()];
    reference::conv_backward_weight(conv, x64, dy64, &mut dw64).unwrap();
    let (x, w, dy) = (cast::<T>(x64), cast::<T>(w64), cast::<T>(dy64));
    for algo in ConvAlgorithm::ALL {
        let ctx = format!("{} {context}", algo.name());
        let scratch_len = [
            ConvOp::Forward,
            ConvOp::BackwardInput,
            ConvOp::BackwardWeight,
        ]
        .map(|op| conv.scratch_len::<T>(op, algo))
        .into_iter()
        .max()
        .unwrap_or(0);
        let mut scratch = vec![T::NAN; scratch_len];
        let mut y = vec![T::ZERO; conv.output_len()];
        conv.forward(algo, &x, &w, None, &mut y, &mut scratch)
            .unwrap();
        assert_matches(&y, &y64, &format!("forward {ctx}"));
        let mut dx = vec![T::ZERO; conv.input_len()];
        conv.backward_input(algo, &dy, &w, &mut dx, &mut scratch)
            .unwrap();
        assert_matches(&dx, &dx64, &format!("backward_input {ctx}"));
        let mut dw = vec![T::ZERO; conv.weight_len()];
        conv.backward_weight(algo, &x, &dy, &mut dw, &mut scratch)
            .unwrap();
        assert_matches(&dw, &dw64, &format!("backward_weight {ctx}"));
    }
}

fn conv_special_values<T: Element>() {
    let specs = [
        ConvSpec::new(2, 4, 6, [9, 11], [3, 3]).with_padding([1, 1]),
        ConvSpec::new(1, 6, 6, [12, 10], [3, 5])
            .with_stride([2, 1])
            .with_padding([1, 2])
            .with_groups(3),
        ConvSpec::new(1, 8, 16, [6, 7], [1, 1]),
        // Depthwise (one input channel per group), with a channel multiplier and stride 2.
        ConvSpec::new(1, 4, 8, [9, 20], [3, 3])
            .with_stride([2, 2])
            .with_padding([1, 1])
            .with_groups(4),
        ConvSpec::new(2, 3, 3, [7, 21], [3, 3])
            .with_padding([2, 2])
            .with_dilation([2, 2])
            .with_groups(3),
        // Depthwise planes narrower than a vector (the flat layout, whose weight gradient
        // multiplies the zeros between rows with inputs and must not keep `inf * 0`).
        ConvSpec::new(2, 2, 4, [6, 7], [3, 3])
            .with_padding([1, 1])
            .with_groups(2),
        // Depthwise on a small plane, one output channel per input channel (a vector of
        // channels per position).
        ConvSpec::new(2, 5, 5, [7, 7], [3, 3])
            .with_padding([1, 1])
            .with_stride([1, 2])
            .with_groups(5),
        // The same with stride 1, whose input gradient is a forward pass over the output
        // gradient unless a weight is not finite.
        ConvSpec::new(1, 6, 6, [5, 6], [3, 3])
            .with_padding([1, 1])
            .with_groups(6),
        // Depthwise 3 x 3 read straight from the input (rows of a vector and more): lanes
        // outside a row, or past its outputs, must not carry an infinity into a sum.
        ConvSpec::new(2, 3, 3, [6, 19], [3, 3])
            .with_padding([1, 1])
            .with_groups(3),
        ConvSpec::new(1, 2, 2, [5, 37], [3, 3]).with_groups(2),
    ];
    for spec in specs {
        let conv = spec.build().unwrap();
        let w64 = random(conv.weight_len(), 3);
        let xs = planted(conv.input_len(), 5);
        let dys = planted(conv.output_len(), 9);
        for ((name, x64), (dy_name, dy64)) in xs.iter().zip(&dys) {
            let ctx = format!("{} x:{name} dy:{dy_name} {spec:?}", T::NAME);
            every_pass_matches::<T, 2>(&conv, x64, &w64, dy64, &ctx);
        }
    }
}

#[test]
fn convolution_propagates_nan_and_infinity_like_pytorch_f32() {
    conv_special_values::<f32>();
}

#[test]
fn convolution_propagates_nan_and_infinity_like_pytorch_f64() {
    conv_special_values::<f64>();
}

fn bits<T: Element>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.to_f64().to_bits()).collect()
}

/// Scratch contents that must not matter: NaN, zeros, and large garbage.
fn scratches<T: Element>(len: usize) -> [Vec<T>; 3] {
    [
        vec![T::NAN; len],
        vec![T::ZERO; len],
        (0..len)
            .map(|i| T::from_f64(1e30 * (i % 7) as f64 - 3e30))
            .collect(),
    ]
}

#[test]
fn every_algorithm_is_bitwise_deterministic() {
    let conv = ConvSpec::new(2, 12, 20, [13, 17], [3, 3])
        .with_padding([1, 1])
        .with_groups(2)
        .build()
        .unwrap();
    let x = cast::<f32>(&random(conv.input_len(), 1));
    let w = cast::<f32>(&random(conv.weight_len(), 2));
    let b = cast::<f32>(&random(conv.bias_len(), 3));
    let dy = cast::<f32>(&random(conv.output_len(), 4));
    for algo in [
        ConvAlgorithm::Auto,
        ConvAlgorithm::Direct,
        ConvAlgorithm::Unrolled,
    ] {
        let mut seen: [Option<Vec<u64>>; 3] = [None, None, None];
        for _ in 0..2 {
            for op in [
                ConvOp::Forward,
                ConvOp::BackwardInput,
                ConvOp::BackwardWeight,
            ] {
                for mut scratch in scratches::<f32>(conv.scratch_len::<f32>(op, algo)) {
                    let out = match op {
                        ConvOp::Forward => {
                            let mut y = vec![0.0f32; conv.output_len()];
                            conv.forward(algo, &x, &w, Some(&b), &mut y, &mut scratch)
                                .unwrap();
                            y
                        }
                        ConvOp::BackwardInput => {
                            let mut dx = vec![0.0f32; conv.input_len()];
                            conv.backward_input(algo, &dy, &w, &mut dx, &mut scratch)
                                .unwrap();
                            dx
                        }
                        _ => {
                            let mut dw = vec![0.0f32; conv.weight_len()];
                            conv.backward_weight(algo, &x, &dy, &mut dw, &mut scratch)
                                .unwrap();
                            dw
                        }
                    };
                    let slot = &mut seen[op as usize % 3];
                    match slot {
                        None => *slot = Some(bits(&out)),
                        Some(first) => assert_eq!(first, &bits(&out), "{} {op:?}", algo.name()),
                    }
                }
            }
        }
    }

    let pool = PoolSpec::new(2, 3, [29, 31], [7, 5])
        .with_stride([1, 2])
        .with_padding([3, 2])
        .build()
        .unwrap();
    let x = cast::<f32>(&random(pool.input_len(), 5));
    let dy = cast::<f32>(&random(pool.output_len(), 6));
    for kind in PoolKind::ALL {
        for algo in [
            PoolAlgorithm::Auto,
            PoolAlgorithm::Direct,
            PoolAlgorithm::Fold,
            PoolAlgorithm::PrefixSum,
        ] {
            if pool.supports::<f32>(kind, algo).is_err() {
                continue;
            }
            let mut first: Option<(Vec<u64>, Vec<usize>, Vec<u64>)> = None;
            for _ in 0..2 {
                for (mut s_fwd, mut s_bwd) in
                    scratches::<f32>(pool.scratch_len::<f32>(kind, PoolOp::Forward, algo))
                        .into_iter()
                        .zip(scratches::<f32>(pool.scratch_len::<f32>(
                            kind,
                            PoolOp::Backward,
                            algo,
                        )))
                {
                    let mut y = vec![0.0f32; pool.output_len()];
                    let mut idx = vec![0usize; pool.output_len()];
                    pool.forward(kind, algo, &x, &mut y, Some(&mut idx), &mut s_fwd)
                        .unwrap();
                    let mut dx = vec![0.0f32; pool.input_len()];
                    pool.backward(kind, algo, &dy, Some(&idx), &mut dx, &mut s_bwd)
                        .unwrap();
                    let now = (bits(&y), idx, bits(&dx));
                    match &first {
                        None => first = Some(now),
                        Some(f) => assert_eq!(f, &now, "{} {}", kind.name(), algo.name()),
                    }
                }
            }
        }
    }
}

/// The two cases checked against PyTorch 2.15 (`F.conv2d(x, w, padding=1)` on a 5 x 5 image
/// with a 3 x 3 kernel): padding is zeros multiplied like any input, so a NaN weight makes
/// every output NaN, even those where that tap reads only padding, and a NaN output
/// gradient at a corner makes all nine weight gradients NaN.
#[test]
fn padding_times_nan_is_nan_as_in_pytorch() {
    let conv = ConvSpec::new(1, 1, 1, [5, 5], [3, 3])
        .with_padding([1, 1])
        .build()
        .unwrap();
    let x = cast::<f32>(&random(25, 1));
    let w = cast::<f32>(&random(9, 2));
    for algo in ConvAlgorithm::ALL {
        let len = [ConvOp::Forward, ConvOp::BackwardWeight]
            .map(|op| conv.scratch_len::<f32>(op, algo))
            .into_iter()
            .max()
            .unwrap_or(0);
        let mut scratch = vec![0.0f32; len];
        let mut w_nan = w.clone();
        w_nan[0] = f32::NAN;
        let mut y = vec![0.0f32; 25];
        conv.forward(algo, &x, &w_nan, None, &mut y, &mut scratch)
            .unwrap();
        assert!(y.iter().all(|v| v.is_nan()), "{}: {y:?}", algo.name());

        let mut dy = vec![1.0f32; 25];
        dy[0] = f32::NAN;
        let mut dw = vec![0.0f32; 9];
        conv.backward_weight(algo, &x, &dy, &mut dw, &mut scratch)
            .unwrap();
        assert!(dw.iter().all(|v| v.is_nan()), "{}: {dw:?}", algo.name());

        // The same for a depthwise plane wide enough to be read without a padded copy: an
        // infinite output gradient at the last corner meets the padding through five taps
        // (`inf * 0`), the input through the other four.
        let wide = ConvSpec::new(1, 2, 2, [4, 20], [3, 3])
            .with_padding([1, 1])
            .with_groups(2)
            .build()
            .unwrap();
        let x = cast::<f32>(&random(wide.input_len(), 4));
        let mut dy = vec![1.0f32; wide.output_len()];
        dy[wide.output_len() - 1] = f32::INFINITY;
        let mut dw = vec![0.0f32; wide.weight_len()];
        let mut scratch = vec![0.0f32; wide.scratch_len::<f32>(ConvOp::BackwardWeight, algo)];
        wide.backward_weight(algo, &x, &dy, &mut dw, &mut scratch)
            .unwrap();
        assert!(
            dw[..9].iter().all(|v| v.is_finite()),
            "{}: {dw:?}",
            algo.name()
        );
        for (t, v) in dw[9..].iter().enumerate() {
            let meets_padding = t / 3 == 2 || t % 3 == 2;
            assert_eq!(v.is_nan(), meets_padding, "{} tap {t}: {dw:?}", algo.name());
            assert!(
                v.is_nan() || v.is_infinite(),
                "{} tap {t}: {dw:?}",
                algo.name()
            );
        }

        // Without padding the NaN output gradient reaches only what its window read.
        let valid = ConvSpec::new(1, 1, 1, [5, 5], [3, 3]).build().unwrap();
        let mut dy = vec![1.0f32; 9];
        dy[0] = f32::NAN;
        let mut dx = vec![0.0f32; 25];
        let mut scratch = vec![0.0f32; valid.scratch_len::<f32>(ConvOp::BackwardInput, algo)];
        valid
            .backward_input(algo, &dy, &w, &mut dx, &mut scratch)
            .unwrap();
        for (i, v) in dx.iter().enumerate() {
            let read_by_output_0 = i / 5 < 3 && i % 5 < 3;
            assert_eq!(v.is_nan(), read_by_output_0, "{} dx[{i}]", algo.name());
        }

        // A NaN weight reaches only the inputs some window reads: with stride 2 over 20
        // columns, the windows of width 3 end at column 18 and column 19 keeps a zero
        // gradient. (A vector tail that ran past the last window would add `NaN * 0` there.)
        let strided = ConvSpec::new(1, 1, 1, [1, 20], [1, 3])
            .with_stride([1, 2])
            .build()
            .unwrap();
        let dy = vec![1.0f32; strided.output_len()];
        let mut w3 = vec![1.0f32; 3];
        w3[1] = f32::NAN;
        let mut dx = vec![0.0f32; 20];
        let mut scratch = vec![0.0f32; strided.scratch_len::<f32>(ConvOp::BackwardInput, algo)];
        strided
            .backward_input(algo, &dy, &w3, &mut dx, &mut scratch)
            .unwrap();
        assert!(
            dx[..19].iter().any(|v| v.is_nan()),
            "{}: {dx:?}",
            algo.name()
        );
        assert_eq!(dx[19], 0.0, "{}: {dx:?}", algo.name());
    }
}

/// Infinities at the ends of rows and planes, where vectors that read a plane row by row
/// reach past the row (into the next row or plane, or past the outputs of a partial last
/// vector), on depthwise planes read without a padded copy, with padding 1 and 0: the input's
/// last column infinite; the first output gradient of every plane but the first infinite
/// (the planes before it are finite, so their weight gradient reads them directly); and the
/// input's last column with the output gradient's first. Every pass matches the
/// reference's NaN / infinity pattern.
#[test]
fn infinities_at_row_ends_stay_in_their_windows() {
    let specs = [
        ConvSpec::new(2, 2, 2, [4, 19], [3, 3])
            .with_padding([1, 1])
            .with_groups(2),
        ConvSpec::new(1, 2, 2, [5, 21], [3, 3]).with_groups(2),
    ];
    for spec in specs {
        let conv = spec.build().unwrap();
        let (wi, [_, wo]) = (spec.input_size[1], conv.output_size());
        let plane = conv.output_len() / conv.bias_len() / spec.batch;
        let last_columns = |mut x: Vec<f64>| {
            x.chunks_mut(wi).for_each(|row| row[wi - 1] = f64::INFINITY);
            x
        };
        let first_columns = |mut dy: Vec<f64>| {
            dy.chunks_mut(wo).for_each(|row| row[0] = f64::NEG_INFINITY);
            dy
        };
        let later_planes = |mut dy: Vec<f64>| {
            dy.chunks_mut(plane)
                .skip(1)
                .for_each(|p| p[0] = f64::NEG_INFINITY);
            dy
        };
        let (x0, dy0) = (random(conv.input_len(), 6), random(conv.output_len(), 7));
        let cases = [
            ("x last columns", last_columns(x0.clone()), dy0.clone()),
            ("dy later planes", x0.clone(), later_planes(dy0.clone())),
            ("both", last_columns(x0), first_columns(dy0)),
        ];
        let w64 = random(conv.weight_len(), 8);
        for (name, x64, dy64) in cases {
            every_pass_matches::<f32, 2>(&conv, &x64, &w64, &dy64, &format!("{name} {spec:?}"));
        }
    }
}

/// A NaN weight in a depthwise input gradient reaches only the inputs its tap reads, also
/// where the gradient is computed as a forward pass over the zero-padded output gradient
/// (stride 1): there `NaN * 0` in the padding would reach inputs no window reads.
#[test]
fn a_nan_weight_reaches_only_the_inputs_its_tap_reads() {
    let specs: [ConvSpec<2>; 3] = [
        ConvSpec::new(2, 20, 20, [5, 6], [3, 3]).with_groups(20),
        ConvSpec::new(1, 3, 3, [9, 30], [3, 3])
            .with_padding_lo_hi([0, 1], [1, 0])
            .with_groups(3),
        // Stride 2: always scattered, tap after tap; rows of two whole vectors and a tail.
        ConvSpec::new(1, 3, 3, [9, 70], [3, 3])
            .with_stride([2, 2])
            .with_padding([1, 1])
            .with_groups(3),
    ];
    for spec in specs {
        let conv = spec.build().unwrap();
        let dy64 = random(conv.output_len(), 4);
        let mut w64 = random(conv.weight_len(), 5);
        // Channel 1's first tap and channel 2's last.
        w64[9] = f64::NAN;
        w64[26] = f64::INFINITY;
        let mut dx64 = vec![0.0; conv.input_len()];
        reference::conv_backward_input(&conv, &dy64, &w64, &mut dx64).unwrap();
        let (dy, w) = (cast::<f32>(&dy64), cast::<f32>(&w64));
        for algo in ConvAlgorithm::ALL {
            let mut scratch = vec![f32::NAN; conv.scratch_len::<f32>(ConvOp::BackwardInput, algo)];
            let mut dx = vec![0.0f32; conv.input_len()];
            conv.backward_input(algo, &dy, &w, &mut dx, &mut scratch)
                .unwrap();
            assert_matches(&dx, &dx64, &format!("{} {spec:?}", algo.name()));
        }
    }
}
