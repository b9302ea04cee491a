//! The one reusable equivariance check: transform every declared input, run the function, and
//! compare with the transformed outputs, in f64, per output.

use std::fmt;

use candle_core::{bail, DType, Result, Tensor};
use proptest::test_runner::TestCaseError;

use crate::transform::{Kind, Transform};

/// Error of one declared output under one transformation.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputError {
    /// The output's name.
    pub name: String,
    /// `max |f(g x) - g f(x)|`.
    pub max_abs_error: f64,
    /// `max_abs_error / max(|g f(x)|, tiny)`: the error relative to the output's scale.
    pub max_rel_error: f64,
    /// `max |g f(x)|`.
    pub scale: f64,
}

/// The errors of every output under one transformation.
#[derive(Debug, Clone)]
pub struct EquivarianceReport {
    /// The transformation that was applied.
    pub transform: Transform,
    /// One entry per declared output.
    pub outputs: Vec<OutputError>,
}

impl EquivarianceReport {
    /// Largest absolute error over all outputs.
    pub fn max_abs_error(&self) -> f64 {
        self.outputs
            .iter()
            .map(|o| o.max_abs_error)
            .fold(0.0, f64::max)
    }

    /// Largest relative error over all outputs.
    pub fn max_rel_error(&self) -> f64 {
        self.outputs
            .iter()
            .map(|o| o.max_rel_error)
            .fold(0.0, f64::max)
    }
}

impl fmt::Display for EquivarianceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "equivariance under d = {}, det Q = {:+.0}:",
            self.transform.d,
            self.transform.det()
        )?;
        for o in &self.outputs {
            writeln!(
                f,
                "  {:<16} max_abs {:.3e}  max_rel {:.3e}  (scale {:.3e})",
                o.name, o.max_abs_error, o.max_rel_error, o.scale
            )?;
        }
        write!(f, "  {:?}", self.transform)
    }
}

/// A declared input or output: its name, how it transforms, and (for inputs) its value.
#[derive(Debug, Clone)]
pub struct Declared {
    /// Name used in reports.
    pub name: String,
    /// Transformation behaviour.
    pub kind: Kind,
}

impl Declared {
    /// Shorthand constructor.
    pub fn new(name: impl Into<String>, kind: Kind) -> Self {
        Self {
            name: name.into(),
            kind,
        }
    }
}

/// Runs `f` on `inputs` and on `g . inputs` and measures `f(g x)` against `g f(x)` in f64.
///
/// `inputs` pairs each value with its [`Kind`]; `outputs` declares what `f` returns, in order.
pub fn equivariance_error<F>(
    inputs: &[(Kind, Tensor)],
    outputs: &[Declared],
    f: F,
    g: &Transform,
) -> Result<EquivarianceReport>
where
    F: Fn(&[Tensor]) -> Result<Vec<Tensor>>,
{
    let plain: Vec<Tensor> = inputs.iter().map(|(_, t)| t.clone()).collect();
    let moved = inputs
        .iter()
        .map(|(k, t)| g.apply(k, t))
        .collect::<Result<Vec<_>>>()?;
    let y = f(&plain)?;
    let y_moved = f(&moved)?;
    if y.len() != outputs.len() || y_moved.len() != outputs.len() {
        bail!(
            "function returned {} outputs but {} were declared",
            y.len(),
            outputs.len()
        );
    }
    let mut errors = Vec::with_capacity(outputs.len());
    for ((decl, a), b) in outputs.iter().zip(&y).zip(&y_moved) {
        let expected = g.apply(&decl.kind, &a.to_dtype(DType::F64)?)?;
        let got = b.to_dtype(DType::F64)?;
        if expected.dims() != got.dims() {
            bail!(
                "output {} changed shape under the transform: {:?} vs {:?}",
                decl.name,
                expected.dims(),
                got.dims()
            );
        }
        let abs_err = max_abs(&(got - &expected)?)?;
        let scale = max_abs(&expected)?;
        errors.push(OutputError {
            name: decl.name.clone(),
            max_abs_error: abs_err,
            max_rel_error: abs_err / scale.max(f64::MIN_POSITIVE),
            scale,
        });
    }
    Ok(EquivarianceReport {
        transform: g.clone(),
        outputs: errors,
    })
}

/// Checks both the proper and the improper transform drawn from `seed` and fails the proptest
/// case (with the full report) if any output's relative error exceeds `tol`.
/// Returns the larger of the two reports' relative errors.
pub fn prop_assert_equivariant<F>(
    inputs: &[(Kind, Tensor)],
    outputs: &[Declared],
    f: F,
    d: usize,
    seed: u64,
    tol: f64,
) -> std::result::Result<f64, TestCaseError>
where
    F: Fn(&[Tensor]) -> Result<Vec<Tensor>>,
{
    let mut worst: f64 = 0.0;
    for g in Transform::pair(d, seed) {
        let report = equivariance_error(inputs, outputs, &f, &g)
            .map_err(|e| TestCaseError::fail(format!("equivariance check failed to run: {e}")))?;
        let err = report.max_rel_error();
        if err.is_nan() || err > tol {
            return Err(TestCaseError::fail(format!(
                "not equivariant (tolerance {tol:.1e}):\n{report}"
            )));
        }
        worst = worst.max(err);
    }
    Ok(worst)
}

fn max_abs(t: &Tensor) -> Result<f64> {
    if t.elem_count() == 0 {
        return Ok(0.0);
    }
    let m = t.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
    // NaN must never pass as "small": report it as infinite error.
    Ok(if m.is_nan() { f64::INFINITY } else { m })
}

/// Largest `|a - b|` between two tensors of any float dtype, computed in f64; NaN counts as
/// infinite. Handy for "fast path equals reference" tests.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    if a.dims() != b.dims() {
        bail!("shape mismatch: {:?} vs {:?}", a.dims(), b.dims());
    }
    max_abs(&(a.to_dtype(DType::F64)? - b.to_dtype(DType::F64)?)?)
}

/// `max |a - b| / max(max |b|, tiny)`, in f64.
pub fn max_rel_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    let scale = max_abs(&b.to_dtype(DType::F64)?)?;
    Ok(max_abs_diff(a, b)? / scale.max(f64::MIN_POSITIVE))
}
