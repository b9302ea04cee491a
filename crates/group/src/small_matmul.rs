//! Batched products with one tiny `d x d` matrix per row: the hot path of every `rho(U)`.
//!
//! candle's batched `matmul` pays a fixed cost per batch entry that dominates when each entry is
//! a 3 x 3 matrix times a few dozen columns (see the `rho` bench). These
//! three CPU kernels do the same work in one rayon loop. Their gradients are expressed in terms
//! of each other, so autograd works to any order (forces need grad-of-grad):
//!
//! | op | inputs | output |
//! |---|---|---|
//! | [`rotate_last_axis`] | `U (N,d,d)`, `Z (N,M,d)` | `(N,d,M)`: `out[i,m] = sum_j U[i,j] Z[m,j]` |
//! | [`unrotate_first_axis`] | `U (N,d,d)`, `G (N,d,M)` | `(N,M,d)`: `out[m,j] = sum_i U[i,j] G[i,m]` |
//! | [`outer_sum`] | `G (N,d,M)`, `Z (N,M,d)` | `(N,d,d)`: `out[i,j] = sum_m G[i,m] Z[m,j]` |
//!
//! Off the CPU (or with [`crate::portable::portable`]) each is one batched candle `matmul`.

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Rotate,
    Unrotate,
    Outer,
}

/// Rows per rayon task: small rows are cheap, so batch them to amortise scheduling.
const MIN_ROWS_PER_TASK: usize = 256;

/// `out[n, i, m] = sum_j U[n, i, j] Z[n, m, j]`: rotates the last axis of `Z` and moves it first.
pub fn rotate_last_axis(u: &Tensor, z: &Tensor) -> Result<Tensor> {
    if !crate::portable::use_kernels(u) {
        Op::Rotate.shapes(u.dims(), z.dims())?;
        return u.matmul(&z.transpose(1, 2)?.contiguous()?);
    }
    u.contiguous()?.apply_op2(&z.contiguous()?, Op::Rotate)
}

/// `out[n, m, j] = sum_i U[n, i, j] G[n, i, m]`: applies `U^T` to the first axis of `G` and
/// moves it last (the inverse movement of [`rotate_last_axis`]).
pub fn unrotate_first_axis(u: &Tensor, g: &Tensor) -> Result<Tensor> {
    if !crate::portable::use_kernels(u) {
        Op::Unrotate.shapes(u.dims(), g.dims())?;
        return g.transpose(1, 2)?.contiguous()?.matmul(&u.contiguous()?);
    }
    u.contiguous()?.apply_op2(&g.contiguous()?, Op::Unrotate)
}

/// `out[n, i, j] = sum_m G[n, i, m] Z[n, m, j]`: per-row `G Z`, producing a `d x d` matrix.
pub fn outer_sum(g: &Tensor, z: &Tensor) -> Result<Tensor> {
    if !crate::portable::use_kernels(g) {
        Op::Outer.shapes(g.dims(), z.dims())?;
        return g.contiguous()?.matmul(&z.contiguous()?);
    }
    g.contiguous()?.apply_op2(&z.contiguous()?, Op::Outer)
}

/// The slice of a contiguous storage described by `l` (custom-op inputs must be contiguous).
/// Shared by the CPU kernels of the workspace.
pub fn slice<'a, T>(s: &'a [T], l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s[a..b]),
        None => bail!("tensor-frames kernel: inputs must be contiguous"),
    }
}

impl Op {
    /// Output shape and `(n, d, m)` from the input shapes, with checks.
    fn shapes(self, a: &[usize], b: &[usize]) -> Result<(Shape, usize, usize, usize)> {
        let (&[n, a1, a2], &[bn, b1, b2]) = (a, b) else {
            bail!("small_matmul {self:?}: expected rank-3 inputs, got {a:?} and {b:?}");
        };
        let ok = |c: bool| -> Result<()> {
            if !c || n != bn {
                bail!("small_matmul {self:?}: incompatible shapes {a:?} and {b:?}");
            }
            Ok(())
        };
        Ok(match self {
            Op::Rotate => {
                ok(a1 == a2 && b2 == a1)?;
                ((n, a1, b1).into(), n, a1, b1)
            }
            Op::Unrotate => {
                ok(a1 == a2 && b1 == a1)?;
                ((n, b2, a1).into(), n, a1, b2)
            }
            Op::Outer => {
                ok(a1 == b2 && a2 == b1)?;
                ((n, a1, a1).into(), n, a1, a2)
            }
        })
    }

    fn run<T: WithDType>(self, a: &[T], b: &[T], n: usize, d: usize, m: usize) -> Vec<T> {
        let (a_row, b_row, out_row) = match self {
            Op::Rotate => (d * d, m * d, d * m),
            Op::Unrotate => (d * d, d * m, m * d),
            Op::Outer => (d * m, m * d, d * d),
        };
        let mut out = vec![T::zero(); n * out_row];
        if out_row == 0 {
            return out;
        }
        out.par_chunks_mut(out_row)
            .with_min_len(MIN_ROWS_PER_TASK)
            .enumerate()
            .for_each(|(r, o)| {
                let a = &a[r * a_row..(r + 1) * a_row];
                let b = &b[r * b_row..(r + 1) * b_row];
                // A literal `d` per arm lets the compiler unroll the tiny inner loops (with a
                // runtime `d` they stay generic loops of trip count 3, about 2x slower).
                match d {
                    2 => self.row(a, b, o, 2, m),
                    3 => self.row(a, b, o, 3, m),
                    4 => self.row(a, b, o, 4, m),
                    _ => self.row(a, b, o, d, m),
                }
            });
        out
    }

    /// One row of [`run`](Self::run); always inlined so that a constant `d` propagates.
    #[inline(always)]
    fn row<T: WithDType>(self, a: &[T], b: &[T], o: &mut [T], d: usize, m: usize) {
        match self {
            // o[i, m] = sum_j U[i, j] Z[m, j]
            Op::Rotate => {
                for i in 0..d {
                    let ui = &a[i * d..(i + 1) * d];
                    for (mm, zm) in b.chunks_exact(d).enumerate() {
                        o[i * m + mm] = dot(ui, zm);
                    }
                }
            }
            // o[m, j] = sum_i U[i, j] G[i, m]
            Op::Unrotate => {
                for i in 0..d {
                    let ui = &a[i * d..(i + 1) * d];
                    let gi = &b[i * m..(i + 1) * m];
                    for (om, &g) in o.chunks_exact_mut(d).zip(gi) {
                        for (x, &u) in om.iter_mut().zip(ui) {
                            *x += u * g;
                        }
                    }
                }
            }
            // o[i, j] = sum_m G[i, m] Z[m, j]
            Op::Outer => {
                for i in 0..d {
                    let gi = &a[i * m..(i + 1) * m];
                    let oi = &mut o[i * d..(i + 1) * d];
                    for (&g, zm) in gi.iter().zip(b.chunks_exact(d)) {
                        for (x, &z) in oi.iter_mut().zip(zm) {
                            *x += g * z;
                        }
                    }
                }
            }
        }
    }
}

#[inline(always)]
fn dot<T: WithDType>(a: &[T], b: &[T]) -> T {
    a.iter().zip(b).fold(T::zero(), |acc, (&x, &y)| acc + x * y)
}

impl CustomOp2 for Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Rotate => "tf-rotate-last-axis",
            Op::Unrotate => "tf-unrotate-first-axis",
            Op::Outer => "tf-outer-sum",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (shape, n, d, m) = self.shapes(l1.dims(), l2.dims())?;
        let out = match (s1, s2) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                CpuStorage::F32(self.run(slice(a, l1)?, slice(b, l2)?, n, d, m))
            }
            (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                CpuStorage::F64(self.run(slice(a, l1)?, slice(b, l2)?, n, d, m))
            }
            _ => bail!("small_matmul: expected two f32 or two f64 inputs of the same dtype"),
        };
        Ok((out, shape))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // Derivations in the module table; each gradient is one of the three ops again. An
        // input that is not tracked (positions in training, fixed frames) gets none: nothing
        // would read it.
        let ga = match (a.track_op(), self) {
            (false, _) => None,
            (true, Op::Rotate) => Some(outer_sum(grad, b)?),
            (true, Op::Unrotate) => Some(outer_sum(b, grad)?),
            (true, Op::Outer) => Some(rotate_last_axis(grad, b)?),
        };
        let gb = match (b.track_op(), self) {
            (false, _) => None,
            (true, Op::Rotate) => Some(unrotate_first_axis(a, grad)?),
            (true, Op::Unrotate) => Some(rotate_last_axis(a, grad)?),
            (true, Op::Outer) => Some(unrotate_first_axis(grad, a)?),
        };
        Ok((ga, gb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        // deterministic pseudo-random values in [-1, 1]
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n)
            .map(|i| ((i as f64 + 1.0) * (seed as f64 + 0.37) * 12.9898).sin())
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor")
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .and_then(|t| t.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>())
            .expect("diff")
    }

    #[test]
    fn forward_matches_candle_matmul() {
        let (n, d, m) = (7, 3, 5);
        let u = rand(&[n, d, d], 1);
        let z = rand(&[n, m, d], 2);
        let g = rand(&[n, d, m], 3);
        let want = u.matmul(&z.transpose(1, 2).unwrap()).unwrap();
        assert!(max_diff(&rotate_last_axis(&u, &z).unwrap(), &want) < 1e-12);
        let want = g
            .transpose(1, 2)
            .unwrap()
            .matmul(&u.contiguous().unwrap())
            .unwrap();
        assert!(max_diff(&unrotate_first_axis(&u, &g).unwrap(), &want) < 1e-12);
        let want = g.matmul(&z).unwrap();
        assert!(max_diff(&outer_sum(&g, &z).unwrap(), &want) < 1e-12);
        let f32_out = rotate_last_axis(
            &u.to_dtype(DType::F32).unwrap(),
            &z.to_dtype(DType::F32).unwrap(),
        )
        .unwrap();
        assert_eq!(f32_out.dtype(), DType::F32);
    }

    #[test]
    fn gradients_match_candle_matmul_gradients() {
        let (n, d, m) = (4, 4, 3);
        let u = Var::from_tensor(&rand(&[n, d, d], 4)).unwrap();
        let z = Var::from_tensor(&rand(&[n, m, d], 5)).unwrap();
        let w = rand(&[n, d, m], 6);
        let ours = (rotate_last_axis(&u, &z).unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap();
        let theirs = (u.matmul(&z.transpose(1, 2).unwrap()).unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap();
        let (g1, g2) = (ours.backward().unwrap(), theirs.backward().unwrap());
        for v in [&u, &z] {
            let a = g1.get(v.as_tensor()).unwrap();
            let b = g2.get(v.as_tensor()).unwrap();
            assert!(max_diff(a, b) < 1e-12);
        }
    }

    #[test]
    fn shape_and_dtype_errors() {
        let u = rand(&[2, 3, 3], 1);
        assert!(rotate_last_axis(&u, &rand(&[2, 4, 2], 2)).is_err());
        assert!(rotate_last_axis(&u, &rand(&[3, 4, 3], 2)).is_err());
        let z = rand(&[2, 4, 3], 2).to_dtype(DType::F32).unwrap();
        assert!(rotate_last_axis(&u, &z).is_err());
        let empty = rand(&[0, 3, 3], 1);
        let out = rotate_last_axis(&empty, &rand(&[0, 4, 3], 1)).unwrap();
        assert_eq!(out.dims(), &[0, 3, 4]);
    }
}
