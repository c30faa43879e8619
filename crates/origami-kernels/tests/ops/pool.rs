//! Every pooling algorithm against the f64 reference, for every kind, element type and
//! number of dimensions, on randomized geometries; finite-difference checks of the
//! backward passes; the prefix-sum accuracy bound; error handling.

use crate::common::{assert_close, cast, random};
use origami_kernels::{
    Element, Error, PoolAlgorithm, PoolKind, PoolNd, PoolOp, PoolSpec, reference,
};
use proptest::prelude::*;

/// A random valid geometry: every PyTorch parameter, odd sizes, long rows along W.
fn spec_strategy<const D: usize>(
    max_w: usize,
    max_other: usize,
) -> impl Strategy<Value = PoolSpec<D>> {
    (
        (
            1usize..3,
            1usize..4,
            any::<bool>(),
            any::<bool>(),
            prop_oneof![4 => Just(0usize), 1 => 1usize..5],
        ),
        proptest::collection::vec(
            (
                1usize..=max_other,
                1usize..6,
                1usize..4,
                1usize..3,
                0usize..3,
            ),
            D,
        ),
        1usize..=max_w,
    )
        .prop_filter_map(
            "valid pooling geometry",
            move |((batch, channels, ceil, cip, div), axes, w)| {
                let mut spec = PoolSpec::new(batch, channels, [1; D], [1; D])
                    .with_ceil_mode(ceil)
                    .with_count_include_pad(cip)
                    .with_divisor_override(div);
                for (d, &(size, k, s, dil, pad)) in axes.iter().enumerate() {
                    spec.input_size[d] = if d == D - 1 { w } else { size };
                    spec.kernel_size[d] = k;
                    spec.stride[d] = s;
                    spec.dilation[d] = dil;
                    spec.padding[d] = pad.min(k / 2);
                }
                spec.build().ok().map(|_| spec)
            },
        )
}

/// Windows that tile the input, so `Fold` serves them.
fn tiling_strategy<const D: usize>(max_blocks: usize) -> impl Strategy<Value = PoolSpec<D>> {
    (
        (
            1usize..3,
            1usize..4,
            prop_oneof![3 => Just(0usize), 1 => 1usize..5],
        ),
        proptest::collection::vec((1usize..=max_blocks, 1usize..5), D),
    )
        .prop_map(|((batch, channels, div), axes)| {
            let mut spec =
                PoolSpec::new(batch, channels, [1; D], [1; D]).with_divisor_override(div);
            for (d, &(blocks, k)) in axes.iter().enumerate() {
                spec.input_size[d] = blocks * k;
                spec.kernel_size[d] = k;
                spec.stride[d] = k;
            }
            spec
        })
}

fn dirty<T: Element>(len: usize) -> Vec<T> {
    vec![T::NAN; len]
}

/// Runs forward and backward of every kind with `algo` and compares with the reference;
/// checks that an algorithm that cannot serve the geometry says so.
fn check_case<T: Element, const D: usize>(algo: PoolAlgorithm, spec: PoolSpec<D>, seed: u64) {
    let pool = spec.build().expect("strategy yields valid specs");
    let x = cast::<T>(&random(pool.input_len(), seed));
    let dy = cast::<T>(&random(pool.output_len(), seed + 1));
    // The reference sees the values the kernels see: where windows overlap, a gradient can
    // cancel (`dy[0] + dy[1]` near zero), and the rounding of the inputs alone would then
    // exceed the tolerance.
    let x64: Vec<f64> = x.iter().map(|v| v.to_f64()).collect();
    let dy64: Vec<f64> = dy.iter().map(|v| v.to_f64()).collect();
    for kind in PoolKind::ALL {
        let ctx = format!("{} {} {} {spec:?}", algo.name(), kind.name(), T::NAME);
        if let Err(e) = pool.supports::<T>(kind, algo) {
            let mut y = vec![T::ZERO; pool.output_len()];
            let r = pool.forward(kind, algo, &x, &mut y, None, &mut []);
            assert_eq!(r, Err(e), "{ctx}");
            assert!(matches!(e, Error::Unsupported { .. }), "{ctx}");
            continue;
        }
        let mut expected = vec![0.0f64; pool.output_len()];
        let mut expected_idx = vec![0usize; pool.output_len()];
        reference::pool_forward(&pool, kind, &x64, &mut expected, Some(&mut expected_idx)).unwrap();
        let mut y = dirty::<T>(pool.output_len());
        let mut idx = vec![usize::MAX; pool.output_len()];
        let mut scratch = dirty::<T>(pool.scratch_len::<T>(kind, PoolOp::Forward, algo));
        pool.forward(kind, algo, &x, &mut y, Some(&mut idx), &mut scratch)
            .unwrap();
        assert_close("forward", &y, &expected, &ctx);
        if kind == PoolKind::Max {
            assert_eq!(idx, expected_idx, "indices ({ctx})");
        }

        let mut expected = vec![0.0f64; pool.input_len()];
        reference::pool_backward(&pool, kind, &dy64, Some(&expected_idx), &mut expected).unwrap();
        let mut dx = dirty::<T>(pool.input_len());
        let mut scratch = dirty::<T>(pool.scratch_len::<T>(kind, PoolOp::Backward, algo));
        pool.backward(kind, algo, &dy, Some(&expected_idx), &mut dx, &mut scratch)
            .unwrap();
        assert_close("backward", &dx, &expected, &ctx);
    }
}

macro_rules! pool_suite {
    ($($name:ident: $algo:expr, $t:ty, $d:literal, $strategy:expr;)*) => {$(
        proptest! {
            #![proptest_config(ProptestConfig { cases: crate::common::cases(48), max_shrink_iters: 32, ..ProptestConfig::default() })]
            #[test]
            fn $name(spec in $strategy, seed in any::<u64>()) {
                check_case::<$t, $d>($algo, spec, seed % 1_000_000);
            }
        }
    )*};
}

pool_suite! {
    direct_f32_1d: PoolAlgorithm::Direct, f32, 1, spec_strategy::<1>(150, 1);
    direct_f64_1d: PoolAlgorithm::Direct, f64, 1, spec_strategy::<1>(150, 1);
    direct_f32_2d: PoolAlgorithm::Direct, f32, 2, spec_strategy::<2>(70, 9);
    direct_f64_2d: PoolAlgorithm::Direct, f64, 2, spec_strategy::<2>(70, 9);
    direct_f32_3d: PoolAlgorithm::Direct, f32, 3, spec_strategy::<3>(40, 6);
    direct_f64_3d: PoolAlgorithm::Direct, f64, 3, spec_strategy::<3>(40, 6);
    prefix_sum_f32_1d: PoolAlgorithm::PrefixSum, f32, 1, spec_strategy::<1>(150, 1);
    prefix_sum_f64_1d: PoolAlgorithm::PrefixSum, f64, 1, spec_strategy::<1>(150, 1);
    prefix_sum_f32_2d: PoolAlgorithm::PrefixSum, f32, 2, spec_strategy::<2>(70, 9);
    prefix_sum_f64_2d: PoolAlgorithm::PrefixSum, f64, 2, spec_strategy::<2>(70, 9);
    prefix_sum_f32_3d: PoolAlgorithm::PrefixSum, f32, 3, spec_strategy::<3>(40, 6);
    prefix_sum_f64_3d: PoolAlgorithm::PrefixSum, f64, 3, spec_strategy::<3>(40, 6);
    fold_refuses_f32_2d: PoolAlgorithm::Fold, f32, 2, spec_strategy::<2>(70, 9);
    fold_f32_1d: PoolAlgorithm::Fold, f32, 1, tiling_strategy::<1>(40);
    fold_f64_1d: PoolAlgorithm::Fold, f64, 1, tiling_strategy::<1>(40);
    fold_f32_2d: PoolAlgorithm::Fold, f32, 2, tiling_strategy::<2>(12);
    fold_f64_2d: PoolAlgorithm::Fold, f64, 2, tiling_strategy::<2>(12);
    fold_f32_3d: PoolAlgorithm::Fold, f32, 3, tiling_strategy::<3>(5);
    fold_f64_3d: PoolAlgorithm::Fold, f64, 3, tiling_strategy::<3>(5);
    auto_f32_2d: PoolAlgorithm::Auto, f32, 2, spec_strategy::<2>(70, 9);
    auto_tiling_f32_2d: PoolAlgorithm::Auto, f32, 2, tiling_strategy::<2>(12);
}

/// Large windows and global pooling, which the random strategy rarely builds.
#[test]
fn large_windows_and_global_pooling() {
    let specs: [PoolSpec<2>; 6] = [
        // Wide strided rows: Direct's de-interleaved path (with count_include_pad off, the
        // divisor varies along H but not across the interior of a row).
        PoolSpec::new(2, 2, [11, 80], [3, 3])
            .with_stride([2, 2])
            .with_padding([1, 1])
            .with_count_include_pad(false),
        PoolSpec::new(1, 1, [6, 130], [2, 5])
            .with_stride([2, 3])
            .with_dilation([1, 2]),
        PoolSpec::new(1, 2, [40, 45], [15, 15])
            .with_stride([1, 1])
            .with_padding([7, 7]),
        PoolSpec::new(1, 2, [33, 70], [31, 31])
            .with_stride([1, 2])
            .with_padding([15, 15])
            .with_count_include_pad(false),
        PoolSpec::global(2, 3, [9, 13]),
        PoolSpec::new(1, 1, [20, 20], [7, 3])
            .with_stride([3, 1])
            .with_dilation([2, 3])
            .with_ceil_mode(true)
            .with_padding([3, 1]),
    ];
    for (i, spec) in specs.into_iter().enumerate() {
        for algo in PoolAlgorithm::ALL {
            check_case::<f32, 2>(algo, spec, 10 + i as u64);
            check_case::<f64, 2>(algo, spec, 20 + i as u64);
        }
    }
}

/// More lines than one group of a sum pass along W (`PrefixSum` transposes 64 lines of `f32`,
/// 32 of `f64`, at a time), with a partial last group, in 1-D (lines across channel planes)
/// and 3-D (lines across depth and rows); the random strategy's shapes stay within one group.
#[test]
fn sum_passes_cross_line_groups() {
    let one = PoolSpec::new(2, 70, [37], [5])
        .with_stride([2])
        .with_padding([2]);
    let three = PoolSpec::new(1, 2, [3, 30, 9], [2, 5, 3])
        .with_stride([1, 2, 1])
        .with_padding([1, 2, 1])
        .with_count_include_pad(false);
    for algo in PoolAlgorithm::ALL {
        check_case::<f32, 1>(algo, one, 31);
        check_case::<f64, 1>(algo, one, 32);
        check_case::<f32, 3>(algo, three, 33);
        check_case::<f64, 3>(algo, three, 34);
    }
}

/// Stride-1 average and sum pooling (PrefixSum's window sums by planes) over every window
/// width from 1 to 70, as wide as a few vectors or narrower than one, with and without
/// padding: the W pass doubles up to the largest power of two in the window and adds one
/// piece per set bit, in registers below two vectors' width and through memory above.
#[test]
fn stride_one_windows_of_every_width() {
    for k in 1..=70usize {
        let w = [k + 3, 2 * k + 17, 7][k % 3].max(k);
        let pad = [0, k / 2, k / 3][k % 3];
        let h = 1 + k % 5;
        let spec = PoolSpec::new(1, 2, [h, w], [k.min(h), k])
            .with_stride([1, 1])
            .with_padding([pad.min(k.min(h) / 2), pad])
            .with_count_include_pad(k % 2 == 0);
        check_case::<f32, 2>(PoolAlgorithm::PrefixSum, spec, 40 + k as u64);
        check_case::<f64, 2>(PoolAlgorithm::PrefixSum, spec, 50 + k as u64);
        let line = PoolSpec::new(2, 1, [w], [k])
            .with_stride([1])
            .with_padding([pad]);
        check_case::<f32, 1>(PoolAlgorithm::PrefixSum, line, 60 + k as u64);
    }
}

/// Distinct values with gaps far larger than the finite-difference step, so max has no ties
/// and no switch inside `[x - h, x + h]`.
fn distinct(len: usize, seed: u64) -> Vec<f64> {
    let r = random(len, seed);
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(|&a, &b| r[a].total_cmp(&r[b]));
    let mut x = vec![0.0; len];
    for (rank, &i) in order.iter().enumerate() {
        x[i] = rank as f64 * 1e-2 - len as f64 * 5e-3;
    }
    x
}

fn gradcheck<const D: usize>(spec: PoolSpec<D>) {
    let pool = spec.build().unwrap();
    let x = distinct(pool.input_len(), 3);
    let r = random(pool.output_len(), 4);
    let h = 1e-5;
    for kind in PoolKind::ALL {
        for algo in PoolAlgorithm::ALL {
            if pool.supports::<f64>(kind, algo).is_err() {
                continue;
            }
            let run = |x: &[f64], idx: &mut [usize]| -> f64 {
                let mut y = vec![0.0; pool.output_len()];
                let mut scratch = vec![0.0; pool.scratch_len::<f64>(kind, PoolOp::Forward, algo)];
                pool.forward(kind, algo, x, &mut y, Some(idx), &mut scratch)
                    .unwrap();
                y.iter().zip(&r).map(|(a, b)| a * b).sum()
            };
            let mut idx = vec![0; pool.output_len()];
            run(&x, &mut idx);
            let mut dx = vec![0.0; pool.input_len()];
            let mut scratch = vec![0.0; pool.scratch_len::<f64>(kind, PoolOp::Backward, algo)];
            pool.backward(kind, algo, &r, Some(&idx), &mut dx, &mut scratch)
                .unwrap();
            let mut tmp = vec![0; pool.output_len()];
            for i in 0..x.len() {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[i] += h;
                xm[i] -= h;
                let fd = (run(&xp, &mut tmp) - run(&xm, &mut tmp)) / (2.0 * h);
                let err = (fd - dx[i]).abs() / dx[i].abs().max(1.0);
                assert!(
                    err <= 1e-6,
                    "{} {} dx[{i}]: fd {fd} vs {} ({spec:?})",
                    algo.name(),
                    kind.name(),
                    dx[i]
                );
            }
        }
    }
}

#[test]
fn finite_differences() {
    gradcheck(
        PoolSpec::new(2, 2, [17], [4])
            .with_stride([3])
            .with_padding([2])
            .with_ceil_mode(true),
    );
    gradcheck(PoolSpec::new(1, 2, [12], [3]));
    gradcheck(
        PoolSpec::new(1, 2, [7, 9], [3, 2])
            .with_stride([2, 1])
            .with_padding([1, 1])
            .with_count_include_pad(false),
    );
    gradcheck(PoolSpec::new(1, 1, [6, 8], [2, 4]));
    gradcheck(
        PoolSpec::new(1, 1, [5, 6, 7], [3, 2, 3])
            .with_stride([1, 2, 2])
            .with_padding([1, 1, 0])
            .with_dilation([1, 2, 1]),
    );
}

/// f32 prefix sums over a row of 10^6 values around 10^3 must not lose digits by
/// cancellation: PrefixSum's error against f64 stays within 4x of Direct's.
#[test]
fn prefix_sum_accuracy_on_long_rows() {
    let n = 1_000_000;
    let x64: Vec<f64> = random(n, 11).iter().map(|v| 1000.0 + v).collect();
    let x = cast::<f32>(&x64);
    let x_exact: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    for (k, kind) in [(15usize, PoolKind::Sum), (63, PoolKind::Avg)] {
        let pool = PoolSpec::new(1, 1, [n], [k])
            .with_stride([1])
            .with_padding([k / 2])
            .build()
            .unwrap();
        let mut expected = vec![0.0f64; pool.output_len()];
        reference::pool_forward(&pool, kind, &x_exact, &mut expected, None).unwrap();
        let err = |algo| {
            let mut y = vec![0.0f32; pool.output_len()];
            let mut scratch = vec![0.0f32; pool.scratch_len::<f32>(kind, PoolOp::Forward, algo)];
            pool.forward(kind, algo, &x, &mut y, None, &mut scratch)
                .unwrap();
            y.iter()
                .zip(&expected)
                .map(|(&a, &b)| (a as f64 - b).abs())
                .fold(0.0, f64::max)
        };
        let (direct, prefix) = (err(PoolAlgorithm::Direct), err(PoolAlgorithm::PrefixSum));
        assert!(
            prefix <= 4.0 * direct,
            "k={k}: prefix-sum error {prefix:e} vs direct {direct:e}"
        );
    }
}

/// Max pooling of `x` with indices by `algo`, or `None` where `algo` does not serve `pool`.
fn max_with_indices<const D: usize>(
    pool: &PoolNd<D>,
    algo: PoolAlgorithm,
    x: &[f32],
) -> Option<(Vec<f32>, Vec<usize>)> {
    pool.supports::<f32>(PoolKind::Max, algo).ok()?;
    let mut y = vec![0.0f32; pool.output_len()];
    let mut idx = vec![usize::MAX; pool.output_len()];
    let mut scratch = vec![0.0f32; pool.scratch_len::<f32>(PoolKind::Max, PoolOp::Forward, algo)];
    pool.forward(PoolKind::Max, algo, x, &mut y, Some(&mut idx), &mut scratch)
        .unwrap();
    Some((y, idx))
}

/// The reference's max pooling of `x`: values and indices, each window walked in order.
fn reference_max<const D: usize>(pool: &PoolNd<D>, x: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let mut y = vec![0.0f64; pool.output_len()];
    let mut idx = vec![0usize; pool.output_len()];
    reference::pool_forward(pool, PoolKind::Max, x, &mut y, Some(&mut idx)).unwrap();
    (y, idx)
}

/// Max pooling's ties and NaN follow PyTorch: the first maximum, or the last NaN.
#[test]
fn ties_pick_the_first_maximum_and_nan_propagates() {
    let pool = PoolSpec::new(1, 1, [8], [4])
        .with_stride([2])
        .build()
        .unwrap();
    let x = [1.0f32, 3.0, 3.0, 2.0, f32::NAN, 0.0, f32::NAN, 5.0];
    for algo in PoolAlgorithm::ALL {
        let Some((y, idx)) = max_with_indices(&pool, algo, &x) else {
            continue;
        };
        assert_eq!(y[0], 3.0, "{}", algo.name());
        assert!(y[1].is_nan() && y[2].is_nan(), "{}", algo.name());
        assert_eq!(idx, [1, 4, 6], "{}", algo.name());
    }
}

/// Ties and NaN where the strided `Direct` path reduces each window row along W first and
/// then combines the rows (and holds rows that neighbouring output rows share): values from
/// a set of three, some NaN, on rows wide enough for its vectors; windows of up to three
/// rows, of five rows (more than it holds at once) and 3-D ones. Every algorithm's values
/// and indices must equal the reference's, which walks each window in order.
#[test]
fn ties_and_nan_across_window_rows() {
    let specs2: [PoolSpec<2>; 3] = [
        PoolSpec::new(2, 3, [9, 75], [3, 3])
            .with_stride([2, 2])
            .with_padding([1, 1]),
        PoolSpec::new(1, 2, [12, 90], [5, 3])
            .with_stride([2, 2])
            .with_padding([2, 0]),
        PoolSpec::new(1, 1, [7, 120], [2, 4])
            .with_stride([1, 3])
            .with_dilation([2, 1]),
    ];
    let specs3: [PoolSpec<3>; 1] = [PoolSpec::new(1, 2, [5, 6, 70], [3, 3, 3])
        .with_stride([2, 2, 2])
        .with_padding([1, 1, 1])];
    fn check<const D: usize>(spec: PoolSpec<D>, seed: u64) {
        let pool = spec.build().unwrap();
        let x64: Vec<f64> = random(pool.input_len(), seed)
            .iter()
            .map(|&r| match (r.abs() * 1000.0) as u32 % 16 {
                0 => f64::NAN,
                k => f64::from(k % 3),
            })
            .collect();
        let (expected, expected_idx) = reference_max(&pool, &x64);
        let x = cast::<f32>(&x64);
        for algo in PoolAlgorithm::ALL {
            let Some((y, idx)) = max_with_indices(&pool, algo, &x) else {
                continue;
            };
            let ctx = format!("{} {spec:?}", algo.name());
            assert_eq!(idx, expected_idx, "indices ({ctx})");
            for (&got, &want) in y.iter().zip(&expected) {
                assert!(
                    got.to_f64() == want || (got.is_nan() && want.is_nan()),
                    "{ctx}"
                );
            }
        }
    }
    for (i, spec) in specs2.into_iter().enumerate() {
        check(spec, 40 + i as u64);
    }
    for spec in specs3 {
        check(spec, 50);
    }
}

/// Max windows of 2 and 3 at stride 2 (ResNet's and VGG's pools), whose rows go through
/// registers edges and all: the left padding, right ends inside and past a vector, ceil
/// mode's windows hanging over the end (along W and, with odd and even heights, along H,
/// where 3-row windows share rows), rows of -inf (the index must be the window's first
/// element, not the padding's), ties and NaN. Values and indices equal the reference's.
#[test]
fn strided_max_edges_and_infinities() {
    let mut specs = Vec::new();
    for (h, w) in [16usize, 17, 32, 33, 47, 64, 112]
        .into_iter()
        .flat_map(|w| [(7, w), (8, w)])
    {
        for (k, pad) in [(3usize, 1usize), (3, 0), (2, 1), (2, 0)] {
            for ceil in [false, true] {
                specs.push(
                    PoolSpec::new(1, 2, [h, w], [k, k])
                        .with_stride([2, 2])
                        .with_padding([pad, pad])
                        .with_ceil_mode(ceil),
                );
            }
        }
    }
    type Fill = (&'static str, fn(f64) -> f64);
    let fills: [Fill; 3] = [
        ("-inf", |_| f64::NEG_INFINITY),
        ("ties, nan, -inf", |r| match (r.abs() * 1000.0) as u32 % 8 {
            0 => f64::NAN,
            1 | 2 => f64::NEG_INFINITY,
            k => f64::from(k % 2),
        }),
        ("random", |r| r),
    ];
    for spec in specs {
        let pool = spec.build().unwrap();
        for (i, (name, fill)) in fills.iter().enumerate() {
            let x64: Vec<f64> = random(pool.input_len(), 70 + i as u64)
                .iter()
                .map(|&r| fill(r))
                .collect();
            let (expected, expected_idx) = reference_max(&pool, &x64);
            let x = cast::<f32>(&x64);
            for algo in [PoolAlgorithm::Direct, PoolAlgorithm::Auto] {
                let (y, idx) = max_with_indices(&pool, algo, &x).expect("Direct serves max");
                let ctx = format!("{} {name} {spec:?}", algo.name());
                assert_eq!(idx, expected_idx, "indices ({ctx})");
                // The max of the values rounded to f32 is the rounded max.
                for (&got, &want) in y.iter().zip(&expected) {
                    assert!(
                        got.to_f64() == f64::from(want as f32) || (got.is_nan() && want.is_nan()),
                        "{ctx}"
                    );
                }
            }
            // f64's vectors are half as wide: other rows end inside them.
            let mut y = vec![0.0f64; pool.output_len()];
            let mut idx = vec![usize::MAX; pool.output_len()];
            pool.forward(
                PoolKind::Max,
                PoolAlgorithm::Direct,
                &x64,
                &mut y,
                Some(&mut idx),
                &mut [],
            )
            .unwrap();
            assert_eq!(idx, expected_idx, "f64 indices ({name} {spec:?})");
            assert!(
                y.iter()
                    .zip(&expected)
                    .all(|(&g, &e)| g == e || (g.is_nan() && e.is_nan())),
                "f64 values ({name} {spec:?})"
            );
        }
    }
}

/// A bad max index is reported by value, the first one in memory order, whichever planes
/// (and threads) come before it.
#[test]
fn the_first_bad_index_is_named() {
    let pool = PoolSpec::new(2, 3, [4, 4], [2, 2]).build().unwrap();
    let dy = vec![1.0f32; pool.output_len()];
    let mut idx = vec![0usize; pool.output_len()];
    let plane = pool.output_len() / 6;
    idx[2 * plane + 2] = 16 + 5;
    idx[3 * plane] = 16 + 9;
    let mut dx = vec![0.0f32; pool.input_len()];
    let r = pool.backward(
        PoolKind::Max,
        PoolAlgorithm::Auto,
        &dy,
        Some(&idx),
        &mut dx,
        &mut [],
    );
    assert!(
        matches!(
            r,
            Err(Error::InvalidValue {
                name: "indices",
                value: 21,
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn bad_input_is_an_error() {
    let pool = PoolSpec::new(1, 2, [6, 6], [2, 2]).build().unwrap();
    let x = vec![0.0f32; pool.input_len()];
    let mut y = vec![0.0f32; pool.output_len()];
    let mut dx = vec![0.0f32; pool.input_len()];
    for algo in PoolAlgorithm::ALL {
        assert!(matches!(
            pool.forward(PoolKind::Avg, algo, &x[1..], &mut y, None, &mut []),
            Err(Error::LengthMismatch {
                buffer: "input",
                ..
            })
        ));
        let mut short = vec![0usize; 3];
        assert!(matches!(
            pool.forward(PoolKind::Max, algo, &x, &mut y, Some(&mut short), &mut []),
            Err(Error::LengthMismatch {
                buffer: "indices",
                ..
            })
        ));
        assert!(matches!(
            pool.backward(PoolKind::Max, algo, &y, None, &mut dx, &mut []),
            Err(Error::LengthMismatch {
                buffer: "indices",
                ..
            })
        ));
        let idx = vec![36usize; pool.output_len()];
        assert!(matches!(
            pool.backward(PoolKind::Max, algo, &y, Some(&idx), &mut dx, &mut []),
            Err(Error::InvalidValue {
                name: "indices",
                value: 36,
                ..
            })
        ));
    }
    let overlapping = PoolSpec::new(1, 1, [6], [3])
        .with_stride([1])
        .build()
        .unwrap();
    let r = overlapping.forward(
        PoolKind::Sum,
        PoolAlgorithm::Fold,
        &[0.0f32; 6],
        &mut [0.0; 4],
        None,
        &mut [],
    );
    assert!(matches!(
        r,
        Err(Error::Unsupported {
            algorithm: "fold",
            ..
        })
    ));
    let need =
        overlapping.scratch_len::<f32>(PoolKind::Sum, PoolOp::Forward, PoolAlgorithm::PrefixSum);
    assert!(need > 0);
    let r = overlapping.forward(
        PoolKind::Sum,
        PoolAlgorithm::PrefixSum,
        &[0.0f32; 6],
        &mut [0.0; 4],
        None,
        &mut vec![0.0; need - 1],
    );
    assert_eq!(
        r,
        Err(Error::ScratchTooSmall {
            required: need,
            actual: need - 1
        })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any spec: building returns `Ok` or an error, never panics; `Ok` sizes follow
    /// PyTorch's formula.
    #[test]
    fn geometry_never_panics(
        head in proptest::collection::vec(prop_oneof![0usize..4, Just(usize::MAX), any::<usize>()], 2),
        axes in proptest::collection::vec(
            proptest::collection::vec(prop_oneof![4 => 0usize..7, 1 => Just(usize::MAX / 2), 1 => any::<usize>()], 5),
            2),
        ceil in any::<bool>(),
    ) {
        let mut spec = PoolSpec::<2>::new(head[0], head[1], [1, 1], [1, 1]).with_ceil_mode(ceil);
        for (d, a) in axes.iter().enumerate() {
            spec.input_size[d] = a[0];
            spec.kernel_size[d] = a[1];
            spec.stride[d] = a[2];
            spec.dilation[d] = a[3];
            spec.padding[d] = a[4];
        }
        if let Ok(pool) = spec.build() {
            for d in 0..2 {
                let (i, k, s, dil, p) = (spec.input_size[d] as i128, spec.kernel_size[d] as i128,
                    spec.stride[d] as i128, spec.dilation[d] as i128, spec.padding[d] as i128);
                let num = i + 2 * p - dil * (k - 1) - 1 + if ceil { s - 1 } else { 0 };
                let mut o = num.div_euclid(s) + 1;
                if ceil && (o - 1) * s >= i + p {
                    o -= 1;
                }
                prop_assert_eq!(pool.output_size()[d] as i128, o);
                prop_assert!(p <= k / 2);
                // Every window reads at least one input element (small cases, brute force).
                if o < 1000 && k < 1000 {
                    for oo in 0..o {
                        let hit = (0..k).any(|t| (0..i).contains(&(oo * s - p + t * dil)));
                        prop_assert!(hit, "window {} of dim {} reads only padding", oo, d);
                    }
                }
            }
            for kind in PoolKind::ALL {
                for algo in PoolAlgorithm::ALL {
                    let _ = pool.scratch_len::<f32>(kind, PoolOp::Forward, algo);
                    let _ = pool.scratch_len::<f32>(kind, PoolOp::Backward, algo);
                }
            }
        }
    }
}

#[test]
fn invalid_values_are_named() {
    assert_eq!(
        PoolSpec::new(1, 1, [8], [3]).with_stride([0]).build(),
        Err(Error::Zero {
            name: "stride",
            dim: Some(0)
        })
    );
    assert_eq!(
        PoolSpec::new(0, 1, [8], [3]).build(),
        Err(Error::Zero {
            name: "batch",
            dim: None
        })
    );
    assert_eq!(
        PoolSpec::new(1, 1, [8, 8], [0, 3]).build(),
        Err(Error::Zero {
            name: "kernel_size",
            dim: Some(0)
        })
    );
    assert_eq!(
        PoolSpec::new(1, 1, [8, 8], [3, 3])
            .with_padding([2, 0])
            .build(),
        Err(Error::PaddingTooLarge {
            dim: 0,
            padding: 2,
            limit: 1
        })
    );
    assert_eq!(
        PoolSpec::new(1, 1, [2], [5]).build(),
        Err(Error::WindowTooLarge {
            dim: 0,
            padded_input: 2,
            window: 5
        })
    );
    assert_eq!(
        PoolSpec::new(usize::MAX, 2, [1], [1]).build(),
        Err(Error::Overflow { name: "planes" })
    );
    let _: PoolNd<1> = PoolSpec::new(1, 1, [5], [5]).build().unwrap();
}

/// Max pooling's backward on an input gradient larger than the caches asks for a channel
/// plane of scratch per thread and routes the gradients through it: the same values as a
/// plain scatter, and too little scratch is an error.
#[test]
#[cfg_attr(miri, ignore)]
fn large_max_gradient_routes_through_scratch() {
    let pool = PoolSpec::new(1, 3, [900, 900], [3, 3])
        .with_stride([2, 2])
        .with_padding([1, 1])
        .build()
        .unwrap();
    let plane = 900 * 900;
    let need = pool.scratch_len::<f32>(PoolKind::Max, PoolOp::Backward, PoolAlgorithm::Auto);
    assert!(need >= plane, "scratch {need} for planes of {plane}");
    let x: Vec<f32> = (0..pool.input_len())
        .map(|i| ((i * 7919) % 1013) as f32)
        .collect();
    let mut y = vec![0.0f32; pool.output_len()];
    let mut idx = vec![0usize; pool.output_len()];
    let mut scratch = vec![f32::NAN; need];
    let algo = PoolAlgorithm::Auto;
    pool.forward(
        PoolKind::Max,
        algo,
        &x,
        &mut y,
        Some(&mut idx),
        &mut scratch,
    )
    .unwrap();
    let dy: Vec<f32> = (0..pool.output_len()).map(|i| (i % 17) as f32).collect();
    let mut expected = vec![0.0f32; pool.input_len()];
    let out_plane = pool.output_len() / 3;
    for (o, (&g, &i)) in dy.iter().zip(&idx).enumerate() {
        expected[o / out_plane * plane + i] += g;
    }
    let mut dx = vec![f32::NAN; pool.input_len()];
    pool.backward(PoolKind::Max, algo, &dy, Some(&idx), &mut dx, &mut scratch)
        .unwrap();
    assert!(dx == expected);
    let short = pool.backward(
        PoolKind::Max,
        algo,
        &dy,
        Some(&idx),
        &mut dx,
        &mut scratch[..plane - 1],
    );
    assert!(short.is_err(), "{short:?}");
}
