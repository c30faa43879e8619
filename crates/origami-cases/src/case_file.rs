//! Reading and writing `origami-cases/1` files (HDF5). This is the only module that touches
//! the HDF5 library (`hdf5-pure`, pinned exactly because its API moves fast), so the backend
//! can be swapped here alone.

use crate::case::{Case, Dtype, Op, Params, Tensor};
use hdf5_pure::{AttrValue, DType, File, FileBuilder};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The value of the root attribute `format`.
pub const FORMAT: &str = "origami-cases/1";

/// A file or case that cannot be read, with where and why.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseFileError {
    /// The file.
    pub file: PathBuf,
    /// The case (group), when the problem is inside one.
    pub case: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CaseFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.case {
            Some(c) => write!(f, "{}: case {c}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for CaseFileError {}

/// Reads every case of a case file, validating each against its geometry.
pub fn read_cases(path: &Path) -> Result<Vec<Case>, CaseFileError> {
    read_cases_with(path, Expected::Required)
}

/// Whether a case must carry its expected results (`output`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// `eval`: a case without `output` is malformed.
    Required,
    /// `time`: only the inputs matter; a missing `output` reads as NaN of the geometry's
    /// output shape.
    Optional,
}

/// Reads every case of a case file; with [`Expected::Optional`] the expected datasets may be
/// absent (for timing your own shapes).
pub fn read_cases_with(path: &Path, expected: Expected) -> Result<Vec<Case>, CaseFileError> {
    let err = |case: Option<&str>, message: String| CaseFileError {
        file: path.to_path_buf(),
        case: case.map(str::to_owned),
        message,
    };
    let file = File::open(path).map_err(|e| err(None, format!("cannot read HDF5: {e}")))?;
    let root = file.root();
    let attrs = root
        .attrs()
        .map_err(|e| err(None, format!("cannot read root attributes: {e}")))?;
    match attrs.get("format").map(attr_string) {
        Some(Some(f)) if f == FORMAT => {}
        Some(Some(f)) => {
            return Err(err(
                None,
                format!("root attribute format is {f:?}, expected {FORMAT:?}"),
            ));
        }
        _ => {
            return Err(err(
                None,
                format!("missing root attribute format ({FORMAT:?})"),
            ));
        }
    }
    let mut names = root
        .groups()
        .map_err(|e| err(None, format!("cannot list groups: {e}")))?;
    names.sort();
    names
        .iter()
        .map(|name| {
            let group = file
                .group(name)
                .map_err(|e| err(Some(name), format!("cannot open group: {e}")))?;
            let mut case = read_case(name, &group, expected).map_err(|m| err(Some(name), m))?;
            if case.output.shape.is_empty() {
                let shape = case.output_shape().map_err(|m| err(Some(name), m))?;
                let n = shape.iter().product();
                case.output = Tensor::new(shape, vec![f64::NAN; n]);
            }
            case.validate().map_err(|m| err(Some(name), m))?;
            Ok(case)
        })
        .collect()
}

/// A string attribute of any of HDF5's string encodings (fixed or variable length, ASCII or
/// UTF-8, or bytes that are UTF-8), as h5py and PyTorch-side writers produce them.
pub fn attr_string(v: &AttrValue) -> Option<String> {
    match v {
        AttrValue::String(s)
        | AttrValue::AsciiString(s)
        | AttrValue::VarLenString(s)
        | AttrValue::VarLenAsciiString(s) => Some(s.clone()),
        AttrValue::StringSized { value, .. } | AttrValue::AsciiStringSized { value, .. } => {
            Some(value.clone())
        }
        AttrValue::U8Array(bytes) => String::from_utf8(bytes.clone()).ok(),
        _ => None,
    }
}

/// Integers of any width, scalar or array, as `i128` (wide enough for every source type).
fn attr_ints(v: &AttrValue) -> Option<Vec<i128>> {
    Some(match v {
        AttrValue::I8(x) => vec![*x as i128],
        AttrValue::I16(x) => vec![*x as i128],
        AttrValue::I32(x) => vec![*x as i128],
        AttrValue::I64(x) => vec![*x as i128],
        AttrValue::U8(x) => vec![*x as i128],
        AttrValue::U16(x) => vec![*x as i128],
        AttrValue::U32(x) => vec![*x as i128],
        AttrValue::U64(x) => vec![*x as i128],
        AttrValue::I8Array(x) => x.iter().map(|&v| v as i128).collect(),
        AttrValue::I16Array(x) => x.iter().map(|&v| v as i128).collect(),
        AttrValue::I32Array(x) => x.iter().map(|&v| v as i128).collect(),
        AttrValue::I64Array(x) => x.iter().map(|&v| v as i128).collect(),
        AttrValue::U8Array(x) => x.iter().map(|&v| v as i128).collect(),
        AttrValue::U16Array(x) => x.iter().map(|&v| v as i128).collect(),
        AttrValue::U32Array(x) => x.iter().map(|&v| v as i128).collect(),
        AttrValue::U64Array(x) => x.iter().map(|&v| v as i128).collect(),
        _ => return None,
    })
}

fn attr_float(v: &AttrValue) -> Option<f64> {
    match v {
        AttrValue::F64(x) => Some(*x),
        AttrValue::F32(x) => Some(*x as f64),
        AttrValue::F64Array(x) if x.len() == 1 => Some(x[0]),
        AttrValue::F32Array(x) if x.len() == 1 => Some(x[0] as f64),
        other => attr_ints(other)
            .filter(|v| v.len() == 1)
            .map(|v| v[0] as f64),
    }
}

/// Reads a case's attributes with the names of the format.
struct Attrs<'a>(&'a HashMap<String, AttrValue>);

impl Attrs<'_> {
    fn ints(&self, name: &str) -> Result<Option<Vec<usize>>, String> {
        let Some(v) = self.0.get(name) else {
            return Ok(None);
        };
        let ints = attr_ints(v).ok_or(format!("attribute {name} must be integer"))?;
        ints.into_iter()
            .map(|i| {
                usize::try_from(i).map_err(|_| {
                    format!("attribute {name} has value {i}: must be a non-negative integer")
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// A per-dimension attribute: `dims` values (a scalar is accepted for one dimension).
    fn per_dim(&self, name: &str, dims: usize) -> Result<Option<Vec<usize>>, String> {
        match self.ints(name)? {
            Some(v) if v.len() == dims => Ok(Some(v)),
            Some(v) => Err(format!(
                "attribute {name} has {} values, expected {dims} (dims)",
                v.len()
            )),
            None => Ok(None),
        }
    }

    fn required_per_dim(&self, name: &str, dims: usize) -> Result<Vec<usize>, String> {
        self.per_dim(name, dims)?
            .ok_or(format!("missing attribute {name}"))
    }

    fn scalar(&self, name: &str) -> Result<Option<usize>, String> {
        match self.ints(name)? {
            Some(v) if v.len() == 1 => Ok(Some(v[0])),
            Some(v) => Err(format!(
                "attribute {name} must be one integer, got {}",
                v.len()
            )),
            None => Ok(None),
        }
    }

    fn flag(&self, name: &str) -> Result<Option<bool>, String> {
        match self.scalar(name)? {
            Some(0) => Ok(Some(false)),
            Some(1) => Ok(Some(true)),
            Some(v) => Err(format!("attribute {name} = {v}: must be 0 or 1")),
            None => Ok(None),
        }
    }

    fn float(&self, name: &str) -> Result<Option<f64>, String> {
        match self.0.get(name) {
            Some(v) => attr_float(v)
                .map(Some)
                .ok_or(format!("attribute {name} must be a number")),
            None => Ok(None),
        }
    }
}

fn read_case(name: &str, group: &hdf5_pure::Group, expected: Expected) -> Result<Case, String> {
    let attrs = group
        .attrs()
        .map_err(|e| format!("cannot read attributes: {e}"))?;
    let a = Attrs(&attrs);
    let op_name = attrs.get("op").ok_or("missing attribute op")?;
    let op_name = attr_string(op_name).ok_or("attribute op must be a string")?;
    let op = Op::parse(&op_name).ok_or(format!(
        "attribute op = {op_name:?}: must be conv, max_pool, avg_pool or sum_pool"
    ))?;
    let dims = a.scalar("dims")?.ok_or("missing attribute dims")?;
    if !(1..=3).contains(&dims) {
        return Err(format!("attribute dims = {dims}: must be 1, 2 or 3"));
    }
    let mut params = Params::defaults(dims);
    params.stride = a.required_per_dim("stride", dims)?;
    if let Some(d) = a.per_dim("dilation", dims)? {
        params.dilation = d;
    }
    if op == Op::Conv {
        params.padding_lo = a.required_per_dim("padding_lo", dims)?;
        params.padding_hi = a.required_per_dim("padding_hi", dims)?;
        params.groups = a.scalar("groups")?.unwrap_or(1);
    } else {
        params.kernel_size = a.required_per_dim("kernel_size", dims)?;
        params.padding = a.required_per_dim("padding", dims)?;
        params.ceil_mode = a.flag("ceil_mode")?.unwrap_or(false);
        params.count_include_pad = a.flag("count_include_pad")?.unwrap_or(true);
        params.divisor_override = a.scalar("divisor_override")?.unwrap_or(0);
    }

    let datasets: Vec<String> = group
        .datasets()
        .map_err(|e| format!("cannot list datasets: {e}"))?;
    let has = |n: &str| datasets.iter().any(|d| d == n);
    let mut dtype: Option<Dtype> = None;
    let mut tensor = |n: &str| -> Result<Option<Tensor>, String> {
        if !has(n) {
            return Ok(None);
        }
        let ds = group
            .dataset(n)
            .map_err(|e| format!("cannot open dataset {n}: {e}"))?;
        let shape: Vec<usize> = ds
            .shape()
            .map_err(|e| format!("cannot read the shape of {n}: {e}"))?
            .into_iter()
            .map(|v| v as usize)
            .collect();
        let (this, data) = match ds.dtype().map_err(|e| format!("dataset {n}: {e}"))? {
            DType::F32 => (
                Dtype::F32,
                ds.read_f32()
                    .map_err(|e| format!("cannot read dataset {n}: {e}"))?
                    .into_iter()
                    .map(f64::from)
                    .collect::<Vec<_>>(),
            ),
            DType::F64 => (
                Dtype::F64,
                ds.read_f64()
                    .map_err(|e| format!("cannot read dataset {n}: {e}"))?,
            ),
            other => {
                return Err(format!(
                    "dataset {n} has type {other:?}: must be float32 or float64"
                ));
            }
        };
        match dtype {
            None => dtype = Some(this),
            Some(d) if d != this => {
                return Err(format!(
                    "dataset {n} is {}, other datasets are {}: one float type per case",
                    this.name(),
                    d.name()
                ));
            }
            _ => {}
        }
        // A shape from the file can be anything: its element count must not overflow (a
        // wrapped product could even match the data by accident).
        let Some(expected) = shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b)) else {
            return Err(format!(
                "dataset {n} has shape {shape:?}, whose element count overflows"
            ));
        };
        if data.len() != expected {
            return Err(format!(
                "dataset {n} has {} elements for shape {shape:?}",
                data.len()
            ));
        }
        Ok(Some(Tensor::new(shape, data)))
    };
    let input = tensor("input")?.ok_or("missing dataset input")?;
    let weight = tensor("weight")?;
    let bias = tensor("bias")?;
    let grad_output = tensor("grad_output")?;
    let output = match (tensor("output")?, expected) {
        (Some(t), _) => t,
        // Filled in from the geometry once the case is read.
        (None, Expected::Optional) => Tensor::new(vec![], vec![]),
        (None, Expected::Required) => return Err("missing dataset output".into()),
    };
    let grad_input = tensor("grad_input")?;
    let grad_weight = tensor("grad_weight")?;
    let grad_bias = tensor("grad_bias")?;
    let dtype = dtype.unwrap_or(Dtype::F32);
    let indices = if has("indices") {
        let ds = group
            .dataset("indices")
            .map_err(|e| format!("cannot open dataset indices: {e}"))?;
        Some(
            ds.read_i64()
                .map_err(|e| format!("cannot read dataset indices as int64: {e}"))?,
        )
    } else {
        None
    };
    if op == Op::Conv && weight.is_none() {
        return Err("missing dataset weight".into());
    }
    Ok(Case {
        name: name.to_owned(),
        op,
        dims,
        dtype,
        params,
        rtol: a.float("rtol")?,
        atol: a.float("atol")?,
        input,
        weight,
        bias,
        grad_output,
        output,
        grad_input,
        grad_weight,
        grad_bias,
        indices,
    })
}

/// Writes cases to a case file (h5py reads it; strings come back as bytes there).
pub fn write_cases(path: &Path, cases: &[Case]) -> Result<(), String> {
    let mut fb = FileBuilder::new();
    fb.set_attr("format", AttrValue::String(FORMAT.into()));
    let ints = |v: &[usize]| AttrValue::I64Array(v.iter().map(|&x| x as i64).collect());
    for case in cases {
        let mut g = fb.create_group(&case.name);
        g.set_attr("op", AttrValue::String(case.op.name().into()));
        g.set_attr("dims", AttrValue::I64(case.dims as i64));
        let p = &case.params;
        g.set_attr("stride", ints(&p.stride));
        if case.op == Op::Conv || case.op == Op::MaxPool {
            g.set_attr("dilation", ints(&p.dilation));
        }
        if case.op == Op::Conv {
            g.set_attr("padding_lo", ints(&p.padding_lo));
            g.set_attr("padding_hi", ints(&p.padding_hi));
            g.set_attr("groups", AttrValue::I64(p.groups as i64));
        } else {
            g.set_attr("kernel_size", ints(&p.kernel_size));
            g.set_attr("padding", ints(&p.padding));
            g.set_attr("ceil_mode", AttrValue::I64(p.ceil_mode as i64));
            g.set_attr(
                "count_include_pad",
                AttrValue::I64(p.count_include_pad as i64),
            );
            g.set_attr(
                "divisor_override",
                AttrValue::I64(p.divisor_override as i64),
            );
        }
        if let Some(r) = case.rtol {
            g.set_attr("rtol", AttrValue::F64(r));
        }
        if let Some(a) = case.atol {
            g.set_attr("atol", AttrValue::F64(a));
        }
        let tensors = [
            ("input", Some(&case.input)),
            ("weight", case.weight.as_ref()),
            ("bias", case.bias.as_ref()),
            ("grad_output", case.grad_output.as_ref()),
            ("output", Some(&case.output)),
            ("grad_input", case.grad_input.as_ref()),
            ("grad_weight", case.grad_weight.as_ref()),
            ("grad_bias", case.grad_bias.as_ref()),
        ];
        for (name, t) in tensors {
            let Some(t) = t else { continue };
            let shape: Vec<u64> = t.shape.iter().map(|&v| v as u64).collect();
            let ds = g.create_dataset(name);
            match case.dtype {
                Dtype::F32 => {
                    let v: Vec<f32> = t.data.iter().map(|&x| x as f32).collect();
                    ds.with_f32_data(&v);
                }
                Dtype::F64 => {
                    ds.with_f64_data(&t.data);
                }
            }
            ds.with_shape(&shape);
        }
        if let Some(ix) = &case.indices {
            let shape: Vec<u64> = case.output.shape.iter().map(|&v| v as u64).collect();
            g.create_dataset("indices")
                .with_i64_data(ix)
                .with_shape(&shape);
        }
        fb.add_group(g.finish());
    }
    fb.write(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
