//! Every convolution algorithm against the f64 reference, for every operation, element type
//! and number of dimensions, on randomized geometries; finite-difference checks of the
//! gradients; error handling of the operations.
//!
//! One suite ([`check_case`]) is instantiated for every (algorithm, type, D) by a macro, so a
//! new algorithm gets every test by adding it to `ConvAlgorithm::ALL`.

use crate::common::{assert_close, assert_close_to_scale, case_divisor, cast, random};
use origami_kernels::{ConvAlgorithm, ConvNd, ConvOp, ConvSpec, Element, Error, reference};
use proptest::prelude::*;

/// A random valid geometry: small channel counts, odd sizes, sizes below one vector, and rows
/// long enough (along W) to reach the widest vector paths.
fn spec_strategy<const D: usize>(
    max_w: usize,
    max_other: usize,
) -> impl Strategy<Value = ConvSpec<D>> {
    (
        (1usize..3, 1usize..4, 1usize..4, 1usize..4),
        proptest::collection::vec(
            (
                1usize..=max_other,
                1usize..4,
                1usize..4,
                1usize..3,
                0usize..3,
                0usize..3,
            ),
            D,
        ),
        1usize..=max_w,
    )
        .prop_filter_map(
            "window must fit",
            move |((batch, groups, cg, kg), axes, w)| {
                let mut spec = ConvSpec::new(batch, groups * cg, groups * kg, [1; D], [1; D])
                    .with_groups(groups);
                for (d, &(size, k, s, dil, lo, hi)) in axes.iter().enumerate() {
                    spec.input_size[d] = if d == D - 1 { w } else { size };
                    spec.kernel_size[d] = k;
                    spec.stride[d] = s;
                    spec.dilation[d] = dil;
                    spec.padding_lo[d] = lo;
                    spec.padding_hi[d] = hi;
                }
                spec.build().ok().map(|_| spec)
            },
        )
}

/// Fills a buffer with NaN, so an algorithm that reads what it did not write shows up.
fn dirty<T: Element>(len: usize) -> Vec<T> {
    vec![T::NAN; len]
}

/// A case's inputs (from `seed`) and the f64 reference's results on them, computed once for
/// every algorithm that is checked against them.
struct Expected {
    x: Vec<f64>,
    w: Vec<f64>,
    b: Vec<f64>,
    dy: Vec<f64>,
    with_bias: bool,
    y: Vec<f64>,
    dx: Vec<f64>,
    dw: Vec<f64>,
    /// The largest `sum |x| |dy|` of a weight: each weight gradient sums products over every
    /// output position, which may cancel to far less than the terms, whose size sets the
    /// rounding error.
    dw_scale: f64,
    db: Vec<f64>,
}

impl Expected {
    fn new<const D: usize>(conv: &ConvNd<D>, seed: u64) -> Self {
        let x = random(conv.input_len(), seed);
        let w = random(conv.weight_len(), seed + 1);
        let b = random(conv.bias_len(), seed + 2);
        let dy = random(conv.output_len(), seed + 3);
        let with_bias = seed.is_multiple_of(2);
        let mut y = vec![0.0f64; conv.output_len()];
        reference::conv_forward(conv, &x, &w, with_bias.then_some(&b[..]), &mut y).unwrap();
        let mut dx = vec![0.0f64; conv.input_len()];
        reference::conv_backward_input(conv, &dy, &w, &mut dx).unwrap();
        let mut dw = vec![0.0f64; conv.weight_len()];
        reference::conv_backward_weight(conv, &x, &dy, &mut dw).unwrap();
        let abs = |v: &[f64]| v.iter().map(|v| v.abs()).collect::<Vec<_>>();
        let mut dw_abs = vec![0.0f64; conv.weight_len()];
        reference::conv_backward_weight(conv, &abs(&x), &abs(&dy), &mut dw_abs).unwrap();
        let dw_scale = dw_abs.iter().fold(0.0f64, |m, &v| m.max(v));
        let mut db = vec![0.0f64; conv.bias_len()];
        reference::conv_backward_bias(conv, &dy, &mut db).unwrap();
        Expected {
            x,
            w,
            b,
            dy,
            with_bias,
            y,
            dx,
            dw,
            dw_scale,
            db,
        }
    }
}

/// Runs every operation of `algo` on `spec` and compares with the f64 reference.
fn check_case<T: Element, const D: usize>(algo: ConvAlgorithm, spec: ConvSpec<D>, seed: u64) {
    let conv = spec.build().expect("strategy yields valid specs");
    check_against::<T, D>(algo, spec, &Expected::new(&conv, seed));
}

/// [`check_case`] against results computed once (the fixed shapes check every algorithm
/// against one reference run).
fn check_against<T: Element, const D: usize>(algo: ConvAlgorithm, spec: ConvSpec<D>, e: &Expected) {
    let conv = spec.build().expect("strategy yields valid specs");
    let ctx = format!("{} {} {spec:?}", algo.name(), T::NAME);
    let (x, w, b, dy) = (
        cast::<T>(&e.x),
        cast::<T>(&e.w),
        cast::<T>(&e.b),
        cast::<T>(&e.dy),
    );
    let bias = e.with_bias.then_some(&b[..]);

    let mut y = dirty::<T>(conv.output_len());
    let mut scratch = dirty::<T>(conv.scratch_len::<T>(ConvOp::Forward, algo));
    conv.forward(algo, &x, &w, bias, &mut y, &mut scratch)
        .unwrap();
    assert_close("forward", &y, &e.y, &ctx);

    let mut dx = dirty::<T>(conv.input_len());
    let mut scratch = dirty::<T>(conv.scratch_len::<T>(ConvOp::BackwardInput, algo));
    conv.backward_input(algo, &dy, &w, &mut dx, &mut scratch)
        .unwrap();
    assert_close("backward_input", &dx, &e.dx, &ctx);

    let mut dw = dirty::<T>(conv.weight_len());
    let mut scratch = dirty::<T>(conv.scratch_len::<T>(ConvOp::BackwardWeight, algo));
    conv.backward_weight(algo, &x, &dy, &mut dw, &mut scratch)
        .unwrap();
    assert_close_to_scale("backward_weight", &dw, &e.dw, e.dw_scale, &ctx);

    let mut db = dirty::<T>(conv.bias_len());
    conv.backward_bias(&dy, &mut db).unwrap();
    // Each bias gradient sums every output gradient of its channel, which may cancel to
    // far less than the terms: scale the tolerance by the largest sum of magnitudes.
    let abs_sums = (0..conv.bias_len()).map(|k| {
        e.dy.chunks(conv.output_len() / conv.bias_len() / spec.batch)
            .skip(k)
            .step_by(conv.bias_len())
            .flatten()
            .map(|v| v.abs())
            .sum::<f64>()
    });
    let scale = abs_sums.fold(0.0f64, f64::max);
    assert_close_to_scale("backward_bias", &db, &e.db, scale, &ctx);
}

macro_rules! conv_suite {
    ($($name:ident: $algo:expr, $t:ty, $d:literal, $max_w:expr, $max_other:expr;)*) => {$(
        proptest! {
            #![proptest_config(ProptestConfig { cases: crate::common::cases(48), max_shrink_iters: 32, ..ProptestConfig::default() })]
            #[test]
            fn $name(spec in spec_strategy::<$d>($max_w, $max_other), seed in any::<u64>()) {
                check_case::<$t, $d>($algo, spec, seed % 1_000_000);
            }
        }
    )*};
}

conv_suite! {
    direct_f32_1d: ConvAlgorithm::Direct, f32, 1, 150, 1;
    direct_f64_1d: ConvAlgorithm::Direct, f64, 1, 150, 1;
    direct_f32_2d: ConvAlgorithm::Direct, f32, 2, 80, 7;
    direct_f64_2d: ConvAlgorithm::Direct, f64, 2, 80, 7;
    direct_f32_3d: ConvAlgorithm::Direct, f32, 3, 40, 5;
    direct_f64_3d: ConvAlgorithm::Direct, f64, 3, 40, 5;
    unrolled_f32_1d: ConvAlgorithm::Unrolled, f32, 1, 150, 1;
    unrolled_f64_1d: ConvAlgorithm::Unrolled, f64, 1, 150, 1;
    unrolled_f32_2d: ConvAlgorithm::Unrolled, f32, 2, 80, 7;
    unrolled_f64_2d: ConvAlgorithm::Unrolled, f64, 2, 80, 7;
    unrolled_f32_3d: ConvAlgorithm::Unrolled, f32, 3, 40, 5;
    unrolled_f64_3d: ConvAlgorithm::Unrolled, f64, 3, 40, 5;
    auto_f32_2d: ConvAlgorithm::Auto, f32, 2, 80, 7;
    winograd_f32_1d: ConvAlgorithm::Winograd, f32, 1, 150, 1;
    winograd_f32_2d: ConvAlgorithm::Winograd, f32, 2, 80, 7;
    winograd_f64_2d: ConvAlgorithm::Winograd, f64, 2, 80, 7;
}

/// Winograd's own geometries, which the general strategy rarely draws: 3x3 kernels at
/// stride 1 with one group, any padding on either side (the input gradient runs
/// transformed up to 2, `Unrolled` beyond), odd and even output sides (tiles cut by the
/// edge), rows of tiles longer than a vector, channel counts across a vector of weights.
fn winograd_strategy() -> impl Strategy<Value = ConvSpec<2>> {
    (
        (1usize..4, 1usize..21, 1usize..21),
        (1usize..12, 1usize..70),
        (0usize..4, 0usize..4, 0usize..4, 0usize..4),
    )
        .prop_filter_map(
            "window must fit",
            |((batch, c, k), (h, w), (top, bottom, left, right))| {
                let spec = ConvSpec::new(batch, c, k, [h, w], [3, 3])
                    .with_padding_lo_hi([top, left], [bottom, right]);
                spec.build().ok().map(|_| spec)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::common::cases(48), max_shrink_iters: 32, ..ProptestConfig::default() })]
    #[test]
    fn winograd_3x3_f32(spec in winograd_strategy(), seed in any::<u64>()) {
        check_case::<f32, 2>(ConvAlgorithm::Winograd, spec, seed % 1_000_000);
    }

    #[test]
    fn winograd_3x3_f64(spec in winograd_strategy(), seed in any::<u64>()) {
        check_case::<f64, 2>(ConvAlgorithm::Winograd, spec, seed % 1_000_000);
    }
}

/// Shapes the random strategy rarely reaches: many channels and positions (every block of
/// the matrix product: more output channels than a packed A block holds, more positions than
/// a packed B block, depth beyond one block in all three passes), 1x1 kernels (the
/// unroll-free path), depthwise (long rows with stride 2, and planes narrower than a vector).
#[test]
fn fixed_shapes_every_algorithm() {
    let specs: [ConvSpec<2>; 15] = [
        ConvSpec::new(1, 3, 500, [46, 47], [3, 3]).with_padding([1, 1]),
        // A temporal (9, 1) kernel and a 1-D one as a 1 x 9 kernel: the grid drops no column,
        // so its tiles are stored as whole vectors (the second with a bias); a depth of 630 spans
        // two in-place blocks.
        ConvSpec::new(1, 70, 9, [1, 300], [1, 9]).with_padding([0, 4]),
        ConvSpec::new(2, 70, 13, [37, 7], [9, 1]).with_padding([4, 0]),
        // Depthwise planes narrower than a vector (the flat layout), a channel multiplier,
        // stride and dilation along W.
        ConvSpec::new(3, 8, 16, [7, 11], [3, 3])
            .with_groups(8)
            .with_padding([1, 1])
            .with_stride([1, 2])
            .with_dilation([1, 2]),
        ConvSpec::new(2, 40, 130, [9, 11], [3, 3]).with_padding([1, 1]),
        ConvSpec::new(1, 300, 20, [5, 7], [1, 1]),
        ConvSpec::new(2, 16, 16, [13, 70], [3, 3])
            .with_groups(16)
            .with_padding([1, 1]),
        // Depthwise 3 x 3 with stride and dilation along H only (the unrolled 3 x 3 runs),
        // a channel multiplier, uneven padding, rows of two vectors and a piece.
        ConvSpec::new(1, 6, 12, [17, 37], [3, 3])
            .with_groups(6)
            .with_stride([2, 1])
            .with_dilation([2, 1])
            .with_padding_lo_hi([2, 1], [1, 0]),
        // ... with stride 2 along W (de-interleaved rows), and with dilation 2 along W.
        ConvSpec::new(2, 4, 8, [9, 75], [3, 3])
            .with_groups(4)
            .with_stride([1, 2])
            .with_padding([1, 1]),
        ConvSpec::new(1, 3, 3, [6, 41], [3, 3])
            .with_groups(3)
            .with_dilation([1, 2])
            .with_padding([1, 2]),
        ConvSpec::new(1, 3, 8, [9, 131], [3, 5])
            .with_stride([2, 2])
            .with_padding_lo_hi([0, 2], [1, 0]),
        ConvSpec::new(1, 4, 4, [6, 6], [1, 1]).with_stride([2, 2]),
        // Depthwise on small planes (a vector of channels per position): several blocks and a
        // partial one, strides, dilation, uneven padding, a window wider than the input.
        ConvSpec::new(2, 37, 37, [7, 7], [3, 3])
            .with_groups(37)
            .with_padding([1, 1]),
        ConvSpec::new(1, 20, 20, [9, 10], [3, 5])
            .with_groups(20)
            .with_stride([2, 2])
            .with_dilation([2, 1])
            .with_padding_lo_hi([2, 0], [0, 3]),
        ConvSpec::new(1, 17, 17, [4, 4], [5, 5])
            .with_groups(17)
            .with_padding([2, 2]),
    ];
    for (i, spec) in specs.into_iter().enumerate() {
        let conv = spec.build().unwrap();
        let (e32, e64) = (
            Expected::new(&conv, 100 + i as u64),
            Expected::new(&conv, 200 + i as u64),
        );
        for algo in ConvAlgorithm::ALL {
            check_against::<f32, 2>(algo, spec, &e32);
            check_against::<f64, 2>(algo, spec, &e64);
        }
    }
}

/// Output planes of 256 positions and more, where `Unrolled` reads phase planes: strided
/// input gradients added onto the planes, in 2-D and 3-D, with a batch, groups, dilation and
/// uneven padding; and small planes of a batch multiplied side by side, forward and stride-1
/// input gradient (a 7 x 7 plane with more channels than one packed block of rows).
#[test]
fn phase_planes_and_images_side_by_side() {
    let two = ConvSpec::new(2, 4, 6, [44, 46], [3, 4])
        .with_groups(2)
        .with_stride([2, 3])
        .with_dilation([2, 1])
        .with_padding_lo_hi([1, 2], [2, 0]);
    let three = ConvSpec::new(2, 2, 3, [4, 24, 24], [2, 3, 3])
        .with_stride([1, 2, 2])
        .with_padding([0, 1, 1]);
    let small = ConvSpec::new(3, 20, 500, [7, 7], [3, 3]).with_padding([1, 1]);
    // 540 unrolled rows: the input gradient's tiles land on the planes from more than one
    // block of rows (whose row starts are found per block).
    let deep = ConvSpec::new(1, 60, 5, [32, 34], [3, 3])
        .with_stride([2, 2])
        .with_padding([1, 1]);
    check_case::<f32, 2>(ConvAlgorithm::Unrolled, deep, 3);
    for seed in 0..2 {
        check_case::<f32, 2>(ConvAlgorithm::Unrolled, two, seed);
        check_case::<f64, 2>(ConvAlgorithm::Unrolled, two, seed);
        check_case::<f32, 3>(ConvAlgorithm::Unrolled, three, seed);
        check_case::<f64, 3>(ConvAlgorithm::Unrolled, three, seed);
    }
    check_case::<f32, 2>(ConvAlgorithm::Unrolled, small, 7);
}

/// Depthwise 3 x 3 read straight from the input (no padded copy), stride 1: rows of one
/// vector with both edges in it, a vector and a piece, several inner vectors and a partial
/// last one; padding 1, 0 and uneven; planes of one to three rows (window rows above and
/// below the input skipped); a channel multiplier and a batch (neighbouring planes around
/// every plane, the first plane's first row with nothing before it). Stride 2, whose input
/// gradient goes by the parity of rows and columns.
#[test]
fn depthwise_3x3_from_the_input() {
    let depthwise = |n, c, kg, size: [usize; 2]| {
        ConvSpec::new(n, c, c * kg, size, [3, 3])
            .with_groups(c)
            .with_padding([1, 1])
    };
    let specs = [
        depthwise(2, 3, 1, [5, 16]),
        depthwise(1, 2, 1, [1, 17]),
        depthwise(2, 2, 2, [2, 33]),
        depthwise(1, 3, 1, [9, 56]),
        depthwise(2, 2, 1, [3, 70]),
        depthwise(1, 2, 1, [6, 113]),
        depthwise(1, 2, 1, [7, 18]).with_padding([0, 0]),
        depthwise(2, 2, 1, [4, 40]).with_padding_lo_hi([1, 0], [0, 1]),
        depthwise(1, 2, 1, [5, 35]).with_padding_lo_hi([0, 1], [1, 0]),
        // Stride 2 (the input gradient by the parity of rows and columns): even and odd
        // sizes, rows shorter than a vector and of several, no padding after.
        depthwise(2, 3, 1, [8, 112]).with_stride([2, 2]),
        depthwise(1, 2, 1, [7, 9]).with_stride([2, 2]),
        depthwise(2, 2, 1, [5, 67]).with_stride([2, 2]),
        depthwise(1, 2, 1, [3, 49]).with_stride([2, 2]),
        depthwise(1, 2, 1, [4, 13]).with_stride([2, 2]),
        depthwise(1, 2, 1, [6, 34])
            .with_stride([2, 2])
            .with_padding_lo_hi([1, 1], [0, 0]),
    ];
    for (i, spec) in specs.into_iter().enumerate() {
        for algo in [ConvAlgorithm::Direct, ConvAlgorithm::Auto] {
            check_case::<f32, 2>(algo, spec, 400 + i as u64);
            check_case::<f64, 2>(algo, spec, 420 + i as u64);
        }
    }
}

/// Depthwise convolution on small planes in 1-D and 3-D (a vector of channels per position).
#[test]
fn small_depthwise_planes_in_1d_and_3d() {
    let line = ConvSpec::new(2, 33, 33, [12], [5])
        .with_groups(33)
        .with_padding([2]);
    let strided = ConvSpec::new(1, 19, 19, [13], [3])
        .with_groups(19)
        .with_stride([2])
        .with_dilation([3])
        .with_padding_lo_hi([0], [4]);
    let volume = ConvSpec::new(1, 18, 18, [3, 5, 6], [3, 3, 3])
        .with_groups(18)
        .with_padding([1, 1, 1])
        .with_stride([1, 1, 2]);
    for algo in ConvAlgorithm::ALL {
        for (i, spec) in [line, strided].into_iter().enumerate() {
            check_case::<f32, 1>(algo, spec, 300 + i as u64);
            check_case::<f64, 1>(algo, spec, 310 + i as u64);
        }
        check_case::<f32, 3>(algo, volume, 320);
        check_case::<f64, 3>(algo, volume, 321);
    }
}

/// `sum(y * r)` for the forward pass of `conv` on `x`, `w` (no bias).
fn loss<const D: usize>(
    conv: &ConvNd<D>,
    algo: ConvAlgorithm,
    x: &[f64],
    w: &[f64],
    r: &[f64],
) -> f64 {
    let mut y = vec![0.0; conv.output_len()];
    let mut scratch = vec![0.0; conv.scratch_len::<f64>(ConvOp::Forward, algo)];
    conv.forward(algo, x, w, None, &mut y, &mut scratch)
        .unwrap();
    y.iter().zip(r).map(|(a, b)| a * b).sum()
}

/// Central finite differences of `sum(y * r)` against `backward_input` and
/// `backward_weight`, in f64, for every algorithm. The error is `|fd - analytic| /
/// max(1, |analytic|)`.
fn gradcheck<const D: usize>(spec: ConvSpec<D>) {
    let conv = spec.build().unwrap();
    let x = random(conv.input_len(), 7);
    let w = random(conv.weight_len(), 8);
    let r = random(conv.output_len(), 9);
    let h = 1e-3;
    for algo in ConvAlgorithm::ALL {
        let mut dx = vec![0.0; conv.input_len()];
        let mut scratch = vec![0.0; conv.scratch_len::<f64>(ConvOp::BackwardInput, algo)];
        conv.backward_input(algo, &r, &w, &mut dx, &mut scratch)
            .unwrap();
        let mut dw = vec![0.0; conv.weight_len()];
        let mut scratch = vec![0.0; conv.scratch_len::<f64>(ConvOp::BackwardWeight, algo)];
        conv.backward_weight(algo, &x, &r, &mut dw, &mut scratch)
            .unwrap();
        for i in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += h;
            xm[i] -= h;
            let fd = (loss(&conv, algo, &xp, &w, &r) - loss(&conv, algo, &xm, &w, &r)) / (2.0 * h);
            let err = (fd - dx[i]).abs() / dx[i].abs().max(1.0);
            assert!(
                err <= 1e-6,
                "{} dx[{i}]: fd {fd} vs {} ({spec:?})",
                algo.name(),
                dx[i]
            );
        }
        for i in 0..w.len() {
            let (mut wp, mut wm) = (w.clone(), w.clone());
            wp[i] += h;
            wm[i] -= h;
            let fd = (loss(&conv, algo, &x, &wp, &r) - loss(&conv, algo, &x, &wm, &r)) / (2.0 * h);
            let err = (fd - dw[i]).abs() / dw[i].abs().max(1.0);
            assert!(
                err <= 1e-6,
                "{} dw[{i}]: fd {fd} vs {} ({spec:?})",
                algo.name(),
                dw[i]
            );
        }
    }
}

#[test]
fn finite_differences_1d() {
    gradcheck(
        ConvSpec::new(2, 4, 6, [23], [3])
            .with_groups(2)
            .with_stride([2])
            .with_padding_lo_hi([2], [1]),
    );
    gradcheck(
        ConvSpec::new(1, 3, 2, [40], [4])
            .with_dilation([3])
            .with_padding([2]),
    );
}

#[test]
fn finite_differences_2d() {
    gradcheck(
        ConvSpec::new(2, 2, 3, [7, 9], [3, 2])
            .with_stride([2, 1])
            .with_padding_lo_hi([1, 0], [0, 1])
            .with_dilation([1, 2]),
    );
    gradcheck(
        ConvSpec::new(1, 4, 4, [6, 5], [3, 3])
            .with_groups(4)
            .with_padding([1, 1]),
    );
}

#[test]
fn finite_differences_3d() {
    gradcheck(
        ConvSpec::new(1, 2, 2, [4, 5, 6], [2, 3, 2])
            .with_stride([1, 2, 1])
            .with_padding([1, 0, 1]),
    );
}

#[test]
fn bad_slices_and_scratch_are_errors() {
    let conv = ConvSpec::new(1, 2, 4, [5, 5], [3, 3]).build().unwrap();
    let x = vec![0.0f32; conv.input_len()];
    let w = vec![0.0f32; conv.weight_len()];
    let b = vec![0.0f32; conv.bias_len()];
    let mut y = vec![0.0f32; conv.output_len()];
    let mut dx = vec![0.0f32; conv.input_len()];
    let mut dw = vec![0.0f32; conv.weight_len()];
    let mut scratch = vec![0.0f32; 1 << 16];
    for algo in ConvAlgorithm::ALL {
        let e = conv.forward(algo, &x[1..], &w, None, &mut y, &mut scratch);
        assert_eq!(
            e,
            Err(Error::LengthMismatch {
                buffer: "input",
                expected: 50,
                actual: 49
            })
        );
        let e = conv.forward(algo, &x, &w[..3], None, &mut y, &mut scratch);
        assert!(matches!(
            e,
            Err(Error::LengthMismatch {
                buffer: "weight",
                ..
            })
        ));
        let e = conv.forward(algo, &x, &w, Some(&b[1..]), &mut y, &mut scratch);
        assert!(matches!(
            e,
            Err(Error::LengthMismatch { buffer: "bias", .. })
        ));
        let e = conv.forward(algo, &x, &w, None, &mut y[1..], &mut scratch);
        assert!(matches!(
            e,
            Err(Error::LengthMismatch {
                buffer: "output",
                ..
            })
        ));
        let e = conv.backward_input(algo, &y[1..], &w, &mut dx, &mut scratch);
        assert!(matches!(
            e,
            Err(Error::LengthMismatch {
                buffer: "grad_output",
                ..
            })
        ));
        let e = conv.backward_weight(algo, &x, &y, &mut dw[1..], &mut scratch);
        assert!(matches!(
            e,
            Err(Error::LengthMismatch {
                buffer: "grad_weight",
                ..
            })
        ));
    }
    let need = conv.scratch_len::<f32>(ConvOp::Forward, ConvAlgorithm::Unrolled);
    assert!(need > 0);
    let e = conv.forward(
        ConvAlgorithm::Unrolled,
        &x,
        &w,
        None,
        &mut y,
        &mut scratch[..need - 1],
    );
    assert_eq!(
        e,
        Err(Error::ScratchTooSmall {
            required: need,
            actual: need - 1
        })
    );
    let mut db = vec![0.0f32; 3];
    assert!(matches!(
        conv.backward_bias(&y, &mut db),
        Err(Error::LengthMismatch {
            buffer: "grad_bias",
            ..
        })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any spec at all, including zeros and values near `usize::MAX`: building returns `Ok`
    /// or an error, never panics, and an `Ok` geometry's sizes follow PyTorch's formula with
    /// element counts that fit.
    #[test]
    fn geometry_never_panics(
        sizes in proptest::collection::vec(prop_oneof![0usize..6, Just(usize::MAX), any::<usize>()], 4),
        axes in proptest::collection::vec(
            proptest::collection::vec(prop_oneof![4 => 0usize..6, 1 => Just(usize::MAX / 2), 1 => any::<usize>()], 6),
            2),
    ) {
        let mut spec = ConvSpec::<2>::new(sizes[0], sizes[1], sizes[2], [1, 1], [1, 1]).with_groups(sizes[3]);
        for (d, a) in axes.iter().enumerate() {
            spec.input_size[d] = a[0];
            spec.kernel_size[d] = a[1];
            spec.stride[d] = a[2];
            spec.dilation[d] = a[3];
            spec.padding_lo[d] = a[4];
            spec.padding_hi[d] = a[5];
        }
        match spec.build() {
            Ok(conv) => {
                for d in 0..2 {
                    let padded = spec.input_size[d] as u128 + spec.padding_lo[d] as u128 + spec.padding_hi[d] as u128;
                    let window = spec.dilation[d] as u128 * (spec.kernel_size[d] as u128 - 1) + 1;
                    prop_assert_eq!(conv.output_size()[d] as u128, (padded - window) / spec.stride[d] as u128 + 1);
                }
                let [oh, ow] = conv.output_size();
                prop_assert_eq!(conv.output_len() as u128, spec.batch as u128 * spec.out_channels as u128 * oh as u128 * ow as u128);
                prop_assert_eq!(conv.input_len() as u128,
                    spec.batch as u128 * spec.in_channels as u128 * spec.input_size[0] as u128 * spec.input_size[1] as u128);
                for algo in ConvAlgorithm::ALL {
                    for op in ConvOp::ALL {
                        let _ = conv.scratch_len::<f32>(op, algo);
                    }
                }
            }
            Err(e) => {
                // Every error renders a message naming something.
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    /// Each rule breaks the build with the error that names it.
    #[test]
    fn each_invalid_value_is_named(zero_at in 0usize..8, d in 0usize..2) {
        let mut spec = ConvSpec::<2>::new(2, 4, 6, [8, 8], [3, 3]);
        let expected = match zero_at {
            0 => { spec.batch = 0; Error::Zero { name: "batch", dim: None } }
            1 => { spec.in_channels = 0; Error::Zero { name: "in_channels", dim: None } }
            2 => { spec.out_channels = 0; Error::Zero { name: "out_channels", dim: None } }
            3 => { spec.groups = 0; Error::Zero { name: "groups", dim: None } }
            4 => { spec.input_size[d] = 0; Error::Zero { name: "input_size", dim: Some(d) } }
            5 => { spec.kernel_size[d] = 0; Error::Zero { name: "kernel_size", dim: Some(d) } }
            6 => { spec.stride[d] = 0; Error::Zero { name: "stride", dim: Some(d) } }
            _ => { spec.dilation[d] = 0; Error::Zero { name: "dilation", dim: Some(d) } }
        };
        prop_assert_eq!(spec.build(), Err(expected));
    }
}

#[test]
fn groups_must_divide_channels_and_overflow_is_caught() {
    assert_eq!(
        ConvSpec::new(1, 6, 8, [4], [3]).with_groups(4).build(),
        Err(Error::NotDivisible {
            name: "in_channels",
            value: 6,
            groups: 4
        })
    );
    assert_eq!(
        ConvSpec::new(1, 1 << 40, 1, [1 << 30], [1]).build(),
        Err(Error::Overflow {
            name: "input length"
        })
    );
    assert_eq!(
        ConvSpec::new(1, 1, 1, [1 << 33, 1 << 33], [1, 1]).build(),
        Err(Error::Overflow {
            name: "input plane"
        })
    );
}

/// The transposed convolution is the adjoint's input gradient plus the bias, for every
/// algorithm, and its output size is PyTorch's.
#[test]
fn transposed_convolution_matches_the_reference() {
    use origami_kernels::ConvTransposeSpec;
    let t = ConvTransposeSpec::new(2, 4, 6, [5, 7], [3, 2])
        .with_stride([2, 3])
        .with_padding([1, 0])
        .with_output_padding([1, 2])
        .with_dilation([1, 2])
        .with_groups(2)
        .build()
        .unwrap();
    // (in - 1) * stride - 2 * pad + dilation * (kernel - 1) + output_padding + 1
    assert_eq!(t.output_size(), [4 * 2 - 2 + 2 + 1 + 1, 6 * 3 + 2 + 2 + 1]);
    let x = random(t.input_len(), 1);
    let w = random(t.weight_len(), 2);
    let b = random(6, 3);
    let mut expected = vec![0.0; t.output_len()];
    reference::conv_backward_input(t.adjoint(), &x, &w, &mut expected).unwrap();
    let plane = t.output_size().iter().product::<usize>();
    for (i, e) in expected.iter_mut().enumerate() {
        *e += b[(i / plane) % 6];
    }
    for algo in ConvAlgorithm::ALL {
        let mut y = vec![f64::NAN; t.output_len()];
        let mut scratch = vec![f64::NAN; t.scratch_len::<f64>(algo)];
        t.forward(algo, &x, &w, Some(&b), &mut y, &mut scratch)
            .unwrap();
        assert_close("conv_transpose", &y, &expected, algo.name());
    }
}

/// A geometry whose tensors could not exist in memory (over `isize::MAX` bytes in `f64`) is
/// refused, even when its element count fits `usize`.
#[test]
fn tensors_larger_than_memory_are_refused() {
    let huge = (isize::MAX as usize) / 8 + 1;
    assert_eq!(
        ConvSpec::new(1, 1, 1, [huge], [1]).build(),
        Err(Error::Overflow {
            name: "input length"
        })
    );
    assert_eq!(
        ConvSpec::new(1, 1, 1, [huge - 1], [1])
            .build()
            .map(|c| c.input_len()),
        Ok(huge - 1)
    );
}

/// Winograd's rounding against `Unrolled`'s, both against the f64 reference, on the channel
/// counts and planes it is chosen for, all three passes: its transforms add a small constant
/// factor to the error of a direct sum (measured here, reported in `conv/winograd.rs`), far
/// inside the tolerance of 1e-5 of the largest output. One test per shape, so that they run
/// side by side: the f64 reference's 2 G multiply-adds are most of this suite's time.
#[test]
fn winograd_error_stays_near_the_direct_sums_c64_56x56() {
    winograd_error_stays_near_the_direct_sums(1, 64, 64, 56, Emulated::Skip);
}

/// See [`winograd_error_stays_near_the_direct_sums_c64_56x56`].
#[test]
fn winograd_error_stays_near_the_direct_sums_c128_28x28() {
    winograd_error_stays_near_the_direct_sums(2, 128, 128, 28, Emulated::Skip);
}

/// See [`winograd_error_stays_near_the_direct_sums_c64_56x56`].
#[test]
fn winograd_error_stays_near_the_direct_sums_c256_14x14() {
    winograd_error_stays_near_the_direct_sums(1, 256, 256, 14, Emulated::Skip);
}

/// See [`winograd_error_stays_near_the_direct_sums_c64_56x56`]. The deepest sums and the
/// smallest reference: the only shape of the four that emulated runs (a case divisor) check.
#[test]
fn winograd_error_stays_near_the_direct_sums_c512_7x7() {
    winograd_error_stays_near_the_direct_sums(2, 512, 64, 7, Emulated::Run);
}

/// Whether a test also runs where the cases are divided (under emulation).
#[derive(PartialEq)]
enum Emulated {
    Run,
    Skip,
}

fn winograd_error_stays_near_the_direct_sums(
    n: usize,
    c: usize,
    k: usize,
    size: usize,
    emulated: Emulated,
) {
    if emulated == Emulated::Skip && case_divisor() > 1 {
        eprintln!("skipped under a case divisor: {size}x{size}");
        return;
    }
    let spec = ConvSpec::new(n, c, k, [size, size], [3, 3]).with_padding([1, 1]);
    let conv = spec.build().unwrap();
    let e = Expected::new(&conv, 7);
    let (x, w, dy) = (cast::<f32>(&e.x), cast::<f32>(&e.w), cast::<f32>(&e.dy));
    let scale = |v: &[f64]| v.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let error = |got: &[f32], want: &[f64]| {
        got.iter()
            .zip(want)
            .fold(0.0f64, |m, (&g, &w)| m.max((g as f64 - w).abs()))
            / scale(want)
    };
    let mut errors = [[0.0; 3]; 2];
    for (a, algo) in [ConvAlgorithm::Unrolled, ConvAlgorithm::Winograd]
        .into_iter()
        .enumerate()
    {
        let mut y = vec![0.0f32; conv.output_len()];
        let mut sc = vec![0.0f32; conv.scratch_len::<f32>(ConvOp::Forward, algo)];
        conv.forward(algo, &x, &w, None, &mut y, &mut sc).unwrap();
        let mut dx = vec![0.0f32; conv.input_len()];
        let mut sc = vec![0.0f32; conv.scratch_len::<f32>(ConvOp::BackwardInput, algo)];
        conv.backward_input(algo, &dy, &w, &mut dx, &mut sc)
            .unwrap();
        let mut dw = vec![0.0f32; conv.weight_len()];
        let mut sc = vec![0.0f32; conv.scratch_len::<f32>(ConvOp::BackwardWeight, algo)];
        conv.backward_weight(algo, &x, &dy, &mut dw, &mut sc)
            .unwrap();
        // The weight gradient's sums cancel: measured against the sums of magnitudes.
        let dw_error = error(&dw, &e.dw) * scale(&e.dw) / e.dw_scale;
        errors[a] = [error(&y, &e.y), error(&dx, &e.dx), dw_error];
    }
    eprintln!(
        "n{n} c{c} k{k} {size}x{size}: relative error unrolled {:?}, winograd {:?}",
        errors[0], errors[1]
    );
    for (pass, (&unrolled, &winograd)) in errors[0].iter().zip(&errors[1]).enumerate() {
        assert!(winograd <= 1e-5, "{spec:?} pass {pass}: {winograd:e}");
        assert!(
            winograd <= 8.0 * unrolled.max(1e-7),
            "{spec:?} pass {pass}: {winograd:e} against {unrolled:e}"
        );
    }
}
