//! One-pass CPU kernels for the two MLP pieces whose candle backward is many passes: the bias
//! of a linear layer and SiLU. Their results are bit-identical to candle's own (same operations
//! in the same order, each rounded the same way), so swapping them in changes no trained
//! weight; they only drop passes and allocations.
//!
//! - Bias: candle adds it by broadcasting, and its backward sums the gradient over rows with
//!   one index division per element (the reduction is not over the last axis). Here the rows
//!   are added in order into one accumulator row, which vectorises.
//! - SiLU: candle's backward builds `sigmoid(x) (1 - y) + y` from eight tensor operations
//!   (`neg`, `exp`, `+ 1`, `recip`, `1 -`, `*`, `+`, `* grad`), each allocating. Here it is one
//!   loop with the same operations per element.
//!
//! Other devices fall back to candle's operations.

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, Layout, Module, Result, Shape, Tensor, WithDType,
};
use candle_nn::Linear;

/// `x W^T + b` for `x` of shape `(n, in)`, with [`BiasAdd`]'s backward on CPU.
#[derive(Debug, Clone)]
pub(crate) struct Dense {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Dense {
    pub(crate) fn new(lin: Linear) -> Self {
        Self {
            weight: lin.weight().clone(),
            bias: lin.bias().cloned(),
        }
    }
}

impl Module for Dense {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = if x.rank() == 2 {
            x.matmul(&self.weight.t()?)?
        } else {
            // Other ranks as candle's `Linear` does them.
            return Linear::new(self.weight.clone(), self.bias.clone()).forward(x);
        };
        match &self.bias {
            Some(b) => add_bias(&y, b),
            None => Ok(y),
        }
    }
}

/// `y + b` broadcast over the rows of `y` `(n, c)`, `b` of shape `(c)`.
pub(crate) fn add_bias(y: &Tensor, b: &Tensor) -> Result<Tensor> {
    if y.device().is_cpu() && y.rank() == 2 && b.dims() == [y.dims()[1]] && y.dtype() == b.dtype() {
        y.contiguous()?.apply_op2(&b.contiguous()?, BiasAdd)
    } else {
        y.broadcast_add(b)
    }
}

/// `x * sigmoid(x)`, with a one-pass backward on CPU.
pub(crate) fn silu(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() {
        x.contiguous()?.apply_op1(Silu)
    } else {
        x.silu()
    }
}

/// See [`add_bias`].
struct BiasAdd;

impl BiasAdd {
    fn fwd<T: WithDType>(y: &[T], yl: &Layout, b: &[T], bl: &Layout) -> Result<Vec<T>> {
        let (Some((y0, y1)), Some((b0, b1))) = (yl.contiguous_offsets(), bl.contiguous_offsets())
        else {
            bail!("bias add: operands must be contiguous");
        };
        let (y, b) = (&y[y0..y1], &b[b0..b1]);
        let c = b.len();
        let mut out = Vec::with_capacity(y.len());
        for row in y.chunks_exact(c) {
            out.extend(row.iter().zip(b).map(|(v, w)| *v + *w));
        }
        Ok(out)
    }
}

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "tf-bias-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let shape = l1.shape().clone();
        let out = match (s1, s2) {
            (CpuStorage::F32(y), CpuStorage::F32(b)) => CpuStorage::F32(Self::fwd(y, l1, b, l2)?),
            (CpuStorage::F64(y), CpuStorage::F64(b)) => CpuStorage::F64(Self::fwd(y, l1, b, l2)?),
            _ => bail!("bias add: f32 or f64 operands of one dtype"),
        };
        Ok((out, shape))
    }

    fn bwd(
        &self,
        _y: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((
            Some(grad.clone()),
            Some(grad.contiguous()?.apply_op1_no_bwd(&ColumnSum)?),
        ))
    }
}

/// Column sums of `(n, c)`, adding the rows in order, as candle's sum over axis 0 does.
struct ColumnSum;

impl ColumnSum {
    fn sum<T: WithDType>(g: &[T], l: &Layout) -> Result<Vec<T>> {
        let c = l.dims()[1];
        let mut acc = vec![T::zero(); c];
        let Some((o0, o1)) = l.contiguous_offsets() else {
            bail!("column sum: the matrix must be contiguous");
        };
        for row in g[o0..o1].chunks_exact(c) {
            for (a, v) in acc.iter_mut().zip(row) {
                *a += *v;
            }
        }
        Ok(acc)
    }
}

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "tf-column-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        if l.dims().len() != 2 {
            bail!("column sum: expected a matrix, got {:?}", l.dims());
        }
        let out = match s {
            CpuStorage::F32(g) => CpuStorage::F32(Self::sum(g, l)?),
            CpuStorage::F64(g) => CpuStorage::F64(Self::sum(g, l)?),
            _ => bail!("column sum: f32 or f64"),
        };
        Ok((out, Shape::from(l.dims()[1])))
    }
}

/// See [`silu`].
struct Silu;

/// The float operations SiLU needs, in the types candle computes them in.
trait Float: WithDType + std::ops::Neg<Output = Self> {
    fn exp(self) -> Self;
}

impl Float for f32 {
    #[inline]
    fn exp(self) -> Self {
        f32::exp(self)
    }
}

impl Float for f64 {
    #[inline]
    fn exp(self) -> Self {
        f64::exp(self)
    }
}

impl Silu {
    fn fwd<T: Float>(x: &[T], l: &Layout) -> Result<Vec<T>> {
        let one = T::one();
        let Some((a, b)) = l.contiguous_offsets() else {
            bail!("silu: the input must be contiguous");
        };
        Ok(x[a..b].iter().map(|v| *v / (one + (-*v).exp())).collect())
    }
}

impl CustomOp1 for Silu {
    fn name(&self) -> &'static str {
        "tf-silu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(x) => CpuStorage::F32(Self::fwd(x, l)?),
            CpuStorage::F64(x) => CpuStorage::F64(Self::fwd(x, l)?),
            _ => bail!("silu: f32 or f64"),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.contiguous()?.apply_op3_no_bwd(
            &res.contiguous()?,
            &grad.contiguous()?,
            &SiluGrad,
        )?))
    }
}

/// The gradient of [`Silu`] from its input, its output and the incoming gradient.
struct SiluGrad;

impl SiluGrad {
    fn grad<T: Float>(
        x: &[T],
        lx: &Layout,
        y: &[T],
        ly: &Layout,
        g: &[T],
        lg: &Layout,
    ) -> Result<Vec<T>> {
        let one = T::one();
        let f = |x: T, y: T, g: T| {
            let s = one / ((-x).exp() + one);
            g * (s * (one - y) + y)
        };
        let (Some((x0, x1)), Some((y0, y1)), Some((g0, g1))) = (
            lx.contiguous_offsets(),
            ly.contiguous_offsets(),
            lg.contiguous_offsets(),
        ) else {
            bail!("silu gradient: operands must be contiguous");
        };
        Ok(x[x0..x1]
            .iter()
            .zip(&y[y0..y1])
            .zip(&g[g0..g1])
            .map(|((x, y), g)| f(*x, *y, *g))
            .collect())
    }
}

impl candle_core::CustomOp3 for SiluGrad {
    fn name(&self) -> &'static str {
        "tf-silu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() || l1.shape() != l3.shape() {
            bail!("silu gradient: shapes differ");
        }
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(y), CpuStorage::F32(g)) => {
                CpuStorage::F32(Self::grad(x, l1, y, l2, g, l3)?)
            }
            (CpuStorage::F64(x), CpuStorage::F64(y), CpuStorage::F64(g)) => {
                CpuStorage::F64(Self::grad(x, l1, y, l2, g, l3)?)
            }
            _ => bail!("silu gradient: f32 or f64 of one dtype"),
        };
        Ok((out, l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn draw(shape: (usize, usize), seed: u64, dtype: DType) -> Tensor {
        let mut s = seed;
        let v: Vec<f64> = (0..shape.0 * shape.1)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 8.0 - 4.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu)
            .and_then(|t| t.to_dtype(dtype))
            .expect("tensor")
    }

    fn bits(t: &Tensor) -> Vec<u64> {
        t.flatten_all()
            .and_then(|t| t.to_dtype(DType::F64))
            .and_then(|t| t.to_vec1::<f64>())
            .expect("values")
            .into_iter()
            .map(f64::to_bits)
            .collect()
    }

    /// Forward values and every gradient equal candle's own bit for bit, in f32 and f64, for a
    /// two-layer MLP with a downstream weighting (so the incoming gradients are not all ones).
    #[test]
    fn mlp_pieces_match_candle_bit_for_bit() {
        for dtype in [DType::F32, DType::F64] {
            let x = draw((37, 5), 1, dtype);
            let w1 = Var::from_tensor(&draw((16, 5), 2, dtype)).expect("w1");
            let b1 =
                Var::from_tensor(&draw((1, 16), 3, dtype).flatten_all().expect("b1")).expect("b1");
            let w2 = Var::from_tensor(&draw((3, 16), 4, dtype)).expect("w2");
            let b2 =
                Var::from_tensor(&draw((1, 3), 5, dtype).flatten_all().expect("b2")).expect("b2");
            let weight = draw((37, 3), 6, dtype);
            let run = |fused: bool| -> (Tensor, Vec<Vec<u64>>) {
                let l1 = Linear::new(w1.as_tensor().clone(), Some(b1.as_tensor().clone()));
                let l2 = Linear::new(w2.as_tensor().clone(), Some(b2.as_tensor().clone()));
                let out = if fused {
                    let h = silu(&Dense::new(l1).forward(&x).expect("l1")).expect("silu");
                    Dense::new(l2).forward(&h).expect("l2")
                } else {
                    let h = l1.forward(&x).and_then(|h| h.silu()).expect("l1");
                    l2.forward(&h).expect("l2")
                };
                let loss = (&out * &weight).and_then(|t| t.sum_all()).expect("loss");
                let grads = loss.backward().expect("backward");
                let g = [&w1, &b1, &w2, &b2]
                    .iter()
                    .map(|v| bits(grads.get(v.as_tensor()).expect("gradient")))
                    .collect();
                (out, g)
            };
            let (a, ga) = run(false);
            let (b, gb) = run(true);
            assert_eq!(bits(&a), bits(&b), "{dtype:?} forward");
            assert_eq!(ga, gb, "{dtype:?} gradients");
        }
    }

    #[test]
    fn column_sum_of_a_strided_matrix() {
        let g = draw((4, 6), 9, DType::F64).t().expect("transpose");
        let ours = g
            .contiguous()
            .and_then(|g| g.apply_op1_no_bwd(&ColumnSum))
            .expect("sum");
        let candle = g.sum(0).expect("sum");
        assert_eq!(bits(&ours), bits(&candle));
    }
}
