//! Applying `rho(U)` to batched features: `out[n] = rho(U[n]) features[n]`.
//!
//! # Shapes
//! - `features`: `(N, rep_dim)`, layout of [`TensorReps`]
//! - `u`: `(N, d, d)`, one element of O(d) per row
//! - `det`: `(N,)`, `det U[n]` (only needed when the rep has pseudo terms)
//! - output: `(N, rep_dim)`
//!
//! # Algorithm (why it is fast)
//! `rho(U)` on an order-k tensor is `U^(x)k`, a `d^k x d^k` matrix; building it costs `d^(2k)`
//! per channel. Instead we contract one tensor axis at a time (method.md section 2), at a cost of
//! `k d^(k+1)` per channel, and share each contraction across all terms of that remaining order:
//!
//! 1. Terms are grouped by order; the running tensor `Z` has shape `(N, P, d^r)` where `r` is the
//!    number of axes still to rotate and `P` counts "channels" (original channels times axes
//!    already rotated).
//! 2. For `r` from the highest order down to 1: rotate the *last* axis with one batched matmul
//!    `U @ Z^T`, whose output `(N, d, P d^(r-1))` is already `(N, d P, d^(r-1))`: the rotated axis
//!    becomes a channel axis without any copy. Terms of order `r - 1` then join `Z` by
//!    concatenation, so every step is one matmul for all terms at once.
//! 3. The result is a fixed permutation of the original layout; one `index_select` restores it,
//!    and pseudo components are multiplied by `det U`.
//!
//! Everything is built from differentiable candle ops, so gradients flow to both the features
//! and `U`. The determinant is treated as a constant: it is locally constant on O(d).

use std::collections::BTreeMap;

use candle_core::{bail, DType, Device, Result, Tensor};

use crate::orthogonal::{check_dim, det_sign};
use crate::reps::{Parity, TensorReps};

/// A precomputed plan for applying `rho(U)` of one rep in one dimension. Build it once per
/// layer (it is cheap, but not free) and reuse it every forward pass.
#[derive(Debug, Clone)]
pub struct RepAction {
    reps: TensorReps,
    d: usize,
    /// Column ranges of each order, by order: `(offset, len)` per term.
    by_order: BTreeMap<usize, Vec<(usize, usize)>>,
    /// `final[c] = scrambled[gather[c]]`.
    gather: Vec<u32>,
    /// 1.0 on pseudo columns, 0.0 elsewhere (in the original layout).
    pseudo_mask: Vec<f64>,
    /// No term has order >= 1.
    scalars_only: bool,
}

impl RepAction {
    /// Plans the action of `reps` in dimension `d >= 2`.
    pub fn new(reps: &TensorReps, d: usize) -> Result<Self> {
        check_dim(d)?;
        let offsets = reps.offsets(d);
        let mut by_order: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
        let mut pseudo_mask = vec![0.0; reps.dim(d)];
        for (t, &off) in reps.terms().iter().zip(&offsets) {
            by_order.entry(t.order).or_default().push((off, t.dim(d)));
            if t.parity == Parity::Pseudo {
                pseudo_mask[off..off + t.dim(d)].fill(1.0);
            }
        }
        let scalars_only = reps.max_order() == 0;
        let mut plan = Self {
            reps: reps.clone(),
            d,
            by_order,
            gather: Vec::new(),
            pseudo_mask,
            scalars_only,
        };
        plan.gather = plan.derive_gather()?;
        Ok(plan)
    }

    /// The rep this plan acts on.
    pub fn reps(&self) -> &TensorReps {
        &self.reps
    }

    /// The dimension `d`.
    pub fn d(&self) -> usize {
        self.d
    }

    /// Feature width `reps.dim(d)`.
    pub fn rep_dim(&self) -> usize {
        self.pseudo_mask.len()
    }

    /// The permutation is whatever the contraction pipeline does to column positions, so we
    /// derive it by running that very pipeline with `U = I` on the column labels `0..rep_dim`
    /// (exact in f64). The plan can then never disagree with the pipeline.
    fn derive_gather(&self) -> Result<Vec<u32>> {
        let dim = self.rep_dim();
        if self.scalars_only {
            return Ok((0..dim as u32).collect());
        }
        let labels: Vec<f64> = (0..dim).map(|c| c as f64).collect();
        let x = Tensor::from_vec(labels, (1, dim), &Device::Cpu)?;
        let eye = Tensor::eye(self.d, DType::F64, &Device::Cpu)?.unsqueeze(0)?;
        let scrambled = self.contract(&x, &eye)?.squeeze(0)?.to_vec1::<f64>()?;
        let mut gather = vec![u32::MAX; dim];
        for (pos, &label) in scrambled.iter().enumerate() {
            gather[label as usize] = pos as u32;
        }
        if gather.contains(&u32::MAX) {
            bail!("internal error: rep action plan is not a permutation");
        }
        Ok(gather)
    }

    /// Steps 1-2 of the algorithm: returns `(N, rep_dim)` in the scrambled layout.
    fn contract(&self, x: &Tensor, u: &Tensor) -> Result<Tensor> {
        let (n, _) = x.dims2()?;
        let d = self.d;
        let block = |order: usize| -> Result<Option<Tensor>> {
            let Some(ranges) = self.by_order.get(&order) else {
                return Ok(None);
            };
            let parts = ranges
                .iter()
                .map(|&(off, len)| x.narrow(1, off, len))
                .collect::<Result<Vec<_>>>()?;
            let cat = Tensor::cat(&parts, 1)?;
            let width = d.pow(order as u32);
            let channels = cat.dim(1)? / width;
            Ok(Some(cat.reshape((n, channels, width))?))
        };
        let max_order = self.reps.max_order();
        let mut z: Option<Tensor> = None;
        for r in (1..=max_order).rev() {
            // Terms of order r join the running tensor, whose remaining order is r too.
            z = match (z, block(r)?) {
                (Some(z), Some(b)) => Some(Tensor::cat(&[z, b], 1)?),
                (z, b) => z.or(b),
            };
            if let Some(cur) = z.take() {
                let p = cur.dim(1)?;
                let rest = d.pow(r as u32 - 1);
                // (N, P d^(r-1), d)^T = (N, d, P d^(r-1)); U @ that rotates the last axis.
                let zt = cur.reshape((n, p * rest, d))?.transpose(1, 2)?;
                let rotated = u.matmul(&zt)?;
                z = Some(rotated.reshape((n, d * p, rest))?);
            }
        }
        let mut parts = Vec::new();
        if let Some(z) = z {
            parts.push(z.squeeze(2)?);
        }
        if let Some(s) = block(0)? {
            parts.push(s.squeeze(2)?);
        }
        Tensor::cat(&parts, 1)
    }

    /// `rho(U) features`, computing `det U` when the rep has pseudo terms.
    pub fn apply(&self, features: &Tensor, u: &Tensor) -> Result<Tensor> {
        let det = if self.reps.has_pseudo() {
            Some(det_sign(u)?)
        } else {
            None
        };
        self.apply_inner(features, u, det.as_ref())
    }

    /// `rho(U) features` with a known `det U` of shape `(N,)` (frames carry theirs).
    pub fn apply_with_det(&self, features: &Tensor, u: &Tensor, det: &Tensor) -> Result<Tensor> {
        self.apply_inner(features, u, Some(det))
    }

    /// `rho(Q) features` for one element `Q` of shape `(d, d)` shared by all rows.
    pub fn apply_shared(&self, features: &Tensor, q: &Tensor) -> Result<Tensor> {
        let (n, _) = features.dims2()?;
        let (d1, d2) = q.dims2()?;
        if (d1, d2) != (self.d, self.d) {
            bail!(
                "expected Q of shape ({d}, {d}), got {:?}",
                q.dims(),
                d = self.d
            );
        }
        let u = q.unsqueeze(0)?.broadcast_as((n, d1, d2))?.contiguous()?;
        self.apply(features, &u)
    }

    fn apply_inner(&self, features: &Tensor, u: &Tensor, det: Option<&Tensor>) -> Result<Tensor> {
        let (n, dim) = features.dims2()?;
        if dim != self.rep_dim() {
            bail!(
                "features have {dim} columns but rep {} has dimension {} in d = {}",
                self.reps,
                self.rep_dim(),
                self.d
            );
        }
        let (un, d1, d2) = u.dims3()?;
        if un != n || d1 != self.d || d2 != self.d {
            bail!(
                "expected U of shape ({n}, {d}, {d}), got {:?}",
                u.dims(),
                d = self.d
            );
        }
        if features.dtype() != u.dtype() {
            bail!(
                "features are {:?} but U is {:?}",
                features.dtype(),
                u.dtype()
            );
        }
        if n == 0 || dim == 0 {
            return Ok(features.clone());
        }
        let mut out = if self.scalars_only {
            features.clone()
        } else {
            let scrambled = self.contract(features, u)?;
            let gather = Tensor::from_slice(&self.gather, dim, features.device())?;
            scrambled.index_select(&gather, 1)?
        };
        if self.reps.has_pseudo() {
            let Some(det) = det else {
                bail!("rep {} has pseudo terms: det U is required", self.reps);
            };
            let det = det.reshape((n, 1))?.to_dtype(features.dtype())?;
            let mask = Tensor::from_slice(&self.pseudo_mask, (1, dim), features.device())?
                .to_dtype(features.dtype())?;
            // sign = 1 + mask (det - 1): det on pseudo columns, 1 elsewhere.
            let sign = (det.affine(1.0, -1.0)?.broadcast_mul(&mask)? + 1.0)?;
            out = out.mul(&sign)?;
        }
        Ok(out)
    }
}

impl TensorReps {
    /// One-off `rho(U) features`; build a [`RepAction`] instead inside a layer.
    pub fn apply(&self, features: &Tensor, u: &Tensor) -> Result<Tensor> {
        let d = u.dim(u.rank().saturating_sub(1))?;
        RepAction::new(self, d)?.apply(features, u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_a_vector_and_a_matrix_in_2d() {
        // 90 degree rotation: e_x -> e_y.
        let u = Tensor::from_vec(vec![0.0f64, -1.0, 1.0, 0.0], (1, 2, 2), &Device::Cpu).unwrap();
        let reps = TensorReps::parse("1x0n+1x1n+1x2n").unwrap();
        // scalar 7, vector e_x, matrix e_x e_x^T
        let x = Tensor::from_vec(
            vec![7.0f64, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0],
            (1, 7),
            &Device::Cpu,
        )
        .unwrap();
        let y = reps.apply(&x, &u).unwrap().to_vec2::<f64>().unwrap();
        let want = [7.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        for (a, b) in y[0].iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{:?}", y);
        }
    }

    #[test]
    fn pseudo_scalar_flips_under_reflection() {
        let u = Tensor::from_vec(vec![-1.0f64, 0.0, 0.0, 1.0], (1, 2, 2), &Device::Cpu).unwrap();
        let reps = TensorReps::parse("1x0p+1x1p").unwrap();
        let x = Tensor::from_vec(vec![2.0f64, 1.0, 1.0], (1, 3), &Device::Cpu).unwrap();
        let y = reps.apply(&x, &u).unwrap().to_vec2::<f64>().unwrap();
        assert_eq!(y[0], vec![-2.0, 1.0, -1.0]);
    }

    #[test]
    fn shape_errors_are_reported() {
        let reps = TensorReps::parse("1x1n").unwrap();
        let plan = RepAction::new(&reps, 3).unwrap();
        let x = Tensor::zeros((2, 4), DType::F64, &Device::Cpu).unwrap();
        let u = Tensor::zeros((2, 3, 3), DType::F64, &Device::Cpu).unwrap();
        assert!(plan.apply(&x, &u).is_err());
        let x = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
        assert!(plan.apply(&x, &u).is_err());
        assert!(RepAction::new(&reps, 1).is_err());
    }
}
