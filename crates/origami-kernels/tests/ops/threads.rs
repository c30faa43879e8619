//! The `rayon` feature: every operation gives the same bits on 1, 2, 3 and 4 threads, and
//! matches the `f64` reference.

use crate::common::{assert_close, cast, random};
use origami_kernels::reference;
use origami_kernels::{ConvAlgorithm, ConvOp, ConvSpec, PoolAlgorithm, PoolKind, PoolOp, PoolSpec};

fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
        .install(f)
}

/// Asserts `a` and `b` are the same bits, naming the first element that differs (a whole
/// tensor in the message would bury it).
fn assert_same_bits(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    if let Some(i) = (0..a.len()).find(|&i| a[i].to_bits() != b[i].to_bits()) {
        panic!(
            "{what}: element {i} is {:e} on one thread, {:e}",
            a[i], b[i]
        );
    }
}

/// Forward, input gradient and weight gradient of `spec` with `algo`, on the current pool.
fn conv_all(spec: ConvSpec<2>, algo: ConvAlgorithm) -> [Vec<f32>; 3] {
    let conv = spec.build().unwrap();
    let x = cast::<f32>(&random(conv.input_len(), 1));
    let w = cast::<f32>(&random(conv.weight_len(), 2));
    let dy = cast::<f32>(&random(conv.output_len(), 3));
    let scratch = |op| vec![f32::NAN; conv.scratch_len::<f32>(op, algo)];
    let mut y = vec![0.0; conv.output_len()];
    conv.forward(algo, &x, &w, None, &mut y, &mut scratch(ConvOp::Forward))
        .unwrap();
    let mut dx = vec![0.0; conv.input_len()];
    conv.backward_input(algo, &dy, &w, &mut dx, &mut scratch(ConvOp::BackwardInput))
        .unwrap();
    let mut dw = vec![0.0; conv.weight_len()];
    conv.backward_weight(algo, &x, &dy, &mut dw, &mut scratch(ConvOp::BackwardWeight))
        .unwrap();
    [y, dx, dw]
}

#[test]
fn convolution_is_identical_on_any_thread_count() {
    let specs = [
        // Dense, odd batch (uneven parts), groups (weight-gradient rows cross groups).
        ConvSpec::new(5, 6, 10, [9, 11], [3, 3])
            .with_padding([1, 1])
            .with_groups(2),
        // Many more unrolled rows than output channels: the weight gradient splits by
        // columns, in tiles the threads share unevenly; groups; with and without a grid.
        ConvSpec::new(3, 70, 8, [9, 10], [3, 3])
            .with_padding([1, 1])
            .with_groups(2),
        ConvSpec::new(2, 20, 4, [20, 20], [3, 3]).with_padding([1, 1]),
        // One ungrouped image: the forward pass splits by blocks of output channels (21: two
        // whole blocks of 8 and a partial one).
        ConvSpec::new(1, 5, 21, [9, 11], [3, 3]).with_padding([1, 1]),
        // One ungrouped image: the input gradient splits by blocks of input channels (21:
        // two whole blocks and a partial one), on a grid (16 x 20 positions), side by side
        // (9 x 11) and as a 1x1 kernel's plain product.
        ConvSpec::new(1, 21, 6, [16, 20], [3, 3]).with_padding([1, 1]),
        ConvSpec::new(1, 21, 6, [9, 11], [3, 3]).with_padding([1, 1]),
        ConvSpec::new(1, 21, 6, [5, 7], [1, 1]),
        // ... and a strided kernel's, added onto phase planes, on one thread.
        ConvSpec::new(1, 21, 6, [17, 20], [3, 3])
            .with_stride([2, 2])
            .with_padding([1, 1]),
        // Winograd (3x3, stride 1, one group): one image over more than one block of tiles
        // (its phases split over threads), and batches whose parts hold fewer blocks than
        // the whole (the weights packed whole or read in place, as the whole call decides),
        // one of them deeper than a packed block of the product.
        ConvSpec::new(1, 19, 21, [46, 46], [3, 3]).with_padding([1, 1]),
        ConvSpec::new(3, 18, 20, [15, 31], [3, 3]).with_padding_lo_hi([1, 2], [0, 1]),
        ConvSpec::new(10, 400, 9, [14, 14], [3, 3]).with_padding([1, 1]),
        // Depthwise with stride 2.
        ConvSpec::new(3, 8, 8, [13, 18], [3, 3])
            .with_stride([2, 2])
            .with_padding([1, 1])
            .with_groups(8),
        // Depthwise on one image: the forward pass and the input gradient split its
        // channels (unevenly): a channel multiplier, the input gradient by gather (stride 1,
        // one output channel per input channel) and by scatter (stride 2).
        ConvSpec::new(1, 7, 14, [10, 37], [3, 3])
            .with_padding([1, 1])
            .with_groups(7),
        ConvSpec::new(1, 5, 5, [8, 33], [3, 3])
            .with_padding([1, 1])
            .with_groups(5),
        ConvSpec::new(1, 9, 9, [11, 40], [3, 3])
            .with_stride([2, 2])
            .with_padding([1, 1])
            .with_groups(9),
        // ... and on small planes, by whole blocks of a vector of channels (the last partial).
        ConvSpec::new(1, 40, 40, [7, 7], [3, 3])
            .with_padding([1, 1])
            .with_groups(40),
        // Depthwise on a small plane: blocks of a vector of channels, the last one partial,
        // so a split of the weight gradient's channels falls inside a block.
        ConvSpec::new(3, 40, 40, [7, 7], [3, 3])
            .with_padding([1, 1])
            .with_groups(40),
    ];
    for spec in specs {
        let conv = spec.build().unwrap();
        for algo in ConvAlgorithm::ALL {
            let one = in_pool(1, || conv_all(spec, algo));
            // Against the reference once, then bit for bit across thread counts.
            let x = random(conv.input_len(), 1);
            let w = random(conv.weight_len(), 2);
            let dy = random(conv.output_len(), 3);
            let mut y64 = vec![0.0; conv.output_len()];
            reference::conv_forward(&conv, &x, &w, None, &mut y64).unwrap();
            assert_close("forward", &one[0], &y64, algo.name());
            let mut dx64 = vec![0.0; conv.input_len()];
            reference::conv_backward_input(&conv, &dy, &w, &mut dx64).unwrap();
            assert_close("backward_input", &one[1], &dx64, algo.name());
            let mut dw64 = vec![0.0; conv.weight_len()];
            reference::conv_backward_weight(&conv, &x, &dy, &mut dw64).unwrap();
            assert_close("backward_weight", &one[2], &dw64, algo.name());
            for threads in 2..=4 {
                let many = in_pool(threads, || conv_all(spec, algo));
                for (what, (a, b)) in ["forward", "backward_input", "backward_weight"]
                    .iter()
                    .zip(one.iter().zip(&many))
                {
                    let what = format!("{what} {} on {threads} threads", algo.name());
                    assert_same_bits(a, b, &what);
                }
            }
        }
    }
}

/// Forward (with indices for max) and backward of `kind` with `algo` on the current pool.
fn pool_all(
    spec: PoolSpec<2>,
    kind: PoolKind,
    algo: PoolAlgorithm,
) -> (Vec<f32>, Vec<usize>, Vec<f32>) {
    let pool = spec.build().unwrap();
    let x = cast::<f32>(&random(pool.input_len(), 4));
    let dy = cast::<f32>(&random(pool.output_len(), 5));
    let mut y = vec![0.0; pool.output_len()];
    let mut ix = vec![0usize; pool.output_len()];
    let mut scratch = vec![f32::NAN; pool.scratch_len::<f32>(kind, PoolOp::Forward, algo)];
    pool.forward(kind, algo, &x, &mut y, Some(&mut ix), &mut scratch)
        .unwrap();
    let mut dx = vec![0.0; pool.input_len()];
    let mut scratch = vec![f32::NAN; pool.scratch_len::<f32>(kind, PoolOp::Backward, algo)];
    pool.backward(kind, algo, &dy, Some(&ix), &mut dx, &mut scratch)
        .unwrap();
    (y, ix, dx)
}

#[test]
fn pooling_is_identical_on_any_thread_count() {
    let spec = PoolSpec::new(3, 5, [12, 14], [3, 3])
        .with_stride([2, 2])
        .with_padding([1, 1]);
    let tiled = PoolSpec::new(3, 5, [12, 14], [2, 2]);
    for kind in [PoolKind::Max, PoolKind::Avg, PoolKind::Sum] {
        for algo in PoolAlgorithm::ALL {
            let spec = if algo == PoolAlgorithm::Fold {
                tiled
            } else {
                spec
            };
            let one = in_pool(1, || pool_all(spec, kind, algo));
            for threads in 2..=4 {
                let many = in_pool(threads, || pool_all(spec, kind, algo));
                let what = format!("{kind:?} {} on {threads} threads", algo.name());
                assert_same_bits(&one.0, &many.0, &format!("forward {what}"));
                assert_eq!(one.1, many.1, "indices {what}");
                assert_same_bits(&one.2, &many.2, &format!("backward {what}"));
            }
        }
    }
}
