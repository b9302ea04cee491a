//! The backward of the crate's CPU ops that compute their input gradient on the host.

use candle_core::{bail, DType, Result, Tensor};

/// `f32` and `f64` versions of a host gradient: `(input, output gradient) -> input gradient`,
/// all flat and row-major.
pub(crate) trait HostGrad {
    fn f32(&self, input: &[f32], grad: &[f32]) -> Vec<f32>;
    fn f64(&self, input: &[f64], grad: &[f64]) -> Vec<f64>;
}

/// The gradient of `arg` from `grad` (the op's output gradient), computed on the host in the
/// dtype of `arg` (f32 or f64) and shaped like it; `what` names the op in errors.
pub(crate) fn host_grad(
    op: &impl HostGrad,
    arg: &Tensor,
    grad: &Tensor,
    what: &str,
) -> Result<Tensor> {
    let grad = grad.contiguous()?;
    let (dims, dev) = (arg.dims(), arg.device());
    match arg.dtype() {
        DType::F32 => {
            let (a, g) = (arg.flatten_all()?, grad.flatten_all()?);
            Tensor::from_vec(op.f32(&a.to_vec1()?, &g.to_vec1()?), dims, dev)
        }
        DType::F64 => {
            let (a, g) = (arg.flatten_all()?, grad.flatten_all()?);
            Tensor::from_vec(op.f64(&a.to_vec1()?, &g.to_vec1()?), dims, dev)
        }
        dt => bail!("{what}: expected f32 or f64 inputs, got {dt:?}"),
    }
}
