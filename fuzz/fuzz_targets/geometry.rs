//! Arbitrary parameters for every geometry and D: `build` returns `Ok` or an error, never
//! panics or overflows (the fuzz build has overflow checks on); for `Ok`, the reported
//! lengths are the products of the shapes and every scratch query answers.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use origami_kernels::{
    ConvAlgorithm, ConvOp, ConvSpec, ConvTransposeSpec, PoolAlgorithm, PoolKind, PoolOp, PoolSpec,
};

/// Sizes biased towards the interesting: small, at the edges of `usize`, or anything.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Size {
    Small(u8),
    Huge(u8),
    Any(usize),
}

impl Size {
    fn get(self) -> usize {
        match self {
            Size::Small(v) => usize::from(v % 9),
            Size::Huge(v) => usize::MAX >> (v % 40),
            Size::Any(v) => v,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Params {
    dims: u8,
    batch: Size,
    in_channels: Size,
    out_channels: Size,
    groups: Size,
    size: [Size; 3],
    kernel: [Size; 3],
    stride: [Size; 3],
    padding_lo: [Size; 3],
    padding_hi: [Size; 3],
    output_padding: [Size; 3],
    dilation: [Size; 3],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Size,
}

fn arr<const D: usize>(v: [Size; 3]) -> [usize; D] {
    core::array::from_fn(|i| v[i].get())
}

fn product(v: &[usize]) -> Option<usize> {
    v.iter().try_fold(1usize, |a, &b| a.checked_mul(b))
}

fn check<const D: usize>(p: &Params) {
    let conv = ConvSpec::<D> {
        batch: p.batch.get(),
        in_channels: p.in_channels.get(),
        out_channels: p.out_channels.get(),
        input_size: arr(p.size),
        kernel_size: arr(p.kernel),
        stride: arr(p.stride),
        padding_lo: arr(p.padding_lo),
        padding_hi: arr(p.padding_hi),
        dilation: arr(p.dilation),
        groups: p.groups.get(),
    };
    if let Ok(c) = conv.build() {
        let s = c.spec();
        let out = c.output_size();
        let mut y = vec![s.batch, s.out_channels];
        y.extend(out);
        assert_eq!(Some(c.output_len()), product(&y));
        let mut x = vec![s.batch, s.in_channels];
        x.extend(s.input_size);
        assert_eq!(Some(c.input_len()), product(&x));
        let mut w = vec![s.out_channels, s.in_channels / s.groups];
        w.extend(s.kernel_size);
        assert_eq!(Some(c.weight_len()), product(&w));
        assert_eq!(c.bias_len(), s.out_channels);
        for op in [
            ConvOp::Forward,
            ConvOp::BackwardInput,
            ConvOp::BackwardWeight,
            ConvOp::BackwardBias,
        ] {
            for algo in [
                ConvAlgorithm::Auto,
                ConvAlgorithm::Direct,
                ConvAlgorithm::Unrolled,
            ] {
                let _ = c.scratch_len::<f32>(op, algo);
                let _ = c.scratch_len::<f64>(op, algo);
            }
        }
        let _ = c.im2col_len();
        let _ = c.macs();
    }
    let transpose = ConvTransposeSpec::<D> {
        batch: p.batch.get(),
        in_channels: p.in_channels.get(),
        out_channels: p.out_channels.get(),
        input_size: arr(p.size),
        kernel_size: arr(p.kernel),
        stride: arr(p.stride),
        padding_lo: arr(p.padding_lo),
        padding_hi: arr(p.padding_hi),
        output_padding: arr(p.output_padding),
        dilation: arr(p.dilation),
        groups: p.groups.get(),
    };
    if let Ok(t) = transpose.build() {
        let _ = (
            t.input_len(),
            t.weight_len(),
            t.output_len(),
            t.output_size(),
        );
        let _ = t.scratch_len::<f32>(ConvAlgorithm::Unrolled);
    }
    let pool = PoolSpec::<D> {
        batch: p.batch.get(),
        channels: p.in_channels.get(),
        input_size: arr(p.size),
        kernel_size: arr(p.kernel),
        stride: arr(p.stride),
        padding: arr(p.padding_lo),
        dilation: arr(p.dilation),
        ceil_mode: p.ceil_mode,
        count_include_pad: p.count_include_pad,
        divisor_override: p.divisor_override.get(),
    };
    if let Ok(q) = pool.build() {
        let s = q.spec();
        let mut y = vec![s.batch, s.channels];
        y.extend(q.output_size());
        assert_eq!(Some(q.output_len()), product(&y));
        let mut x = vec![s.batch, s.channels];
        x.extend(s.input_size);
        assert_eq!(Some(q.input_len()), product(&x));
        for kind in PoolKind::ALL {
            for algo in [
                PoolAlgorithm::Auto,
                PoolAlgorithm::Direct,
                PoolAlgorithm::Fold,
                PoolAlgorithm::PrefixSum,
            ] {
                let _ = q.supports::<f32>(kind, algo);
                for op in [PoolOp::Forward, PoolOp::Backward] {
                    let _ = q.resolve::<f32>(kind, op, algo);
                    let _ = q.scratch_len::<f32>(kind, op, algo);
                    let _ = q.scratch_len::<f64>(kind, op, algo);
                }
            }
        }
    }
}

fuzz_target!(|p: Params| {
    match p.dims % 3 {
        0 => check::<1>(&p),
        1 => check::<2>(&p),
        _ => check::<3>(&p),
    }
});
