//! Small arbitrary geometries and data: every algorithm of every op agrees with the `f64`
//! reference, forward and backward, within the tests' tolerance (1e-5 of the largest
//! reference value in f32), with NaN exactly where the reference has it. The data may hold
//! a NaN or an infinity at an arbitrary place.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use origami_kernels::{
    ConvAlgorithm, ConvOp, ConvSpec, PoolAlgorithm, PoolKind, PoolOp, PoolSpec, reference,
};

const TOLERANCE: f64 = 1e-5;

fn small(u: &mut Unstructured, lo: usize, hi: usize) -> arbitrary::Result<usize> {
    u.int_in_range(lo..=hi)
}

fn arr<const D: usize>(
    u: &mut Unstructured,
    lo: usize,
    hi: usize,
) -> arbitrary::Result<[usize; D]> {
    let mut a = [0; D];
    for v in &mut a {
        *v = small(u, lo, hi)?;
    }
    Ok(a)
}

/// Values in [-1, 1) in steps of 1/128, with an optional NaN or infinity planted.
fn data(u: &mut Unstructured, len: usize) -> arbitrary::Result<Vec<f64>> {
    let mut v: Vec<f64> = (0..len)
        .map(|_| u.arbitrary::<u8>().map(|b| (f64::from(b) - 128.0) / 128.0))
        .collect::<Result<_, _>>()?;
    if len > 0 {
        match u.int_in_range(0u8..=5)? {
            0 => {
                let i = u.choose_index(len)?;
                v[i] = f64::NAN;
            }
            1 => {
                let i = u.choose_index(len)?;
                v[i] = if u.arbitrary()? {
                    f64::INFINITY
                } else {
                    f64::NEG_INFINITY
                };
            }
            _ => {}
        }
    }
    Ok(v)
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn agree(what: &str, got: &[f32], expected: &[f64]) {
    assert_eq!(got.len(), expected.len(), "{what}");
    let scale = expected
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let bound = TOLERANCE * scale.max(0.1);
    for (i, (&g, &e)) in got.iter().zip(expected).enumerate() {
        let g = f64::from(g);
        if e.is_nan() {
            assert!(g.is_nan(), "{what}[{i}]: got {g}, expected NaN");
        } else if e.is_infinite() {
            assert_eq!(g, e, "{what}[{i}]");
        } else {
            assert!((g - e).abs() <= bound, "{what}[{i}]: got {g}, expected {e}");
        }
    }
}

fn conv<const D: usize>(u: &mut Unstructured) -> arbitrary::Result<()> {
    let hi = if D == 3 { 5 } else { 8 };
    let groups = small(u, 1, 3)?;
    let spec = ConvSpec::<D> {
        batch: small(u, 1, 2)?,
        in_channels: groups * small(u, 1, 3)?,
        out_channels: groups * small(u, 1, 3)?,
        input_size: arr(u, 1, hi)?,
        kernel_size: arr(u, 1, 4)?,
        stride: arr(u, 1, 3)?,
        padding_lo: arr(u, 0, 3)?,
        padding_hi: arr(u, 0, 3)?,
        dilation: arr(u, 1, 2)?,
        groups,
    };
    let Ok(c) = spec.build() else { return Ok(()) };
    let x64 = data(u, c.input_len())?;
    let w64 = data(u, c.weight_len())?;
    let b64 = data(u, c.bias_len())?;
    let dy64 = data(u, c.output_len())?;
    let (x, w, b, dy) = (f32s(&x64), f32s(&w64), f32s(&b64), f32s(&dy64));
    let mut y64 = vec![0.0; c.output_len()];
    reference::conv_forward(&c, &x64, &w64, Some(&b64), &mut y64).unwrap();
    let mut dx64 = vec![0.0; c.input_len()];
    reference::conv_backward_input(&c, &dy64, &w64, &mut dx64).unwrap();
    let mut dw64 = vec![0.0; c.weight_len()];
    reference::conv_backward_weight(&c, &x64, &dy64, &mut dw64).unwrap();
    let mut db64 = vec![0.0; c.bias_len()];
    reference::conv_backward_bias(&c, &dy64, &mut db64).unwrap();
    for algo in [
        ConvAlgorithm::Auto,
        ConvAlgorithm::Direct,
        ConvAlgorithm::Unrolled,
    ] {
        let mut s = vec![f32::NAN; c.scratch_len::<f32>(ConvOp::Forward, algo)];
        let mut y = vec![f32::NAN; c.output_len()];
        c.forward(algo, &x, &w, Some(&b), &mut y, &mut s).unwrap();
        agree(&format!("{} forward {spec:?}", algo.name()), &y, &y64);
        let mut s = vec![f32::NAN; c.scratch_len::<f32>(ConvOp::BackwardInput, algo)];
        let mut dx = vec![f32::NAN; c.input_len()];
        c.backward_input(algo, &dy, &w, &mut dx, &mut s).unwrap();
        agree(
            &format!("{} backward_input {spec:?}", algo.name()),
            &dx,
            &dx64,
        );
        let mut s = vec![f32::NAN; c.scratch_len::<f32>(ConvOp::BackwardWeight, algo)];
        let mut dw = vec![f32::NAN; c.weight_len()];
        c.backward_weight(algo, &x, &dy, &mut dw, &mut s).unwrap();
        agree(
            &format!("{} backward_weight {spec:?}", algo.name()),
            &dw,
            &dw64,
        );
        let mut db = vec![f32::NAN; c.bias_len()];
        c.backward_bias(&dy, &mut db).unwrap();
        agree(&format!("backward_bias {spec:?}"), &db, &db64);
    }
    Ok(())
}

fn pool<const D: usize>(u: &mut Unstructured) -> arbitrary::Result<()> {
    let hi = if D == 3 { 7 } else { 12 };
    let spec = PoolSpec::<D> {
        batch: small(u, 1, 2)?,
        channels: small(u, 1, 3)?,
        input_size: arr(u, 1, hi)?,
        kernel_size: arr(u, 1, 6)?,
        stride: arr(u, 1, 4)?,
        padding: arr(u, 0, 3)?,
        dilation: arr(u, 1, 2)?,
        ceil_mode: u.arbitrary()?,
        count_include_pad: u.arbitrary()?,
        divisor_override: small(u, 0, 3)?,
    };
    let Ok(p) = spec.build() else { return Ok(()) };
    let x64 = data(u, p.input_len())?;
    let dy64 = data(u, p.output_len())?;
    let (x, dy) = (f32s(&x64), f32s(&dy64));
    for kind in PoolKind::ALL {
        let mut y64 = vec![0.0; p.output_len()];
        let mut idx64 = vec![0usize; p.output_len()];
        reference::pool_forward(&p, kind, &x64, &mut y64, Some(&mut idx64)).unwrap();
        let mut dx64 = vec![0.0; p.input_len()];
        reference::pool_backward(&p, kind, &dy64, Some(&idx64), &mut dx64).unwrap();
        for algo in [
            PoolAlgorithm::Auto,
            PoolAlgorithm::Direct,
            PoolAlgorithm::Fold,
            PoolAlgorithm::PrefixSum,
        ] {
            if p.supports::<f32>(kind, algo).is_err() {
                continue;
            }
            let what = format!("{} {} {spec:?}", kind.name(), algo.name());
            let mut s = vec![f32::NAN; p.scratch_len::<f32>(kind, PoolOp::Forward, algo)];
            let mut y = vec![f32::NAN; p.output_len()];
            let mut idx = vec![usize::MAX; p.output_len()];
            p.forward(kind, algo, &x, &mut y, Some(&mut idx), &mut s)
                .unwrap();
            agree(&format!("forward {what}"), &y, &y64);
            if kind == PoolKind::Max {
                assert_eq!(idx, idx64, "indices {what}");
            }
            let mut s = vec![f32::NAN; p.scratch_len::<f32>(kind, PoolOp::Backward, algo)];
            let mut dx = vec![f32::NAN; p.input_len()];
            p.backward(kind, algo, &dy, Some(&idx64), &mut dx, &mut s)
                .unwrap();
            agree(&format!("backward {what}"), &dx, &dx64);
        }
    }
    Ok(())
}

fuzz_target!(|bytes: &[u8]| {
    let mut u = Unstructured::new(bytes);
    let _ = match u.int_in_range(0u8..=5) {
        Ok(0) => conv::<1>(&mut u),
        Ok(1) => conv::<2>(&mut u),
        Ok(2) => conv::<3>(&mut u),
        Ok(3) => pool::<1>(&mut u),
        Ok(4) => pool::<2>(&mut u),
        Ok(_) => pool::<3>(&mut u),
        Err(_) => Ok(()),
    };
});
