//! A fast pass over every op, algorithm and dimension on tiny shapes, for Miri
//! (`cargo +nightly miri test -p origami-kernels --test ops smoke::`, after `--lib` for the
//! unit tests): the full suites are far too slow when every instruction is interpreted. The
//! shapes are chosen to reach the vector paths (rows of at least four vectors of eight `f32`
//! lanes, the AVX2 build Miri runs), the GEMM's full and edge micro-tiles, and padding on
//! both sides.

use crate::common::{assert_close, cast, random};
use origami_kernels::{
    ConvAlgorithm, ConvOp, ConvSpec, PoolAlgorithm, PoolKind, PoolOp, PoolSpec, reference,
};

fn conv<const D: usize>(spec: ConvSpec<D>) {
    let c = spec.build().unwrap();
    let (x64, w64, dy64) = (
        random(c.input_len(), 1),
        random(c.weight_len(), 2),
        random(c.output_len(), 3),
    );
    let (x, w, dy) = (cast::<f32>(&x64), cast::<f32>(&w64), cast::<f32>(&dy64));
    let mut y64 = vec![0.0; c.output_len()];
    reference::conv_forward(&c, &x64, &w64, None, &mut y64).unwrap();
    let mut dx64 = vec![0.0; c.input_len()];
    reference::conv_backward_input(&c, &dy64, &w64, &mut dx64).unwrap();
    let mut dw64 = vec![0.0; c.weight_len()];
    reference::conv_backward_weight(&c, &x64, &dy64, &mut dw64).unwrap();
    for algo in ConvAlgorithm::ALL {
        let ctx = format!("{} {spec:?}", algo.name());
        let mut s = vec![f32::NAN; c.scratch_len::<f32>(ConvOp::Forward, algo)];
        let mut y = vec![f32::NAN; c.output_len()];
        c.forward(algo, &x, &w, None, &mut y, &mut s).unwrap();
        assert_close("forward", &y, &y64, &ctx);
        let mut s = vec![f32::NAN; c.scratch_len::<f32>(ConvOp::BackwardInput, algo)];
        let mut dx = vec![f32::NAN; c.input_len()];
        c.backward_input(algo, &dy, &w, &mut dx, &mut s).unwrap();
        assert_close("backward_input", &dx, &dx64, &ctx);
        let mut s = vec![f32::NAN; c.scratch_len::<f32>(ConvOp::BackwardWeight, algo)];
        let mut dw = vec![f32::NAN; c.weight_len()];
        c.backward_weight(algo, &x, &dy, &mut dw, &mut s).unwrap();
        assert_close("backward_weight", &dw, &dw64, &ctx);
    }
}

fn pool<const D: usize>(spec: PoolSpec<D>) {
    let p = spec.build().unwrap();
    let (x64, dy64) = (random(p.input_len(), 4), random(p.output_len(), 5));
    let (x, dy) = (cast::<f32>(&x64), cast::<f32>(&dy64));
    for kind in PoolKind::ALL {
        let mut y64 = vec![0.0; p.output_len()];
        let mut idx64 = vec![0usize; p.output_len()];
        reference::pool_forward(&p, kind, &x64, &mut y64, Some(&mut idx64)).unwrap();
        let mut dx64 = vec![0.0; p.input_len()];
        reference::pool_backward(&p, kind, &dy64, Some(&idx64), &mut dx64).unwrap();
        for algo in PoolAlgorithm::ALL {
            if p.supports::<f32>(kind, algo).is_err() {
                continue;
            }
            let ctx = format!("{} {} {spec:?}", kind.name(), algo.name());
            let mut s = vec![f32::NAN; p.scratch_len::<f32>(kind, PoolOp::Forward, algo)];
            let mut y = vec![f32::NAN; p.output_len()];
            let mut idx = vec![usize::MAX; p.output_len()];
            p.forward(kind, algo, &x, &mut y, Some(&mut idx), &mut s)
                .unwrap();
            assert_close("forward", &y, &y64, &ctx);
            if kind == PoolKind::Max {
                assert_eq!(idx, idx64, "{ctx}");
            }
            let mut s = vec![f32::NAN; p.scratch_len::<f32>(kind, PoolOp::Backward, algo)];
            let mut dx = vec![f32::NAN; p.input_len()];
            p.backward(kind, algo, &dy, Some(&idx64), &mut dx, &mut s)
                .unwrap();
            assert_close("backward", &dx, &dx64, &ctx);
        }
    }
}

#[test]
fn conv_1d_2d_3d() {
    conv(ConvSpec::new(1, 2, 7, [40], [3]).with_padding([1]));
    conv(
        ConvSpec::new(1, 2, 4, [3, 36], [2, 3])
            .with_stride([1, 2])
            .with_padding_lo_hi([0, 2], [1, 0])
            .with_groups(2),
    );
    conv(ConvSpec::new(1, 1, 2, [2, 2, 34], [1, 2, 3]).with_dilation([1, 1, 2]));
}

#[test]
fn pool_1d_2d_3d() {
    pool(
        PoolSpec::new(1, 1, [40], [5])
            .with_stride([1])
            .with_padding([2]),
    );
    pool(PoolSpec::new(1, 1, [4, 36], [2, 2]));
    pool(
        PoolSpec::new(1, 1, [2, 3, 34], [1, 2, 3])
            .with_stride([1, 1, 1])
            .with_padding([0, 1, 1]),
    );
}
