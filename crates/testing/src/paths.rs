//! The fast path against the portable path: run a function with the CPU kernels and with the
//! portable candle-op compositions ([`tf_group::portable::portable`]), and compare the outputs
//! and the gradients of a fixed random weighting of them with respect to every input.

use candle_core::{DType, Result, Tensor, Var};

/// Largest differences between the two paths, each relative to the size of the kernel's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathDifference {
    /// Output.
    pub forward: f64,
    /// Gradients, maximised over inputs.
    pub gradient: f64,
}

fn rel(a: &Tensor, b: &Tensor) -> Result<f64> {
    let (a, b) = (a.to_dtype(DType::F64)?, b.to_dtype(DType::F64)?);
    let diff = crate::max_abs_diff(&a, &b)?;
    let scale = a.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
    Ok(diff / scale.max(1.0))
}

/// Runs `f` on `inputs` (made variables) with the kernels and with the portable path, and
/// compares the outputs and the gradients of `sum(out * w)` (a fixed pseudo-random `w`) with
/// respect to the inputs listed in `differentiable`.
pub fn compare_paths<F>(inputs: &[Tensor], differentiable: &[usize], f: F) -> Result<PathDifference>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    compare_paths_with_weights(inputs, differentiable, &[], f)
}

/// As [`compare_paths`], also comparing the gradients of `weights` (the variables of a model
/// that `f` uses).
pub fn compare_paths_with_weights<F>(
    inputs: &[Tensor],
    differentiable: &[usize],
    weights: &[Tensor],
    f: F,
) -> Result<PathDifference>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    let vars = inputs
        .iter()
        .map(|t| {
            if t.dtype().is_float() {
                Var::from_tensor(t).map(|v| v.as_tensor().clone())
            } else {
                Ok(t.clone())
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let fast = f(&vars)?;
    let before = tf_group::portable::portable_calls();
    let slow = tf_group::portable::portable(|| f(&vars))?;
    if tf_group::portable::portable_calls() == before {
        candle_core::bail!("the function took no portable path: nothing was compared");
    }
    if fast.dims() != slow.dims() {
        candle_core::bail!(
            "the paths disagree in shape: {:?} against {:?}",
            fast.dims(),
            slow.dims()
        );
    }
    let n = fast.elem_count();
    let w: Vec<f64> = (0..n)
        .map(|i| ((i as f64 + 0.5) * 0.618_034).sin())
        .collect();
    let w = Tensor::from_vec(w, fast.dims(), fast.device())?.to_dtype(fast.dtype())?;
    let g_fast = (&fast * &w)?.sum_all()?.backward()?;
    let g_slow = tf_group::portable::portable(|| (&slow * &w)?.sum_all()?.backward())?;
    let mut gradient: f64 = 0.0;
    for &i in differentiable {
        let (Some(a), Some(b)) = (g_fast.get(&vars[i]), g_slow.get(&vars[i])) else {
            candle_core::bail!("input {i} has no gradient on one of the paths");
        };
        gradient = gradient.max(rel(a, b)?);
    }
    for (i, t) in weights.iter().enumerate() {
        let (Some(a), Some(b)) = (g_fast.get(t), g_slow.get(t)) else {
            candle_core::bail!("weight {i} has no gradient on one of the paths");
        };
        gradient = gradient.max(rel(a, b)?);
    }
    Ok(PathDifference {
        forward: rel(&fast, &slow)?,
        gradient,
    })
}
