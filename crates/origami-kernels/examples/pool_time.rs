//! Times one 2-D pooling, forward and backward, and prints milliseconds and GB/s per direction.
//!
//! `cargo run --release --example pool_time -- N C H KERNEL STRIDE PAD KIND [ALGO]`
//! (KERNEL and PAD: one size for both axes, or `HxW`)
//! (KIND: max, avg, sum; ALGO: auto, direct, fold, prefix_sum). For profiling single shapes;
//! the sweep is the benchmark.
mod common;

use common::best_of;
use origami_kernels::{PoolAlgorithm, PoolKind, PoolOp, PoolSpec};

/// `len` elements of `buf` from its first 64-byte boundary.
fn aligned(buf: &mut [f32], len: usize) -> &mut [f32] {
    let skip = buf.as_ptr().align_offset(64).min(16);
    &mut buf[skip..skip + len]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> usize { args[i].parse().expect("a number") };
    // `K` or `KHxKW` (likewise for the padding): rectangular windows time each axis's pass.
    let pair = |i: usize| -> [usize; 2] {
        match args[i].split_once('x') {
            Some((a, b)) => [a, b].map(|v| v.parse().expect("a number")),
            None => [num(i); 2],
        }
    };
    let (n, c, h, k, stride, pad) = (num(0), num(1), num(2), pair(3), num(4), pair(5));
    let kind = match args[6].as_str() {
        "max" => PoolKind::Max,
        "avg" => PoolKind::Avg,
        _ => PoolKind::Sum,
    };
    let algo = args
        .get(7)
        .and_then(|a| PoolAlgorithm::from_name(a))
        .unwrap_or(PoolAlgorithm::Auto);
    let pool = PoolSpec::new(n, c, [h, h], k)
        .with_stride([stride, stride])
        .with_padding(pad)
        .build()
        .expect("a valid geometry");
    // Scrambled values: a max whose branches follow a pattern would time as if predicted.
    let values: Vec<f32> = (0..pool.input_len() as u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f32 / (1u64 << 24) as f32)
        .collect();
    // Tensors from a 64-byte boundary, as PyTorch's allocator places them (large outputs
    // are streamed past the caches only from such a boundary).
    let mut x_buf = vec![0.0f32; pool.input_len() + 16];
    let x = aligned(&mut x_buf, pool.input_len());
    x.copy_from_slice(&values);
    let x = &*x;
    let mut y_buf = vec![0.0f32; pool.output_len() + 16];
    let y = aligned(&mut y_buf, pool.output_len());
    let mut dx_buf = vec![0.0f32; pool.input_len() + 16];
    let dx = aligned(&mut dx_buf, pool.input_len());
    let mut ix = vec![0usize; pool.output_len()];
    let reps = (2e8 / pool.input_len() as f64).clamp(3.0, 200.0) as usize;
    let scratch_len = [PoolOp::Forward, PoolOp::Backward]
        .map(|op| pool.scratch_len::<f32>(kind, op, algo))
        .into_iter()
        .max()
        .unwrap_or(0);
    let mut scratch = vec![0.0f32; scratch_len];
    let bytes = 4.0 * (pool.input_len() + pool.output_len()) as f64;
    let fwd = best_of(reps, || {
        let ix = (kind == PoolKind::Max).then_some(&mut ix[..]);
        pool.forward(kind, algo, x, y, ix, &mut scratch)
            .expect("forward");
    });
    let bwd = best_of(reps, || {
        let ix = (kind == PoolKind::Max).then_some(&ix[..]);
        pool.backward(kind, algo, y, ix, dx, &mut scratch)
            .expect("backward");
    });
    for (name, t) in [("forward", fwd), ("backward", bwd)] {
        println!("{name:8} {:8.3} ms {:6.2} GB/s", t * 1e3, bytes / t / 1e9);
    }
}
