//! Prints the packed matrix product's GFLOP/s on a few convolution-sized shapes.
use origami_kernels::gemm::{MatMut, MatRef, gemm, pack_len};
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let shapes: Vec<(usize, usize, usize)> = if args.len() == 3 {
        vec![(args[0], args[1], args[2])]
    } else {
        vec![
            (120, 64, 128),
            (120, 1024, 128),
            (128, 784, 1152),
            (64, 3136, 576),
            (512, 49, 4608),
            (64, 300 * 25, 576),
            (1152, 784, 128),
            (128, 1152, 784),
        ]
    };
    for &(m, n, k) in &shapes {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0.0f32; m * n];
        let mut pack = vec![0.0f32; pack_len::<f32>(m, n, k)];
        let mut best = f64::MAX;
        for _ in 0..(2_000_000_000 / (m * n * k)).max(5) {
            let t = Instant::now();
            gemm(
                MatRef::row_major(&a, m, k).unwrap(),
                MatRef::row_major(&b, k, n).unwrap(),
                MatMut::row_major(&mut c, m, n).unwrap(),
                false,
                &mut pack,
            )
            .unwrap();
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "m={m} n={n} k={k}: {:.1} GFLOP/s",
            2.0 * (m * n * k) as f64 / best / 1e9
        );
    }
}
