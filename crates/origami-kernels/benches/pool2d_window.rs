//! `pool2d_window`: each pooling algorithm on `(8, 64, 112, 112)` with stride 1 and windows
//! 3, 7, 15, 31, 63 (padding half the window, so the output keeps the input's size).
//! `PrefixSum`'s time should stay nearly flat as the window grows; `Direct`'s grows with the
//! window's area. Throughput is in input bytes, so criterion reports GB/s.
//!
//! Set `ORIGAMI_POOL_WINDOWS=3,7` (a comma-separated list) to time fewer windows.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use origami_kernels::{PoolAlgorithm, PoolKind, PoolOp, PoolSpec};
use std::hint::black_box;
use std::time::Duration;

fn windows() -> Vec<usize> {
    std::env::var("ORIGAMI_POOL_WINDOWS")
        .ok()
        .map(|v| v.split(',').filter_map(|w| w.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![3, 7, 15, 31, 63])
}

fn pool2d_window(c: &mut Criterion) {
    let shape = (8, 64, [112, 112]);
    let input: Vec<f32> = (0..shape.0 * shape.1 * 112 * 112)
        .map(|i| ((i * 7919) % 1009) as f32 / 1009.0)
        .collect();
    let mut group = c.benchmark_group("pool2d_window");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes((input.len() * 4) as u64));
    for k in windows() {
        let pool = PoolSpec::new(shape.0, shape.1, shape.2, [k, k])
            .with_stride([1, 1])
            .with_padding([k / 2, k / 2])
            .build()
            .expect("valid geometry");
        let mut output = vec![0.0f32; pool.output_len()];
        let mut indices = vec![0usize; pool.output_len()];
        for kind in [PoolKind::Avg, PoolKind::Max] {
            for algo in [PoolAlgorithm::Direct, PoolAlgorithm::PrefixSum] {
                let mut scratch =
                    vec![0.0f32; pool.scratch_len::<f32>(kind, PoolOp::Forward, algo)];
                let id = BenchmarkId::new(format!("{}/{}", kind.name(), algo.name()), k);
                group.bench_function(id, |b| {
                    b.iter(|| {
                        pool.forward(
                            kind,
                            algo,
                            black_box(&input),
                            &mut output,
                            Some(&mut indices),
                            &mut scratch,
                        )
                        .expect("supported");
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, pool2d_window);
criterion_main!(benches);
