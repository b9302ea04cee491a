//! The per-edge inputs of the learned-frame edge network as one CPU op.
//!
//! For every edge `j -> i`: `[r, env(r), unit]` with `r = |x_j - x_i|` (an epsilon under the
//! square root, so duplicate points give a zero unit vector and finite gradients), the
//! envelope `(1 - min(r / r_c, 1)^2)^2` and `unit = (x_j - x_i) / r`.
//!
//! Composed from candle ops this was eleven passes over `(E, d)` and `(E, 1)` tensors, two
//! gathers and a concatenation: on the 262k kNN edges of a TF-PointNet++ batch, a fifth of the
//! learned frames' forward time for a few flops per edge. Here it is one parallel pass that
//! writes the rows the edge network reads. The backward (only run when positions are
//! variables) is hand-written and tested against the candle-ops composition.
//!
//! # Shapes
//! `pos (N, d)` -> rows `(E, 2 + d)`.

use std::sync::Arc;

use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, WithDType};
use nalgebra::RealField;
use rayon::prelude::*;
use tf_group::small_matmul::slice;

use crate::geometry::HostEdges;
use crate::host_grad::{host_grad, HostGrad};

/// The op: edges (checked against the node count) and the envelope cutoff.
#[derive(Clone)]
pub(crate) struct EdgeRows {
    pub(crate) edges: Arc<HostEdges>,
    pub(crate) cutoff: f64,
}

/// Squared distance under the square root that keeps duplicate points finite.
const EPS: f64 = 1e-24;

/// `[r, env, unit]` rows `(E, 2 + d)` of `pos (N, d)`; see the module docs.
pub(crate) fn edge_rows(pos: &Tensor, edges: Arc<HostEdges>, cutoff: f64) -> Result<Tensor> {
    if !(cutoff.is_finite() && cutoff > 0.0) {
        bail!("edge rows: the cutoff must be finite and positive, got {cutoff}");
    }
    pos.contiguous()?.apply_op1(EdgeRows { edges, cutoff })
}

/// One edge's values from its relative vector `rel`: `(r, u2, env)`, with `u2` the clamped
/// `(r / r_c)^2`; the same operations, in the same order, as the candle-ops composition.
#[inline(always)]
fn radial<F: RealField + Copy + WithDType>(rel: &[F], inv_cutoff: F) -> (F, F, F) {
    let s = rel.iter().fold(F::zero(), |acc, &v| acc + v * v);
    let r = (s + <F as WithDType>::from_f64(EPS)).sqrt();
    let u = r * inv_cutoff;
    let u2 = (u * u).clamp(F::zero(), F::one());
    let v = F::one() - u2;
    (r, u2, v * v)
}

impl EdgeRows {
    fn forward<F: RealField + Copy + WithDType>(&self, p: &[F], d: usize) -> Vec<F> {
        let HostEdges { src, dst, .. } = &*self.edges;
        let width = 2 + d;
        let inv_cutoff = <F as WithDType>::from_f64(1.0 / self.cutoff);
        let mut out = vec![F::zero(); src.len() * width];
        out.par_chunks_mut(width)
            .zip(src.par_iter().zip(dst.par_iter()))
            .with_min_len(1024)
            .for_each(|(row, (&j, &i))| {
                let (xj, xi) = (&p[j as usize * d..][..d], &p[i as usize * d..][..d]);
                let (head, unit) = row.split_at_mut(2);
                for ((u, &a), &b) in unit.iter_mut().zip(xj).zip(xi) {
                    *u = a - b;
                }
                let (r, _, env) = radial(unit, inv_cutoff);
                unit.iter_mut().for_each(|u| *u /= r);
                head[0] = r;
                head[1] = env;
            });
        out
    }

    /// Gradient of the positions from that of the rows.
    fn backward<F: RealField + Copy + WithDType>(&self, p: &[F], g: &[F], d: usize) -> Vec<F> {
        let HostEdges { src, dst, .. } = &*self.edges;
        let inv_cutoff = <F as WithDType>::from_f64(1.0 / self.cutoff);
        let two = <F as WithDType>::from_f64(2.0);
        let mut gp = vec![F::zero(); p.len()];
        let mut rel = vec![F::zero(); d];
        for ((&j, &i), gr) in src.iter().zip(dst.iter()).zip(g.chunks_exact(2 + d)) {
            let (j, i) = (j as usize, i as usize);
            for a in 0..d {
                rel[a] = p[j * d + a] - p[i * d + a];
            }
            let (r, u2, _) = radial(&rel, inv_cutoff);
            // env = (1 - u2)^2 with u2 = (r / r_c)^2 below the clamp, constant above it.
            let denv = if u2 < F::one() {
                -two * (F::one() - u2) * two * r * inv_cutoff * inv_cutoff
            } else {
                F::zero()
            };
            let (g_unit, gu_rel) = (
                &gr[2..],
                (0..d).fold(F::zero(), |s, a| s + gr[2 + a] * rel[a]),
            );
            // unit = rel / r: d unit / d r = -rel / r^2, and d r / d rel = rel / r.
            let g_r = gr[0] + gr[1] * denv - gu_rel / (r * r);
            for a in 0..d {
                let g_rel = g_r * rel[a] / r + g_unit[a] / r;
                gp[j * d + a] += g_rel;
                gp[i * d + a] -= g_rel;
            }
        }
        gp
    }
}

impl CustomOp1 for EdgeRows {
    fn name(&self) -> &'static str {
        "tf-learned-frame-edge-rows"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, d) = l.shape().dims2()?;
        let shape: Shape = (self.edges.src.len(), 2 + d).into();
        let out = match s {
            CpuStorage::F32(p) => CpuStorage::F32(self.forward(slice(p, l)?, d)),
            CpuStorage::F64(p) => CpuStorage::F64(self.forward(slice(p, l)?, d)),
            _ => bail!("edge rows: positions must be f32 or f64"),
        };
        Ok((out, shape))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        host_grad(self, arg, grad, "edge rows").map(Some)
    }
}

impl HostGrad for EdgeRows {
    fn f32(&self, p: &[f32], g: &[f32]) -> Vec<f32> {
        self.backward(p, g, p.len() / self.edges.n.max(1))
    }

    fn f64(&self, p: &[f64], g: &[f64]) -> Vec<f64> {
        self.backward(p, g, p.len() / self.edges.n.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{envelope, relative};
    use candle_core::{Device, Var};

    /// Values and position gradients against the candle-ops composition, in f64, with a
    /// duplicate point (zero unit vector), an edge beyond the cutoff and one inside it.
    #[test]
    fn edge_rows_match_candle_ops() {
        for d in [2, 3, 4] {
            let n = 6;
            let v: Vec<f64> = (0..n * d).map(|i| (i as f64 * 1.37).sin()).collect();
            let mut v = v;
            v.copy_within(0..d, d); // point 1 duplicates point 0
            let pos =
                Var::from_tensor(&Tensor::from_vec(v, (n, d), &Device::Cpu).unwrap()).unwrap();
            let src = [1u32, 0, 2, 3, 5, 4, 0];
            let dst = [0u32, 1, 1, 2, 2, 3, 5];
            let ei = Tensor::new(&[src, dst], &Device::Cpu).unwrap();
            let cutoff = 1.1;
            let edges = Arc::new(HostEdges::new(&ei, n).unwrap());
            let fused = edge_rows(&pos, edges, cutoff).unwrap();
            let (rel, dist) = relative(&pos, &ei).unwrap();
            let reference = Tensor::cat(
                &[
                    dist.clone(),
                    envelope(&dist, cutoff).unwrap(),
                    rel.broadcast_div(&dist).unwrap(),
                ],
                1,
            )
            .unwrap();
            let max_diff = |a: &Tensor, b: &Tensor| tf_testing::max_abs_diff(a, b).unwrap();
            assert!(max_diff(&fused, &reference) < 1e-14, "d = {d}");
            let env = reference.narrow(1, 1, 1).unwrap().flatten_all().unwrap();
            let env = env.to_vec1::<f64>().unwrap();
            assert!(env.contains(&0.0) && env.iter().any(|&e| e > 0.0));
            let w = Tensor::from_vec(
                (0..src.len() * (2 + d))
                    .map(|i| (i as f64 * 0.9).cos())
                    .collect::<Vec<_>>(),
                (src.len(), 2 + d),
                &Device::Cpu,
            )
            .unwrap();
            let g1 = (fused * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (reference * &w)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let (g1, g2) = (g1.get(&pos).unwrap(), g2.get(&pos).unwrap());
            // Relative: the duplicate point's unit vector has a gradient of order 1e12.
            let scale = g2.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
            let rel_err = max_diff(g1, g2) / scale.to_scalar::<f64>().unwrap();
            assert!(rel_err < 1e-14, "d = {d}: {rel_err}");
        }
    }

    #[test]
    fn bad_cutoff_and_dtype_are_errors() {
        let pos = Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let ei = Tensor::new(&[[0u32], [1u32]], &Device::Cpu).unwrap();
        let edges = Arc::new(HostEdges::new(&ei, 2).unwrap());
        assert!(edge_rows(&pos, edges.clone(), 0.0).is_err());
        let ints = Tensor::zeros((2, 3), candle_core::DType::U32, &Device::Cpu).unwrap();
        assert!(edge_rows(&ints, edges, 1.0).is_err());
    }
}
