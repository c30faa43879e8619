//! The machine's ceilings for the roofline: peak `f32` FMA throughput and memory bandwidth,
//! measured here rather than taken from a data sheet.
//!
//! - Peak: `ACCUMULATORS` independent chains of `acc = a * acc + b` on the widest vector the
//!   build enables (`<f32 as Element>::Simd`: 16 lanes with AVX-512, 8 with AVX2). An FMA has
//!   a latency of about 4 cycles and two issue ports on current x86 cores, so at least 8
//!   chains are needed to keep both ports busy; 12 leave room and still fit the 16 vector
//!   registers of AVX2.
//! - Bandwidth: STREAM's copy (`b = a`, 8 bytes per element moved) and triad
//!   (`a = b + s * c`, 12 bytes) on arrays of at least four times the last-level cache,
//!   best of several runs, counting bytes read plus bytes written as STREAM does.

use origami_kernels::Element;
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// What `machine` measures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// The CPU's model name (from `/proc/cpuinfo` where there is one).
    pub cpu: String,
    /// The SIMD level the build enables, e.g. `avx512f` or `avx2+fma`.
    pub simd: String,
    /// `f32` lanes per vector in this build.
    pub lanes: usize,
    /// Hardware threads used for the all-threads figures.
    pub threads: usize,
    /// Peak `f32` GFLOP/s on one thread.
    pub peak_gflops_1: f64,
    /// Peak `f32` GFLOP/s on all threads.
    pub peak_gflops_all: f64,
    /// Copy bandwidth in GB/s (10^9 bytes), one thread.
    pub copy_gbps_1: f64,
    /// Triad bandwidth in GB/s, one thread.
    pub triad_gbps_1: f64,
    /// Copy bandwidth in GB/s, all threads.
    pub copy_gbps_all: f64,
    /// Triad bandwidth in GB/s, all threads.
    pub triad_gbps_all: f64,
}

impl Machine {
    /// The FMA ceiling for `threads` threads (all-threads figure beyond one).
    pub fn peak_gflops(&self, threads: usize) -> f64 {
        if threads <= 1 {
            self.peak_gflops_1
        } else {
            self.peak_gflops_all
        }
    }

    /// The bandwidth ceiling (triad) for `threads` threads.
    pub fn bandwidth_gbps(&self, threads: usize) -> f64 {
        if threads <= 1 {
            self.triad_gbps_1
        } else {
            self.triad_gbps_all
        }
    }

    /// A one-line summary.
    pub fn summary(&self) -> String {
        format!(
            "{} ({}, f32x{}): peak {:.1} GFLOP/s on 1 thread, {:.1} on {}; triad {:.1} GB/s on 1 thread, {:.1} on {} (copy {:.1} / {:.1})",
            self.cpu,
            self.simd,
            self.lanes,
            self.peak_gflops_1,
            self.peak_gflops_all,
            self.threads,
            self.triad_gbps_1,
            self.triad_gbps_all,
            self.threads,
            self.copy_gbps_1,
            self.copy_gbps_all,
        )
    }
}

/// How long to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effort {
    /// About a second in all, for smoke sweeps.
    Brief,
    /// A few seconds in all.
    Normal,
}

/// The SIMD level this build of the kernels uses.
pub fn simd_level() -> &'static str {
    if cfg!(target_feature = "avx512f") {
        "avx512f"
    } else if cfg!(all(target_feature = "avx2", target_feature = "fma")) {
        "avx2+fma"
    } else if cfg!(target_feature = "avx") {
        "avx"
    } else if cfg!(target_feature = "sse2") {
        "sse2"
    } else if cfg!(target_feature = "neon") {
        "neon"
    } else {
        "scalar"
    }
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}

/// Measures every figure with `threads` threads for the all-threads ones.
pub fn measure(threads: usize, effort: Effort) -> Machine {
    let threads = threads.max(1);
    let (fma_time, runs) = match effort {
        Effort::Brief => (Duration::from_millis(100), 2),
        Effort::Normal => (Duration::from_millis(300), 5),
    };
    let (copy_gbps_1, triad_gbps_1) = bandwidth(1, runs);
    let (copy_gbps_all, triad_gbps_all) = bandwidth(threads, runs);
    Machine {
        cpu: cpu_name(),
        simd: simd_level().to_owned(),
        lanes: <f32 as Element>::LANES,
        threads,
        peak_gflops_1: peak_gflops(1, fma_time),
        peak_gflops_all: peak_gflops(threads, fma_time),
        copy_gbps_1,
        triad_gbps_1,
        copy_gbps_all,
        triad_gbps_all,
    }
}

const ACCUMULATORS: usize = 12;
const FMA_BLOCK: u64 = 4096;

/// FLOP done by `blocks` blocks of the FMA loop.
fn fma_loop(blocks: u64) -> u64 {
    type V = <f32 as Element>::Simd;
    let a = <f32 as Element>::splat(black_box(0.999_9));
    let b = <f32 as Element>::splat(black_box(1e-4));
    let mut acc: [V; ACCUMULATORS] = core::array::from_fn(|i| <f32 as Element>::splat(i as f32));
    for _ in 0..blocks {
        for _ in 0..FMA_BLOCK {
            for v in acc.iter_mut() {
                *v = <f32 as Element>::mul_add(a, *v, b);
            }
        }
        acc = black_box(acc);
    }
    black_box(acc);
    blocks * FMA_BLOCK * (ACCUMULATORS * <f32 as Element>::LANES * 2) as u64
}

fn peak_gflops(threads: usize, duration: Duration) -> f64 {
    // Size the work from one calibration run so every thread runs about `duration`.
    let t = Instant::now();
    fma_loop(16);
    let per_block = t.elapsed().as_secs_f64() / 16.0;
    let blocks = ((duration.as_secs_f64() / per_block.max(1e-9)) as u64).max(16);
    (0..3)
        .map(|_| {
            let barrier = Barrier::new(threads);
            let start = Instant::now();
            let flop: u64 = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            fma_loop(blocks)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
            });
            flop as f64 / start.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

/// Elements per array: four times the last-level cache, at least 32 Mi `f32` (128 MiB).
fn stream_len() -> usize {
    let llc = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cache/index3/size")
        .ok()
        .and_then(|s| {
            let s = s.trim();
            let (digits, unit) =
                s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
            let n: usize = digits.parse().ok()?;
            Some(match unit {
                "K" => n << 10,
                "M" => n << 20,
                _ => n,
            })
        })
        .unwrap_or(32 << 20);
    // Four times the cache in bytes is as many `f32` elements as the cache has bytes.
    llc.max(32 << 20)
}

/// Copy and triad bandwidth in GB/s on `threads` threads, best of `runs`.
fn bandwidth(threads: usize, runs: usize) -> (f64, f64) {
    let n = stream_len();
    let mut a = vec![1.0f32; n];
    let mut b = vec![2.0f32; n];
    let c = vec![0.5f32; n];
    let chunk = n.div_ceil(threads);
    let mut best_copy = 0.0f64;
    let mut best_triad = 0.0f64;
    for _ in 0..runs {
        let start = Instant::now();
        std::thread::scope(|s| {
            for (dst, src) in b.chunks_mut(chunk).zip(a.chunks(chunk)) {
                s.spawn(move || dst.copy_from_slice(src));
            }
        });
        best_copy = best_copy.max(8.0 * n as f64 / start.elapsed().as_secs_f64() / 1e9);
        let start = Instant::now();
        std::thread::scope(|s| {
            for ((dst, x), y) in a
                .chunks_mut(chunk)
                .zip(b.chunks(chunk))
                .zip(c.chunks(chunk))
            {
                s.spawn(move || {
                    for ((d, &x), &y) in dst.iter_mut().zip(x).zip(y) {
                        *d = x + 3.0 * y;
                    }
                });
            }
        });
        best_triad = best_triad.max(12.0 * n as f64 / start.elapsed().as_secs_f64() / 1e9);
        black_box((&a, &b));
    }
    (best_copy, best_triad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fma_loop_counts_its_flop() {
        assert_eq!(
            fma_loop(1),
            FMA_BLOCK * (ACCUMULATORS * <f32 as Element>::LANES * 2) as u64
        );
    }

    #[test]
    fn stream_arrays_dwarf_the_cache() {
        assert!(stream_len() >= 32 << 20);
    }
}
