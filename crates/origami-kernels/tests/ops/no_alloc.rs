//! The kernels never allocate: every operation of every algorithm runs under a global
//! allocator that counts the allocations made by this thread while armed, and the count must
//! stay zero. (Buffers are allocated before arming.)

use origami_kernels::{
    ConvAlgorithm, ConvOp, ConvSpec, ConvTransposeSpec, PoolAlgorithm, PoolKind, PoolOp, PoolSpec,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: delegates every call to the system allocator unchanged; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` armed and returns the allocations it made.
///
/// With the `rayon` feature, inside a pool of one thread, where the kernels split nothing:
/// on more threads the allocations would be rayon's own (boxed jobs, a thread-local latch on
/// first use from a thread, the global pool when another test has not yet made it), and
/// they would depend on which test of this binary ran first.
fn count(f: impl FnOnce() + Send) -> usize {
    let armed = || {
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        ARMED.with(|a| a.set(true));
        f();
        ARMED.with(|a| a.set(false));
        ALLOCATIONS.load(Ordering::SeqCst) - before
    };
    #[cfg(feature = "rayon")]
    let armed = || {
        static ONE_THREAD: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
        ONE_THREAD
            .get_or_init(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .expect("a one-thread pool")
            })
            .install(armed)
    };
    armed()
}

#[test]
fn no_operation_allocates() {
    // Sanity: the counter sees an allocation.
    assert_eq!(count(|| drop(std::hint::black_box(vec![1u8; 16]))), 1);

    let conv = ConvSpec::new(2, 4, 6, [7, 9], [3, 3])
        .with_padding([1, 1])
        .with_groups(2)
        .build()
        .unwrap();
    let x = vec![0.5f32; conv.input_len()];
    let w = vec![0.25f32; conv.weight_len()];
    let b = vec![0.1f32; conv.bias_len()];
    let mut y = vec![0.0f32; conv.output_len()];
    let mut dx = vec![0.0f32; conv.input_len()];
    let mut dw = vec![0.0f32; conv.weight_len()];
    let mut db = vec![0.0f32; conv.bias_len()];
    for algo in ConvAlgorithm::ALL {
        let mut scratch = vec![
            0.0f32;
            ConvOp::ALL
                .iter()
                .map(|&op| conv.scratch_len::<f32>(op, algo))
                .max()
                .unwrap()
        ];
        let n = count(|| {
            conv.forward(algo, &x, &w, Some(&b), &mut y, &mut scratch)
                .unwrap();
            conv.backward_input(algo, &y, &w, &mut dx, &mut scratch)
                .unwrap();
            conv.backward_weight(algo, &x, &y, &mut dw, &mut scratch)
                .unwrap();
            conv.backward_bias(&y, &mut db).unwrap();
        });
        assert_eq!(n, 0, "conv {}", algo.name());
    }

    let t = ConvTransposeSpec::new(1, 6, 4, [5, 5], [3, 3])
        .with_stride([2, 2])
        .build()
        .unwrap();
    let tx = vec![0.5f32; t.input_len()];
    let tw = vec![0.5f32; t.weight_len()];
    let mut ty = vec![0.0f32; t.output_len()];
    for algo in ConvAlgorithm::ALL {
        let mut scratch = vec![0.0f32; t.scratch_len::<f32>(algo)];
        let n = count(|| {
            t.forward(algo, &tx, &tw, None, &mut ty, &mut scratch)
                .unwrap()
        });
        assert_eq!(n, 0, "conv_transpose {}", algo.name());
    }

    for spec in [
        PoolSpec::new(2, 3, [8, 10], [2, 2]),
        PoolSpec::new(1, 2, [9, 11], [3, 3])
            .with_stride([1, 2])
            .with_padding([1, 1]),
        PoolSpec::new(1, 2, [7, 8], [2, 3])
            .with_stride([1, 2])
            .with_dilation([2, 1]),
    ] {
        let pool = spec.build().unwrap();
        let x = vec![0.5f32; pool.input_len()];
        let mut y = vec![0.0f32; pool.output_len()];
        let mut idx = vec![0usize; pool.output_len()];
        let mut dx = vec![0.0f32; pool.input_len()];
        for kind in PoolKind::ALL {
            for algo in PoolAlgorithm::ALL {
                if pool.supports::<f32>(kind, algo).is_err() {
                    continue;
                }
                let len = pool
                    .scratch_len::<f32>(kind, PoolOp::Forward, algo)
                    .max(pool.scratch_len::<f32>(kind, PoolOp::Backward, algo));
                let mut scratch = vec![0.0f32; len];
                let n = count(|| {
                    pool.forward(kind, algo, &x, &mut y, Some(&mut idx), &mut scratch)
                        .unwrap();
                    pool.backward(kind, algo, &y, Some(&idx), &mut dx, &mut scratch)
                        .unwrap();
                });
                assert_eq!(n, 0, "{} pool {}", kind.name(), algo.name());
            }
        }
    }
}
