//! Shape families: the layers the sweep measures, read from `datasets/sweeps/*.toml`.
//!
//! A file holds `[[family]]` tables; each names its op, its spatial dimensions, where its
//! shapes come from, tags for filtering, and its points. A point gives the tensor sizes and
//! the op's parameters in PyTorch's terms; what it leaves out takes PyTorch's default
//! (stride 1 for convolution and the window size for pooling, padding 0, dilation 1, one
//! group). Each point names the [`Profile`] it belongs to (see [`Profile::includes`]).

use crate::case::{Op, Params};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// How much of the sweep to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Small stand-ins for each family's layers: the whole sweep in under a minute, for CI
    /// and for trying things. Only smoke runs them.
    Smoke,
    /// The default (`cargo bench`): the real layers at batch 1 and a few at batch 8.
    Quick,
    /// The quick points and the large batch-8 and 3-D layers.
    Full,
}

impl Profile {
    /// Every profile, smallest first.
    pub const ALL: [Profile; 3] = [Profile::Smoke, Profile::Quick, Profile::Full];

    /// `smoke`, `quick` or `full`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Smoke => "smoke",
            Profile::Quick => "quick",
            Profile::Full => "full",
        }
    }

    /// Parses [`Profile::name`].
    pub fn parse(name: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether a sweep of this profile runs a point of profile `point`: smoke runs the
    /// smoke points only (they are stand-ins, not layers worth charting beside the real
    /// ones); full runs quick and full points.
    pub fn includes(self, point: Profile) -> bool {
        match self {
            Profile::Smoke => point == Profile::Smoke,
            Profile::Quick => point == Profile::Quick,
            Profile::Full => point != Profile::Smoke,
        }
    }
}

/// One shape of a family.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    /// The profile this point belongs to (default `quick`).
    #[serde(default = "quick")]
    pub profile: Profile,
    /// Images `N`.
    pub batch: usize,
    /// Input channels `C`.
    pub channels: usize,
    /// Output channels `K` (convolution only).
    #[serde(default)]
    pub out_channels: Option<usize>,
    /// Spatial input extents, outermost first.
    pub size: Vec<usize>,
    /// Kernel (window) extents.
    pub kernel: Vec<usize>,
    /// Stride; defaults to 1 for convolution and to the window for pooling (PyTorch).
    #[serde(default)]
    pub stride: Option<Vec<usize>>,
    /// Symmetric zero padding; defaults to 0.
    #[serde(default)]
    pub padding: Option<Vec<usize>>,
    /// Dilation; defaults to 1.
    #[serde(default)]
    pub dilation: Option<Vec<usize>>,
    /// Channel groups (convolution); defaults to 1.
    #[serde(default)]
    pub groups: Option<usize>,
}

fn quick() -> Profile {
    Profile::Quick
}

/// A named set of shapes of one op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Family {
    /// Unique name, e.g. `resnet_3x3`.
    pub name: String,
    /// The op every point runs.
    pub op: Op,
    /// Spatial dimensions (1, 2 or 3).
    pub dims: usize,
    /// Where the shapes come from.
    pub source: String,
    /// Free-form tags (`window_sweep` marks the families charted against window size).
    pub tags: Vec<String>,
    /// The shapes.
    pub points: Vec<Point>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFamily {
    name: String,
    op: String,
    dims: usize,
    source: String,
    #[serde(default)]
    tags: Vec<String>,
    points: Vec<Point>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    family: Vec<RawFamily>,
}

/// A family file that cannot be used, with where and why.
#[derive(Clone, Debug, PartialEq)]
pub struct FamilyError {
    /// The file.
    pub file: PathBuf,
    /// What is wrong (naming the family and point where there is one).
    pub message: String,
}

impl fmt::Display for FamilyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

impl std::error::Error for FamilyError {}

/// The default directory of family files (`datasets/sweeps` in this workspace).
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/sweeps")
}

/// Reads every `*.toml` file of `dir`, in name order, and checks that family names are
/// unique and that every point is a valid geometry.
pub fn load_dir(dir: &Path) -> Result<Vec<Family>, FamilyError> {
    let dir_err = |message: String| FamilyError {
        file: dir.to_path_buf(),
        message,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| dir_err(format!("cannot list the directory: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(dir_err("no *.toml family files".into()));
    }
    let mut families = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| FamilyError {
            file: file.clone(),
            message: format!("cannot read: {e}"),
        })?;
        families.extend(parse(&text).map_err(|message| FamilyError {
            file: file.clone(),
            message,
        })?);
    }
    for (i, f) in families.iter().enumerate() {
        if families[..i].iter().any(|g| g.name == f.name) {
            return Err(dir_err(format!("family {:?} is defined twice", f.name)));
        }
    }
    Ok(families)
}

/// Parses the text of one family file.
pub fn parse(text: &str) -> Result<Vec<Family>, String> {
    let raw: RawFile = toml::from_str(text).map_err(|e| e.to_string())?;
    raw.family
        .into_iter()
        .map(|f| {
            let op = Op::parse(&f.op).ok_or_else(|| {
                format!(
                    "family {:?}: op {:?} is not one of conv, max_pool, avg_pool, sum_pool",
                    f.name, f.op
                )
            })?;
            let family = Family {
                name: f.name,
                op,
                dims: f.dims,
                source: f.source,
                tags: f.tags,
                points: f.points,
            };
            family.validate()?;
            Ok(family)
        })
        .collect()
}

impl Family {
    fn validate(&self) -> Result<(), String> {
        if !(1..=3).contains(&self.dims) {
            return Err(format!(
                "family {:?}: dims = {} must be 1, 2 or 3",
                self.name, self.dims
            ));
        }
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(format!(
                "family name {:?} must be letters, digits and _",
                self.name
            ));
        }
        if self.points.is_empty() {
            return Err(format!("family {:?} has no points", self.name));
        }
        for (i, p) in self.points.iter().enumerate() {
            self.params(p)
                .and_then(|_| self.check_geometry(p))
                .map_err(|m| format!("family {:?}, point {i}: {m}", self.name))?;
        }
        Ok(())
    }

    fn check_geometry(&self, p: &Point) -> Result<(), String> {
        let shape = self.shape(p)?;
        match self.dims {
            1 => shape.check::<1>(),
            2 => shape.check::<2>(),
            _ => shape.check::<3>(),
        }
    }

    /// Whether `tag` is among the family's tags.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// The op's parameters for `point`, with PyTorch's defaults filled in.
    pub fn params(&self, p: &Point) -> Result<Params, String> {
        let d = self.dims;
        let field = |name: &str, v: &Option<Vec<usize>>, default: &[usize]| match v {
            None => Ok(default.to_vec()),
            Some(v) if v.len() == d => Ok(v.clone()),
            Some(v) => Err(format!("{name} has {} values, expected {d}", v.len())),
        };
        for (name, v) in [("size", &p.size), ("kernel", &p.kernel)] {
            if v.len() != d {
                return Err(format!("{name} has {} values, expected {d}", v.len()));
            }
        }
        let is_conv = self.op == Op::Conv;
        if is_conv != p.out_channels.is_some() {
            return Err(if is_conv {
                "out_channels is required for conv".into()
            } else {
                "out_channels applies to conv only".into()
            });
        }
        if !is_conv && p.groups.is_some() {
            return Err("groups applies to conv only".into());
        }
        let stride = field(
            "stride",
            &p.stride,
            &if is_conv {
                vec![1; d]
            } else {
                p.kernel.clone()
            },
        )?;
        let padding = field("padding", &p.padding, &vec![0; d])?;
        let dilation = field("dilation", &p.dilation, &vec![1; d])?;
        let mut params = Params::defaults(d);
        params.stride = stride;
        params.dilation = dilation;
        if is_conv {
            params.padding_lo = padding.clone();
            params.padding_hi = padding;
            params.groups = p.groups.unwrap_or(1);
        } else {
            params.kernel_size = p.kernel.clone();
            params.padding = padding;
        }
        Ok(params)
    }

    /// The point's full description: sizes and parameters.
    pub fn shape(&self, p: &Point) -> Result<Shape, String> {
        Ok(Shape {
            op: self.op,
            dims: self.dims,
            batch: p.batch,
            channels: p.channels,
            out_channels: p.out_channels.unwrap_or(p.channels),
            size: p.size.clone(),
            kernel: p.kernel.clone(),
            params: self.params(p)?,
        })
    }
}

/// Everything needed to build one point's geometry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    /// The op.
    pub op: Op,
    /// Spatial dimensions.
    pub dims: usize,
    /// Images `N`.
    pub batch: usize,
    /// Input channels `C`.
    pub channels: usize,
    /// Output channels `K` (equal to `C` for pooling).
    pub out_channels: usize,
    /// Spatial input extents.
    pub size: Vec<usize>,
    /// Kernel extents.
    pub kernel: Vec<usize>,
    /// Parameters, defaults filled in.
    pub params: Params,
}

impl Shape {
    /// A short readable label, e.g. `n8 c64->64 56x56 3x3 p1` or `n1 c8 112x112 31x31/1 p15`.
    pub fn label(&self) -> String {
        let x = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join("x");
        let p = &self.params;
        let all = |v: &[usize], n: usize| v.iter().all(|&s| s == n);
        let mut s = format!("n{} c{}", self.batch, self.channels);
        if self.op == Op::Conv {
            s += &format!("->{}", self.out_channels);
        }
        s += &format!(" {} {}", x(&self.size), x(&self.kernel));
        let default_stride = if self.op == Op::Conv {
            all(&p.stride, 1)
        } else {
            p.stride == self.kernel
        };
        if !default_stride {
            s += &format!("/{}", x(&p.stride));
        }
        let pad = if self.op == Op::Conv {
            &p.padding_lo
        } else {
            &p.padding
        };
        if !all(pad, 0) {
            s += &format!(" p{}", x(pad));
        }
        if !all(&p.dilation, 1) {
            s += &format!(" d{}", x(&p.dilation));
        }
        if p.groups > 1 {
            s += &format!(" g{}", p.groups);
        }
        s
    }

    /// The convolution geometry.
    pub fn conv<const D: usize>(&self) -> Result<origami_kernels::ConvNd<D>, String> {
        self.params.conv::<D>(
            self.batch,
            self.channels,
            self.out_channels,
            &self.size,
            &self.kernel,
        )
    }

    /// The pooling geometry.
    pub fn pool<const D: usize>(&self) -> Result<origami_kernels::PoolNd<D>, String> {
        self.params.pool::<D>(self.batch, self.channels, &self.size)
    }

    fn check<const D: usize>(&self) -> Result<(), String> {
        if self.op == Op::Conv {
            self.conv::<D>().map(drop)
        } else {
            self.pool::<D>().map(drop)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_families_load() {
        let families = load_dir(&default_dir()).unwrap();
        assert!(families.len() >= 10);
        for f in &families {
            for profile in Profile::ALL {
                let _ = f.points.iter().filter(|p| p.profile <= profile).count();
            }
            assert!(
                f.points.iter().any(|p| p.profile == Profile::Smoke),
                "{}",
                f.name
            );
        }
    }

    #[test]
    fn defaults_follow_pytorch() {
        let text = r#"
            [[family]]
            name = "p"
            op = "max_pool"
            dims = 2
            source = "test"
            points = [{ batch = 1, channels = 2, size = [8, 8], kernel = [2, 2] }]
        "#;
        let f = &parse(text).unwrap()[0];
        let shape = f.shape(&f.points[0]).unwrap();
        assert_eq!(shape.params.stride, vec![2, 2]);
        assert_eq!(shape.label(), "n1 c2 8x8 2x2");
        assert_eq!(f.points[0].profile, Profile::Quick);
    }

    #[test]
    fn bad_families_name_the_problem() {
        let bad = [
            ("op = \"pool\"", "op \"pool\""),
            ("dims = 4", "dims = 4"),
            ("size = [8]", "size has 1 values, expected 2"),
            ("stride = [0, 1]", "stride"),
            ("kernel = [9, 9]", "window"),
            ("out_channels = 3", "out_channels applies to conv only"),
            ("colour = 1", "unknown field"),
        ];
        for (change, expect) in bad {
            let mut point = "batch = 1, channels = 2, size = [8, 8], kernel = [2, 2]".to_string();
            let mut head = "op = \"max_pool\"\ndims = 2".to_string();
            let key = change.split(' ').next().unwrap();
            if key == "op" || key == "dims" {
                head = head
                    .lines()
                    .map(|l| if l.starts_with(key) { change } else { l })
                    .collect::<Vec<_>>()
                    .join("\n");
            } else if point.contains(&format!("{key} =")) {
                let start = point.find(&format!("{key} =")).unwrap();
                let end = point[start..]
                    .find(']')
                    .map_or(point.len(), |e| start + e + 1);
                point.replace_range(start..end, change);
            } else {
                point += &format!(", {change}");
            }
            let text = format!(
                "[[family]]\nname = \"p\"\n{head}\nsource = \"t\"\npoints = [{{ {point} }}]\n"
            );
            let err = parse(&text).unwrap_err();
            assert!(err.contains(expect), "{change}: {err}");
        }
    }
}
