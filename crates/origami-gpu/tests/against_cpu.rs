//! Every GPU op against the CPU kernels on randomized geometries: 1-D, 2-D and 3-D, strides,
//! dilations, asymmetric padding, groups; pooling with ceil mode, padding, dilation and the
//! average's divisor options. f32, relative error within 1e-4 of the largest CPU value; max
//! indices exactly.
//!
//! Each test runs on every backend this build has: wgpu, and CUDA with the `cuda` feature.
//! Without an adapter (or without libcuda) a backend reports itself skipped, with the
//! reason; `ORIGAMI_REQUIRE_GPU=1` (as in CI, on llvmpipe) makes a missing wgpu adapter a
//! failure, and `ORIGAMI_REQUIRE_CUDA=1` (scripts/gpu-check.sh) a missing CUDA device.

use origami_gpu::{Gpu, GpuConv, GpuConvAlgorithm, GpuError, GpuPool};
use origami_kernels::{
    ConvAlgorithm, ConvNd, ConvOp, ConvSpec, PoolAlgorithm, PoolKind, PoolNd, PoolSpec,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn open(name: &str, required_by: &str, gpu: Result<Gpu, GpuError>) -> Option<Gpu> {
    match gpu {
        Ok(gpu) => Some(gpu),
        Err(e) if std::env::var_os(required_by).is_none() => {
            eprintln!("{name} skipped: {e}");
            None
        }
        Err(e) => panic!("{required_by} is set but {e}"),
    }
}

/// Every backend of this build that has a device here.
fn gpus() -> Vec<Gpu> {
    #[cfg_attr(not(feature = "cuda"), allow(unused_mut))]
    let mut v: Vec<Gpu> = open("wgpu", "ORIGAMI_REQUIRE_GPU", Gpu::new())
        .into_iter()
        .collect();
    #[cfg(feature = "cuda")]
    v.extend(open("cuda", "ORIGAMI_REQUIRE_CUDA", Gpu::cuda(0)));
    v
}

fn random(rng: &mut StdRng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

#[track_caller]
fn assert_close(what: &str, gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: length");
    let scale = cpu.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        assert!(
            (g - c).abs() <= 1e-4 * scale,
            "{what}: element {i}: gpu {g} cpu {c} (scale {scale})"
        );
    }
}

fn random_conv<const D: usize>(rng: &mut StdRng) -> ConvNd<D> {
    loop {
        let groups = [1, 1, 2, 3][rng.random_range(0..4)];
        let spec = ConvSpec {
            batch: rng.random_range(1..=2),
            in_channels: groups * rng.random_range(1..=3),
            out_channels: groups * rng.random_range(1..=3),
            input_size: [0; D].map(|_| rng.random_range(1..=if D == 3 { 6 } else { 11 })),
            kernel_size: [0; D].map(|_| rng.random_range(1..=3)),
            stride: [0; D].map(|_| rng.random_range(1..=3)),
            padding_lo: [0; D].map(|_| rng.random_range(0..=2)),
            padding_hi: [0; D].map(|_| rng.random_range(0..=2)),
            dilation: [0; D].map(|_| rng.random_range(1..=2)),
            groups,
        };
        if let Ok(g) = spec.build() {
            return g;
        }
    }
}

fn check_conv<const D: usize>(gpu: &Gpu, rng: &mut StdRng, geometry: ConvNd<D>) {
    let x = random(rng, geometry.input_len());
    let w = random(rng, geometry.weight_len());
    let b = random(rng, geometry.bias_len());
    let dy = random(rng, geometry.output_len());
    let algo = ConvAlgorithm::Direct;
    // Direct needs scratch for depthwise geometries (one padded plane).
    let scratch = |op| vec![0.0; geometry.scratch_len::<f32>(op, algo)];
    let mut y = vec![0.0; geometry.output_len()];
    geometry
        .forward(
            algo,
            &x,
            &w,
            Some(&b),
            &mut y,
            &mut scratch(ConvOp::Forward),
        )
        .unwrap();
    let mut dx = vec![0.0; geometry.input_len()];
    geometry
        .backward_input(algo, &dy, &w, &mut dx, &mut scratch(ConvOp::BackwardInput))
        .unwrap();
    let mut dw = vec![0.0; geometry.weight_len()];
    geometry
        .backward_weight(algo, &x, &dy, &mut dw, &mut scratch(ConvOp::BackwardWeight))
        .unwrap();
    let mut db = vec![0.0; geometry.bias_len()];
    geometry.backward_bias(&dy, &mut db).unwrap();

    let (gx, gw, gb, gdy) = (
        gpu.upload(&x).unwrap(),
        gpu.upload(&w).unwrap(),
        gpu.upload(&b).unwrap(),
        gpu.upload(&dy).unwrap(),
    );
    for algorithm in GpuConvAlgorithm::ALL {
        let what = format!("{} {:?}", algorithm.name(), geometry.spec());
        let conv = GpuConv::new(gpu, geometry, algorithm).unwrap();
        let gy = gpu.zeros(geometry.output_len()).unwrap();
        let gdx = gpu.zeros(geometry.input_len()).unwrap();
        let gdw = gpu.zeros(geometry.weight_len()).unwrap();
        let gdb = gpu.zeros(geometry.bias_len()).unwrap();
        // All four in one submission: no round trip between calls.
        let mut rec = gpu.record();
        conv.forward(&mut rec, &gx, &gw, Some(&gb), &gy).unwrap();
        conv.backward_input(&mut rec, &gdy, &gw, &gdx).unwrap();
        conv.backward_weight(&mut rec, &gx, &gdy, &gdw).unwrap();
        conv.backward_bias(&mut rec, &gdy, &gdb).unwrap();
        gpu.submit(rec).unwrap();
        assert_close(&format!("forward {what}"), &gpu.read(&gy).unwrap(), &y);
        assert_close(&format!("input grad {what}"), &gpu.read(&gdx).unwrap(), &dx);
        assert_close(
            &format!("weight grad {what}"),
            &gpu.read(&gdw).unwrap(),
            &dw,
        );
        assert_close(&format!("bias grad {what}"), &gpu.read(&gdb).unwrap(), &db);
    }
}

fn conv_cases<const D: usize>(seed: u64, cases: usize) {
    for gpu in gpus() {
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..cases {
            let g = random_conv::<D>(&mut rng);
            check_conv(&gpu, &mut rng, g);
        }
    }
}

#[test]
fn conv1d_matches_cpu() {
    conv_cases::<1>(1, 40);
}

#[test]
fn conv2d_matches_cpu() {
    conv_cases::<2>(2, 40);
}

#[test]
fn conv3d_matches_cpu() {
    conv_cases::<3>(3, 25);
}

/// Shapes past one 64 x 64 tile and one 16-deep step, so the tiled GEMM's edges and its
/// reduction loop run, with depthwise and grouped channels.
#[test]
fn conv_larger_than_a_tile() {
    for gpu in gpus() {
        conv_larger_than_a_tile_on(&gpu);
    }
}

fn conv_larger_than_a_tile_on(gpu: &Gpu) {
    let mut rng = StdRng::seed_from_u64(4);
    for spec in [
        ConvSpec::new(2, 20, 70, [9, 13], [3, 3]).with_padding([1, 1]),
        ConvSpec::new(1, 32, 32, [17, 15], [3, 3])
            .with_padding([1, 1])
            .with_groups(32),
    ] {
        check_conv(gpu, &mut rng, spec.build().unwrap());
    }
    let wide = ConvSpec::new(3, 12, 66, [40], [5])
        .with_stride([2])
        .with_padding_lo_hi([3], [1]);
    check_conv(gpu, &mut rng, wide.build().unwrap());
}

fn random_pool<const D: usize>(rng: &mut StdRng) -> PoolNd<D> {
    loop {
        let kernel = [0; D].map(|_| rng.random_range(1..=4));
        let mut spec = PoolSpec::new(
            rng.random_range(1..=2),
            rng.random_range(1..=3),
            [0; D].map(|_| rng.random_range(1..=if D == 3 { 7 } else { 12 })),
            kernel,
        )
        .with_stride([0; D].map(|_| rng.random_range(1..=3)))
        .with_dilation([0; D].map(|_| rng.random_range(1..=2)))
        .with_ceil_mode(rng.random_bool(0.3))
        .with_count_include_pad(rng.random_bool(0.5));
        spec.padding = core::array::from_fn(|d| rng.random_range(0..=kernel[d] / 2));
        if rng.random_bool(0.15) {
            spec = spec.with_divisor_override(rng.random_range(1..=5));
        }
        if let Ok(g) = spec.build() {
            return g;
        }
    }
}

fn check_pool<const D: usize>(gpu: &Gpu, rng: &mut StdRng, geometry: PoolNd<D>) {
    let x = random(rng, geometry.input_len());
    let dy = random(rng, geometry.output_len());
    for kind in PoolKind::ALL {
        let mut y = vec![0.0; geometry.output_len()];
        let mut ix = vec![0usize; geometry.output_len()];
        let algo = PoolAlgorithm::Direct;
        geometry
            .forward(kind, algo, &x, &mut y, Some(&mut ix), &mut [])
            .unwrap();
        let mut dx = vec![0.0; geometry.input_len()];
        geometry
            .backward(kind, algo, &dy, Some(&ix), &mut dx, &mut [])
            .unwrap();
        let gx = gpu.upload(&x).unwrap();
        let gdy = gpu.upload(&dy).unwrap();
        for algorithm in [PoolAlgorithm::Direct, PoolAlgorithm::PrefixSum] {
            let what = format!("{} {} {:?}", kind.name(), algorithm.name(), geometry.spec());
            let pool = GpuPool::new(gpu, geometry, kind, algorithm).unwrap();
            let gy = gpu.zeros(geometry.output_len()).unwrap();
            let gix = gpu.zeros::<u32>(geometry.output_len()).unwrap();
            let gdx = gpu.zeros(geometry.input_len()).unwrap();
            let mut rec = gpu.record();
            pool.forward(&mut rec, &gx, &gy, Some(&gix)).unwrap();
            pool.backward(&mut rec, &gdy, Some(&gix), &gdx).unwrap();
            gpu.submit(rec).unwrap();
            let out = gpu.read(&gy).unwrap();
            if kind == PoolKind::Max {
                assert_eq!(out, y, "forward {what}");
                let gix = gpu.read(&gix).unwrap();
                let gix: Vec<usize> = gix.into_iter().map(|i| i as usize).collect();
                assert_eq!(gix, ix, "indices {what}");
            } else {
                assert_close(&format!("forward {what}"), &out, &y);
            }
            assert_close(&format!("backward {what}"), &gpu.read(&gdx).unwrap(), &dx);
        }
    }
}

fn pool_cases<const D: usize>(seed: u64, cases: usize) {
    for gpu in gpus() {
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..cases {
            let g = random_pool::<D>(&mut rng);
            check_pool(&gpu, &mut rng, g);
        }
    }
}

#[test]
fn pool1d_matches_cpu() {
    pool_cases::<1>(11, 40);
}

#[test]
fn pool2d_matches_cpu() {
    pool_cases::<2>(12, 40);
}

#[test]
fn pool3d_matches_cpu() {
    pool_cases::<3>(13, 25);
}

/// Lines longer than one 1024-position segment and large windows, so `PrefixSum` runs over
/// several segments per line, restarts its blocks mid-segment and reads windows that start
/// before a segment's first block boundary.
#[test]
fn pool_long_lines_and_large_windows() {
    for gpu in gpus() {
        pool_long_lines_and_large_windows_on(&gpu);
    }
}

fn pool_long_lines_and_large_windows_on(gpu: &Gpu) {
    let mut rng = StdRng::seed_from_u64(14);
    for spec in [
        PoolSpec::new(1, 2, [3000], [63])
            .with_stride([1])
            .with_padding([31]),
        PoolSpec::new(1, 1, [2500], [15])
            .with_stride([3])
            .with_dilation([4])
            .with_padding([7]),
    ] {
        check_pool(gpu, &mut rng, spec.build().unwrap());
    }
    let plane = PoolSpec::new(1, 2, [40, 45], [31, 31])
        .with_stride([1, 1])
        .with_padding([15, 15]);
    check_pool(gpu, &mut rng, plane.build().unwrap());
    let volume = PoolSpec::new(2, 1, [9, 10, 11], [5, 5, 5])
        .with_stride([1, 2, 1])
        .with_ceil_mode(true);
    check_pool(gpu, &mut rng, volume.build().unwrap());
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    for gpu in gpus() {
        bad_input_on(&gpu);
    }
}

fn bad_input_on(gpu: &Gpu) {
    let g = ConvSpec::new(1, 2, 2, [5], [3]).build().unwrap();
    let conv = GpuConv::new(gpu, g, GpuConvAlgorithm::Tiled).unwrap();
    let x = gpu.zeros(g.input_len() + 1).unwrap();
    let w = gpu.zeros(g.weight_len()).unwrap();
    let y = gpu.zeros(g.output_len()).unwrap();
    let err = gpu
        .run(|rec| conv.forward(rec, &x, &w, None, &y))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "input has length 11, the geometry requires 10"
    );
    let p = PoolSpec::new(1, 1, [8], [2]).build().unwrap();
    let err = GpuPool::new(gpu, p, PoolKind::Max, PoolAlgorithm::Fold).unwrap_err();
    assert!(matches!(err, GpuError::Kernel(_)), "{err}");
    let pool = GpuPool::new(gpu, p, PoolKind::Max, PoolAlgorithm::Direct).unwrap();
    let (x, y) = (gpu.zeros(8).unwrap(), gpu.zeros(4).unwrap());
    let err = gpu.run(|rec| pool.forward(rec, &x, &y, None)).unwrap_err();
    assert!(err.to_string().contains("indices"), "{err}");
    let wide = PoolSpec::new(1, 1, [3000], [1500])
        .with_stride([1])
        .build()
        .unwrap();
    let err = GpuPool::new(gpu, wide, PoolKind::Sum, PoolAlgorithm::PrefixSum).unwrap_err();
    assert!(err.to_string().contains("1024"), "{err}");
}
