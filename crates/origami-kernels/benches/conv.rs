//! `conv`: each convolution algorithm on a few layers that mean something, forward and
//! backward. Throughput is in floating-point operations (2 per multiply-add), so criterion's
//! "elem/s" reads as FLOP/s.
//!
//! The harness's sweeps cover the shape families; this group is the quick look.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use origami_kernels::{ConvAlgorithm, ConvOp, ConvSpec};
use std::hint::black_box;
use std::time::Duration;

fn conv(c: &mut Criterion) {
    let layers = [
        (
            "resnet_3x3_c64_56",
            ConvSpec::new(1, 64, 64, [56, 56], [3, 3]).with_padding([1, 1]),
        ),
        (
            "depthwise_3x3_c128_56",
            ConvSpec::new(1, 128, 128, [56, 56], [3, 3])
                .with_padding([1, 1])
                .with_groups(128),
        ),
        (
            "temporal_9x1_c64",
            ConvSpec::new(1, 64, 64, [300, 25], [9, 1]).with_padding([4, 0]),
        ),
    ];
    let mut group = c.benchmark_group("conv");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for (name, spec) in layers {
        let g = spec.build().expect("valid layer");
        group.throughput(Throughput::Elements(2 * g.macs()));
        let x = vec![0.5f32; g.input_len()];
        let w = vec![0.25f32; g.weight_len()];
        let mut y = vec![0.0f32; g.output_len()];
        let mut dx = vec![0.0f32; g.input_len()];
        let mut dw = vec![0.0f32; g.weight_len()];
        for algo in ConvAlgorithm::ALL {
            let mut scratch = vec![
                0.0f32;
                ConvOp::ALL
                    .iter()
                    .map(|&op| g.scratch_len::<f32>(op, algo))
                    .max()
                    .unwrap_or(0)
            ];
            group.bench_function(
                BenchmarkId::new(format!("forward/{}", algo.name()), name),
                |b| {
                    b.iter(|| {
                        g.forward(algo, black_box(&x), &w, None, &mut y, &mut scratch)
                            .expect("runs")
                    })
                },
            );
            group.bench_function(
                BenchmarkId::new(format!("backward_input/{}", algo.name()), name),
                |b| {
                    b.iter(|| {
                        g.backward_input(algo, black_box(&y), &w, &mut dx, &mut scratch)
                            .expect("runs")
                    })
                },
            );
            group.bench_function(
                BenchmarkId::new(format!("backward_weight/{}", algo.name()), name),
                |b| {
                    b.iter(|| {
                        g.backward_weight(algo, black_box(&x), &y, &mut dw, &mut scratch)
                            .expect("runs")
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, conv);
criterion_main!(benches);
