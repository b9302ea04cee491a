//! The slow, obviously-correct `rho(U)`: explicit block-diagonal matrices of Kronecker powers.
//!
//! Costs `d^(2k)` per channel and builds a `rep_dim x rep_dim` matrix per row. It exists only so
//! tests and benches can check the fast path in [`crate::RepAction`] against the definition
//! `T'_{i1..ik} = s U_{i1 j1} ... U_{ik jk} T_{j1..jk}`, `s = det U` for pseudo terms.

use candle_core::{bail, DType, Result, Tensor};

use crate::orthogonal::det_host;
use crate::reps::{Parity, TensorReps};

/// The `k`-th Kronecker power of a row-major d x d matrix: entry `((i1..ik), (j1..jk))` (both
/// row-major multi-indices) is `prod_q U[i_q, j_q]`.
pub fn kron_power(u: &[f64], d: usize, k: usize) -> Vec<f64> {
    let mut m = vec![1.0];
    let mut size = 1;
    for _ in 0..k {
        let new_size = size * d;
        let mut next = vec![0.0; new_size * new_size];
        for a in 0..size {
            for b in 0..size {
                let mab = m[a * size + b];
                for i in 0..d {
                    for j in 0..d {
                        next[(a * d + i) * new_size + (b * d + j)] = mab * u[i * d + j];
                    }
                }
            }
        }
        m = next;
        size = new_size;
    }
    m
}

/// The full `rep_dim x rep_dim` matrix `rho(U)` for one row-major d x d matrix `u`.
pub fn rho_matrix(reps: &TensorReps, u: &[f64], d: usize) -> Vec<f64> {
    let dim = reps.dim(d);
    let det = det_host(u, d);
    let mut out = vec![0.0; dim * dim];
    let mut off = 0;
    for t in reps.terms() {
        let w = t.channel_dim(d);
        let kp = kron_power(u, d, t.order);
        let s = match t.parity {
            Parity::Normal => 1.0,
            Parity::Pseudo => det,
        };
        for _ in 0..t.mul {
            for a in 0..w {
                for b in 0..w {
                    out[(off + a) * dim + off + b] = s * kp[a * w + b];
                }
            }
            off += w;
        }
    }
    out
}

/// Reference `rho(U[n]) features[n]` for `features (N, rep_dim)` and `u (N, d, d)`, in f64 on
/// the host; the result has the dtype of `features`.
pub fn apply_reference(reps: &TensorReps, features: &Tensor, u: &Tensor) -> Result<Tensor> {
    let (n, dim) = features.dims2()?;
    let (un, d, _) = u.dims3()?;
    if un != n || dim != reps.dim(d) {
        bail!(
            "reference: shapes {:?} / {:?} do not fit rep {reps}",
            features.dims(),
            u.dims()
        );
    }
    let x = features.to_dtype(DType::F64)?.to_vec2::<f64>()?;
    let us = u.to_dtype(DType::F64)?.flatten_from(1)?.to_vec2::<f64>()?;
    let mut out = Vec::with_capacity(n * dim);
    for (row, m) in x.iter().zip(&us) {
        let r = rho_matrix(reps, m, d);
        for a in 0..dim {
            out.push((0..dim).map(|b| r[a * dim + b] * row[b]).sum::<f64>());
        }
    }
    Tensor::from_vec(out, (n, dim), features.device())?.to_dtype(features.dtype())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kron_power_small() {
        let u = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(kron_power(&u, 2, 0), vec![1.0]);
        assert_eq!(kron_power(&u, 2, 1), u.to_vec());
        let k2 = kron_power(&u, 2, 2);
        // entry ((0,1),(1,0)) = U[0,1] U[1,0] = 2 * 3
        assert_eq!(k2[4 + 2], 6.0);
        assert_eq!(k2.len(), 16);
    }
}
