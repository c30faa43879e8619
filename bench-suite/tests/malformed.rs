//! Bad case files give exit status 2 and a message naming the file, the case and the
//! problem; a failing comparison gives exit status 1.

use hdf5_pure::{AttrValue, FileBuilder};
use origami_bench::case::{Case, Dtype, Op, Params, Tensor};
use origami_bench::case_file::write_cases;
use std::path::{Path, PathBuf};
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("origami-malformed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn eval(path: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_origami-bench"))
        .arg("eval")
        .arg(path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// A 1-D sum pool whose expected output is right.
fn good_case() -> Case {
    let mut params = Params::defaults(1);
    params.kernel_size = vec![2];
    params.stride = vec![2];
    Case {
        name: "sum".into(),
        op: Op::SumPool,
        dims: 1,
        dtype: Dtype::F64,
        params,
        rtol: None,
        atol: None,
        input: Tensor::new(vec![1, 1, 4], vec![1.0, 2.0, 3.0, 4.0]),
        weight: None,
        bias: None,
        grad_output: None,
        output: Tensor::new(vec![1, 1, 2], vec![3.0, 7.0]),
        grad_input: None,
        grad_weight: None,
        grad_bias: None,
        indices: None,
    }
}

#[test]
fn a_valid_file_passes_and_a_wrong_value_fails() {
    let path = tmp("good.h5");
    write_cases(&path, &[good_case()]).unwrap();
    let (code, text) = eval(&path);
    assert_eq!(code, 0, "{text}");
    assert!(text.trim_end().ends_with("3 passed, 0 failed"), "{text}");

    let mut bad = good_case();
    bad.output.data[1] = 8.0;
    let path = tmp("wrong.h5");
    write_cases(&path, &[bad]).unwrap();
    let (code, text) = eval(&path);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("FAIL"), "{text}");
}

#[test]
fn truncated_file_is_exit_2() {
    let path = tmp("truncated.h5");
    write_cases(&path, &[good_case()]).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let (code, text) = eval(&path);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("truncated.h5"), "{text}");
}

#[test]
fn wrong_format_string_is_exit_2() {
    let path = tmp("format.h5");
    let mut fb = FileBuilder::new();
    fb.set_attr("format", AttrValue::String("origami-cases/9".into()));
    fb.write(&path).unwrap();
    let (code, text) = eval(&path);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("format.h5") && text.contains("origami-cases/9"),
        "{text}"
    );
}

#[test]
fn missing_attribute_is_exit_2() {
    let path = tmp("missing.h5");
    let mut fb = FileBuilder::new();
    fb.set_attr("format", AttrValue::String("origami-cases/1".into()));
    let mut g = fb.create_group("no_stride");
    g.set_attr("op", AttrValue::String("max_pool".into()));
    g.set_attr("dims", AttrValue::I64(1));
    g.set_attr("kernel_size", AttrValue::I64Array(vec![2]));
    g.set_attr("padding", AttrValue::I64Array(vec![0]));
    g.create_dataset("input")
        .with_f64_data(&[1.0, 2.0])
        .with_shape(&[1, 1, 2]);
    g.create_dataset("output")
        .with_f64_data(&[2.0])
        .with_shape(&[1, 1, 1]);
    fb.add_group(g.finish());
    fb.write(&path).unwrap();
    let (code, text) = eval(&path);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("missing.h5") && text.contains("no_stride") && text.contains("stride"),
        "{text}"
    );
}

#[test]
fn dataset_of_the_wrong_shape_is_exit_2() {
    let mut bad = good_case();
    bad.name = "misshapen".into();
    bad.output = Tensor::new(vec![1, 1, 3], vec![3.0, 7.0, 0.0]);
    let path = tmp("shape.h5");
    write_cases(&path, &[bad]).unwrap();
    let (code, text) = eval(&path);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("shape.h5") && text.contains("misshapen") && text.contains("output"),
        "{text}"
    );
}

/// Found by the `case_file` fuzz target: a dataset whose shape's element count overflows
/// `usize` made the reader panic under overflow checks (and wrap silently without them).
#[test]
fn a_shape_whose_element_count_overflows_is_an_error() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz-overflowing-shape.h5");
    let err = origami_bench::case_file::read_cases(&path).unwrap_err();
    assert!(err.message.contains("element count overflows"), "{err}");
    let (code, text) = eval(&path);
    assert_eq!(code, 2, "{text}");
}
